// Package layering guards the dependency direction of ../shared/DESIGN.md:
// cmd -> hooks -> gate -> checks -> policies, sandbox used by checks and cmd,
// shared plumbing under internal/.
package layering

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/agentgate/agentgate/"

// allowed maps a top-level area to the areas it may import (besides itself).
var allowed = map[string][]string{
	"policies": {},
	"internal": {"internal"},
	"checks":   {"policies", "internal", "sandbox"},
	"gate":     {"checks", "policies", "internal"},
	"hooks":    {"gate", "checks", "policies", "internal", "sandbox"},
	"sandbox":  {"policies", "internal"},
	"cmd":      {"hooks", "gate", "checks", "policies", "internal", "sandbox"},
	"test":     {"cmd", "hooks", "gate", "checks", "policies", "internal", "sandbox", "test"},
}

// exceptions are reviewed, documented arrows outside the table. The LLM
// gateway lives in sandbox/ (it is the sandbox's only egress) but meters
// against the plan budgets and writes audit events, which are gate's.
var exceptions = map[string][]string{
	"sandbox/gateway": {"gate/budget", "gate/audit", "gate/manifest"},
}

func area(pkg string) string {
	if i := strings.IndexByte(pkg, '/'); i >= 0 {
		return pkg[:i]
	}
	return pkg
}

func TestImportsFollowTheDesignLayers(t *testing.T) {
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", module+"...")
	cmd.Dir = "../.."
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(out)
	checked := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		from := strings.TrimPrefix(p.ImportPath, module)
		if from == p.ImportPath {
			continue
		}
		fromArea := area(from)
		ok, known := allowed[fromArea]
		if !known {
			t.Errorf("package %s is outside the design's top-level areas", from)
			continue
		}
		for _, imp := range p.Imports {
			to := strings.TrimPrefix(imp, module)
			if to == imp {
				continue // not ours
			}
			checked++
			toArea := area(to)
			if toArea == fromArea && fromArea != "policies" {
				continue
			}
			if fromArea == "policies" && toArea == "policies" {
				continue
			}
			if contains(ok, toArea) || exceptionAllows(from, to) {
				continue
			}
			t.Errorf("%s imports %s: %s may not depend on %s (see DESIGN.md layering)", from, to, fromArea, toArea)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	if checked == 0 {
		t.Fatal("no project imports were checked; go list found nothing")
	}
}

func exceptionAllows(from, to string) bool {
	for pkg, tos := range exceptions {
		if from == pkg || strings.HasPrefix(from, pkg+"/") {
			if contains(tos, to) {
				return true
			}
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
