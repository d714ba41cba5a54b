package gopkgs

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/agentgate/agentgate/checks/isolate"
	"github.com/agentgate/agentgate/internal/gitcli"
	"github.com/agentgate/agentgate/internal/gitcli/gittest"
)

// counting runs commands on the real runner and counts them.
type counting struct {
	isolate.Runner
	n atomic.Int32
}

func (c *counting) Run(ctx context.Context, cmd isolate.Cmd) (isolate.Result, error) {
	c.n.Add(1)
	return c.Runner.Run(ctx, cmd)
}

func TestListCommitRunsGoListOncePerCommitAndRebasesOntoEachTree(t *testing.T) {
	real := isolate.NewNetless(isolate.Options{})
	if _, err := real.Isolation(); err != nil {
		t.Skipf("namespaces unavailable: %v", err)
	}
	r := gittest.New(t)
	r.Write("go.mod", "module example.com/m\n\ngo 1.26\n")
	r.Write("a/a.go", "package a\n\nfunc A() int { return 1 }\n")
	r.Write("b/b.go", "package b\n\nimport \"example.com/m/a\"\n\nfunc B() int { return a.A() }\n")
	sha := r.Commit("two packages")
	ctx := context.Background()
	cache := t.TempDir()
	run := &counting{Runner: real}

	trees := []string{filepath.Join(t.TempDir(), "one"), filepath.Join(t.TempDir(), "two"), filepath.Join(t.TempDir(), "three")}
	for _, tr := range trees {
		if err := gitcli.Export(ctx, r.Dir, sha, tr, 0); err != nil {
			t.Fatal(err)
		}
	}
	// Concurrent callers of one evaluation share one go list.
	var wg sync.WaitGroup
	results := make([][]Package, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _, errs[i] = ListCommit(ctx, run, cache, sha, trees[i], ".")
		}()
	}
	wg.Wait()
	// A later evaluation of the same commit lists nothing.
	pk3, iso, err := ListCommit(ctx, run, cache, sha, trees[2], ".")
	if err != nil || errs[0] != nil || errs[1] != nil {
		t.Fatalf("errors: %v %v %v", errs[0], errs[1], err)
	}
	if got := run.n.Load(); got != 1 {
		t.Errorf("go list ran %d times for one commit, want 1", got)
	}
	if iso == "" {
		t.Error("the cached listing lost the isolation it ran under")
	}
	for i, pkgs := range [][]Package{results[0], results[1], pk3} {
		g := NewGraph(pkgs)
		p, ok := g.Package("example.com/m/b")
		if !ok {
			t.Fatalf("tree %d: package b missing from %v", i, pkgs)
		}
		if want := filepath.Join(trees[i], "b"); p.Dir != want {
			t.Errorf("tree %d: b.Dir = %s, want %s", i, p.Dir, want)
		}
		if p.Module == nil || p.Module.Dir != trees[i] {
			t.Errorf("tree %d: module dir = %+v, want %s", i, p.Module, trees[i])
		}
		if owner, ok := g.OwnerOf(filepath.Join(trees[i], "a", "a.go"), trees[i]); !ok || owner.ImportPath != "example.com/m/a" {
			t.Errorf("tree %d: a/a.go owned by %v", i, owner)
		}
	}
	// Another commit is listed afresh.
	r.Write("c/c.go", "package c\n")
	sha2 := r.Commit("third package")
	tree4 := filepath.Join(t.TempDir(), "four")
	if err := gitcli.Export(ctx, r.Dir, sha2, tree4, 0); err != nil {
		t.Fatal(err)
	}
	pk4, _, err := ListCommit(ctx, run, cache, sha2, tree4, ".")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := NewGraph(pk4).Package("example.com/m/c"); !ok || run.n.Load() != 2 {
		t.Errorf("a new commit must be listed: runs %d, packages %v", run.n.Load(), pk4)
	}
}

func TestChangedPackagesMapsFilesAndFlagsModuleFiles(t *testing.T) {
	g := NewGraph([]Package{{ImportPath: "m/a", Dir: "/t/svc/a"}, {ImportPath: "m", Dir: "/t/svc"}})
	ch, all := ChangedPackages(g, []string{"svc/a/x.go", "svc/README.md", "elsewhere/y.go"}, "/t", "svc")
	if all || !ch["m/a"] || !ch["m"] || len(ch) != 2 {
		t.Errorf("changed = %v all=%v", ch, all)
	}
	if _, all := ChangedPackages(g, []string{"svc/go.sum"}, "/t", "svc"); !all {
		t.Error("a go.sum change must affect every package")
	}
	if _, all := ChangedPackages(g, []string{"go.sum"}, "/t", "svc"); all {
		t.Error("another module's go.sum does not affect this one")
	}
}

func TestDownloadModulesRunsOncePerGoModAndGoSumContent(t *testing.T) {
	dir := t.TempDir()
	mod := "module example.com/dl" + filepath.Base(dir) + "\n\ngo 1.26\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := DownloadModules(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	// Without a go command the same module is still done: nothing ran.
	t.Setenv("PATH", "")
	if err := DownloadModules(context.Background(), dir); err != nil {
		t.Fatalf("a second download of the same go.mod ran again: %v", err)
	}
	// Other content is downloaded (and here fails: no go command).
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod+"\n// changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := DownloadModules(context.Background(), dir); err == nil {
		t.Fatal("a changed go.mod was not downloaded")
	}
}

// A change the listing cannot attribute must widen to every package:
// vendored code, Go files in directories go list ./... skips, and code a
// local replace directive points to (inside the module or beside it).
func TestChangedPackagesWidensWhatTheListingCannotAttribute(t *testing.T) {
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "svc"), 0o755)
	gomod := "module m\n\ngo 1.26\n\nreplace example.com/fork => ./_fork\n\nreplace example.com/lib => ../lib\n\nreplace example.com/far => ../../outside\n"
	if err := os.WriteFile(filepath.Join(tree, "svc", "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	g := NewGraph([]Package{{ImportPath: "m/a", Dir: filepath.Join(tree, "svc/a")}, {ImportPath: "m/srv", Dir: filepath.Join(tree, "svc/srv")}})
	for _, tc := range []struct {
		path string
		all  bool
	}{
		{"svc/vendor/github.com/dep/a/a.go", true},
		{"svc/vendor/modules.txt", true},
		{"svc/_fork/x.go", true},          // a replaced, ignored directory
		{"svc/.hidden/y.go", true},        // not a listed package directory
		{"svc/tools/gen/main.go", true},   // a Go file in no listed package (a nested module?)
		{"lib/z.txt", true},               // beside the module, named by a replace
		{"svc/a/a.go", false},             // a listed package
		{"svc/a/testdata/case.go", false}, // testdata is never built
		{"svc/docs/notes.md", false},      // not a build input
		{"other/unrelated.go", false},     // outside the module, not replaced
	} {
		_, all := ChangedPackages(g, []string{tc.path}, tree, "svc")
		if all != tc.all {
			t.Errorf("%s: all = %v, want %v", tc.path, all, tc.all)
		}
	}
	ch, all := ChangedPackages(g, []string{"svc/a/a.go", "svc/a/testdata/case.go"}, tree, "svc")
	if all || !ch["m/a"] || len(ch) != 1 {
		t.Errorf("listed package change: %v all=%v", ch, all)
	}
}

// A listing whose errors come from this machine (a dependency missing from
// the module cache) is not cached by commit: it would outlive the fix.
func TestListCommitDoesNotCacheAListingWithMissingDependencies(t *testing.T) {
	real := isolate.NewNetless(isolate.Options{})
	if _, err := real.Isolation(); err != nil {
		t.Skipf("namespaces unavailable: %v", err)
	}
	r := gittest.New(t)
	r.Write("go.mod", "module example.com/m\n\ngo 1.26\n\nrequire example.invalid/gone v1.0.0\n")
	r.Write("a/a.go", "package a\n\nimport _ \"example.invalid/gone\"\n")
	sha := r.Commit("needs a module nobody has")
	ctx := context.Background()
	tree := filepath.Join(t.TempDir(), "tree")
	if err := gitcli.Export(ctx, r.Dir, sha, tree, 0); err != nil {
		t.Fatal(err)
	}
	run := &counting{Runner: real}
	cache := t.TempDir()
	for i := 0; i < 2; i++ {
		pkgs, _, err := ListCommit(ctx, run, cache, sha, tree, ".")
		if err != nil {
			t.Fatal(err)
		}
		if !lookupErrors(pkgs) {
			t.Fatalf("the listing shows no lookup error: %+v", pkgs)
		}
	}
	if got := run.n.Load(); got != 2 {
		t.Errorf("go list ran %d times; a listing with lookup errors must not be cached", got)
	}
}
