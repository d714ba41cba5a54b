package scope_test

import (
	"context"
	"fmt"
	"os/exec"
	"testing"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/engine"
	"github.com/agentgate/agentgate/checks/scope"
	"github.com/agentgate/agentgate/internal/gitcli"
	"github.com/agentgate/agentgate/internal/repogen"
)

func benchSubject(b *testing.B, n int) *checks.Subject {
	b.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		b.Skip("git is not installed")
	}
	r, err := repogen.Cached(repogen.Options{Files: n + n/5, Threads: 1, Changed: n - 30, Added: 20, Renamed: 10, Commits: 2})
	if err != nil {
		b.Fatal(err)
	}
	s, _, err := engine.Prepare(context.Background(), engine.Input{Repo: r.Dir, Base: r.Base, Head: r.Head, PlanPath: r.PlanPath})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func cpu(b *testing.B) func() {
	start := repogen.CPUTime()
	return func() {
		b.ReportMetric(float64((repogen.CPUTime()-start).Microseconds())/1000/float64(b.N), "cpu-ms/op")
	}
}

// BenchmarkScope is the whole scope check (git diff with renames, blob
// sizes, every rule) on a change of 1,000 and 10,000 files; the target is
// < 0.3 s at 10,000 files, growing linearly.
func BenchmarkScope(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		s := benchSubject(b, n)
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			defer cpu(b)()
			for b.Loop() {
				res := scope.New().Run(context.Background(), s)
				if res.Status == checks.StatusError {
					b.Fatal(res.Reason)
				}
			}
		})
	}
}

// BenchmarkScopeEvaluate is the rules alone (no git) on the same diffs.
func BenchmarkScopeEvaluate(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		s := benchSubject(b, n)
		changes, err := gitcli.Diff(context.Background(), s.Repo, s.MergeBase, s.Head)
		if err != nil {
			b.Fatal(err)
		}
		in := scope.Input{Changes: changes, Plan: s.Plan, PlanPath: s.PlanPath, Tree: s.Tree}
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			defer cpu(b)()
			for b.Loop() {
				scope.Evaluate(in)
			}
		})
	}
}
