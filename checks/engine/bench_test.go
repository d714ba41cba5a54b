package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/isolate"
	"github.com/agentgate/agentgate/checks/report"
	"github.com/agentgate/agentgate/checks/vuln/vulndb"
	"github.com/agentgate/agentgate/internal/repogen"
)

var (
	buildMu sync.Mutex
	built   = map[string]string{}
)

// buildTool builds a main package of this module's build list (our own
// command, or a dependency's CLI at the version go.mod pins) once into a
// cache directory.
func buildTool(b *testing.B, name, pkg string) string {
	b.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "agentgate", "bench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(dir, name)
	if o, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		b.Skipf("cannot build %s (%s): %v: %s", name, pkg, err, o)
	}
	built[pkg] = out
	return out
}

func cpu(b *testing.B) func() {
	start := repogen.CPUTime()
	return func() {
		b.ReportMetric(float64((repogen.CPUTime()-start).Microseconds())/1000/float64(b.N), "cpu-ms/op")
	}
}

// BenchmarkCheck measures, in one run, `agentgate check` with all five
// checks against the same tools run by hand one after another on the
// same generated agent repository (~1,500 files, ~230 changed in 3
// commits, renames, 2 planted fake credentials, Go tests in the changed
// thread): git diff --numstat, the gitleaks CLI, the govulncheck CLI and
// go test ./... . Per-tool wall times are reported as metrics, so the
// ratios the issue targets (check ≤ 0.6× the sum, ≤ 1.2× the slowest
// tool, secrets ≤ 1.05× gitleaks) can be read off one run.
func BenchmarkCheck(b *testing.B) {
	if _, err := exec.LookPath("git"); err != nil {
		b.Skip("git is not installed")
	}
	if _, err := isolate.NewNetless(isolate.Options{}).Isolation(); err != nil {
		b.Skipf("the tests and vuln checks need network isolation on this machine: %v", err)
	}
	ctx := context.Background()
	r, err := repogen.Cached(repogen.Options{Files: 1500, Changed: 200, Added: 20, Renamed: 5, Secrets: 2, Commits: 3, Tests: true})
	if err != nil {
		b.Fatal(err)
	}
	db, err := vulndb.Ensure(ctx, "", "")
	if err != nil {
		b.Skipf("no offline vulnerability database: %v", err)
	}
	agentgate := buildTool(b, "agentgate", "github.com/agentgate/agentgate/cmd/agentgate")
	gitleaks := buildTool(b, "gitleaks-v8.30.1", "github.com/zricethezav/gitleaks/v8")
	govulncheck := buildTool(b, "govulncheck-v1.9.0", "golang.org/x/vuln/cmd/govulncheck")
	env := append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	run := func(b *testing.B, okCodes []int, name string, args ...string) time.Duration {
		b.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = r.Dir
		cmd.Env = env
		start := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(start)
		if err != nil {
			ee, ok := err.(*exec.ExitError)
			code := -1
			if ok {
				code = ee.ExitCode()
			}
			accepted := false
			for _, c := range okCodes {
				accepted = accepted || c == code
			}
			if !accepted {
				b.Fatalf("%s %v: %v\n%s", filepath.Base(name), args, err, tail(out))
			}
		}
		return d
	}

	// tools runs the underlying tools by hand, one after another, on the
	// same range, and returns their sum and the slowest.
	tools := func(b *testing.B, m *means) (sum, slowest time.Duration) {
		for _, t := range []struct {
			name string
			ok   []int
			bin  string
			args []string
		}{
			{"numstat", nil, "git", []string{"diff", "--numstat", "-z", "-M", r.Base + "..." + r.Head}},
			{"gitleaks", []int{1}, gitleaks, []string{"git", "--log-opts=" + r.Base + ".." + r.Head, "--no-banner", "--redact", "--log-level", "error", r.Dir}},
			{"govulncheck", nil, govulncheck, []string{"-db", db.URL(), "-format", "json", "-C", r.Dir, "./..."}},
			{"gotest", nil, "go", []string{"test", "-count=1", "./..."}},
		} {
			d := run(b, t.ok, t.bin, t.args...)
			m.add(t.name+"-ms", float64(d.Milliseconds()))
			sum += d
			slowest = max(slowest, d)
		}
		m.add("sum-ms", float64(sum.Milliseconds()))
		m.add("slowest-ms", float64(slowest.Milliseconds()))
		return sum, slowest
	}

	// check runs `agentgate check` with all five checks on repo's
	// base...head, and records each check's time in m.
	check := func(b *testing.B, m *means, repo, head string) {
		out := filepath.Join(b.TempDir(), fmt.Sprint(time.Now().UnixNano()))
		run(b, []int{0, 1, 3}, agentgate, "check", "--repo", repo, "--base", r.Base, "--head", head,
			"--plan", r.PlanPath, "--vuln-db", db.Dir, "--out", out, "--output", "json")
		f, err := os.Open(filepath.Join(out, "report.json"))
		if err != nil {
			b.Fatal(err)
		}
		rep, err := report.Load(f)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range rep.Checks {
			if c.Status == checks.StatusError {
				b.Fatalf("check %s errored: %s", c.Name, c.Reason)
			}
			m.add(c.Name+"-ms", float64(time.Duration(c.Duration).Milliseconds()))
		}
		if rep.StopReason == "" {
			b.Fatalf("the planted secrets were not found: %s", mustJSON(rep))
		}
	}

	b.Run("agentgate-check", func(b *testing.B) {
		m := newMeans(b)
		defer m.report()
		defer cpu(b)()
		for b.Loop() {
			check(b, m, r.Dir, r.Head)
		}
	})
	// Every evaluation of a new agent commit: the agent adds a function to
	// one package of its thread, and the gate checks the new head (base
	// results cached, work trees and Go's caches warm from the evaluation
	// before). This is the case that matters: agents push new commits.
	// Each iteration also runs the tools by hand (untimed) and reports
	// x-sum and x-slowest, the check's time over their sum and over the
	// slowest, averaged: the targets are x-sum <= 0.6 and
	// x-slowest <= 1.2.
	b.Run("agentgate-check-new-head", func(b *testing.B) {
		clone := filepath.Join(b.TempDir(), "repo")
		if out, err := exec.Command("git", "clone", "-q", "--branch", r.Branch, r.Dir, clone).CombinedOutput(); err != nil {
			b.Fatalf("clone: %v: %s", err, out)
		}
		git := func(args ...string) string {
			cmd := exec.Command("git", append([]string{"-c", "user.name=agent", "-c", "user.email=agent@example.com"}, args...)...)
			cmd.Dir = clone
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			if err != nil {
				b.Fatalf("git %v: %v: %s", args, err, out)
			}
			return string(bytes.TrimSpace(out))
		}
		files := strings.Fields(git("ls-files", "--", path.Dir(r.PlanPath)+"/pkg*/*.go"))
		var targets []string
		for _, f := range files {
			if !strings.HasSuffix(f, "_test.go") {
				targets = append(targets, f)
			}
		}
		if len(targets) == 0 {
			b.Fatal("no Go file in the plan's thread to change")
		}
		n := 0
		commit := func() string {
			n++
			f := targets[(n*7919)%len(targets)]
			fh, err := os.OpenFile(filepath.Join(clone, f), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			fmt.Fprintf(fh, "\nfunc agentIteration%d() int { return %d }\n", n, n)
			fh.Close()
			git("commit", "-q", "-am", fmt.Sprintf("agent iteration %d", n))
			return git("rev-parse", "HEAD")
		}
		check(b, nil, clone, commit()) // warm this clone's work trees
		m := newMeans(b)
		defer m.report()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			head := commit()
			b.StartTimer()
			start, cpuStart := time.Now(), repogen.CPUTime()
			check(b, m, clone, head)
			took := time.Since(start)
			m.add("cpu-ms/op", float64((repogen.CPUTime()-cpuStart).Microseconds())/1000)
			// The tools by hand right after, outside the timer: the
			// ratios compare the two under the same machine load.
			b.StopTimer()
			sum, slowest := tools(b, nil)
			m.add("x-sum", took.Seconds()/sum.Seconds())
			m.add("x-slowest", took.Seconds()/slowest.Seconds())
			b.StartTimer()
		}
	})
	b.Run("tools-sequential", func(b *testing.B) {
		m := newMeans(b)
		defer m.report()
		defer cpu(b)()
		for b.Loop() {
			tools(b, m)
		}
	})
}

// means averages per-iteration metrics over b.N (ReportMetric keeps only
// the last value it is given).
type means struct {
	b   *testing.B
	sum map[string]float64
}

func newMeans(b *testing.B) *means { return &means{b: b, sum: map[string]float64{}} }

func (m *means) add(name string, v float64) {
	if m != nil { // nil: a warm-up run, not measured
		m.sum[name] += v
	}
}

func (m *means) report() {
	for k, v := range m.sum {
		m.b.ReportMetric(v/float64(m.b.N), k)
	}
}

func tail(b []byte) string {
	if len(b) > 2000 {
		return string(b[len(b)-2000:])
	}
	return string(b)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
