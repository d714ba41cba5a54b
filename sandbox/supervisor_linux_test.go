//go:build linux

package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgate/agentgate/policies"
)

func readStops(t *testing.T, path string) []map[string]json.RawMessage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]json.RawMessage
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func newTestSupervisor(t *testing.T, f *fixture, g Guardrails) (*Supervisor, *FileStopRecorder, string) {
	t.Helper()
	dir := t.TempDir()
	rec := &FileStopRecorder{Path: filepath.Join(dir, "stops.jsonl")}
	stopFile := filepath.Join(dir, "stopped.json")
	s, err := NewSupervisor(f.d, f.pol.Name, g, rec, SupervisorOptions{StopFile: stopFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, rec, stopFile
}

func TestSupervisorStopsOnToolCallBudgetAndRefusesUntilReauthorized(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	s, rec, stopFile := newTestSupervisor(t, f, Guardrails{PlanID: "P-1", MaxRuntime: time.Minute, MaxToolCalls: 2})
	for i := 0; i < 2; i++ {
		if _, err := s.Run(ctx, RunSpec{Wrapper: "probe", Args: []string{probeArg, "whoami"}}); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	_, err := s.Run(ctx, RunSpec{Wrapper: "probe", Args: []string{probeArg, "whoami"}})
	if !errors.Is(err, ErrStopped) {
		t.Fatalf("third call: err %v, want ErrStopped", err)
	}
	ev := s.Stopped()
	if ev == nil || ev.Reason != policies.StopBudgetExceeded || ev.ToolCalls != 2 || ev.Quarantine == "" {
		t.Fatalf("stop event %+v", ev)
	}
	if stops := readStops(t, rec.Path); len(stops) != 1 {
		t.Fatalf("recorded %d stops, want 1", len(stops))
	}
	// A new supervisor (a restart) is still stopped.
	s2, err := NewSupervisor(f.d, f.pol.Name, Guardrails{MaxRuntime: time.Minute}, rec, SupervisorOptions{StopFile: stopFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(ctx); !errors.Is(err, ErrStopped) {
		t.Fatalf("restarted supervisor started: %v", err)
	}
	if err := s2.Reauthorize(ctx, Authorization{By: ""}); err == nil {
		t.Fatal("an anonymous re-authorization was accepted")
	}
	if err := s2.Reauthorize(ctx, Authorization{By: "alice", Reason: "budget raised"}); err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(ctx); err != nil {
		t.Fatalf("after re-authorization: %v", err)
	}
	if _, err := s2.Run(ctx, RunSpec{Wrapper: "probe", Args: []string{probeArg, "whoami"}}); err != nil {
		t.Fatalf("after re-authorization: %v", err)
	}
	if stops := readStops(t, rec.Path); len(stops) != 2 || string(stops[1]["event"]) != `"sandbox.resume"` {
		t.Fatalf("the resume was not recorded: %d events", len(stops))
	}
}

func TestSupervisorStopsOnFilesChangedAndRollsBack(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	s, _, _ := newTestSupervisor(t, f, Guardrails{MaxRuntime: time.Minute, MaxFilesChanged: 2})
	_, err := s.Run(ctx, RunSpec{Wrapper: "sh", Args: []string{"-c", "for i in 1 2 3; do echo $i > sup-$i; done"}})
	if !errors.Is(err, ErrStopped) {
		t.Fatalf("err %v, want ErrStopped", err)
	}
	ev := s.Stopped()
	if ev.Reason != StopForFiles || ev.FilesChanged != 3 {
		t.Fatalf("stop %+v", ev)
	}
	if _, err := os.Stat(filepath.Join(f.pol.Volume.MountPoint, "work", "sup-1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the volume was not rolled back to the baseline: %v", err)
	}
	if _, err := s.Run(ctx, RunSpec{Wrapper: "probe", Args: []string{probeArg, "whoami"}}); !errors.Is(err, ErrStopped) {
		t.Fatalf("a tool call after the stop: %v", err)
	}
}

func TestSupervisorStopsAtMaxRuntime(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	s, _, _ := newTestSupervisor(t, f, Guardrails{MaxRuntime: 1500 * time.Millisecond})
	start := time.Now()
	_, err := s.Run(ctx, RunSpec{Wrapper: "probe", Args: []string{probeArg, "sleep", "30"}})
	if !errors.Is(err, ErrStopped) {
		t.Fatalf("err %v, want ErrStopped", err)
	}
	if ev := s.Stopped(); ev == nil || ev.Reason != policies.StopRuntimeExceeded {
		t.Fatalf("stop %+v, want %s", ev, policies.StopRuntimeExceeded)
	}
	if time.Since(start) > 15*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
	assertNoAgentProcesses(t, f)
}

// TestSupervisorStateSpansProcesses: with a StateFile, tool calls made by
// separate supervisors (one `agentgate sandbox run` each) count as one run.
func TestSupervisorStateSpansProcesses(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	dir := t.TempDir()
	rec := &FileStopRecorder{Path: filepath.Join(dir, "stops.jsonl")}
	opts := SupervisorOptions{StopFile: filepath.Join(dir, "stopped.json"), StateFile: filepath.Join(dir, "state.json")}
	g := Guardrails{MaxRuntime: time.Minute, MaxToolCalls: 2}
	for i := 1; i <= 3; i++ {
		s, err := NewSupervisor(f.d, f.pol.Name, g, rec, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(ctx); err != nil {
			if i == 3 {
				break
			}
			t.Fatalf("process %d: %v", i, err)
		}
		_, err = s.Run(ctx, RunSpec{Wrapper: "probe", Args: []string{probeArg, "whoami"}})
		s.Close()
		if i < 3 && err != nil {
			t.Fatalf("process %d: %v", i, err)
		}
		if i == 3 && !errors.Is(err, ErrStopped) {
			t.Fatalf("the third tool call across processes: %v, want ErrStopped", err)
		}
	}
	if stops := readStops(t, rec.Path); len(stops) != 1 {
		t.Fatalf("%d stops recorded", len(stops))
	}
}

// outsideStop is a StopSource the test raises, as the LLM gateway latches
// a plan's budget stop in the ledger from another process.
type outsideStop struct {
	mu     sync.Mutex
	reason policies.StopReason
	err    error
	asked  int
}

func (o *outsideStop) raise(r policies.StopReason, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reason, o.err = r, err
}

func (o *outsideStop) StopRequested(context.Context) (policies.StopReason, string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.asked++
	return o.reason, "budget ledger: plan P-1 stopped", o.err
}

func TestSupervisorStopsARunningCallWhenItsStopSourceSaysSo(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	dir := t.TempDir()
	src := &outsideStop{}
	rec := &FileStopRecorder{Path: filepath.Join(dir, "stops.jsonl")}
	opts := SupervisorOptions{StopFile: filepath.Join(dir, "stopped.json"), StopSource: src, StopPoll: 100 * time.Millisecond}
	s, err := NewSupervisor(f.d, f.pol.Name, Guardrails{PlanID: "P-1", MaxRuntime: time.Minute}, rec, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(ctx, RunSpec{Wrapper: "probe", Args: []string{probeArg, "whoami"}}); err != nil {
		t.Fatal(err)
	}
	// The source cannot be read: the next tool call is refused, the run is
	// not stopped.
	src.raise("", errors.New("database unreachable"))
	if _, err := s.Run(ctx, RunSpec{Wrapper: "probe", Args: []string{probeArg, "whoami"}}); err == nil || errors.Is(err, ErrStopped) {
		t.Fatalf("an unreadable stop source: %v, want a refusal without a stop", err)
	}
	src.raise("", nil)
	// A long tool call is killed when the plan is stopped outside.
	go func() {
		time.Sleep(700 * time.Millisecond)
		src.raise(policies.StopBudgetExceeded, nil)
	}()
	start := time.Now()
	_, err = s.Run(ctx, RunSpec{Wrapper: "probe", Args: []string{probeArg, "sleep", "30"}})
	if !errors.Is(err, ErrStopped) {
		t.Fatalf("err %v, want ErrStopped", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the call ran %v after the outside stop", d)
	}
	ev := s.Stopped()
	if ev == nil || ev.Reason != policies.StopBudgetExceeded || ev.PlanID != "P-1" || !strings.Contains(ev.Detail, "budget ledger") || ev.Quarantine == "" {
		t.Fatalf("stop %+v", ev)
	}
	assertNoAgentProcesses(t, f)
	if stops := readStops(t, rec.Path); len(stops) != 1 {
		t.Fatalf("%d stops recorded, want 1", len(stops))
	}
	// A human re-authorizes the sandbox while the budget is still stopped:
	// the run is stopped again before its first call.
	s2, err := NewSupervisor(f.d, f.pol.Name, Guardrails{PlanID: "P-1", MaxRuntime: time.Minute}, rec, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Reauthorize(ctx, Authorization{By: "alice", Reason: "try again"}); err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(ctx); !errors.Is(err, ErrStopped) {
		t.Fatalf("start with the budget still stopped: %v", err)
	}
	// Once the budget is resumed too, the run goes on.
	src.raise("", nil)
	if err := s2.Reauthorize(ctx, Authorization{By: "alice", Reason: "budget raised"}); err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Run(ctx, RunSpec{Wrapper: "probe", Args: []string{probeArg, "whoami"}}); err != nil {
		t.Fatalf("after both resumes: %v", err)
	}
}
