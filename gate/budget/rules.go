package budget

import (
	"fmt"
	"math"

	"github.com/agentgate/agentgate/policies"
)

// NanoPerUSD is the number of nano-USD in one US dollar.
const NanoPerUSD = 1_000_000_000

// USDToNano converts a dollar amount (as written in a plan) to nano-USD,
// rounding to the nearest nano-dollar.
func USDToNano(usd float64) int64 { return int64(math.Round(usd * NanoPerUSD)) }

// NanoToUSD converts nano-USD to dollars for display.
func NanoToUSD(n int64) float64 { return float64(n) / NanoPerUSD }

// FormatUSD renders nano-USD as dollars with six decimals ("$0.012345").
func FormatUSD(n int64) string {
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	return fmt.Sprintf("%s$%d.%06d", sign, n/NanoPerUSD, (n%NanoPerUSD)/1000)
}

// Ratios are the fractions of a limit at which a scope warns, requires a
// human's approval to continue, and stops. Escalate == 0 means the scope has
// no approval band (monthly caps): it only warns and stops.
type Ratios struct {
	Warn     float64 `json:"warn"`
	Escalate float64 `json:"escalate,omitempty"`
	Stop     float64 `json:"stop"`
}

// DefaultRatios are the plan defaults (70 / 90 / 100 %).
var DefaultRatios = Ratios{Warn: policies.DefaultWarnRatio, Escalate: policies.DefaultEscalateRatio, Stop: policies.DefaultStopRatio}

// CapRatios are the ratios of a monthly cap: warn at 70 %, stop at 100 %.
var CapRatios = Ratios{Warn: policies.DefaultWarnRatio, Stop: 1}

// RatiosFor returns a plan budget's ratios with the defaults filled in.
func RatiosFor(b policies.PlanBudget) Ratios {
	r := DefaultRatios
	if b.WarnRatio > 0 {
		r.Warn = b.WarnRatio
	}
	if b.EscalateRatio > 0 {
		r.Escalate = b.EscalateRatio
	}
	if b.StopRatio > 0 {
		r.Stop = b.StopRatio
	}
	return r
}

// Validate checks 0 < warn <= escalate <= stop <= 1 (escalate may be 0).
func (r Ratios) Validate() error {
	bad := func(v float64) bool { return math.IsNaN(v) || v <= 0 || v > 1 }
	switch {
	case bad(r.Warn) || bad(r.Stop):
		return fmt.Errorf("budget ratios must lie in (0, 1]: warn %v, stop %v", r.Warn, r.Stop)
	case r.Escalate != 0 && (bad(r.Escalate) || r.Escalate < r.Warn || r.Escalate > r.Stop):
		return fmt.Errorf("budget escalate ratio %v must lie between warn %v and stop %v", r.Escalate, r.Warn, r.Stop)
	case r.Warn > r.Stop:
		return fmt.Errorf("budget warn ratio %v is above the stop ratio %v", r.Warn, r.Stop)
	}
	return nil
}

// threshold is ratio × limit in nano-USD, rounded down (fail closed).
func threshold(limit int64, ratio float64) int64 {
	return int64(math.Floor(float64(limit) * ratio))
}

// Decision is the outcome of judging one request against one scope.
type Decision string

// Decisions, from least to most severe.
const (
	Allow            Decision = "allow"
	Warn             Decision = "warn"
	ApprovalRequired Decision = "approval_required"
	HardStop         Decision = "hard_stop"
	// Busy refuses a call for now without latching anything: it would cross
	// a threshold only because of budget leases (of calls still in flight,
	// or held by other gateway processes) that will shrink by themselves.
	// The caller retries shortly.
	Busy Decision = "budget_busy"
)

func (d Decision) severity() int {
	switch d {
	case Allow:
		return 0
	case Warn:
		return 1
	case ApprovalRequired, Busy:
		return 2
	default:
		return 3 // unknown decisions count as a stop
	}
}

// Refused reports whether the request must not be forwarded.
func (d Decision) Refused() bool { return d.severity() >= 2 }

// Scope kinds.
const (
	ScopePlan    = "plan"
	ScopeOrg     = "org"
	ScopeRepo    = "repo"
	ScopeRequest = "request"
)

// State is what a scope has committed so far.
type State struct {
	Limit    int64  // nano-USD; <= 0 means no money was granted
	Spent    int64  // settled cost
	Reserved int64  // worst cases of calls in flight
	Ratios   Ratios // thresholds
	Approved bool   // a human approved continuing past the escalation ratio
	Stopped  bool   // the scope is latched stopped
}

// Verdict is one scope's judgement of one request, explained.
type Verdict struct {
	Decision  Decision `json:"decision"`
	Scope     string   `json:"scope"` // ScopePlan, ScopeOrg, ...
	Key       string   `json:"key"`   // plan id, org name, repo, ...
	Limit     int64    `json:"limit_nano_usd"`
	Projected int64    `json:"projected_nano_usd"`
	Ratio     float64  `json:"ratio"` // projected / limit
	Reason    string   `json:"reason"`
}

// Evaluate judges a request whose worst-case cost is amount against a scope.
// It is a pure function: the caller holds whatever lock makes State current.
func Evaluate(scope, key string, s State, amount int64) Verdict {
	v := Verdict{Scope: scope, Key: key, Limit: s.Limit, Projected: s.Spent + s.Reserved + amount}
	if s.Limit > 0 {
		v.Ratio = float64(v.Projected) / float64(s.Limit)
	}
	name := scope + " " + key
	switch {
	case s.Stopped:
		v.Decision = HardStop
		v.Reason = fmt.Sprintf("%s is stopped (%s); a human must resume it before any further call", name, policies.StopBudgetExceeded)
	case s.Limit <= 0:
		v.Decision = HardStop
		v.Reason = fmt.Sprintf("%s has no budget; give it a budget.limit_usd", name)
	case amount < 0 || v.Projected < 0:
		v.Decision = HardStop
		v.Reason = fmt.Sprintf("%s: invalid amount %d", name, amount)
	case v.Projected > threshold(s.Limit, s.Ratios.Stop):
		v.Decision = HardStop
		v.Reason = fmt.Sprintf("%s: this call's worst case %s would bring spend to %.1f%% of %s (stop at %.0f%%)",
			name, FormatUSD(amount), 100*v.Ratio, FormatUSD(s.Limit), 100*s.Ratios.Stop)
	case s.Ratios.Escalate > 0 && v.Projected >= threshold(s.Limit, s.Ratios.Escalate) && !s.Approved:
		v.Decision = ApprovalRequired
		v.Reason = fmt.Sprintf("%s: projected spend %.1f%% of %s reaches the escalation ratio %.0f%%; a human must approve continuing (agentgate budget approve %s)",
			name, 100*v.Ratio, FormatUSD(s.Limit), 100*s.Ratios.Escalate, key)
	case v.Projected >= threshold(s.Limit, s.Ratios.Warn):
		v.Decision = Warn
		v.Reason = fmt.Sprintf("%s: projected spend %.1f%% of %s (warning at %.0f%%)", name, 100*v.Ratio, FormatUSD(s.Limit), 100*s.Ratios.Warn)
	default:
		v.Decision = Allow
		v.Reason = fmt.Sprintf("%s: projected spend %.1f%% of %s", name, 100*v.Ratio, FormatUSD(s.Limit))
	}
	return v
}

// Ceiling judges a request's worst case against the per-request ceiling
// (<= 0: no ceiling). Exceeding it refuses the request without stopping the
// plan: a smaller request may still go through.
func Ceiling(ceiling, amount int64) Verdict {
	v := Verdict{Decision: Allow, Scope: ScopeRequest, Limit: ceiling, Projected: amount}
	if ceiling <= 0 {
		v.Reason = "no per-request ceiling"
		return v
	}
	v.Ratio = float64(amount) / float64(ceiling)
	if amount > ceiling {
		v.Decision = HardStop
		v.Reason = fmt.Sprintf("this call's worst case %s exceeds the per-request ceiling %s; lower max_tokens or the prompt size", FormatUSD(amount), FormatUSD(ceiling))
		return v
	}
	v.Reason = fmt.Sprintf("worst case %s within the per-request ceiling %s", FormatUSD(amount), FormatUSD(ceiling))
	return v
}

// Worst returns the most severe verdict (the first one among equals). With
// no verdicts it returns a hard stop: nothing judged means nothing allowed.
func Worst(vs ...Verdict) Verdict {
	if len(vs) == 0 {
		return Verdict{Decision: HardStop, Reason: "no budget scope judged this call"}
	}
	w := vs[0]
	for _, v := range vs[1:] {
		if v.Decision.severity() > w.Decision.severity() {
			w = v
		}
	}
	return w
}
