package tests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/internal/fixture"
	"github.com/agentgate/agentgate/checks/isolate"
	"github.com/agentgate/agentgate/policies"
)

func newRunner(t testing.TB) isolate.Runner {
	t.Helper()
	r := isolate.NewNetless(isolate.Options{})
	if _, err := r.Isolation(); err != nil {
		t.Skipf("namespaces unavailable (needs root or unprivileged user namespaces): %v", err)
	}
	return r
}

// A three-package module: cart depends on money; strutil stands alone.
var shopBase = map[string]string{
	"go.mod": "module example.com/shop\n\ngo 1.26\n",
	"money/money.go": `package money

// Add adds two amounts.
func Add(a, b int) int { return a + b }
`,
	"money/money_test.go": `package money

import "testing"

func TestAdd(t *testing.T) {
	if Add(2, 3) != 5 {
		t.Fatal("2+3")
	}
}
`,
	"cart/cart.go": `package cart

import "example.com/shop/money"

// Total sums the items.
func Total(items []int) int {
	t := 0
	for _, i := range items {
		t = money.Add(t, i)
	}
	return t
}
`,
	"cart/cart_test.go": `package cart

import "testing"

func TestTotal(t *testing.T) {
	if got := Total([]int{1, 2, 3}); got != 6 {
		t.Fatalf("Total = %d", got)
	}
}
`,
	"strutil/strutil.go": `package strutil

import "strings"

// Upper upper-cases s.
func Upper(s string) string { return strings.ToUpper(s) }
`,
	"strutil/strutil_test.go": `package strutil

import "testing"

func TestUpper(t *testing.T) {
	if Upper("a") != "A" {
		t.Fatal("upper")
	}
}
`,
}

type shop struct {
	repo *fixture.Repo
	base string
}

func newShop(t *testing.T) shop {
	r := fixture.NewRepo(t)
	r.Write(shopBase)
	return shop{repo: r, base: r.Commit("base")}
}

// branch makes a head commit on a new branch from base.
func (s shop) branch(name string, files map[string]string, remove ...string) string {
	s.repo.Checkout(s.base, false)
	s.repo.Checkout(name, true)
	s.repo.Write(files)
	s.repo.Remove(remove...)
	return s.repo.Commit(name)
}

func subject(s shop, head string, tests policies.PlanTests, accept ...policies.AcceptanceTest) *checks.Subject {
	sub := s.repo.Subject(s.base, head)
	td := &policies.ThreadDir{Dir: ".", Config: policies.Thread{Name: "root", Tools: []string{"go", "run_tests.sh"}}}
	if len(accept) > 0 {
		req := policies.Requirement{ID: "FR-1"}
		for i, a := range accept {
			req.Acceptance = append(req.Acceptance, policies.Acceptance{ID: "AC-" + string(rune('1'+i)), Test: a})
		}
		td.Requirements = &policies.Requirements{Requirements: []policies.Requirement{req}}
	}
	sub.Tree = &policies.Tree{Threads: []*policies.ThreadDir{td}}
	sub.Plan = &policies.WorkPlan{PlanID: "p1", Thread: ".", FRIDs: []string{"FR-1"}, Tests: tests}
	sub.PlanPath = policies.WorkPlanFile
	return sub
}

func rules(res checks.Result) []string {
	var out []string
	for _, f := range res.Findings {
		out = append(out, f.Rule+"@"+f.Path)
	}
	return out
}

func hasRule(res checks.Result, rule string) *checks.Finding {
	for i := range res.Findings {
		if res.Findings[i].Rule == rule {
			return &res.Findings[i]
		}
	}
	return nil
}

func TestTestsCheck(t *testing.T) {
	runner := newRunner(t)
	s := newShop(t)
	c := New(Config{Runner: runner, CacheDir: t.TempDir(), Timeout: 3 * time.Minute})
	ctx := context.Background()

	t.Run("CleanChangeTestsOnlyAffectedPackagesAndPasses", func(t *testing.T) {
		head := s.branch("clean", map[string]string{
			"strutil/strutil.go":      shopBase["strutil/strutil.go"] + "\n// Lower lower-cases s.\nfunc Lower(s string) string { return strings.ToLower(s) }\n",
			"strutil/strutil_test.go": shopBase["strutil/strutil_test.go"] + "\nfunc TestLower(t *testing.T) {\n\tif Lower(\"A\") != \"a\" {\n\t\tt.Fatal(\"lower\")\n\t}\n}\n",
		})
		res := c.Run(ctx, subject(s, head, policies.PlanTests{RequireTestsForChanged: true, CoverageChangedMin: 80}, policies.AcceptanceTest{Package: "./cart", Name: "TestTotal"}))
		if res.Status != checks.StatusPass {
			t.Fatalf("status %s (%s) %v", res.Status, res.Reason, rules(res))
		}
		if res.Details["selection"] != "affected" || res.Details["packages_tested"] != 2 {
			// strutil (changed) and cart (named by an acceptance test)
			t.Fatalf("selection %v tested %v of %v", res.Details["selection"], res.Details["packages_tested"], res.Details["packages_total"])
		}
		if iso, _ := res.Details["isolation"].(string); iso == "" || iso == "none" {
			t.Fatalf("tests did not run isolated: %q", iso)
		}
		if res.Details["coverage_changed"] != 100.0 {
			t.Errorf("coverage_changed = %v", res.Details["coverage_changed"])
		}
	})

	t.Run("ChangeBreakingADependentPackageIsCaught", func(t *testing.T) {
		// money's own test is updated to the new (wrong) behaviour, so
		// only cart, which imports money, notices.
		head := s.branch("break-dependent", map[string]string{
			"money/money.go":      "package money\n\n// Add adds two amounts.\nfunc Add(a, b int) int { return a - b }\n",
			"money/money_test.go": "package money\n\nimport \"testing\"\n\nfunc TestAdd(t *testing.T) {\n\tif Add(5, 3) != 2 {\n\t\tt.Fatal(\"5-3\")\n\t}\n}\n",
		})
		res := c.Run(ctx, subject(s, head, policies.PlanTests{}))
		if res.Status != checks.StatusFail {
			t.Fatalf("status %s (%s) %v", res.Status, res.Reason, rules(res))
		}
		f := hasRule(res, "tests.failed")
		if f == nil || f.Path != "cart" || !strings.Contains(f.Message, "TestTotal") {
			t.Fatalf("want cart's TestTotal reported, got %v", rules(res))
		}
		if res.Details["packages_tested"] != 2 {
			t.Errorf("want money and cart tested, got %v", res.Details["packages_tested"])
		}
	})

	t.Run("FailingTestFails", func(t *testing.T) {
		head := s.branch("failing", map[string]string{
			"strutil/strutil_test.go": shopBase["strutil/strutil_test.go"] + "\nfunc TestBroken(t *testing.T) { t.Fatal(\"boom\") }\n",
		})
		res := c.Run(ctx, subject(s, head, policies.PlanTests{}))
		f := hasRule(res, "tests.failed")
		if res.Status != checks.StatusFail || f == nil || !strings.Contains(f.Message, "TestBroken") || f.Path != "strutil" {
			t.Fatalf("status %s %v", res.Status, rules(res))
		}
	})

	t.Run("PanickingTestFails", func(t *testing.T) {
		head := s.branch("panics", map[string]string{
			"strutil/strutil_test.go": shopBase["strutil/strutil_test.go"] + "\nfunc TestPanics(t *testing.T) { var m map[string]int; m[\"x\"] = 1 }\n",
		})
		res := c.Run(ctx, subject(s, head, policies.PlanTests{}))
		if res.Status != checks.StatusFail || hasRule(res, "tests.failed") == nil {
			t.Fatalf("status %s %v", res.Status, rules(res))
		}
	})

	t.Run("BuildFailureFails", func(t *testing.T) {
		head := s.branch("nobuild", map[string]string{"strutil/strutil.go": "package strutil\n\nfunc Upper(s string) string { return s + 1 }\n"})
		res := c.Run(ctx, subject(s, head, policies.PlanTests{}))
		f := hasRule(res, "tests.failed")
		if res.Status != checks.StatusFail || f == nil {
			t.Fatalf("status %s %v", res.Status, rules(res))
		}
	})

	t.Run("MissingAcceptanceTestFails", func(t *testing.T) {
		head := s.branch("no-acceptance", map[string]string{"strutil/README": "docs\n"})
		res := c.Run(ctx, subject(s, head, policies.PlanTests{},
			policies.AcceptanceTest{Package: "./cart", Name: "TestCheckout"},
			policies.AcceptanceTest{Package: "./nope", Name: "TestX"},
			policies.AcceptanceTest{Package: "example.com/shop/cart", Name: "TestTotal"}))
		if res.Status != checks.StatusFail {
			t.Fatalf("status %s %v", res.Status, rules(res))
		}
		var acc []string
		for _, f := range res.Findings {
			if f.Rule == "tests.acceptance" {
				acc = append(acc, f.Message)
			}
		}
		if len(acc) != 2 || !strings.Contains(acc[0], "TestCheckout") || !strings.Contains(acc[1], "./nope") {
			t.Fatalf("acceptance findings %q", acc)
		}
	})

	t.Run("ChangedFileWithoutTestChangeFails", func(t *testing.T) {
		head := s.branch("no-test-change", map[string]string{
			"strutil/strutil.go": strings.Replace(shopBase["strutil/strutil.go"], "upper-cases", "upper-cases (Unicode)", 1),
		})
		sub := subject(s, head, policies.PlanTests{RequireTestsForChanged: true})
		res := c.Run(ctx, sub)
		f := hasRule(res, "tests.missing-test-change")
		if res.Status != checks.StatusFail || f == nil || f.Path != "strutil/strutil.go" {
			t.Fatalf("status %s %v", res.Status, rules(res))
		}
		sub.Plan.Tests.RequireTestsForChanged = false
		if res := c.Run(ctx, sub); res.Status != checks.StatusPass {
			t.Fatalf("without the rule: status %s %v", res.Status, rules(res))
		}
	})

	untested := map[string]string{
		"strutil/strutil.go": shopBase["strutil/strutil.go"] + `
// Title title-cases words (untested on purpose).
func Title(s string) string {
	out := []byte(s)
	up := true
	for i, c := range out {
		if up && c >= 'a' && c <= 'z' {
			out[i] = c - 32
		}
		up = c == ' '
	}
	return string(out)
}
`,
		"strutil/strutil_test.go": shopBase["strutil/strutil_test.go"] + "\n// touched\n",
	}

	t.Run("LowChangedFileCoverageFails", func(t *testing.T) {
		head := s.branch("low-coverage", untested)
		res := c.Run(ctx, subject(s, head, policies.PlanTests{CoverageChangedMin: 80, CoverageRegressionTolerance: 100}))
		f := hasRule(res, "tests.coverage-changed")
		if res.Status != checks.StatusFail || f == nil {
			t.Fatalf("status %s %v details %v", res.Status, rules(res), res.Details)
		}
		if f.Stop != "" {
			t.Fatal("changed-file coverage is a failure, not a stop")
		}
	})

	t.Run("TotalCoverageRegressionStops", func(t *testing.T) {
		head := s.branch("regression", untested)
		res := c.Run(ctx, subject(s, head, policies.PlanTests{CoverageRegressionTolerance: 1}))
		f := hasRule(res, "tests.coverage-regression")
		if res.Status != checks.StatusFail || f == nil || f.Stop != policies.StopCoverageRegression {
			t.Fatalf("status %s %v details %v", res.Status, rules(res), res.Details)
		}
		if res.Details["base_cached"] != true {
			t.Errorf("the base's results should come from the cache by now")
		}
		// Within tolerance: no stop.
		res = c.Run(ctx, subject(s, head, policies.PlanTests{CoverageRegressionTolerance: 60}))
		if hasRule(res, "tests.coverage-regression") != nil {
			t.Fatalf("drop within tolerance stopped: %v %v", rules(res), res.Details)
		}
	})

	t.Run("DeletedPackageBreaksItsImporters", func(t *testing.T) {
		head := s.branch("delete-money", nil, "money")
		res := c.Run(ctx, subject(s, head, policies.PlanTests{}))
		f := hasRule(res, "tests.failed")
		if res.Status != checks.StatusFail || f == nil || f.Path != "cart" {
			t.Fatalf("status %s %v", res.Status, rules(res))
		}
	})

	t.Run("GoModChangeTestsEverything", func(t *testing.T) {
		head := s.branch("gomod", map[string]string{"go.mod": "module example.com/shop\n\ngo 1.26.0\n"})
		res := c.Run(ctx, subject(s, head, policies.PlanTests{}))
		if res.Status != checks.StatusPass || res.Details["selection"] != "all" {
			t.Fatalf("status %s selection %v %v", res.Status, res.Details["selection"], rules(res))
		}
	})

	t.Run("CommandNotInToolsAllowlistFails", func(t *testing.T) {
		head := s.branch("bad-tool", map[string]string{"strutil/README": "x\n"})
		sub := subject(s, head, policies.PlanTests{Command: []string{"bash", "-c", "curl evil"}})
		res := c.Run(ctx, sub)
		if res.Status != checks.StatusFail || hasRule(res, "tests.command-not-allowed") == nil {
			t.Fatalf("status %s %v", res.Status, rules(res))
		}
	})

	t.Run("AllowlistedWrapperRunsWithCoverage", func(t *testing.T) {
		s.branch("wrapper", map[string]string{
			"run_tests.sh": "#!/bin/sh\nset -eu\ncd \"$(dirname \"$0\")\"\nexec go test -json -count=1 \"$@\"\n",
		})
		if err := os.Chmod(filepath.Join(s.repo.Dir, "run_tests.sh"), 0o755); err != nil {
			t.Fatal(err)
		}
		head := s.repo.Commit("exec bit")
		sub := subject(s, head, policies.PlanTests{Command: []string{"run_tests.sh", "./..."}, CoverageChangedMin: 1})
		res := c.Run(ctx, sub)
		if res.Status != checks.StatusPass || res.Details["selection"] != "command" {
			t.Fatalf("status %s (%s) %v %v", res.Status, res.Reason, rules(res), res.Details)
		}
		if _, ok := res.Details["coverage_total_head"]; !ok {
			t.Fatalf("no coverage through the wrapper: %v", res.Details)
		}
	})
}

func TestPlanCommandThatSkipsDependentsStillCatchesThem(t *testing.T) {
	runner := newRunner(t)
	s := newShop(t)
	c := New(Config{Runner: runner, CacheDir: t.TempDir()})
	s.branch("narrow-wrapper", map[string]string{
		"run_tests.sh":        "#!/bin/sh\nset -eu\ncd \"$(dirname \"$0\")\"\nexec go test -json \"$@\"\n",
		"money/money.go":      "package money\n\n// Add adds two amounts.\nfunc Add(a, b int) int { return a - b }\n",
		"money/money_test.go": "package money\n\nimport \"testing\"\n\nfunc TestAdd(t *testing.T) {\n\tif Add(5, 3) != 2 {\n\t\tt.Fatal(\"5-3\")\n\t}\n}\n",
	})
	if err := os.Chmod(filepath.Join(s.repo.Dir, "run_tests.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	head := s.repo.Commit("exec bit")
	// The plan only tests money, whose own test was bent to the new
	// behaviour; cart (another package) breaks.
	res := c.Run(context.Background(), subject(s, head, policies.PlanTests{Command: []string{"run_tests.sh", "./money/..."}}))
	f := hasRule(res, "tests.failed")
	if res.Status != checks.StatusFail || f == nil || f.Path != "cart" {
		t.Fatalf("status %s (%s) %v %v", res.Status, res.Reason, rules(res), res.Details)
	}
	if res.Details["packages_extra"] != 1 {
		t.Errorf("want exactly cart run by the gate, got %v", res.Details["packages_extra"])
	}
}

func TestBaseRedIsReported(t *testing.T) {
	runner := newRunner(t)
	r := fixture.NewRepo(t)
	files := map[string]string{}
	for k, v := range shopBase {
		files[k] = v
	}
	files["strutil/strutil_test.go"] += "\nfunc TestAlreadyBroken(t *testing.T) { t.Fatal(\"red on base\") }\n"
	r.Write(files)
	base := r.Commit("red base")
	r.Checkout("head", true)
	r.Write(map[string]string{"cart/cart_test.go": shopBase["cart/cart_test.go"] + "\n// more\n"})
	head := r.Commit("head")
	c := New(Config{Runner: runner, CacheDir: t.TempDir()})
	res := c.Run(context.Background(), subject(shop{repo: r, base: base}, head, policies.PlanTests{}))
	f := hasRule(res, "tests.base-red")
	if f == nil || !strings.Contains(f.Message, "TestAlreadyBroken") || res.Details["base_red"] != true {
		t.Fatalf("base-red not reported: %s %v", res.Status, rules(res))
	}
	// The head suite is still red (the failing package is unchanged), and
	// the failure says it was red before.
	if ff := hasRule(res, "tests.failed"); res.Status != checks.StatusFail || ff == nil || !strings.Contains(ff.Message, "also failed on base") {
		t.Fatalf("status %s %v", res.Status, rules(res))
	}
}

func TestHangingTestFailsClosed(t *testing.T) {
	runner := newRunner(t)
	s := newShop(t)
	head := s.branch("hang", map[string]string{
		"strutil/strutil_test.go": shopBase["strutil/strutil_test.go"] + "\nfunc TestHangs(t *testing.T) { select {} }\n",
	})
	c := New(Config{Runner: runner, CacheDir: t.TempDir(), Timeout: 20 * time.Second})
	res := c.Run(context.Background(), subject(s, head, policies.PlanTests{}))
	if res.Status == checks.StatusPass {
		t.Fatalf("a hanging test passed: %v", rules(res))
	}
	if res.Status != checks.StatusError && hasRule(res, "tests.failed") == nil {
		t.Fatalf("status %s (%s) %v", res.Status, res.Reason, rules(res))
	}
}

func TestUnknownHeadIsAnError(t *testing.T) {
	runner := newRunner(t)
	s := newShop(t)
	sub := subject(s, s.base, policies.PlanTests{})
	sub.Head = strings.Repeat("e", 40)
	res := New(Config{Runner: runner, CacheDir: t.TempDir()}).Run(context.Background(), sub)
	if res.Status != checks.StatusError {
		t.Fatalf("status %s", res.Status)
	}
}

func TestNoRunnerIsAnError(t *testing.T) {
	if res := New(Config{}).Run(context.Background(), &checks.Subject{}); res.Status != checks.StatusError {
		t.Fatalf("status %s", res.Status)
	}
}

// TestPaymentsExample runs the check on the bundled example repository
// with its own thread config, plan (run_tests.sh wrapper) and requirements.
func TestPaymentsExample(t *testing.T) {
	src := filepath.Join("..", "..", "examples", "payments-repo")
	if _, err := os.Stat(filepath.Join(src, "go.mod")); err != nil {
		t.Skip("examples/payments-repo not present")
	}
	runner := newRunner(t)
	r := fixture.NewRepo(t)
	copyTree(t, src, r.Dir)
	base := r.Commit("base")
	tree, probs := policies.LoadTree(policies.DirFS(r.Dir))
	if tree == nil {
		t.Fatalf("load example tree: %v", probs)
	}
	var td *policies.ThreadDir
	for _, d := range tree.Threads {
		if d.Dir == "services/payments" {
			td = d
		}
	}
	if td == nil || td.Plan == nil {
		t.Fatalf("payments thread or plan missing: %v", probs)
	}
	r.Checkout("agent/pay", true)
	pay, _ := os.ReadFile(filepath.Join(r.Dir, "services/payments/payments.go"))
	payTest, _ := os.ReadFile(filepath.Join(r.Dir, "services/payments/payments_test.go"))
	r.Write(map[string]string{
		"services/payments/payments.go":      string(pay) + "\n// Currencies reports how many currencies are supported.\nfunc Currencies() int { return len(supportedCurrcy) }\n",
		"services/payments/payments_test.go": string(payTest) + "\nfunc TestCurrencies(t *testing.T) {\n\tif Currencies() != 3 {\n\t\tt.Fatal(Currencies())\n\t}\n}\n",
	})
	head := r.Commit("currencies")
	sub := r.Subject(base, head)
	sub.Tree, sub.Plan, sub.PlanPath = tree, td.Plan, "services/payments/WORK_PLAN.json"
	res := New(Config{Runner: runner, CacheDir: t.TempDir()}).Run(context.Background(), sub)
	if res.Status != checks.StatusPass {
		t.Fatalf("status %s (%s) %v %v", res.Status, res.Reason, rules(res), res.Details)
	}
	if res.Details["coverage_changed"] == nil {
		t.Fatalf("no changed-file coverage: %v", res.Details)
	}
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestVendoredModuleRunsOffline: a module that vendors its dependencies
// needs nothing from the module cache (-mod=vendor, not -mod=readonly).
func TestVendoredModuleRunsOffline(t *testing.T) {
	runner := newRunner(t)
	r := fixture.NewRepo(t)
	r.Write(map[string]string{
		"go.mod":                        "module example.com/v\n\ngo 1.26\n\nrequire example.com/dep v1.0.0\n",
		"vendor/modules.txt":            "# example.com/dep v1.0.0\n## explicit; go 1.26\nexample.com/dep\n",
		"vendor/example.com/dep/dep.go": "package dep\n\n// One is one.\nfunc One() int { return 1 }\n",
		"app/app.go":                    "package app\n\nimport \"example.com/dep\"\n\n// Two is two.\nfunc Two() int { return dep.One() + 1 }\n",
		"app/app_test.go":               "package app\n\nimport \"testing\"\n\nfunc TestTwo(t *testing.T) {\n\tif Two() != 2 {\n\t\tt.Fatal(Two())\n\t}\n}\n",
	})
	base := r.Commit("base")
	r.Checkout("head", true)
	r.Write(map[string]string{"app/app_test.go": "package app\n\nimport \"testing\"\n\nfunc TestTwo(t *testing.T) {\n\tif Two() != 2 {\n\t\tt.Fatal(Two())\n\t}\n}\n\nfunc TestTwoAgain(t *testing.T) { TestTwo(t) }\n"})
	head := r.Commit("head")
	res := New(Config{Runner: runner, CacheDir: t.TempDir()}).Run(context.Background(), subject(shop{repo: r, base: base}, head, policies.PlanTests{}))
	if res.Status != checks.StatusPass {
		t.Fatalf("status %s (%s) %v", res.Status, res.Reason, rules(res))
	}
}
