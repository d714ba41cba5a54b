//go:build linux

package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// BenchmarkBareExecTrue is the baseline: fork+exec of /bin/true.
func BenchmarkBareExecTrue(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSandboxedTrue is one full sandboxed run of /bin/true: probe,
// wrapper check, cgroups, namespaces, init re-exec, mounts, Landlock,
// seccomp, exec, reap, cleanup, files-written count.
func BenchmarkSandboxedTrue(b *testing.B) {
	f := getFixture(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := f.d.Run(ctx, RunSpec{Wrapper: "true"})
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("%v %+v", err, res)
		}
	}
}

// BenchmarkAttach measures losetup + mount + permissions + harvest view
// of an existing 64 MiB image (the detach is not timed).
func BenchmarkAttach(b *testing.B) {
	f := getFixture(b)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := f.d.Detach(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := f.d.Attach(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshot measures fsfreeze + sparse copy of the 64 MiB image.
func BenchmarkSnapshot(b *testing.B) {
	f := getFixture(b)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("bench-%d-%d", os.Getpid(), i)
		if _, err := f.d.Snapshot(ctx, name); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		p, _ := f.d.snapshotPath(SnapshotID(name))
		os.Remove(p)
		b.StartTimer()
	}
}

// BenchmarkRollback measures kill + detach + copy back + attach.
func BenchmarkRollback(b *testing.B) {
	f := getFixture(b)
	ctx := context.Background()
	name := fmt.Sprintf("bench-rb-%d-%d", os.Getpid(), b.N)
	if _, err := f.d.Snapshot(ctx, name); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := f.d.Rollback(ctx, SnapshotID(name)); err != nil {
			b.Fatal(err)
		}
	}
}
