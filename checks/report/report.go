package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/policies"
)

// Version is the report format version written in every report.
const Version = "agentgate.dev/report/v1"

// Decision is the gate's verdict on a change.
type Decision string

const (
	Pass Decision = "pass"
	Fail Decision = "fail"
	Stop Decision = "stop"
)

// Exit codes of `agentgate check` (shared with cmd/agentgate).
const (
	ExitPass    = 0
	ExitFail    = 1
	ExitInvalid = 2
	ExitStop    = 3
)

// Tool names the program that wrote the report.
type Tool struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Report is report.json.
type Report struct {
	Version    string              `json:"report_version"`
	Decision   Decision            `json:"decision"`
	StopReason policies.StopReason `json:"stop_reason"`
	// StopReasons lists every stop code that fired, most severe first;
	// StopReason is its first element.
	StopReasons []policies.StopReason `json:"stop_reasons,omitempty"`
	// Reasons says in words why the decision is not pass.
	Reasons []string `json:"reasons,omitempty"`
	// ApprovalRequired is set when the only failing findings are ones a
	// human may accept (policy artifact changes, a plan changed mid-run).
	ApprovalRequired bool `json:"approval_required,omitempty"`

	Repo      string `json:"repo"`
	BaseRef   string `json:"base_ref,omitempty"`
	HeadRef   string `json:"head_ref,omitempty"`
	Base      string `json:"base"`
	Head      string `json:"head"`
	MergeBase string `json:"merge_base"`
	PlanID    string `json:"plan_id"`
	PlanPath  string `json:"plan_path,omitempty"`
	Thread    string `json:"thread,omitempty"`

	StartedAt time.Time       `json:"started_at"`
	Duration  checks.Duration `json:"duration_ms"`
	Tool      Tool            `json:"tool"`
	Checks    []checks.Result `json:"checks"`
}

// stopPriority orders stop codes from most to least severe, so that the
// headline stop_reason is deterministic when several fire.
var stopPriority = []policies.StopReason{
	policies.StopSecretExposure,
	policies.StopSecurityViolation,
	policies.StopUnauthorizedAccess,
	policies.StopCoverageRegression,
	policies.StopBudgetExceeded,
	policies.StopRuntimeExceeded,
	policies.StopNoProgress,
}

func stopRank(s policies.StopReason) int {
	if i := slices.Index(stopPriority, s); i >= 0 {
		return i
	}
	return len(stopPriority)
}

// Decide sets Decision, StopReason(s), Reasons and ApprovalRequired from
// the check results. Rules, in order: any finding with a stop code stops;
// any check that failed or errored (or an empty set of checks) fails;
// otherwise the change passes. A check with status pass that nonetheless
// carries a stop finding still stops: the stop wins over the status.
func (r *Report) Decide() {
	r.StopReasons, r.Reasons, r.StopReason = nil, nil, ""
	r.ApprovalRequired = false
	seen := map[policies.StopReason]bool{}
	approvableOnly := true
	failing := 0
	var stops []string
	for _, c := range r.Checks {
		for _, f := range c.Findings {
			if f.Stop != "" && !seen[f.Stop] {
				seen[f.Stop] = true
				r.StopReasons = append(r.StopReasons, f.Stop)
				where := f.Message
				if f.Path != "" {
					where = f.Path + ": " + where
				}
				stops = append(stops, fmt.Sprintf("%s raised by %s: %s", f.Stop, c.Name, where))
			}
		}
		switch c.Status {
		case checks.StatusFail:
			failing++
			r.Reasons = append(r.Reasons, fmt.Sprintf("%s failed: %s", c.Name, summary(c)))
			for _, f := range c.Findings {
				if !f.NeedsApproval {
					approvableOnly = false
				}
			}
			if len(c.Findings) == 0 {
				approvableOnly = false
			}
		case checks.StatusError:
			failing++
			approvableOnly = false
			r.Reasons = append(r.Reasons, fmt.Sprintf("%s could not run (fails closed): %s", c.Name, orUnknown(c.Reason)))
		case checks.StatusPass, checks.StatusSkipped:
		default:
			failing++
			approvableOnly = false
			r.Reasons = append(r.Reasons, fmt.Sprintf("%s reported an unknown status %q (fails closed)", c.Name, c.Status))
		}
	}
	slices.SortStableFunc(r.StopReasons, func(a, b policies.StopReason) int { return stopRank(a) - stopRank(b) })
	switch {
	case len(r.StopReasons) > 0:
		r.Decision = Stop
		r.StopReason = r.StopReasons[0]
		r.Reasons = append(stops, r.Reasons...)
	case len(r.Checks) == 0:
		r.Decision = Fail
		r.Reasons = append(r.Reasons, "no check ran (fails closed)")
	case failing > 0:
		r.Decision = Fail
		r.ApprovalRequired = approvableOnly
	default:
		r.Decision = Pass
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}

// ExitCode maps the decision to the command's exit code.
func (r *Report) ExitCode() int {
	switch r.Decision {
	case Pass:
		return ExitPass
	case Stop:
		return ExitStop
	}
	return ExitFail
}

// Findings returns every finding of every check with its check's name.
func (r *Report) Findings() []CheckFinding {
	var out []CheckFinding
	for _, c := range r.Checks {
		for _, f := range c.Findings {
			out = append(out, CheckFinding{Check: c.Name, Finding: f})
		}
	}
	return out
}

// CheckFinding is a finding with the name of the check that made it.
type CheckFinding struct {
	Check string
	checks.Finding
}

// MaxReportSize caps Load.
const MaxReportSize = 64 << 20

// Load reads a report.json strictly: size-capped, valid against the
// embedded schema, no unknown fields, and a decision consistent with its
// checks.
func Load(r io.Reader) (*Report, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxReportSize+1))
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	if len(data) > MaxReportSize {
		return nil, fmt.Errorf("read report: larger than %d bytes", MaxReportSize)
	}
	if err := Validate(data); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var rep Report
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("decode report: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode report: trailing data after the JSON object")
	}
	if rep.Version != Version {
		return nil, fmt.Errorf("report version %q is not %q", rep.Version, Version)
	}
	check := rep
	check.Checks = slices.Clone(rep.Checks)
	check.Decide()
	if check.Decision != rep.Decision || check.StopReason != rep.StopReason {
		return nil, fmt.Errorf("report is inconsistent: decision %q/%q but its checks give %q/%q",
			rep.Decision, rep.StopReason, check.Decision, check.StopReason)
	}
	return &rep, nil
}

// Marshal writes the report as indented JSON with a trailing newline.
func (r *Report) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// RuleID is the qualified rule id of a finding: "check/rule".
func RuleID(check, rule string) string {
	if rule == "" {
		rule = "finding"
	}
	if strings.HasPrefix(rule, check+"/") {
		return rule
	}
	return check + "/" + rule
}

// summary says briefly why a check failed.
// mostSevere picks the finding a one-line summary should name: a stop
// first, then the highest severity, then one that cannot simply be
// approved; the earliest among equals.
func mostSevere(fs []checks.Finding) checks.Finding {
	rank := func(f checks.Finding) int {
		r := map[checks.Severity]int{checks.SeverityLow: 1, checks.SeverityMedium: 2, checks.SeverityHigh: 3, checks.SeverityCritical: 4}[f.Severity] * 2
		if f.Stop != "" {
			r += 100
		}
		if !f.NeedsApproval {
			r++
		}
		return r
	}
	best := fs[0]
	for _, f := range fs[1:] {
		if rank(f) > rank(best) {
			best = f
		}
	}
	return best
}

func summary(c checks.Result) string {
	if len(c.Findings) == 0 {
		return orUnknown(c.Reason)
	}
	first := mostSevere(c.Findings)
	msg := first.Message
	if first.Path != "" {
		msg = first.Path + ": " + msg
	}
	if n := len(c.Findings); n > 1 {
		return fmt.Sprintf("%s (and %d more findings)", msg, n-1)
	}
	return msg
}
