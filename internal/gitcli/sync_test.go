package gitcli_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/agentgate/agentgate/internal/gitcli"
)

// snapshot describes a directory: per path its type and permissions, and
// the content of files or the target of links.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += " " + string(b)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		}
		out[filepath.ToSlash(rel)] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, got, want map[string]string) {
	t.Helper()
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s is missing", p)
		} else if g != w {
			t.Errorf("%s = %q, want %q", p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s should not be there", p)
		}
	}
}

func TestSyncIntoAnEmptyDirectoryWritesWhatExportWrites(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	want := filepath.Join(t.TempDir(), "export")
	if err := gitcli.Export(ctx, fx.r.Dir, fx.head, want, 0); err != nil {
		t.Fatal(err)
	}
	got := filepath.Join(t.TempDir(), "sync")
	st, err := gitcli.Sync(ctx, fx.r.Dir, fx.head, got, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Kept != 0 || st.Removed != 0 || st.Written == 0 {
		t.Errorf("stats on an empty directory = %+v", st)
	}
	sameTree(t, snapshot(t, got), snapshot(t, want))
}

func TestSyncFromAnotherCommitRewritesOnlyTheDifference(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "tree")
	if _, err := gitcli.Sync(ctx, fx.r.Dir, fx.base, dir, 0); err != nil {
		t.Fatal(err)
	}
	readme := filepath.Join(dir, "docs", "readme.md")
	before, err := os.Stat(readme)
	if err != nil {
		t.Fatal(err)
	}
	st, err := gitcli.Sync(ctx, fx.r.Dir, fx.head, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(t.TempDir(), "export")
	if err := gitcli.Export(ctx, fx.r.Dir, fx.head, want, 0); err != nil {
		t.Fatal(err)
	}
	sameTree(t, snapshot(t, dir), snapshot(t, want))
	// base → head: f.txt and old.txt go, g.sh changes mode, data.bin
	// content; moved.txt, link and vendor/sub are new; docs stays.
	if st.Removed != 4 || st.Kept != 2 {
		t.Errorf("stats base → head = %+v, want 4 removed (f.txt, old.txt, g.sh, data.bin) and 2 kept (docs, docs/readme.md)", st)
	}
	after, err := os.Stat(readme)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("an unchanged file was rewritten")
	}
	// Again on the same commit: nothing to do.
	st, err = gitcli.Sync(ctx, fx.r.Dir, fx.head, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Written != 0 || st.Removed != 0 {
		t.Errorf("a second sync of the same commit did work: %+v", st)
	}
}

// Earlier untrusted code may have changed the tree in every way it can;
// Sync must restore the commit exactly, trusting no timestamp, and never
// write outside the directory.
func TestSyncRestoresATamperedTreeWithoutTrustingTimestamps(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "tree")
	if _, err := gitcli.Sync(ctx, fx.r.Dir, fx.head, dir, 0); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, dir)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "readme.md"), []byte("# docs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Same size, same mtime, other bytes.
	moved := filepath.Join(dir, "moved.txt")
	fi, err := os.Stat(moved)
	must(err)
	b, err := os.ReadFile(moved)
	must(err)
	b[0] = 'X'
	must(os.WriteFile(moved, b, 0o644))
	must(os.Chtimes(moved, fi.ModTime(), fi.ModTime()))
	// An extra file, an extra directory, a changed mode, a fifo.
	must(os.WriteFile(filepath.Join(dir, "evil_test.go"), []byte("package x\n"), 0o644))
	must(os.MkdirAll(filepath.Join(dir, "planted", "deep"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "planted", "deep", "x"), []byte("x"), 0o644))
	must(os.Chmod(filepath.Join(dir, "g.sh"), 0o777))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	// A directory replaced by a link to the outside holding the same file.
	must(os.RemoveAll(filepath.Join(dir, "docs")))
	must(os.Symlink(outside, filepath.Join(dir, "docs")))
	// A retargeted link.
	must(os.Remove(filepath.Join(dir, "link")))
	must(os.Symlink("/etc/shadow", filepath.Join(dir, "link")))
	// A submodule directory with content.
	must(os.WriteFile(filepath.Join(dir, "vendor", "sub", "x.go"), []byte("package sub\n"), 0o644))

	st, err := gitcli.Sync(ctx, fx.r.Dir, fx.head, dir, 0)
	must(err)
	sameTree(t, snapshot(t, dir), want)
	if st.Removed < 8 {
		t.Errorf("stats after tampering = %+v, want at least 8 removals", st)
	}
	// The outside directory the link pointed to is untouched.
	sameTree(t, snapshot(t, outside), map[string]string{"readme.md": "-rw-r--r-- # docs\n"})
}

func TestSyncRefusesFilesOverTheCapAndNonDirectories(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	if _, err := gitcli.Sync(ctx, fx.r.Dir, fx.head, filepath.Join(t.TempDir(), "t"), 2); !errors.Is(err, gitcli.ErrTooLarge) {
		t.Errorf("Sync with a 2-byte cap: want ErrTooLarge, got %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := gitcli.Sync(ctx, fx.r.Dir, fx.head, file, 0); err == nil {
		t.Error("Sync into a regular file succeeded")
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	if _, err := gitcli.Sync(ctx, fx.r.Dir, fx.head, link, 0); err == nil {
		t.Error("Sync into a symbolic link succeeded")
	}
}

// A file rewritten after the last sync with the commit's own bytes and an
// old mtime (what a test could do to replay a cached result on other
// content) is rewritten by SyncSince; Sync, which compares content only,
// keeps it.
func TestSyncSinceRewritesFilesChangedAfterTheLastSync(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "tree")
	if _, err := gitcli.Sync(ctx, fx.r.Dir, fx.head, dir, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // past the file system's coarse clock
	since := time.Now()
	time.Sleep(20 * time.Millisecond)
	p := filepath.Join(dir, "moved.txt")
	orig, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.WriteFile(p, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	st, err := gitcli.Sync(ctx, fx.r.Dir, fx.head, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); st.Written != 0 || !fi.ModTime().Equal(old) {
		t.Fatalf("Sync (content only) should keep the file: %+v, mtime %v", st, fi.ModTime())
	}
	st, err = gitcli.SyncSince(ctx, fx.r.Dir, fx.head, dir, 0, since)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Written != 1 || st.Removed != 1 || fi.ModTime().Before(since) {
		t.Fatalf("SyncSince kept a file changed after the last sync: %+v, mtime %v", st, fi.ModTime())
	}
	if b, _ := os.ReadFile(p); string(b) != string(orig) {
		t.Fatalf("content changed: %q", b)
	}
}
