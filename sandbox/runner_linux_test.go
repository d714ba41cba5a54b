//go:build linux

package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCodeRunnerRunsGoListOnUntrustedCode is the checks adapter end to
// end: copy a module into the volume, run `go list` through the
// allowlisted go wrapper, and see the sandbox's limits apply.
func TestCodeRunnerRunsGoListOnUntrustedCode(t *testing.T) {
	f := getFixture(t)
	if _, ok := f.pol.Wrappers["go"]; !ok {
		t.Skip("no go toolchain on PATH to pin as a wrapper")
	}
	ctx := context.Background()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module example.com/untrusted\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(src, "u.go"), []byte("package untrusted\n\nfunc F() int { return 1 }\n"), 0o644)
	os.Symlink("/etc/passwd", filepath.Join(src, "link"))
	r := &CodeRunner{D: f.d, Volume: f.pol.Volume.MountPoint, UID: f.uid, GID: f.gid}
	rel := "work/code-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	dir, err := r.CopyIn(ctx, src, rel)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "link")); err != nil || l != "/etc/passwd" {
		t.Fatalf("symlink not copied as a link: %q %v", l, err)
	}
	res, err := r.RunCode(ctx, CodeCmd{Path: "go", Args: []string{"list", "-json", "."}, Dir: dir})
	if err != nil {
		t.Fatalf("%v\nstderr: %s", err, res.Stderr)
	}
	if res.ExitCode != 0 {
		t.Fatalf("exit %d: %s", res.ExitCode, res.Stderr)
	}
	var pkg struct{ ImportPath string }
	if err := json.Unmarshal(res.Stdout, &pkg); err != nil || pkg.ImportPath != "example.com/untrusted" {
		t.Fatalf("go list printed %q (%v)", res.Stdout, err)
	}
	if !strings.HasPrefix(res.Isolation, "sandbox:") {
		t.Fatalf("isolation %q", res.Isolation)
	}
	if _, err := r.RunCode(ctx, CodeCmd{Path: "/usr/bin/curl", Dir: dir}); !errors.Is(err, ErrNotAllowlisted) {
		t.Fatalf("curl: %v", err)
	}
	if _, err := r.RunCode(ctx, CodeCmd{Path: "go", Dir: "/etc"}); err == nil {
		t.Fatal("a directory outside the volume was accepted")
	}
	if _, err := r.CopyIn(ctx, src, rel); err == nil {
		t.Fatal("CopyIn overwrote an existing directory")
	}
	res, err = r.RunCode(ctx, CodeCmd{Path: "probe", Args: []string{probeArg, "sleep", "30"}, Dir: dir, Timeout: 500 * time.Millisecond})
	if !errors.Is(err, ErrCodeTimeout) {
		t.Fatalf("timeout: %v", err)
	}
}
