package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/report"
)

// DefaultTimeout bounds one check when Options sets none.
const DefaultTimeout = 10 * time.Minute

// grace is how long the engine waits for a check to return after its
// context ended before it gives up on it.
var grace = 3 * time.Second

// Options configures Evaluate.
type Options struct {
	// Checks to run; each must have a distinct, non-empty Name.
	Checks []checks.Check
	// Timeout bounds each check (default DefaultTimeout); Timeouts
	// overrides it per check name.
	Timeout  time.Duration
	Timeouts map[string]time.Duration
	// LogDir, when set, receives one <check>.log per check: what the check
	// wrote to LogWriter(ctx), then its status, reason, findings and
	// details.
	LogDir string
	// Tool is written into the report (name and version).
	Tool report.Tool
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

type logKey struct{}

// LogWriter returns the log of the running check (io.Discard outside the
// engine). Checks write tool output here; it lands in <out>/<check>.log.
// Never write secrets to it.
func LogWriter(ctx context.Context) io.Writer {
	if w, ok := ctx.Value(logKey{}).(io.Writer); ok {
		return w
	}
	return io.Discard
}

// syncBuffer is a bounded, concurrency-safe log buffer.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	cut bool
}

const maxLog = 8 << 20

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := maxLog - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
			b.cut = true
		} else {
			b.buf.Write(p)
		}
	} else {
		b.cut = true
	}
	return len(p), nil
}

func (b *syncBuffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := bytes.Clone(b.buf.Bytes())
	if b.cut {
		out = append(out, "\n[log truncated]\n"...)
	}
	return out
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)

// Evaluate runs every check of opts against the subject concurrently and
// returns the report with its decision. meta supplies the report's
// descriptive fields (repo, refs, plan); Evaluate fills in the rest. It
// returns an error only for a misconfiguration (no checks, duplicate or
// malformed names); everything a check does wrong becomes a failed check.
func Evaluate(ctx context.Context, s *checks.Subject, meta report.Report, opts Options) (*report.Report, error) {
	if len(opts.Checks) == 0 {
		return nil, errors.New("no checks selected: select at least one of scope, secrets, vuln, tests, static")
	}
	seen := map[string]bool{}
	for _, c := range opts.Checks {
		if c == nil {
			return nil, errors.New("a nil check was configured")
		}
		n := c.Name()
		if !nameRE.MatchString(n) {
			return nil, fmt.Errorf("check name %q is not a lowercase identifier", n)
		}
		if seen[n] {
			return nil, fmt.Errorf("check %q is configured twice", n)
		}
		seen[n] = true
	}
	if opts.LogDir != "" {
		if err := os.MkdirAll(opts.LogDir, 0o755); err != nil {
			return nil, fmt.Errorf("create the log directory: %w", err)
		}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	rep := meta
	rep.Version = report.Version
	rep.StartedAt = now().UTC().Truncate(time.Millisecond)
	if s != nil {
		rep.Base, rep.Head, rep.MergeBase = s.Base, s.Head, s.MergeBase
		if rep.PlanPath == "" {
			rep.PlanPath = s.PlanPath
		}
		if s.Plan != nil {
			rep.PlanID = s.Plan.PlanID
			if rep.Thread == "" {
				rep.Thread = s.Plan.Thread
			}
		}
	}
	if rep.Tool.Name == "" {
		rep.Tool = opts.Tool
	}
	if rep.Tool.Name == "" {
		rep.Tool.Name = "agentgate"
	}
	start := time.Now()
	results := make([]checks.Result, len(opts.Checks))
	var wg sync.WaitGroup
	for i, c := range opts.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			timeout := opts.Timeout
			if t, ok := opts.Timeouts[c.Name()]; ok && t > 0 {
				timeout = t
			}
			if timeout <= 0 {
				timeout = DefaultTimeout
			}
			log := &syncBuffer{}
			results[i] = runOne(ctx, c, s, timeout, log)
			if opts.LogDir != "" {
				writeLog(opts.LogDir, results[i], log.bytes())
			}
		}()
	}
	wg.Wait()
	rep.Checks = results
	rep.Duration = checks.Duration(time.Since(start))
	rep.Decide()
	return &rep, nil
}

// runOne runs one check under its timeout, containing panics and checks
// that do not return.
func runOne(parent context.Context, c checks.Check, s *checks.Subject, timeout time.Duration, log *syncBuffer) checks.Result {
	name := c.Name()
	ctx, cancel := context.WithTimeout(context.WithValue(parent, logKey{}, io.Writer(log)), timeout)
	defer cancel()
	start := time.Now()
	done := make(chan checks.Result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				fmt.Fprintf(log, "panic: %v\n%s\n", p, debug.Stack())
				done <- checks.Result{Name: name, Status: checks.StatusError,
					Reason: fmt.Sprintf("the check panicked: %v (see %s.log)", p, name)}
			}
		}()
		done <- c.Run(ctx, s)
	}()
	var res checks.Result
	select {
	case res = <-done:
	case <-ctx.Done():
		select {
		case res = <-done:
		case <-time.After(grace):
			res = checks.Result{Name: name, Status: checks.StatusError,
				Reason: "the check did not stop within " + grace.String() + " of its cancellation"}
		}
	}
	res.Duration = checks.Duration(time.Since(start))
	// A check that returns after its deadline cannot be trusted to have
	// finished its work, whatever it says.
	if err := ctx.Err(); err != nil && res.Status != checks.StatusError {
		why := "timed out after " + timeout.String()
		if parent.Err() != nil {
			why = "cancelled: " + parent.Err().Error()
		}
		res.Status = checks.StatusError
		res.Reason = why + " (raise --timeout if the change is legitimately large)"
	} else if errors.Is(ctx.Err(), context.DeadlineExceeded) && res.Reason == "" {
		res.Reason = "timed out after " + timeout.String()
	}
	return normalize(name, res)
}

// normalize makes a result well-formed and fail-closed.
func normalize(name string, r checks.Result) checks.Result {
	if r.Name != name {
		r.Name = name
	}
	switch r.Status {
	case checks.StatusPass, checks.StatusFail, checks.StatusError, checks.StatusSkipped:
	default:
		r.Reason = fmt.Sprintf("the check returned an unknown status %q", r.Status)
		r.Status = checks.StatusError
	}
	if r.Findings == nil {
		r.Findings = []checks.Finding{}
	}
	for i := range r.Findings {
		f := &r.Findings[i]
		switch f.Severity {
		case checks.SeverityLow, checks.SeverityMedium, checks.SeverityHigh, checks.SeverityCritical:
		default:
			f.Severity = checks.SeverityHigh
		}
		if f.Rule == "" {
			f.Rule = "finding"
		}
		if f.Fingerprint == "" {
			f.Fingerprint = Fingerprint(name, f.Rule, f.Path, strconv.Itoa(f.Line), f.Message)
		}
	}
	// A stop finding under a passing status still stops: report.Decide
	// looks at findings, not only at statuses.
	if r.Status == checks.StatusError && r.Reason == "" {
		r.Reason = "the check failed without giving a reason"
	}
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Rule < b.Rule
	})
	return r
}

// Fingerprint is a stable identifier for a finding built from its parts.
func Fingerprint(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

func writeLog(dir string, r checks.Result, log []byte) {
	var b bytes.Buffer
	b.Write(log)
	if len(log) > 0 && log[len(log)-1] != '\n' {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "== %s: %s in %s\n", r.Name, r.Status, time.Duration(r.Duration).Round(time.Millisecond))
	if r.Reason != "" {
		fmt.Fprintf(&b, "reason: %s\n", r.Reason)
	}
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "finding: %s %s %s:%d %s\n", f.Severity, f.Rule, f.Path, f.Line, f.Message)
	}
	if len(r.Details) > 0 {
		if d, err := json.MarshalIndent(r.Details, "", "  "); err == nil {
			fmt.Fprintf(&b, "details: %s\n", d)
		}
	}
	_ = os.WriteFile(filepath.Join(dir, r.Name+".log"), b.Bytes(), 0o644)
}
