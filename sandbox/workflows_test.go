package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"go.yaml.in/yaml/v3"
)

var workflowFiles = []string{"agent-run.yml", "agentgate-check.yml"}

func workflowPath(name string) string { return filepath.Join("..", ".github", "workflows", name) }

// TestWorkflowsPassActionlint lints the dispatch and check workflows with
// actionlint (as a Go library; shellcheck runs on the scripts when it is
// installed).
func TestWorkflowsPassActionlint(t *testing.T) {
	shellcheck := ""
	if p, err := exec.LookPath("shellcheck"); err == nil {
		shellcheck = p
	}
	var out strings.Builder
	l, err := actionlint.NewLinter(&out, &actionlint.LinterOptions{
		ConfigFile: filepath.Join("testdata", "actionlint.yaml"), Shellcheck: shellcheck, Oneline: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range workflowFiles {
		paths = append(paths, workflowPath(f))
	}
	errs, err := l.LintFiles(paths, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) > 0 {
		t.Fatalf("actionlint found %d problem(s):\n%s", len(errs), out.String())
	}
	// The linter is live: a broken workflow is reported.
	broken, err := l.Lint("broken.yml", []byte("on: push\njobs:\n  j:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nosuchthing }}\n        shell: nosuchshell\n"), nil)
	if err != nil || len(broken) == 0 {
		t.Fatalf("actionlint did not flag a broken workflow (err %v)", err)
	}
	if shellcheck == "" {
		t.Log("shellcheck not installed: run scripts were not shell-checked (apt-get install shellcheck)")
	}
}

var pinnedUsesRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$`)

// workflowRules are test 40's rules for the agent dispatch workflow (and,
// for pinning and permissions, every workflow here). It returns every
// violation.
func workflowRules(name string, data []byte, agent bool) []string {
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return []string{"yaml: " + err.Error()}
	}
	var bad []string
	on, _ := doc["on"].(map[string]any)
	for trig := range on {
		if strings.HasPrefix(trig, "pull_request") || trig == "issue_comment" && agent {
			bad = append(bad, name+": trigger "+trig+" can run code from forks on the runner")
		}
		if agent && trig != "workflow_dispatch" && trig != "workflow_call" {
			bad = append(bad, name+": agent runs start only from workflow_dispatch or workflow_call, not "+trig)
		}
	}
	if p, ok := doc["permissions"].(map[string]any); !ok || len(p) != 0 {
		bad = append(bad, name+": top-level permissions must be {}")
	}
	jobs, _ := doc["jobs"].(map[string]any)
	for jn, j := range jobs {
		job, _ := j.(map[string]any)
		if agent {
			ro, _ := job["runs-on"].(map[string]any)
			if g, _ := ro["group"].(string); g == "" {
				bad = append(bad, name+": job "+jn+": runs-on.group must name the runner group (labels are not a boundary)")
			}
			if p, ok := job["permissions"].(map[string]any); !ok || len(p) != 0 {
				bad = append(bad, name+": job "+jn+": permissions must be {}")
			}
		}
		if u, _ := job["uses"].(string); u != "" && !pinnedUsesRE.MatchString(u) {
			bad = append(bad, name+": job "+jn+": reusable workflow "+u+" is not pinned by commit SHA")
		}
		steps, _ := job["steps"].([]any)
		for i, s := range steps {
			step, _ := s.(map[string]any)
			if u, _ := step["uses"].(string); u != "" && !pinnedUsesRE.MatchString(u) {
				bad = append(bad, fmt.Sprintf("%s: job %s step %d: %s is not pinned by commit SHA", name, jn, i+1, u))
			}
			if r, _ := step["run"].(string); strings.Contains(r, "${{") {
				bad = append(bad, fmt.Sprintf("%s: job %s step %d: expression inside run: pass it through env", name, jn, i+1))
			}
		}
	}
	return bad
}

// TestWorkflowRules covers test 40 on the real workflows, and shows the
// rules catch a hostile variant.
func TestWorkflowRules(t *testing.T) {
	for _, f := range workflowFiles {
		data, err := os.ReadFile(workflowPath(f))
		if err != nil {
			t.Fatal(err)
		}
		if bad := workflowRules(f, data, f == "agent-run.yml"); len(bad) > 0 {
			t.Errorf("%s:\n  %s", f, strings.Join(bad, "\n  "))
		}
	}
	hostile := `on:
  pull_request_target:
  workflow_dispatch:
permissions: write-all
jobs:
  run:
    runs-on: [self-hosted, macOS]
    steps:
      - uses: actions/checkout@v4
      - run: echo ${{ github.event.pull_request.title }}
  call:
    uses: someone/repo/.github/workflows/x.yml@main
`
	bad := workflowRules("hostile.yml", []byte(hostile), true)
	for _, want := range []string{"pull_request_target", "permissions must be {}", "runs-on.group", "actions/checkout@v4 is not pinned", "expression inside run", "x.yml@main is not pinned"} {
		found := false
		for _, b := range bad {
			if strings.Contains(b, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("the rules missed %q in a hostile workflow; got %v", want, bad)
		}
	}
}
