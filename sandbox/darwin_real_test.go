//go:build darwin

package sandbox

// Real macOS integration tests (M cases): they run only on a macOS runner,
// as root, with AGENTGATE_DARWIN_IT=1 (they create a hidden user and an APFS
// image).

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func darwinIT(t *testing.T) *Darwin {
	t.Helper()
	if os.Geteuid() != 0 || os.Getenv("AGENTGATE_DARWIN_IT") != "1" {
		t.Skip("macOS integration tests need root and AGENTGATE_DARWIN_IT=1 (they create a hidden user and an APFS image)")
	}
	exe, _ := os.Executable()
	base := t.TempDir()
	w := filepath.Join("/usr/local/libexec/agentgate-it", "true.sh")
	sum, err := HashFile(w)
	if err != nil {
		t.Skipf("install a root-owned wrapper at %s first: %v", w, err)
	}
	p := Policy{
		Name:      "darwin-it",
		Volume:    Volume{Image: filepath.Join(base, "v.sparseimage"), SizeBytes: 256 << 20, FS: "apfs", MountPoint: filepath.Join(base, "mnt")},
		Identity:  Identity{User: "_agentgate_it", Group: "_agentgate_it"},
		Wrappers:  map[string]Wrapper{"true.sh": {Path: w, SHA256: sum}},
		ReadPaths: []string{"/usr"}, Network: Network{Mode: NetworkDeny},
		Limits: Limits{Wall: time.Minute, CPUTime: time.Minute, MemoryBytes: 512 << 20, Pids: 64, OpenFiles: 256, FileSizeBytes: 64 << 20},
	}
	d, err := NewDarwin(p, DarwinOptions{UID: 481, GID: 481, Launcher: exe})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDarwinProbeRunsTrivialProfile(t *testing.T) {
	d := darwinIT(t)
	caps, err := d.Probe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := caps.Layer("seatbelt"); !l.Available {
		t.Fatalf("sandbox-exec did not run a trivial profile: %s", l.Detail)
	}
}

func TestDarwinLifecycle(t *testing.T) {
	d := darwinIT(t)
	ctx := context.Background()
	if err := d.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Attach(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Detach(ctx)
	var out strings.Builder
	res, err := d.Run(ctx, RunSpec{Wrapper: "true.sh", Stdout: &out})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("run: %v %+v", err, res)
	}
	if err := d.Kill(ctx); err != nil {
		t.Fatal(err)
	}
}
