package budget

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/agentgate/agentgate/policies"
)

// Plan is a plan's budget as the ledger enforces it.
type Plan struct {
	ID             string `json:"plan_id"`
	Limit          int64  `json:"limit_nano_usd"`
	Ratios         Ratios `json:"ratios"`
	Repo           string `json:"repo,omitempty"` // owner/name, for the monthly caps
	DegradeToLocal bool   `json:"degrade_to_local,omitempty"`
}

// PlanFromWorkPlan builds the ledger's view of a WORK_PLAN.json budget.
func PlanFromWorkPlan(wp policies.WorkPlan, repo string) Plan {
	return Plan{
		ID:             wp.PlanID,
		Limit:          USDToNano(wp.Budget.LimitUSD),
		Ratios:         RatiosFor(wp.Budget),
		Repo:           repo,
		DegradeToLocal: wp.Budget.DegradeToLocal,
	}
}

// Validate checks a plan before it is registered.
func (p Plan) Validate() error {
	if p.ID == "" {
		return errors.New("budget: plan id is empty")
	}
	if p.Limit <= 0 {
		return errors.New("budget: plan " + p.ID + " has no positive budget.limit_usd")
	}
	return p.Ratios.Validate()
}

// Cap is a monthly spending cap of an organisation or a repository. The
// ledger keys it by calendar month (UTC), so it resets on the 1st.
type Cap struct {
	Scope string `json:"scope"` // ScopeOrg or ScopeRepo
	Key   string `json:"key"`   // org login, or owner/name
	Limit int64  `json:"limit_nano_usd"`
}

// CapsFor returns the caps of r that apply to a repository (owner/name).
func (r ReserveRequest) CapsFor(repo string) []Cap {
	if repo == "" {
		return nil
	}
	var caps []Cap
	if v, ok := r.RepoCaps[repo]; ok {
		caps = append(caps, Cap{Scope: ScopeRepo, Key: repo, Limit: v})
	}
	if org, _, ok := strings.Cut(repo, "/"); ok {
		if v, ok := r.OrgCaps[org]; ok {
			caps = append(caps, Cap{Scope: ScopeOrg, Key: org, Limit: v})
		}
	}
	return caps
}

// ReserveRequest asks to reserve a call's worst-case cost.
type ReserveRequest struct {
	PlanID   string
	RunID    string
	Provider string
	Model    string
	Amount   int64 // worst case, nano-USD (0 for a cache hit or a free local model)
	// OrgCaps and RepoCaps are the configured monthly caps (nano-USD) by
	// organisation and by owner/name; the ledger applies those of the
	// plan's repository.
	OrgCaps  map[string]int64
	RepoCaps map[string]int64
	Ceiling  int64 // per-request ceiling, nano-USD (<= 0: none)
	CacheHit bool
	Degraded bool // routed to the local model by degrade_to_local
	// PlanRead, when set, is the plan's version and stop latch as the caller
	// read them for this call (the gateway reads them with the run key, in
	// the same query); a Leaser then does not read them again.
	PlanRead *PlanRead
}

// PlanRead is what admission in memory needs to know of a plan's current
// state: whether it changed since a lease was granted, and its stop latch.
type PlanRead struct {
	Version int64
	Stopped bool
}

// Reservation is the ledger's answer to a ReserveRequest.
type Reservation struct {
	ID       string    // empty when refused
	Verdict  Verdict   // the most severe verdict; decides the response
	Verdicts []Verdict // every scope's verdict
	Plan     PlanStatus
	Events   []Event // the transitions this call caused, recorded in the audit log
	// Leased is set when the call was admitted against a budget lease held
	// in memory (no write before forwarding; see Leaser).
	Leased bool

	caps   string // the cap scopes reserved on, comma-separated
	amount int64  // the amount reserved
}

// Outcome says how a call ended.
type Outcome string

// Outcomes of a settled call.
const (
	OutcomeOK            Outcome = "ok"             // usage reported by the provider
	OutcomeCut           Outcome = "cut"            // stream or body ended early; priced from what arrived
	OutcomeProviderError Outcome = "provider_error" // the provider answered an error
	OutcomeUnreached     Outcome = "unreached"      // the provider was never reached
	OutcomeCacheHit      Outcome = "cache_hit"      // answered from the gateway's response cache
)

// Usage is a call's token usage, normalised across providers. InputTokens
// counts every prompt token including cached reads and cache writes.
type Usage struct {
	InputTokens       int64 `json:"input_tokens"`
	CachedInputTokens int64 `json:"cached_input_tokens"`
	CacheWriteTokens  int64 `json:"cache_write_tokens"`
	OutputTokens      int64 `json:"output_tokens"`
	ReasoningTokens   int64 `json:"reasoning_tokens,omitempty"`
}

// Add adds u2 to u.
func (u *Usage) Add(u2 Usage) {
	u.InputTokens += u2.InputTokens
	u.CachedInputTokens += u2.CachedInputTokens
	u.CacheWriteTokens += u2.CacheWriteTokens
	u.OutputTokens += u2.OutputTokens
	u.ReasoningTokens += u2.ReasoningTokens
}

// Settlement replaces a reservation by the call's real cost.
type Settlement struct {
	ReservationID string
	Outcome       Outcome
	Usage         Usage
	Cost          int64 // nano-USD
	Detail        string
}

// PlanStatus is a plan's live budget state.
type PlanStatus struct {
	Plan
	Spent      int64     `json:"spent_nano_usd"`
	Reserved   int64     `json:"reserved_nano_usd"`
	Ratio      float64   `json:"ratio"` // (spent + reserved) / limit
	Warned     bool      `json:"warned"`
	Escalated  bool      `json:"escalated"`
	ApprovedBy string    `json:"approved_by,omitempty"`
	ApprovedAt time.Time `json:"approved_at,omitzero"`
	Stopped    bool      `json:"stopped"`
	StopReason string    `json:"stop_reason,omitempty"`
	// Version changes whenever the plan's admission state changes (limit,
	// ratios, approval, escalation, stop, resume).
	Version int64 `json:"version"`
	// Reserved is held by two kinds of holders: open budget leases of
	// gateway processes (Leased, in OpenLeases leases; calls admitted
	// against a lease are covered by it until they settle), and single calls
	// reserved one by one (the rest). ExpiredLeases are open leases past
	// their expiry: their holder died; they are charged in full as spent by
	// the next recovery (fail closed).
	Leased        int64 `json:"leased_nano_usd"`
	OpenLeases    int   `json:"open_leases"`
	ExpiredLeases int   `json:"expired_leases,omitempty"`
}

// State returns the plan's State for Evaluate.
func (p PlanStatus) State() State {
	return State{Limit: p.Limit, Spent: p.Spent, Reserved: p.Reserved, Ratios: p.Ratios, Approved: p.ApprovedBy != "", Stopped: p.Stopped}
}

// ModelUsage is one model's share of a run.
type ModelUsage struct {
	Provider string `json:"provider"`
	Calls    int    `json:"calls"`
	Usage
	Cost int64 `json:"cost_nano_usd"`
}

// RunTotals is what an execution manifest records about a run's LLM calls.
type RunTotals struct {
	RunID         string                `json:"run_id"`
	PlanID        string                `json:"plan_id"`
	ExternalCalls int                   `json:"external_calls"` // calls forwarded to a paid provider
	LocalCalls    int                   `json:"local_calls"`    // calls routed to the local model (degrade_to_local)
	CacheHits     int                   `json:"cache_hits"`
	Refused       int                   `json:"refused"`
	Degraded      bool                  `json:"degraded_to_local"`
	Tokens        Usage                 `json:"tokens"`
	ByModel       map[string]ModelUsage `json:"by_model"`
	Cost          int64                 `json:"cost_nano_usd"`
	CostUSD       float64               `json:"cost_usd"`
	Budget        int64                 `json:"budget_nano_usd"`
	BudgetUSD     float64               `json:"budget_usd"`
	Stopped       bool                  `json:"stopped"`
}

// Event kinds written to the audit log.
const (
	EventWarn     = "budget.warn"
	EventEscalate = "budget.escalate"
	EventStop     = "gate.stop" // like every other stop; the payload carries stop_reason
	EventApprove  = "budget.approve"
	EventResume   = "budget.resume"
)

// Event is a budget transition the audit log must record before the
// gateway answers the call that caused it.
type Event struct {
	Kind       string              `json:"kind"`
	PlanID     string              `json:"plan_id"`
	RunID      string              `json:"run_id,omitempty"`
	Model      string              `json:"model,omitempty"`
	Scope      string              `json:"scope"`
	Amount     int64               `json:"amount_nano_usd"`
	Spent      int64               `json:"spent_nano_usd"`
	Reserved   int64               `json:"reserved_nano_usd"`
	Limit      int64               `json:"limit_nano_usd"`
	Ratio      float64             `json:"ratio"`
	Reason     string              `json:"reason"`
	StopReason policies.StopReason `json:"stop_reason,omitempty"`
	Actor      string              `json:"actor,omitempty"`
}

// Auditor records budget events; gate/audit's log satisfies it through a
// small adapter in the wiring. An error makes the ledger fail closed.
type Auditor interface {
	RecordBudgetEvent(ctx context.Context, e Event) error
}

// Ledger is what the gateway needs from the budget store.
type Ledger interface {
	// EnsurePlan registers a plan's budget or updates its limit and ratios.
	EnsurePlan(ctx context.Context, p Plan) error
	// Reserve atomically judges and, when allowed, reserves a call's worst
	// case on the plan and every cap.
	Reserve(ctx context.Context, r ReserveRequest) (Reservation, error)
	// Settle replaces a reservation by the call's real cost, exactly once.
	Settle(ctx context.Context, s Settlement) error
	// Status returns a plan's live state.
	Status(ctx context.Context, planID string) (PlanStatus, error)
	// Approve lets a plan continue past its escalation ratio.
	Approve(ctx context.Context, planID, approver string) error
	// Resume lifts a plan's stop latch (after its budget was raised).
	Resume(ctx context.Context, planID, by string) error
	// RunTotals sums a run's calls for its execution manifest.
	RunTotals(ctx context.Context, runID string) (RunTotals, error)
}

// Errors callers may test with errors.Is.
var (
	ErrUnknownPlan    = errors.New("unknown plan")
	ErrAlreadySettled = errors.New("reservation already settled")
	ErrNoReservation  = errors.New("no such reservation")
)
