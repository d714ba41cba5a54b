package checks

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/agentgate/agentgate/policies"
)

// Status of one check.
type Status string

const (
	StatusPass    Status = "pass"
	StatusFail    Status = "fail"
	StatusError   Status = "error" // the check could not run; counts as a failure
	StatusSkipped Status = "skipped"
)

// Severity of a finding.
type Severity string

const (
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// Finding is one problem a check found. Message never contains a secret.
type Finding struct {
	Rule        string   `json:"rule"`
	Severity    Severity `json:"severity"`
	Path        string   `json:"path,omitempty"`
	Line        int      `json:"line,omitempty"`
	Message     string   `json:"message"`
	Fingerprint string   `json:"fingerprint"`
	// Stop, when set, is the stop reason code this finding triggers.
	Stop policies.StopReason `json:"stop_reason,omitempty"`
	// NeedsApproval marks findings that a human may accept (e.g. a policy
	// artifact change), rather than hard failures.
	NeedsApproval bool `json:"needs_approval,omitempty"`
}

// Result is the outcome of one check.
type Result struct {
	Name     string    `json:"name"`
	Status   Status    `json:"status"`
	Duration Duration  `json:"duration_ms"`
	Reason   string    `json:"reason,omitempty"` // why it failed, errored or was skipped
	Findings []Finding `json:"findings"`
	// Details is check-specific evidence (coverage numbers, tool versions).
	Details map[string]any `json:"details,omitempty"`
}

// Duration marshals as integer milliseconds.
type Duration time.Duration

// MarshalJSON writes the duration in whole milliseconds.
func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendInt(nil, time.Duration(d).Milliseconds(), 10), nil
}

// UnmarshalJSON reads whole milliseconds (so a report.json round-trips).
func (d *Duration) UnmarshalJSON(b []byte) error {
	ms, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("duration: want integer milliseconds, got %s", b)
	}
	*d = Duration(time.Duration(ms) * time.Millisecond)
	return nil
}

// Subject is what every check looks at. Policy-side fields come from the
// base commit, never from head.
type Subject struct {
	Repo      string // absolute path of a local git repository (work tree or bare)
	Base      string // full SHA of the base commit
	Head      string // full SHA of the head commit
	MergeBase string // full SHA of merge-base(base, head)

	Plan     *policies.WorkPlan // the thread's WORK_PLAN.json on head (may be nil)
	PlanPath string             // repo-relative path of the plan
	Tree     *policies.Tree     // contracts loaded from the base commit
}

// Check is one gate check.
type Check interface {
	Name() string
	Run(ctx context.Context, s *Subject) Result
}
