//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func assertNoAgentProcesses(t *testing.T, f *fixture) {
	t.Helper()
	if left := uidProcs(f.uid); len(left) > 0 {
		t.Fatalf("agent uid %d still has processes %v after the run", f.uid, left)
	}
}

// TestResourceLimits covers tests 27-30 and 11.
func TestResourceLimits(t *testing.T) {
	f := getFixture(t)
	t.Run("27 a memory hog is OOM-killed by the cgroup", func(t *testing.T) {
		d := f.driverWith(t, func(p *Policy) { p.Limits.MemoryBytes = 64 << 20 })
		res, _, _ := f.run(t, d, "probe", probeArg, "memhog", "256")
		if res.Signal != "SIGKILL" || !res.Hit(LimitMemory) {
			t.Fatalf("exit %d signal %q limits %v; want SIGKILL and %q", res.ExitCode, res.Signal, res.LimitsHit, LimitMemory)
		}
		assertNoAgentProcesses(t, f)
	})
	t.Run("28 a fork bomb is capped by pids.max and ended by the wall clock", func(t *testing.T) {
		d := f.driverWith(t, func(p *Policy) { p.Limits.Pids = 32; p.Limits.Wall = 2 * time.Second })
		res, out, _ := f.run(t, d, "probe", probeArg, "forkbomb")
		if !strings.Contains(out, "EAGAIN") {
			t.Errorf("fork bomb output %q: want a fork failing with EAGAIN", out)
		}
		if !res.Hit(LimitPids) || !res.Hit(LimitWall) || !res.Killed {
			t.Fatalf("limits %v killed %v; want pids and wall", res.LimitsHit, res.Killed)
		}
		assertNoAgentProcesses(t, f)
	})
	t.Run("29 a CPU spin is stopped by RLIMIT_CPU", func(t *testing.T) {
		d := f.driverWith(t, func(p *Policy) { p.Limits.CPUTime = time.Second; p.Limits.Wall = 20 * time.Second })
		res, _, _ := f.run(t, d, "probe", probeArg, "spin")
		if res.Signal != "SIGXCPU" && res.Signal != "SIGKILL" || !res.Hit(LimitCPUTime) && res.Signal != "SIGKILL" {
			t.Fatalf("signal %q limits %v; want SIGXCPU and %q", res.Signal, res.LimitsHit, LimitCPUTime)
		}
		if res.Hit(LimitWall) {
			t.Fatalf("the wall clock, not RLIMIT_CPU, ended it: %v", res.LimitsHit)
		}
	})
	t.Run("30 the wall clock also kills daemonized grandchildren", func(t *testing.T) {
		d := f.driverWith(t, func(p *Policy) { p.Limits.Wall = time.Second })
		res, out, _ := f.run(t, d, "probe", probeArg, "daemonize", "60")
		if !strings.Contains(out, "daemon started") || !res.Hit(LimitWall) {
			t.Fatalf("out %q limits %v", out, res.LimitsHit)
		}
		if res.Duration > 10*time.Second {
			t.Fatalf("took %v", res.Duration)
		}
		assertNoAgentProcesses(t, f)
	})
	t.Run("23 a double-forked daemon does not survive the run", func(t *testing.T) {
		res, out, _ := f.run(t, nil, "probe", probeArg, "daemonize", "0")
		if !strings.Contains(out, "daemon started") || res.ExitCode != 0 {
			t.Fatalf("out %q exit %d", out, res.ExitCode)
		}
		assertNoAgentProcesses(t, f)
	})
	t.Run("11 filling the disk stays inside the volume", func(t *testing.T) {
		fill := filepath.Join(f.pol.Volume.MountPoint, "work", "fill")
		defer os.Remove(fill)
		_, o := f.probeRun(t, nil, "fill", fill)
		if o.OK || o.Errno != "ENOSPC" {
			t.Fatalf("fill ended with %+v, want ENOSPC", o)
		}
		// What the host gave is the image's allocation, bounded by its size
		// (the host's free space is shared with other processes, so the
		// image itself is what is measured).
		var st unix.Stat_t
		if err := unix.Stat(f.pol.Volume.Image, &st); err != nil {
			t.Fatal(err)
		}
		if alloc := st.Blocks * 512; alloc > f.pol.Volume.SizeBytes {
			t.Fatalf("the image allocates %d bytes on the host, more than its %d-byte size", alloc, f.pol.Volume.SizeBytes)
		}
		var vs unix.Statfs_t
		if err := unix.Statfs(f.pol.Volume.MountPoint, &vs); err != nil || int64(vs.Bavail)*vs.Bsize > 2<<20 {
			t.Fatalf("the volume is not full after the fill: %d blocks free (%v)", vs.Bavail, err)
		}
	})
}

// TestKillSwitchWithLiveWriter covers test 31: with a writer running, a
// host-only release is refused (it would leave the agent writing through
// its own mount namespace); Kill + Detach leaves no process, no mount and
// no loop device.
func TestKillSwitchWithLiveWriter(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	log := filepath.Join(f.pol.Volume.MountPoint, "work", "writer.log")
	os.Remove(log)
	done := make(chan Result, 1)
	go func() {
		res, _ := f.d.Run(ctx, RunSpec{Wrapper: "probe", Args: []string{probeArg, "writer", log}})
		done <- res
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(log); err == nil && bytes.Count(b, []byte("\n")) > 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writer never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	st, _ := f.d.load()
	loop := st.Loop
	if err := f.d.release(ctx); !errors.Is(err, ErrLiveWriter) {
		t.Fatalf("release with a live writer: err %v, want ErrLiveWriter", err)
	}
	if !isMountPoint(f.pol.Volume.MountPoint) {
		t.Fatal("the refused release unmounted anyway")
	}
	if err := f.d.Detach(ctx); err != nil {
		t.Fatalf("detach: %v", err)
	}
	res := <-done
	if !res.Killed && res.Signal == "" {
		t.Errorf("the run ended without a kill: %+v", res)
	}
	assertNoAgentProcesses(t, f)
	if isMountPoint(f.pol.Volume.MountPoint) || isMountPoint(f.d.harvestDir()) {
		t.Fatal("volume still mounted after detach")
	}
	if b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(loop), "loop", "backing_file")); err == nil && strings.TrimSpace(string(b)) == f.pol.Volume.Image {
		t.Fatalf("%s still backs the image", loop)
	}
	if h := holders(loopMajMin(loop)); len(h) > 0 {
		t.Fatalf("namespaces still hold the volume: %v", h)
	}
	if _, err := f.d.Attach(ctx); err != nil {
		t.Fatalf("re-attach: %v", err)
	}
	// Kill is idempotent on an idle sandbox.
	if err := f.d.Kill(ctx); err != nil {
		t.Fatalf("idle kill: %v", err)
	}
}

// treeHash hashes every path, mode and content under root without
// following symlinks.
func treeHash(t *testing.T, root string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "lost+found" || strings.HasPrefix(rel, "lost+found/") {
			return nil
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		io.WriteString(h, rel+"\x00"+fi.Mode().String()+"\x00")
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			io.WriteString(h, l)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestSnapshotRollbackRestoresByteIdenticalTree covers test 32.
func TestSnapshotRollbackRestoresByteIdenticalTree(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	mp := f.pol.Volume.MountPoint
	f.run(t, nil, "sh", "-c", "mkdir -p work/proj && echo one > work/proj/a && echo two > work/proj/b && ln -s a work/proj/l")
	before := treeHash(t, mp)
	name := "s" + time.Now().Format("150405.000000")
	id, err := f.d.Snapshot(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	f.run(t, nil, "sh", "-c", "echo changed > work/proj/a && rm -rf work/proj/b && echo junk > work/junk && mkdir work/newdir")
	if treeHash(t, mp) == before {
		t.Fatal("the mutation changed nothing; the test would prove nothing")
	}
	if err := f.d.Rollback(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := treeHash(t, mp); got != before {
		t.Fatal("rollback did not restore a byte-identical tree")
	}
	// The next run starts from the rolled-back image.
	_, out, _ := f.run(t, nil, "sh", "-c", "cat work/proj/a; test -e work/junk && echo junk-present || true")
	if strings.TrimSpace(out) != "one" {
		t.Fatalf("after rollback the sandbox sees %q", out)
	}
	if _, err := f.d.Snapshot(ctx, name); err == nil {
		t.Fatal("a snapshot name was reused")
	}
	if _, err := f.d.Snapshot(ctx, "../escape"); err == nil {
		t.Fatal("a path-like snapshot name was accepted")
	}
}
