package ladder

import (
	"fmt"
	"strings"

	"github.com/agentgate/agentgate/policies"
)

var riskOrder = map[policies.Risk]int{
	policies.RiskLow: 0, policies.RiskMedium: 1, policies.RiskHigh: 2, policies.RiskCritical: 3,
}

// AutoApprovalInput is what automatic approval looks at.
type AutoApprovalInput struct {
	PlanRisk         policies.Risk // the plan's declared risk
	CriticalOrHigh   int           // critical and high findings across all checks
	TestsPassed      bool          // the full test run passed
	PolicyArtifacts  bool          // the change touches a policy artifact (always needs a human)
	ChecksEvaluated  bool          // the findings above come from a completed check run
	PlanRiskUnknowns []string      // plans whose risk could not be read
}

// AutoApprove decides whether a promotion is pre-approved by the policy:
// auto-approval enabled, plan risk at most MaxRisk (default low), zero
// critical or high findings, full test pass, no policy artifact touched. The
// outcome is a "human_approval" outcome recorded as automatic.
func AutoApprove(p policies.AutoApprove, in AutoApprovalInput) (Outcome, bool) {
	o := Outcome{Requirement: policies.RequireHumanApproval}
	if !p.Enabled {
		o.Detail = "automatic approval is not enabled by the policy; an approver must comment /approve-promotion"
		return o, false
	}
	max := p.MaxRisk
	if max == "" {
		max = policies.RiskLow
	}
	maxRank, ok := riskOrder[max]
	if !ok {
		o.Detail = fmt.Sprintf("policy auto_approve.max_risk %q is not a risk level; automatic approval disabled (fail closed)", max)
		return o, false
	}
	var why []string
	rank, ok := riskOrder[in.PlanRisk]
	switch {
	case len(in.PlanRiskUnknowns) > 0:
		why = append(why, "plan risk unknown for "+strings.Join(in.PlanRiskUnknowns, ", "))
	case !ok:
		why = append(why, fmt.Sprintf("plan risk %q is not a risk level", in.PlanRisk))
	case rank > maxRank:
		why = append(why, fmt.Sprintf("plan risk %s is above %s", in.PlanRisk, max))
	}
	if !in.ChecksEvaluated {
		why = append(why, "checks were not evaluated")
	}
	if in.CriticalOrHigh > 0 {
		why = append(why, fmt.Sprintf("%d critical or high findings", in.CriticalOrHigh))
	}
	if !in.TestsPassed {
		why = append(why, "no passing full test run")
	}
	if in.PolicyArtifacts {
		why = append(why, "a policy artifact changed")
	}
	if len(why) > 0 {
		o.Detail = "not eligible for automatic approval (" + strings.Join(why, "; ") + "); an approver must comment /approve-promotion"
		return o, false
	}
	o.Satisfied = true
	o.Detail = fmt.Sprintf("automatically approved by policy: plan risk %s (max %s), 0 critical/high findings, full test pass", in.PlanRisk, max)
	return o, true
}
