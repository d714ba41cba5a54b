package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/engine"
	"github.com/agentgate/agentgate/checks/report"
	"github.com/agentgate/agentgate/policies"
)

// fakeCheck is a test-only check whose behaviour is a function.
type fakeCheck struct {
	name string
	run  func(ctx context.Context, s *checks.Subject) checks.Result
}

func (f *fakeCheck) Name() string { return f.name }
func (f *fakeCheck) Run(ctx context.Context, s *checks.Subject) checks.Result {
	return f.run(ctx, s)
}

func passing(name string) checks.Check {
	return &fakeCheck{name: name, run: func(context.Context, *checks.Subject) checks.Result {
		return checks.Result{Name: name, Status: checks.StatusPass}
	}}
}

var subject = &checks.Subject{Repo: "/r", Base: strings.Repeat("a", 40), Head: strings.Repeat("b", 40), MergeBase: strings.Repeat("c", 40)}

func evaluate(t *testing.T, opts engine.Options) *report.Report {
	t.Helper()
	rep, err := engine.Evaluate(context.Background(), subject, report.Report{Repo: "/r"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := rep.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := report.Validate(b); err != nil {
		t.Fatalf("the engine produced an invalid report: %v\n%s", err, b)
	}
	return rep
}

func result(rep *report.Report, name string) checks.Result {
	for _, r := range rep.Checks {
		if r.Name == name {
			return r
		}
	}
	return checks.Result{}
}

func TestChecksRunConcurrently(t *testing.T) {
	// Each check waits until the other has started: run one after the
	// other, they would both time out.
	aStarted, bStarted := make(chan struct{}), make(chan struct{})
	mk := func(name string, mine, other chan struct{}) checks.Check {
		return &fakeCheck{name: name, run: func(ctx context.Context, _ *checks.Subject) checks.Result {
			close(mine)
			select {
			case <-other:
				return checks.Result{Status: checks.StatusPass}
			case <-ctx.Done():
				return checks.Result{Status: checks.StatusError, Reason: "the other check never started"}
			}
		}}
	}
	rep := evaluate(t, engine.Options{Timeout: 5 * time.Second, Checks: []checks.Check{mk("a", aStarted, bStarted), mk("b", bStarted, aStarted)}})
	if rep.Decision != report.Pass {
		t.Fatalf("decision %s: %v", rep.Decision, rep.Reasons)
	}
}

func TestTimedOutCheckFailsClosed(t *testing.T) {
	slow := &fakeCheck{name: "slow", run: func(ctx context.Context, _ *checks.Subject) checks.Result {
		<-ctx.Done()
		// A careless check that reports "pass" after its deadline.
		return checks.Result{Status: checks.StatusPass}
	}}
	rep := evaluate(t, engine.Options{Timeout: time.Hour, Timeouts: map[string]time.Duration{"slow": 50 * time.Millisecond},
		Checks: []checks.Check{passing("scope"), slow}})
	r := result(rep, "slow")
	if r.Status != checks.StatusError || !strings.Contains(r.Reason, "timed out after 50ms") {
		t.Fatalf("slow check: %+v", r)
	}
	if rep.Decision != report.Fail || rep.ExitCode() != 1 {
		t.Fatalf("a timed-out check must fail the gate, got %s", rep.Decision)
	}
	if result(rep, "scope").Status != checks.StatusPass {
		t.Error("the other check should be unaffected")
	}
}

func TestCheckIgnoringCancellationFailsClosed(t *testing.T) {
	defer engine.SetGrace(50 * time.Millisecond)()
	block := make(chan struct{})
	defer close(block)
	stuck := &fakeCheck{name: "stuck", run: func(context.Context, *checks.Subject) checks.Result {
		<-block
		return checks.Result{Status: checks.StatusPass}
	}}
	rep := evaluate(t, engine.Options{Timeout: 20 * time.Millisecond, Checks: []checks.Check{stuck}})
	if r := result(rep, "stuck"); r.Status != checks.StatusError {
		t.Fatalf("stuck check: %+v", r)
	}
	if rep.Decision != report.Fail {
		t.Fatalf("decision %s", rep.Decision)
	}
}

func TestPanickingCheckFailsClosed(t *testing.T) {
	boom := &fakeCheck{name: "boom", run: func(context.Context, *checks.Subject) checks.Result { panic("kaboom") }}
	dir := t.TempDir()
	rep := evaluate(t, engine.Options{Checks: []checks.Check{boom, passing("scope")}, LogDir: dir})
	r := result(rep, "boom")
	if r.Status != checks.StatusError || !strings.Contains(r.Reason, "panicked: kaboom") {
		t.Fatalf("boom: %+v", r)
	}
	if rep.Decision != report.Fail {
		t.Fatalf("decision %s", rep.Decision)
	}
	log, err := os.ReadFile(filepath.Join(dir, "boom.log"))
	if err != nil || !strings.Contains(string(log), "goroutine") {
		t.Errorf("boom.log should hold the stack: %q %v", log, err)
	}
}

func TestMalformedResultsAreNormalised(t *testing.T) {
	odd := &fakeCheck{name: "odd", run: func(context.Context, *checks.Subject) checks.Result {
		return checks.Result{Name: "not-odd", Status: "fine", Findings: []checks.Finding{{Message: "x", Severity: "extreme"}}}
	}}
	errNoReason := &fakeCheck{name: "quiet", run: func(context.Context, *checks.Subject) checks.Result {
		return checks.Result{Status: checks.StatusError}
	}}
	rep := evaluate(t, engine.Options{Checks: []checks.Check{odd, errNoReason}})
	r := result(rep, "odd")
	if r.Status != checks.StatusError || r.Findings[0].Severity != checks.SeverityHigh || r.Findings[0].Rule == "" || r.Findings[0].Fingerprint == "" {
		t.Fatalf("odd: %+v", r)
	}
	if q := result(rep, "quiet"); q.Reason == "" {
		t.Error("an error without a reason must get one")
	}
}

func TestStopFindingStopsEvenUnderAPassStatus(t *testing.T) {
	c := &fakeCheck{name: "tests", run: func(context.Context, *checks.Subject) checks.Result {
		return checks.Result{Status: checks.StatusPass, Findings: []checks.Finding{{Rule: "coverage", Severity: checks.SeverityHigh, Message: "dropped", Stop: policies.StopCoverageRegression}}}
	}}
	rep := evaluate(t, engine.Options{Checks: []checks.Check{c}})
	if rep.Decision != report.Stop || rep.StopReason != policies.StopCoverageRegression || rep.ExitCode() != 3 {
		t.Fatalf("got %s %s", rep.Decision, rep.StopReason)
	}
}

func TestLogWriterLandsInTheCheckLog(t *testing.T) {
	dir := t.TempDir()
	c := &fakeCheck{name: "vuln", run: func(ctx context.Context, _ *checks.Subject) checks.Result {
		fmt.Fprintln(engine.LogWriter(ctx), "scanned 3 modules")
		return checks.Result{Status: checks.StatusPass, Details: map[string]any{"db": "v1"}}
	}}
	evaluate(t, engine.Options{Checks: []checks.Check{c}, LogDir: dir})
	log, err := os.ReadFile(filepath.Join(dir, "vuln.log"))
	if err != nil || !strings.Contains(string(log), "scanned 3 modules") || !strings.Contains(string(log), "== vuln: pass") {
		t.Fatalf("vuln.log = %q, %v", log, err)
	}
	if engine.LogWriter(context.Background()) == nil {
		t.Error("LogWriter outside the engine must be usable")
	}
}

func TestEvaluateRejectsMisconfiguration(t *testing.T) {
	for name, cs := range map[string][]checks.Check{
		"none":      nil,
		"duplicate": {passing("scope"), passing("scope")},
		"bad name":  {passing("Scope!")},
		"nil":       {nil},
	} {
		if _, err := engine.Evaluate(context.Background(), subject, report.Report{}, engine.Options{Checks: cs}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestReportCarriesTheSubject(t *testing.T) {
	s := *subject
	s.Plan = &policies.WorkPlan{PlanID: "p-1", Thread: "svc"}
	s.PlanPath = "svc/WORK_PLAN.json"
	rep, err := engine.Evaluate(context.Background(), &s, report.Report{Repo: "/r", BaseRef: "main"}, engine.Options{Checks: []checks.Check{passing("scope")}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Head != s.Head || rep.MergeBase != s.MergeBase || rep.PlanID != "p-1" || rep.Thread != "svc" || rep.BaseRef != "main" || rep.Version != report.Version {
		t.Fatalf("report %+v", rep)
	}
}
