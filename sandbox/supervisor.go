package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agentgate/agentgate/policies"
)

// Guardrails are the run-level limits the supervisor enforces, from the
// plan (and the thread's runtime ceiling).
type Guardrails struct {
	PlanID          string        `json:"plan_id,omitempty"`
	MaxRuntime      time.Duration `json:"max_runtime"`
	MaxToolCalls    int           `json:"max_tool_calls,omitempty"`    // 0 = no cap
	MaxFilesChanged int           `json:"max_files_changed,omitempty"` // 0 = no cap
}

// Stop reasons the supervisor uses for each guardrail.
const (
	// StopForRuntime: max_runtime passed.
	StopForRuntime = policies.StopRuntimeExceeded
	// StopForToolCalls: the plan's tool-call budget is spent.
	StopForToolCalls = policies.StopBudgetExceeded
	// StopForFiles: the agent changed more files than its plan declared,
	// acting outside what was authorized.
	StopForFiles = policies.StopSecurityViolation
)

// GuardrailsFromPlan reads the plan's limits; the thread's runtime bounds
// max_runtime from above.
func GuardrailsFromPlan(plan *policies.WorkPlan, th policies.Thread) (Guardrails, error) {
	g := Guardrails{MaxRuntime: DefaultWall}
	if th.Runtime.MaxRuntime != "" {
		d, err := time.ParseDuration(string(th.Runtime.MaxRuntime))
		if err != nil {
			return g, fmt.Errorf("config.yaml runtime.max_runtime: %w", err)
		}
		g.MaxRuntime = d
	}
	if plan == nil {
		return g, nil
	}
	g.PlanID = plan.PlanID
	if plan.Limits.MaxRuntime != "" {
		d, err := time.ParseDuration(string(plan.Limits.MaxRuntime))
		if err != nil {
			return g, fmt.Errorf("WORK_PLAN.json limits.max_runtime: %w", err)
		}
		if d < g.MaxRuntime {
			g.MaxRuntime = d
		}
	}
	g.MaxToolCalls = plan.Limits.MaxToolCalls
	g.MaxFilesChanged = plan.Limits.MaxFilesChanged
	if g.MaxRuntime <= 0 || g.MaxToolCalls < 0 || g.MaxFilesChanged < 0 {
		return g, errors.New("guardrails: max_runtime must be positive and counts must not be negative")
	}
	return g, nil
}

// StopEvent is what the supervisor records when a guardrail fires.
type StopEvent struct {
	Reason       policies.StopReason `json:"reason"`
	Detail       string              `json:"detail"`
	PlanID       string              `json:"plan_id,omitempty"`
	Sandbox      string              `json:"sandbox"`
	At           time.Time           `json:"at"`
	Runtime      time.Duration       `json:"runtime_ns"`
	ToolCalls    int                 `json:"tool_calls"`
	FilesChanged int                 `json:"files_changed"`
	// Quarantine is the snapshot of the volume as the agent left it (the
	// diff snapshot); the live volume is rolled back to the baseline.
	Quarantine SnapshotID `json:"quarantine,omitempty"`
	Baseline   SnapshotID `json:"baseline,omitempty"`
	LastResult *Result    `json:"last_result,omitempty"`
}

// StopRecorder persists a stop (audit log append, manifest, evidence). The
// evidence engineer's store implements it; FileStopRecorder is a plain one.
type StopRecorder interface {
	RecordStop(ctx context.Context, ev StopEvent) error
}

// Authorization is a human's re-authorization of a stopped run.
type Authorization struct {
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// ResumeRecorder is optionally implemented by a StopRecorder to record
// re-authorizations too.
type ResumeRecorder interface {
	RecordResume(ctx context.Context, stopped StopEvent, a Authorization) error
}

// Inventorier lists the volume's files with a change signature each
// (drivers implement it over their harvest view).
type Inventorier interface {
	Inventory(ctx context.Context) (map[string]string, error)
}

// ErrStopped is returned (wrapped) for every tool call after a stop until
// a human re-authorizes.
var ErrStopped = errors.New("run stopped")

// SupervisorOptions configure a Supervisor.
type SupervisorOptions struct {
	// StopFile persists the stopped state across processes (required).
	StopFile string
	// StateFile, when set, persists the run's start, tool-call count and
	// baseline, so that a run made of several processes (one `agentgate
	// sandbox run` per tool call) is supervised as one.
	StateFile string
	// Rollback restores the baseline after quarantining (default true
	// through NewSupervisor; set KeepVolume to leave it as the agent left it).
	KeepVolume bool
	Now        func() time.Time
	// StopSource, when set, is asked before every tool call, and every
	// StopPoll while one runs, whether the run must stop for a reason
	// decided outside the supervisor: the budget ledger's stop of the run's
	// plan, latched by the LLM gateway in another process. A stop it
	// reports goes through the same fail-closed sequence as a guardrail's.
	StopSource StopSource
	// StopPoll is how often StopSource is asked during a tool call
	// (default 1s).
	StopPoll time.Duration
}

// StopSource reports stops decided outside the supervisor.
type StopSource interface {
	// StopRequested returns the reason and detail of a stop, or an empty
	// reason when the run may go on. An error refuses the next tool call
	// (fail closed); during a tool call it is retried at the next poll.
	StopRequested(ctx context.Context) (policies.StopReason, string, error)
}

// Supervisor enforces a run's guardrails around a Driver: it counts every
// wrapper invocation against max_tool_calls, counts files changed at each
// checkpoint against max_files_changed, and ends the run at max_runtime.
// On any limit it fails closed: no new tool call starts, the sandbox is
// killed, the volume is quarantined (snapshot) and rolled back, the stop is
// recorded, and the run stays stopped — across restarts — until
// Reauthorize.
type Supervisor struct {
	d    Driver
	g    Guardrails
	rec  StopRecorder
	opts SupervisorOptions
	name string

	mu        sync.Mutex
	started   time.Time
	timer     *time.Timer
	toolCalls int
	baseline  SnapshotID
	baseInv   map[string]string
	stopped   *StopEvent
	stopping  bool
	stopDone  chan struct{}
	last      *Result
}

// NewSupervisor returns a supervisor; a stop persisted earlier is loaded
// and keeps the run stopped.
func NewSupervisor(d Driver, name string, g Guardrails, rec StopRecorder, o SupervisorOptions) (*Supervisor, error) {
	if rec == nil {
		return nil, errors.New("supervisor: a StopRecorder is required: a stop must be recorded before anything else")
	}
	if o.StopFile == "" {
		return nil, errors.New("supervisor: StopFile is required so that a stop survives a restart")
	}
	if g.MaxRuntime <= 0 {
		return nil, errors.New("supervisor: max_runtime must be positive")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StopPoll <= 0 {
		o.StopPoll = time.Second
	}
	s := &Supervisor{d: d, g: g, rec: rec, opts: o, name: name}
	b, err := os.ReadFile(o.StopFile)
	switch {
	case err == nil:
		var ev StopEvent
		if err := json.Unmarshal(b, &ev); err != nil {
			// An unreadable stop file still means stopped.
			ev = StopEvent{Reason: policies.StopSecurityViolation, Detail: "unreadable stop file: " + err.Error()}
		}
		s.stopped = &ev
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("supervisor: reading the stop file: %w", err)
	}
	if o.StateFile != "" {
		b, err := os.ReadFile(o.StateFile)
		switch {
		case err == nil:
			var st supervisorState
			if err := json.Unmarshal(b, &st); err != nil {
				return nil, fmt.Errorf("supervisor: state file %s is corrupt (%v); a human must re-authorize the run", o.StateFile, err)
			}
			s.started, s.toolCalls, s.baseline, s.baseInv = st.Started, st.ToolCalls, st.Baseline, st.BaseInventory
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("supervisor: reading the state file: %w", err)
		}
	}
	return s, nil
}

// supervisorState is what StateFile holds.
type supervisorState struct {
	Started       time.Time         `json:"started"`
	ToolCalls     int               `json:"tool_calls"`
	Baseline      SnapshotID        `json:"baseline"`
	BaseInventory map[string]string `json:"base_inventory,omitempty"`
}

// persist writes the state file; the caller holds s.mu.
func (s *Supervisor) persist() error {
	if s.opts.StateFile == "" {
		return nil
	}
	b, _ := json.Marshal(supervisorState{Started: s.started, ToolCalls: s.toolCalls, Baseline: s.baseline, BaseInventory: s.baseInv})
	return writeFileAtomic(s.opts.StateFile, b)
}

// Stopped returns the stop event, or nil when the run may proceed.
func (s *Supervisor) Stopped() *StopEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped == nil {
		return nil
	}
	ev := *s.stopped
	return &ev
}

// ToolCalls returns the number of wrapper invocations so far.
func (s *Supervisor) ToolCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.toolCalls
}

func (s *Supervisor) refusal() error {
	return fmt.Errorf("%w (%s: %s); a human must re-authorize it (agentgate sandbox resume) before any further tool call",
		ErrStopped, s.stopped.Reason, s.stopped.Detail)
}

// Start begins the run: a baseline snapshot and file inventory, and the
// max_runtime watchdog.
func (s *Supervisor) Start(ctx context.Context) error {
	if err := s.checkSource(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped != nil {
		return s.refusal()
	}
	if !s.started.IsZero() {
		// Resumed from the state file: same run, same baseline and clock.
		remaining := s.g.MaxRuntime - s.opts.Now().Sub(s.started)
		if remaining <= 0 {
			remaining = time.Millisecond
		}
		s.timer = time.AfterFunc(remaining, func() {
			_ = s.stop(context.WithoutCancel(ctx), StopForRuntime, fmt.Sprintf("max_runtime %v reached", s.g.MaxRuntime))
		})
		return nil
	}
	s.started = s.opts.Now()
	s.baseline = SnapshotID(fmt.Sprintf("baseline-%d", s.started.UnixNano()))
	if _, err := s.d.Snapshot(ctx, string(s.baseline)); err != nil {
		return fmt.Errorf("supervisor: baseline snapshot: %w", err)
	}
	if inv, ok := s.d.(Inventorier); ok {
		m, err := inv.Inventory(ctx)
		if err != nil {
			return fmt.Errorf("supervisor: baseline inventory: %w", err)
		}
		s.baseInv = m
	}
	if err := s.persist(); err != nil {
		return fmt.Errorf("supervisor: %w", err)
	}
	s.timer = time.AfterFunc(s.g.MaxRuntime, func() {
		_ = s.stop(context.WithoutCancel(ctx), StopForRuntime, fmt.Sprintf("max_runtime %v reached", s.g.MaxRuntime))
	})
	return nil
}

// Close stops the watchdog of this process (the run itself goes on: its
// state is in StateFile).
func (s *Supervisor) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
	}
}

// checkSource asks the StopSource whether the run must stop, and stops it
// when so.
func (s *Supervisor) checkSource(ctx context.Context) error {
	src := s.opts.StopSource
	if src == nil || s.Stopped() != nil {
		return nil
	}
	reason, detail, err := src.StopRequested(ctx)
	if err != nil {
		return fmt.Errorf("supervisor: cannot learn whether the run was stopped outside the sandbox (%w); refusing the tool call (fail closed)", err)
	}
	if reason == "" {
		return nil
	}
	serr := s.stop(ctx, reason, detail)
	return errors.Join(s.refusalLocked(), serr)
}

// watchSource polls the StopSource while a tool call runs and stops the run
// (killing the call) when it reports a stop. It returns when ctx ends.
func (s *Supervisor) watchSource(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	src := s.opts.StopSource
	t := time.NewTicker(s.opts.StopPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		reason, detail, err := src.StopRequested(ctx)
		if err != nil || reason == "" {
			continue
		}
		_ = s.stop(context.WithoutCancel(ctx), reason, detail)
		return
	}
}

// Run runs one tool call under the guardrails.
func (s *Supervisor) Run(ctx context.Context, spec RunSpec) (Result, error) {
	if err := s.checkSource(ctx); err != nil {
		return Result{}, err
	}
	s.mu.Lock()
	if s.stopping {
		done := s.stopDone
		s.mu.Unlock()
		<-done
		s.mu.Lock()
	}
	if s.stopped != nil {
		defer s.mu.Unlock()
		return Result{}, s.refusal()
	}
	if s.started.IsZero() {
		s.mu.Unlock()
		return Result{}, errors.New("supervisor: Start the run first")
	}
	if s.g.MaxToolCalls > 0 && s.toolCalls >= s.g.MaxToolCalls {
		s.mu.Unlock()
		err := s.stop(ctx, StopForToolCalls, fmt.Sprintf("tool call %d refused: the plan allows %d (limits.max_tool_calls)", s.toolCalls+1, s.g.MaxToolCalls))
		return Result{}, errors.Join(s.refusalLocked(), err)
	}
	s.toolCalls++
	if err := s.persist(); err != nil {
		s.mu.Unlock()
		return Result{}, fmt.Errorf("supervisor: counting the tool call: %w", err)
	}
	remaining := s.g.MaxRuntime - s.opts.Now().Sub(s.started)
	s.mu.Unlock()
	if remaining <= 0 {
		err := s.stop(ctx, StopForRuntime, fmt.Sprintf("max_runtime %v reached", s.g.MaxRuntime))
		return Result{}, errors.Join(s.refusalLocked(), err)
	}
	if spec.Timeout == 0 || spec.Timeout > remaining {
		spec.Timeout = remaining
	}
	var watchDone chan struct{}
	stopWatch := func() {}
	if s.opts.StopSource != nil {
		wctx, cancel := context.WithCancel(ctx)
		watchDone = make(chan struct{})
		go s.watchSource(wctx, watchDone)
		stopWatch = func() { cancel(); <-watchDone }
	}
	res, err := s.d.Run(ctx, spec)
	stopWatch() // a stop the watcher began is complete after this
	s.mu.Lock()
	s.last = &res
	stopped := s.stopped != nil
	s.mu.Unlock()
	if stopped {
		return res, errors.Join(s.refusalLocked(), err)
	}
	if err != nil {
		return res, err
	}
	if res.Hit(LimitWall) && s.opts.Now().Sub(s.started) >= s.g.MaxRuntime {
		serr := s.stop(ctx, StopForRuntime, fmt.Sprintf("max_runtime %v reached during %s", s.g.MaxRuntime, spec.Wrapper))
		return res, errors.Join(s.refusalLocked(), serr)
	}
	if cerr := s.Checkpoint(ctx); cerr != nil {
		return res, cerr
	}
	return res, nil
}

func (s *Supervisor) refusalLocked() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped == nil {
		return fmt.Errorf("%w", ErrStopped)
	}
	return s.refusal()
}

// Checkpoint counts files changed since the baseline and stops the run
// when the plan's max_files_changed is exceeded.
func (s *Supervisor) Checkpoint(ctx context.Context) error {
	inv, ok := s.d.(Inventorier)
	if !ok || s.g.MaxFilesChanged == 0 {
		return nil
	}
	now, err := inv.Inventory(ctx)
	if err != nil {
		// Cannot count: fail closed.
		serr := s.stop(ctx, StopForFiles, "cannot count changed files: "+err.Error())
		return errors.Join(s.refusalLocked(), serr)
	}
	s.mu.Lock()
	n := changedFiles(s.baseInv, now)
	s.mu.Unlock()
	if n > s.g.MaxFilesChanged {
		serr := s.stop(ctx, StopForFiles, fmt.Sprintf("%d files changed; the plan allows %d (limits.max_files_changed)", n, s.g.MaxFilesChanged))
		return errors.Join(s.refusalLocked(), serr)
	}
	return nil
}

// changedFiles counts paths added, removed or changed between inventories.
func changedFiles(base, now map[string]string) int {
	n := 0
	for p, sig := range now {
		if base[p] != sig {
			n++
		}
	}
	for p := range base {
		if _, ok := now[p]; !ok {
			n++
		}
	}
	return n
}

// Stop stops the run by hand (an operator's kill switch) with a reason.
func (s *Supervisor) Stop(ctx context.Context, reason policies.StopReason, detail string) error {
	return s.stop(ctx, reason, detail)
}

// stop is the fail-closed sequence: refuse new calls, kill, quarantine
// snapshot, record, persist the stopped state, roll back. The run counts
// as stopped from the first step, whatever fails later.
func (s *Supervisor) stop(ctx context.Context, reason policies.StopReason, detail string) error {
	s.mu.Lock()
	if s.stopped != nil {
		s.mu.Unlock()
		return nil
	}
	if s.stopping {
		// Another stop (the runtime watchdog, say) is in flight: wait for
		// it, so that callers see the recorded stop, never a half-done one.
		done := s.stopDone
		s.mu.Unlock()
		<-done
		return nil
	}
	s.stopping = true
	s.stopDone = make(chan struct{})
	if s.timer != nil {
		s.timer.Stop()
	}
	ev := StopEvent{Reason: reason, Detail: detail, PlanID: s.g.PlanID, Sandbox: s.name, At: s.opts.Now(),
		ToolCalls: s.toolCalls, Baseline: s.baseline, LastResult: s.last}
	if !s.started.IsZero() {
		ev.Runtime = ev.At.Sub(s.started)
	}
	base := s.baseInv
	s.mu.Unlock()

	var errs []error
	if err := s.d.Kill(ctx); err != nil {
		errs = append(errs, fmt.Errorf("kill: %w", err))
	}
	if inv, ok := s.d.(Inventorier); ok && base != nil {
		if now, err := inv.Inventory(ctx); err == nil {
			ev.FilesChanged = changedFiles(base, now)
		}
	}
	q := SnapshotID(fmt.Sprintf("quarantine-%d", ev.At.UnixNano()))
	if _, err := s.d.Snapshot(ctx, string(q)); err != nil {
		errs = append(errs, fmt.Errorf("quarantine snapshot: %w", err))
	} else {
		ev.Quarantine = q
	}
	if err := s.rec.RecordStop(ctx, ev); err != nil {
		errs = append(errs, fmt.Errorf("recording the stop: %w", err))
	}
	b, _ := json.MarshalIndent(ev, "", "  ")
	if err := writeFileAtomic(s.opts.StopFile, b); err != nil {
		errs = append(errs, fmt.Errorf("persisting the stop: %w", err))
	}
	if !s.opts.KeepVolume && s.baseline != "" {
		if err := s.d.Rollback(ctx, s.baseline); err != nil {
			errs = append(errs, fmt.Errorf("rollback to the baseline: %w", err))
		}
	}
	s.mu.Lock()
	s.stopped = &ev
	s.stopping = false
	close(s.stopDone)
	s.mu.Unlock()
	return errors.Join(errs...)
}

// Reauthorize lifts a stop. Only a named human may; the counters and the
// runtime start over, and the recorder hears about it when it can.
func (s *Supervisor) Reauthorize(ctx context.Context, a Authorization) error {
	a.By = strings.TrimSpace(a.By)
	if a.By == "" {
		return errors.New("supervisor: re-authorization needs the name of the human who gives it")
	}
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped == nil {
		return errors.New("supervisor: the run is not stopped")
	}
	if a.At.IsZero() {
		a.At = s.opts.Now()
	}
	if rr, ok := s.rec.(ResumeRecorder); ok {
		if err := rr.RecordResume(ctx, *stopped, a); err != nil {
			return fmt.Errorf("supervisor: recording the re-authorization: %w", err)
		}
	}
	for _, f := range []string{s.opts.StateFile, s.opts.StopFile} {
		if f == "" {
			continue
		}
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("supervisor: %w", err)
		}
	}
	s.mu.Lock()
	s.stopped, s.toolCalls, s.started, s.last, s.baseInv, s.baseline = nil, 0, time.Time{}, nil, nil, ""
	s.mu.Unlock()
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// FileStopRecorder appends stop and resume events as JSON lines to a file:
// a plain recorder for runners without the evidence store.
type FileStopRecorder struct {
	Path string
	mu   sync.Mutex
}

func (r *FileStopRecorder) append(v any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(r.Path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(r.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(v)
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// RecordStop implements StopRecorder.
func (r *FileStopRecorder) RecordStop(_ context.Context, ev StopEvent) error {
	return r.append(map[string]any{"event": "sandbox.stop", "stop": ev})
}

// RecordResume implements ResumeRecorder.
func (r *FileStopRecorder) RecordResume(_ context.Context, ev StopEvent, a Authorization) error {
	return r.append(map[string]any{"event": "sandbox.resume", "stop": ev, "authorization": a})
}
