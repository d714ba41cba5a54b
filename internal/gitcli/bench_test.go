package gitcli_test

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"testing"

	"github.com/agentgate/agentgate/internal/gitcli"
	"github.com/agentgate/agentgate/internal/repogen"
)

// benchRepo is a generated repository whose agent branch changes n files.
func benchRepo(b *testing.B, n int) *repogen.Repo {
	b.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		b.Skip("git is not installed")
	}
	r, err := repogen.Cached(repogen.Options{Files: n + n/5, Threads: 1, Changed: n - 30, Added: 20, Renamed: 10, Commits: 2})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkNumstat compares gitcli's parsed diff with a bare
// `git diff --numstat` of the same range (output read, not parsed).
func BenchmarkNumstat(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		r := benchRepo(b, n)
		ctx := context.Background()
		b.Run(fmt.Sprintf("gitcli.Numstat/%d", n), func(b *testing.B) {
			defer cpu(b)()
			for b.Loop() {
				if _, err := gitcli.Numstat(ctx, r.Dir, r.Base, r.Head); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("gitcli.Diff/%d", n), func(b *testing.B) {
			defer cpu(b)()
			for b.Loop() {
				if _, err := gitcli.Diff(ctx, r.Dir, r.Base, r.Head); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("git-diff-numstat/%d", n), func(b *testing.B) {
			defer cpu(b)()
			for b.Loop() {
				cmd := exec.Command("git", "-C", r.Dir, "diff", "--numstat", "-z", "-M", r.Base+"..."+r.Head)
				var out bytes.Buffer
				cmd.Stdout = &out
				if err := cmd.Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// cpu reports user+system CPU milliseconds per operation (this process
// and its git children): wall time on a shared machine is noisy.
func cpu(b *testing.B) func() {
	start := repogen.CPUTime()
	return func() {
		b.ReportMetric(float64((repogen.CPUTime()-start).Microseconds())/1000/float64(b.N), "cpu-ms/op")
	}
}

// BenchmarkExport writes a commit's tree (about 3,000 and 12,000 files)
// into a fresh directory, as the tests, static and vuln checks do.
func BenchmarkExport(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		r := benchRepo(b, n)
		b.Run(fmt.Sprintf("files=%d", n+n/5), func(b *testing.B) {
			defer cpu(b)()
			for b.Loop() {
				if err := gitcli.Export(context.Background(), r.Dir, r.Head, b.TempDir(), 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
