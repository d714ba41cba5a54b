package gopkgs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/internal/gitcli/gittest"
)

func TestExportReusesTheStableTreeAndRestoresWhatEarlierCodeChanged(t *testing.T) {
	r := gittest.New(t)
	r.Write("go.mod", "module example.com/m\n\ngo 1.26\n")
	r.Write("a/a.go", "package a\n")
	one := r.Commit("one")
	r.Write("a/b.go", "package a\n\nfunc B() {}\n")
	two := r.Commit("two")
	ctx := context.Background()
	root := t.TempDir()

	w, err := Export(ctx, root, r.Dir, "head", one)
	if err != nil {
		t.Fatal(err)
	}
	dir := w.Dir
	if !strings.HasPrefix(dir, root) {
		t.Fatalf("an idle stable tree was not used: %s", dir)
	}
	// Earlier (untrusted) code plants a file and edits another.
	os.WriteFile(filepath.Join(dir, "a", "evil_test.go"), []byte("package a\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "a", "a.go"), []byte("package b\n"), 0o644)
	os.WriteFile(filepath.Join(w.Scratch, "cover.out"), []byte("stale"), 0o644)
	w.Release()

	w, err = Export(ctx, root, r.Dir, "head", two)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Release()
	if w.Dir != dir {
		t.Fatalf("the stable tree was not reused: %s vs %s", w.Dir, dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "a", "evil_test.go")); err == nil {
		t.Error("a planted file survived into the next evaluation")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a", "a.go")); string(b) != "package a\n" {
		t.Errorf("an edited file was not restored: %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "a", "b.go")); err != nil {
		t.Errorf("the new commit's file is missing: %v", err)
	}
	if entries, _ := os.ReadDir(w.Scratch); len(entries) != 0 {
		t.Errorf("the scratch dir was not emptied: %v", entries)
	}
	// A busy stable tree: a second evaluation gets a temporary one.
	w2, err := Export(ctx, root, r.Dir, "head", two)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Release()
	if strings.HasPrefix(w2.Dir, root) {
		t.Errorf("a busy stable tree was shared: %s", w2.Dir)
	}
}

// A tree that earlier code made unremovable (an immutable file, as root;
// a directory without permissions, as a user) must not block later
// evaluations: they use a temporary tree.
func TestExportFallsBackToATemporaryTreeWhenTheStableOneCannotBeRepaired(t *testing.T) {
	r := gittest.New(t)
	r.Write("go.mod", "module example.com/m\n\ngo 1.26\n")
	one := r.Commit("one")
	ctx := context.Background()
	root := t.TempDir()
	w, err := Export(ctx, root, r.Dir, "head", one)
	if err != nil {
		t.Fatal(err)
	}
	stuck := filepath.Join(w.Dir, "stuck")
	if err := os.WriteFile(stuck, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chattr", "+i", stuck).CombinedOutput(); err != nil {
			t.Skipf("cannot make a file immutable here: %v %s", err, out)
		}
		t.Cleanup(func() { exec.Command("chattr", "-i", stuck).Run() })
	} else {
		locked := filepath.Join(w.Dir, "locked")
		os.MkdirAll(filepath.Join(locked, "sub"), 0o755)
		os.WriteFile(filepath.Join(locked, "sub", "f"), []byte("x"), 0o644)
		os.Chmod(filepath.Join(locked, "sub"), 0)
		os.Chmod(locked, 0)
	}
	w.Release()

	w, err = Export(ctx, root, r.Dir, "head", one)
	if err != nil {
		t.Fatalf("a damaged stable tree blocked the evaluation: %v", err)
	}
	defer w.Release()
	if os.Geteuid() == 0 && strings.HasPrefix(w.Dir, root) {
		t.Fatalf("an unrepairable stable tree was used: %s", w.Dir)
	}
	if _, err := os.Stat(filepath.Join(w.Dir, "go.mod")); err != nil {
		t.Fatalf("the commit was not exported: %v", err)
	}
	if _, err := os.Stat(filepath.Join(w.Dir, "stuck")); err == nil && !strings.HasPrefix(w.Dir, root) {
		t.Error("the temporary tree contains the stuck file")
	}
}
