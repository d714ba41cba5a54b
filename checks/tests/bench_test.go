package tests

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/internal/fixture"
	"github.com/agentgate/agentgate/internal/gitcli"
	"github.com/agentgate/agentgate/policies"
)

// benchRepo is a module of 16 packages: core, 3 packages importing core,
// and 12 independent leaves, each with a test that does a little work.
// The change edits one leaf (and its test).
func benchRepo(b *testing.B) (*fixture.Repo, string, string) {
	r := fixture.NewRepo(b)
	files := map[string]string{"go.mod": "module example.com/bench\n\ngo 1.26\n"}
	pkg := func(name, imp, body string) {
		imports := ""
		call := "0"
		if imp != "" {
			imports = "import \"example.com/bench/" + imp + "\"\n\n"
			call = imp + ".F(n)"
		}
		files[name+"/"+name+".go"] = fmt.Sprintf("package %s\n\n%s// F does some work.\nfunc F(n int) int {\n\ts := %s\n\tfor i := 0; i < n; i++ {\n\t\ts += i %% 7\n\t}\n\treturn s%s\n}\n", name, imports, call, body)
		files[name+"/"+name+"_test.go"] = fmt.Sprintf("package %s\n\nimport \"testing\"\n\nfunc TestF(t *testing.T) {\n\tfor i := 0; i < 200; i++ {\n\t\tif F(1000) < 0 {\n\t\t\tt.Fatal(\"negative\")\n\t\t}\n\t}\n}\n", name)
	}
	pkg("core", "", "")
	for i := 0; i < 3; i++ {
		pkg(fmt.Sprintf("user%d", i), "core", "")
	}
	for i := 0; i < 12; i++ {
		pkg(fmt.Sprintf("leaf%02d", i), "", "")
	}
	r.Write(files)
	base := r.Commit("base")
	r.Checkout("change", true)
	r.Write(map[string]string{"leaf03/leaf03.go": files["leaf03/leaf03.go"] + "\n// G is new.\nfunc G() int { return 1 }\n",
		"leaf03/leaf03_test.go": files["leaf03/leaf03_test.go"] + "\nfunc TestG(t *testing.T) {\n\tif G() != 1 {\n\t\tt.Fatal(\"G\")\n\t}\n}\n"})
	head := r.Commit("change")
	return r, base, head
}

// BenchmarkTestsCheck is the tests check on a one-package change with the
// base's results cached (the re-check case).
func BenchmarkTestsCheck(b *testing.B) {
	r, base, head := benchRepo(b)
	c := New(Config{Runner: newRunner(b), CacheDir: b.TempDir()})
	sub := r.Subject(base, head)
	sub.Plan = &policies.WorkPlan{Tests: policies.PlanTests{CoverageRegressionTolerance: 5}}
	if res := c.Run(context.Background(), sub); res.Status != checks.StatusPass {
		b.Fatalf("warm-up: %s %s %v", res.Status, res.Reason, res.Findings)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res := c.Run(context.Background(), sub); res.Status != checks.StatusPass || res.Details["packages_tested"] != 1 {
			b.Fatalf("%s %v", res.Status, res.Details)
		}
	}
}

// BenchmarkTestsCheckColdBase also runs the base suite (no cache).
func BenchmarkTestsCheckColdBase(b *testing.B) {
	r, base, head := benchRepo(b)
	runner := newRunner(b)
	sub := r.Subject(base, head)
	for i := 0; i < b.N; i++ {
		c := New(Config{Runner: runner, CacheDir: b.TempDir()})
		if res := c.Run(context.Background(), sub); res.Status != checks.StatusPass {
			b.Fatalf("%s %v", res.Status, res.Findings)
		}
	}
}

// plainGoTest runs go test on an export of head, as a gate without
// selection or caching of the base would.
func plainGoTest(b *testing.B, args ...string) {
	r, _, head := benchRepo(b)
	dir := filepath.Join(b.TempDir(), "tree")
	if err := gitcli.Export(context.Background(), r.Dir, head, dir, 0); err != nil {
		b.Fatal(err)
	}
	run := func() {
		cmd := exec.Command("go", append([]string{"test", "-json"}, args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v %s", err, out)
		}
	}
	run()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		run()
	}
}

// BenchmarkPlainGoTest is `go test -json -cover ./...` on the same tree
// (Go's test cache allowed).
func BenchmarkPlainGoTest(b *testing.B) { plainGoTest(b, "-cover", "./...") }

// BenchmarkPlainGoTestCount1 is `go test -json -cover -count=1 ./...`:
// every package's tests actually run.
func BenchmarkPlainGoTestCount1(b *testing.B) { plainGoTest(b, "-cover", "-count=1", "./...") }

// BenchmarkTestsCheckNewHead is the usual case: a new head (a new edit of
// one package) against a base whose results are cached. The edited
// package's tests really run; everything else comes from the base.
func BenchmarkTestsCheckNewHead(b *testing.B) {
	r, base, head := benchRepo(b)
	c := New(Config{Runner: newRunner(b), CacheDir: b.TempDir()})
	if res := c.Run(context.Background(), r.Subject(base, head)); res.Status != checks.StatusPass {
		b.Fatalf("warm-up: %s %v", res.Status, res.Findings)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		r.Write(map[string]string{"leaf03/extra.go": fmt.Sprintf("package leaf03\n\n// H%d is new.\nfunc H() int { return %d }\n", i, i)})
		h := r.Commit(fmt.Sprintf("edit %d", i))
		b.StartTimer()
		if res := c.Run(context.Background(), r.Subject(base, h)); res.Status != checks.StatusPass || res.Details["packages_tested"] != 1 {
			b.Fatalf("%s %v %v", res.Status, res.Details, res.Findings)
		}
	}
}
