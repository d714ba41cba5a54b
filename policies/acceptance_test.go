package policies

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestExampleAcceptanceTestsExist(t *testing.T) {
	tree := loadExampleTree(t)
	if probs := CheckAcceptanceTests(DirFS(exampleRepo), tree); len(probs) > 0 {
		t.Fatalf("example acceptance tests missing:\n%v", probs)
	}
}

func TestMissingAcceptanceTestsAreReported(t *testing.T) {
	const reqs = "services/payments/requirements.yaml"
	for _, tc := range []struct {
		name, old, new, field, msg string
	}{
		{"renamed test", "name: TestAuthorizeIsIdempotentPerKey", "name: TestAuthorizeIsIdempotentPerKeyX", "requirements[1].acceptance[0].test.name", "no func TestAuthorizeIsIdempotentPerKeyX in services/payments/*_test.go"},
		{"missing package", "package: ./services/payments, name: TestAuthorizeIsIdempotentPerKey", "package: ./services/refunds, name: TestAuthorizeIsIdempotentPerKey", "requirements[1].acceptance[0].test.package", "no directory services/refunds"},
		{"import path in module", "package: ./services/payments, name: TestAuthorizeIsIdempotentPerKey", "package: example.com/payments/services/payments, name: TestMissing", "requirements[1].acceptance[0].test.name", "no func TestMissing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := copyExample(t)
			editFile(t, root, reqs, tc.old, tc.new)
			tree, probs := LoadTree(DirFS(root))
			if len(probs) > 0 {
				t.Fatal(probs)
			}
			probs = CheckAcceptanceTests(DirFS(root), tree)
			p := mustFind(t, probs, tc.field, tc.msg)
			if p.File != reqs || p.Line == 0 {
				t.Errorf("problem not located in %s: %s", reqs, p)
			}
		})
	}
	// Import paths of the module and subtests resolve.
	root := copyExample(t)
	editFile(t, root, reqs, "package: ./services/payments, name: TestAuthorizeIsIdempotentPerKey", "package: example.com/payments/services/payments, name: TestAuthorizeIsIdempotentPerKey/retry")
	tree, _ := LoadTree(DirFS(root))
	if probs := CheckAcceptanceTests(DirFS(root), tree); len(probs) > 0 {
		t.Fatalf("import path form not resolved: %v", probs)
	}
}

// TestExampleAcceptanceTestsPass runs the example repository's tests with
// the real toolchain and checks that every acceptance test named in its
// requirements ran and passed.
func TestExampleAcceptanceTestsPass(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test in the example repository")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go toolchain not on PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "test", "-json", "-count=1", "./...")
	cmd.Dir = exampleRepo
	cmd.Env = append(cmd.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go test in the example failed: %v\n%s", err, out)
	}
	passed := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		var ev struct{ Action, Package, Test string }
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Action == "pass" && ev.Test != "" {
			passed[strings.TrimPrefix(ev.Package, "example.com/payments")+" "+ev.Test] = true
		}
	}
	tree := loadExampleTree(t)
	n := 0
	for _, td := range tree.Threads {
		for _, fr := range td.Requirements.Requirements {
			for _, ac := range fr.Acceptance {
				key := strings.TrimPrefix(ac.Test.Package, ".") + " " + ac.Test.Name
				if !passed[key] {
					t.Errorf("%s %s: %s did not pass (have %v)", fr.ID, ac.ID, key, passed)
				}
				n++
			}
		}
	}
	if n < 6 {
		t.Errorf("only %d acceptance tests in the example", n)
	}
}
