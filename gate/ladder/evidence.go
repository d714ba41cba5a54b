package ladder

import (
	"fmt"
	"strings"

	"github.com/agentgate/agentgate/policies"
)

// CheckGateEvidence is the "gate_evidence" requirement of develop -> staging:
// every agent commit being promoted is covered by a passing signed develop
// attestation. covered maps a commit SHA to true when a verified passing
// attestation names it (as its head, or as a commit of the attested range).
func CheckGateEvidence(agentCommits []string, covered map[string]bool) Outcome {
	o := Outcome{Requirement: policies.RequireGateEvidence}
	var missing []string
	for _, c := range agentCommits {
		if !covered[c] {
			missing = append(missing, short(c))
		}
	}
	if len(missing) > 0 {
		o.Detail = fmt.Sprintf("%d of %d agent commits have no passing signed develop attestation: %s; push them through the gate (agent/* -> develop) first",
			len(missing), len(agentCommits), strings.Join(missing, ", "))
		return o
	}
	o.Satisfied = true
	if len(agentCommits) == 0 {
		o.Detail = "no agent commits in this promotion"
	} else {
		o.Detail = fmt.Sprintf("all %d agent commits are covered by passing signed develop attestations", len(agentCommits))
	}
	return o
}

// RunBudget is one agent run's spend, as the budget ledger recorded it.
type RunBudget struct {
	PlanID   string
	RunID    string
	SpentUSD float64
	LimitUSD float64
	Stopped  policies.StopReason // the run's stop reason, if any
}

// CheckBudget is the "budget_compliant" requirement: no run of the plans
// being promoted ended over budget. unknown lists plan ids whose budget
// ledger could not be read; they fail closed.
func CheckBudget(runs []RunBudget, unknown []string) Outcome {
	o := Outcome{Requirement: policies.RequireBudgetCompliant}
	var over []string
	for _, r := range runs {
		if r.Stopped == policies.StopBudgetExceeded || (r.LimitUSD > 0 && r.SpentUSD > r.LimitUSD) {
			over = append(over, fmt.Sprintf("%s run %s spent $%.2f of $%.2f", r.PlanID, r.RunID, r.SpentUSD, r.LimitUSD))
		}
	}
	switch {
	case len(unknown) > 0:
		o.Detail = "budget ledger unavailable for plan(s) " + strings.Join(unknown, ", ") + "; fails closed"
	case len(over) > 0:
		o.Detail = "over budget: " + strings.Join(over, "; ")
	case len(runs) == 0:
		o.Satisfied = true
		o.Detail = "no metered runs in this promotion"
	default:
		o.Satisfied = true
		var within []string
		for _, r := range runs {
			within = append(within, fmt.Sprintf("%s $%.2f of $%.2f", r.PlanID, r.SpentUSD, r.LimitUSD))
		}
		o.Detail = "within budget: " + strings.Join(within, "; ")
	}
	return o
}
