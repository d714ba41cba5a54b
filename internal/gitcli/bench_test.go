package gitcli_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// BenchmarkExport replaces a work tree with a fresh export of a commit
// (about 1,200 and 12,000 files): remove the old tree, write the new one,
// as the checks did before Sync (and still do when their stable work tree
// is busy).
func BenchmarkExport(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		r := benchRepo(b, n)
		b.Run(fmt.Sprintf("files=%d", n+n/5), func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "tree")
			defer cpu(b)()
			for b.Loop() {
				if err := os.RemoveAll(dir); err != nil {
					b.Fatal(err)
				}
				if err := gitcli.Export(context.Background(), r.Dir, r.Head, dir, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSync brings a work tree from one commit to another, as the
// tests, static and vuln checks do for each evaluation; every file left in
// place is verified by content. "base-head" alternates between the
// benchmark's base and head, which differ in ~80 % of the files (the worst
// case); "same" re-syncs an up-to-date tree (a re-check, or a new agent
// commit that changed a few files: the cost is the verification).
func BenchmarkSync(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		r := benchRepo(b, n)
		dir := filepath.Join(b.TempDir(), "tree")
		if _, err := gitcli.Sync(context.Background(), r.Dir, r.Base, dir, 0); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("files=%d/base-head", n+n/5), func(b *testing.B) {
			defer cpu(b)()
			i := 0
			for b.Loop() {
				sha := r.Head
				if i%2 == 1 {
					sha = r.Base
				}
				i++
				if _, err := gitcli.Sync(context.Background(), r.Dir, sha, dir, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("files=%d/same", n+n/5), func(b *testing.B) {
			if _, err := gitcli.Sync(context.Background(), r.Dir, r.Base, dir, 0); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			defer cpu(b)()
			for b.Loop() {
				if _, err := gitcli.Sync(context.Background(), r.Dir, r.Base, dir, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
