package scope_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/engine"
	"github.com/agentgate/agentgate/checks/scope"
	"github.com/agentgate/agentgate/internal/gitcli"
	"github.com/agentgate/agentgate/internal/gitcli/gittest"
	"github.com/agentgate/agentgate/policies"
)

const (
	example = "../../examples/payments-repo"
	plan    = "services/payments/WORK_PLAN.json"
)

type want struct {
	rule     string
	path     string
	stop     policies.StopReason
	approval bool
}

func run(t *testing.T, r *gittest.Repo, planPath string) checks.Result {
	t.Helper()
	s, _, err := engine.Prepare(context.Background(), engine.Input{Repo: r.Dir, Base: "main", Head: "HEAD", PlanPath: planPath})
	if err != nil {
		t.Fatal(err)
	}
	return scope.New().Run(context.Background(), s)
}

func TestScope(t *testing.T) {
	tests := []struct {
		name   string
		change func(r *gittest.Repo)
		plan   string
		status checks.Status
		want   []want // exactly these rule/path pairs
	}{
		{"clean in-scope change passes", func(r *gittest.Repo) {
			r.Append("services/payments/payments.go", "\n// Idempotency keys are per merchant.\n")
		}, plan, checks.StatusPass, nil},
		{"out-of-scope file fails", func(r *gittest.Repo) {
			r.Write("services/payments/NOTES.md", "notes\n")
		}, plan, checks.StatusFail, []want{{rule: scope.RuleOutOfScope, path: "services/payments/NOTES.md"}}},
		{"another thread's file stops", func(r *gittest.Repo) {
			r.Append("services/ledger/ledger.go", "\n// sneaky\n")
		}, plan, checks.StatusFail, []want{{rule: scope.RuleUnauthorized, path: "services/ledger/ledger.go", stop: policies.StopUnauthorizedAccess}}},
		{"moving another thread's file in stops", func(r *gittest.Repo) {
			r.Git("mv", "services/ledger/ledger.go", "services/payments/ledger.go")
		}, plan, checks.StatusFail, []want{
			{rule: scope.RuleUnauthorized, path: "services/ledger/ledger.go", stop: policies.StopUnauthorizedAccess},
		}},
		{"an integration-thread file (go.mod) stops", func(r *gittest.Repo) {
			r.Append("go.mod", "\nrequire golang.org/x/text v0.3.0\n")
		}, plan, checks.StatusFail, []want{
			{rule: scope.RuleUnauthorized, path: "go.mod", stop: policies.StopUnauthorizedAccess},
			{rule: scope.RuleNewDependency, path: "go.mod"},
		}},
		{"the repo policy is an approvable finding, not a stop", func(r *gittest.Repo) {
			r.Append(".agentgate/policy.yaml", "\n# loosen later\n")
			r.Write(".github/workflows/ci.yml", "on: push\n")
		}, plan, checks.StatusFail, []want{
			{rule: scope.RulePolicyArtifact, path: ".agentgate/policy.yaml", approval: true},
			{rule: scope.RulePolicyArtifact, path: ".github/workflows/ci.yml", approval: true},
			{rule: scope.RuleFileType, path: ".github/workflows/ci.yml"},
		}},
		{"own thread config needs approval; another thread's config also stops", func(r *gittest.Repo) {
			r.Append("services/payments/config.yaml", "\n# mine\n")
			r.Append("services/ledger/config.yaml", "\n# theirs\n")
		}, plan, checks.StatusFail, []want{
			{rule: scope.RulePolicyArtifact, path: "services/ledger/config.yaml", approval: true},
			{rule: scope.RuleUnauthorized, path: "services/ledger/config.yaml", stop: policies.StopUnauthorizedAccess},
			{rule: scope.RulePolicyArtifact, path: "services/payments/config.yaml", approval: true},
		}},
		{"a shared interface outside target_files is out of scope and security-critical", func(r *gittest.Repo) {
			r.Append("internal/money/money.go", "\n// extend\n")
		}, plan, checks.StatusFail, []want{
			{rule: scope.RuleOutOfScope, path: "internal/money/money.go"},
			{rule: scope.RuleSecurityCritical, path: "internal/money/money.go", approval: true},
		}},
		{"too many files", func(r *gittest.Repo) {
			for _, n := range []string{"a", "b", "c", "d", "e"} {
				r.Write("services/payments/"+n+".go", "package payments\n")
			}
		}, plan, checks.StatusFail, []want{{rule: scope.RuleMaxFiles}}},
		{"too many lines", func(r *gittest.Repo) {
			r.Write("services/payments/big.go", "package payments\n"+strings.Repeat("// line\n", 300))
		}, plan, checks.StatusFail, []want{{rule: scope.RuleMaxDiffLines}}},
		{"binary file", func(r *gittest.Repo) {
			r.WriteBytes("services/payments/blob.go", []byte("package payments\x00\x01\x02"), 0o644)
		}, plan, checks.StatusFail, []want{{rule: scope.RuleBinary, path: "services/payments/blob.go"}}},
		{"executable bit", func(r *gittest.Repo) {
			r.WriteBytes("services/payments/payments.go", []byte(r.Read("services/payments/payments.go")), 0o755)
		}, plan, checks.StatusFail, []want{{rule: scope.RuleExecutable, path: "services/payments/payments.go"}}},
		{"symlink inside the repository", func(r *gittest.Repo) {
			r.Symlink("payments.go", "services/payments/alias.go")
		}, plan, checks.StatusFail, []want{{rule: scope.RuleSymlink, path: "services/payments/alias.go"}}},
		{"symlink out of the repository", func(r *gittest.Repo) {
			r.Symlink("../../../etc/passwd", "services/payments/passwd.go")
		}, plan, checks.StatusFail, []want{{rule: scope.RuleSymlinkEscape, path: "services/payments/passwd.go"}}},
		{"submodule", func(r *gittest.Repo) {
			sub := gittest.New(t)
			sub.Write("x", "x\n")
			sub.Commit("sub")
			if err := os.Rename(sub.Dir, r.Dir+"/services/payments/sub.go"); err != nil {
				t.Fatal(err)
			}
		}, plan, checks.StatusFail, []want{{rule: scope.RuleSubmodule, path: "services/payments/sub.go"}}},
		{"oversized file", func(r *gittest.Repo) {
			r.Write("services/payments/huge.go", "package payments\n// "+strings.Repeat("x", 300_000)+"\n")
		}, plan, checks.StatusFail, []want{{rule: scope.RuleOversized, path: "services/payments/huge.go"}}},
		{"unexpected file type", func(r *gittest.Repo) {
			r.Write("services/payments/tool.py", "print(1)\n")
		}, plan, checks.StatusFail, []want{
			{rule: scope.RuleOutOfScope, path: "services/payments/tool.py"},
			{rule: scope.RuleFileType, path: "services/payments/tool.py"},
		}},
		{"no plan applies", func(r *gittest.Repo) {
			r.Append("services/payments/payments.go", "// a\n")
			r.Append("services/ledger/ledger.go", "// b\n")
		}, "", checks.StatusFail, []want{{rule: scope.RuleNoPlan}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := gittest.FromDir(t, example)
			r.Branch("agent/test")
			tt.change(r)
			r.Git("add", "-A")
			r.Git("commit", "-q", "--allow-empty", "-m", "agent change")
			res := run(t, r, tt.plan)
			if res.Status != tt.status {
				t.Errorf("status %s (%s), want %s; findings %+v", res.Status, res.Reason, tt.status, res.Findings)
			}
			var got []want
			for _, f := range res.Findings {
				got = append(got, want{rule: f.Rule, path: f.Path, stop: f.Stop, approval: f.NeedsApproval})
				if f.Message == "" || f.Severity == "" {
					t.Errorf("finding without message or severity: %+v", f)
				}
			}
			for _, w := range tt.want {
				if !slices.ContainsFunc(got, func(g want) bool {
					return g.rule == w.rule && (w.path == "" || g.path == w.path) && g.stop == w.stop && g.approval == w.approval
				}) {
					t.Errorf("missing finding %+v; got %+v", w, got)
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("got %d findings %+v, want %d", len(got), got, len(tt.want))
			}
		})
	}
}

func TestPlanChangedMidRun(t *testing.T) {
	r, _ := gittest.FromDir(t, example)
	r.Branch("agent/pay-idempotency")
	// The first commit of the branch (re)writes the plan: that is the
	// run's plan, not a change.
	r.Write(plan, strings.Replace(r.Read(plan), `"max_diff_lines": 250`, `"max_diff_lines": 200`, 1))
	r.Append("services/payments/payments.go", "// a\n")
	r.Commit("start run")
	if res := run(t, r, plan); res.Status != checks.StatusPass {
		t.Fatalf("a plan committed once is not a mid-run change: %+v", res.Findings)
	}
	// A later commit raises a limit again.
	r.Write(plan, strings.Replace(r.Read(plan), `"max_diff_lines": 200`, `"max_diff_lines": 250`, 1))
	r.Commit("more room")
	res := run(t, r, plan)
	if len(res.Findings) != 1 || res.Findings[0].Rule != scope.RulePlanChanged || !res.Findings[0].NeedsApproval || res.Status != checks.StatusFail {
		t.Fatalf("want one plan-changed-mid-run finding, got %s %+v", res.Status, res.Findings)
	}
}

func TestScopeErrorsOnAnIncompleteSubject(t *testing.T) {
	res := scope.New().Run(context.Background(), &checks.Subject{})
	if res.Status != checks.StatusError {
		t.Fatalf("want an error, got %+v", res)
	}
}

func TestNewDependencies(t *testing.T) {
	tests := []struct {
		kind     string
		old, new string
		want     []string
		err      bool
	}{
		{scope.KindGoMod, "module m\n\nrequire a.com/x v1.0.0\n", "module m\n\nrequire (\n\ta.com/x v1.1.0\n\tb.com/y v0.1.0\n)\n", []string{"b.com/y"}, false},
		{scope.KindGoMod, "module m\n", "module m\nreplace a.com/x => ../evil\n", []string{"replace a.com/x => ../evil"}, false},
		{scope.KindGoMod, "", "module m\nrequire (\n", nil, true},
		{scope.KindPackageJSON, `{"dependencies":{"a":"1"}}`, `{"dependencies":{"a":"2"},"devDependencies":{"b":"1"}}`, []string{"b"}, false},
		{scope.KindPackageJSON, ``, `{"dependencies":`, nil, true},
		{scope.KindRequirements, "requests==2.0\n", "requests==2.1\nFlask>=1 # web\n-e git+https://x/y#egg=z\n", []string{"-e git+https://x/y#egg=z", "flask"}, false},
		{scope.KindRequirements, "Django_Rest.framework\n", "django-rest-framework==3\n", nil, false},
		{scope.KindCargo, "[dependencies]\nserde = \"1\"\n", "[dependencies]\nserde = \"1\"\nrand = \"0.8\"\n[dev-dependencies.tokio]\nversion = \"1\"\n[target.'cfg(unix)'.dependencies]\nlibc = \"0.2\"\n", []string{"libc", "rand", "tokio"}, false},
		{scope.KindCargo, "", "[dependencies]\nnot a pair\n", nil, true},
	}
	for _, tt := range tests {
		var old []byte
		if tt.old != "" {
			old = []byte(tt.old)
		}
		got, err := scope.NewDependencies(tt.kind, old, []byte(tt.new))
		if (err != nil) != tt.err {
			t.Errorf("%s %q: err %v", tt.kind, tt.new, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s %q: got %v, want %v", tt.kind, tt.new, got, tt.want)
		}
	}
}

// Evaluate on a hand-made diff: dependency findings honour the policy.
func TestEvaluateDependencyPolicy(t *testing.T) {
	tree, probs := policies.LoadTree(os.DirFS(example))
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	wp := tree.Thread("services/payments").Plan
	in := scope.Input{
		Plan: wp, PlanPath: plan, Tree: tree,
		Changes:   []gitcli.Change{{RawEntry: gitcli.RawEntry{Status: 'M', Path: "services/payments/package.json", OldPath: "services/payments/package.json", OldMode: gitcli.ModeFile, NewMode: gitcli.ModeFile}, Added: 1}},
		Manifests: map[string]scope.ManifestPair{"services/payments/package.json": {Old: []byte(`{}`), New: []byte(`{"dependencies":{"left-pad":"1"}}`)}},
	}
	has := func(fs []checks.Finding, rule string) bool {
		return slices.ContainsFunc(fs, func(f checks.Finding) bool { return f.Rule == rule })
	}
	if !has(scope.Evaluate(in), scope.RuleNewDependency) {
		t.Error("a new npm dependency must be a finding")
	}
	tree.Policy.Anomaly.AllowNewDependencies = true
	if has(scope.Evaluate(in), scope.RuleNewDependency) {
		t.Error("allow_new_dependencies must silence the finding")
	}
}

func FuzzNewDependencies(f *testing.F) {
	f.Add("go.mod", []byte("module m\nrequire a.com/x v1.0.0\n"))
	f.Add("package.json", []byte(`{"dependencies":{"a":"1"}}`))
	f.Add("requirements.txt", []byte("a==1\n-r other.txt\n"))
	f.Add("Cargo.toml", []byte("[dependencies]\na = \"1\"\n"))
	f.Fuzz(func(t *testing.T, kind string, data []byte) {
		deps, err := scope.NewDependencies(kind, nil, data)
		if err == nil && !slices.IsSorted(deps) {
			t.Fatal("unsorted")
		}
	})
}
