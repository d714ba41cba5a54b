package commands

import (
	"context"
	"regexp"
)

var approveBudgetRe = regexp.MustCompile(`(?i)^/approve-budget[ \t]+([A-Za-z0-9][A-Za-z0-9._-]{0,127})[ \t]*$`)

// BudgetApprover records a human's approval of a plan's budget escalation.
type BudgetApprover interface {
	ApproveBudget(ctx context.Context, planID, by string) error
}

// ApproveBudget handles /approve-budget PLAN_ID: a run that reached its
// escalation ratio continues only after this.
type ApproveBudget struct {
	Client    resumeClient
	Budget    BudgetApprover
	Audit     Auditor
	AppLogins []string
}

func (*ApproveBudget) Name() string            { return "approve-budget" }
func (*ApproveBudget) Pattern() *regexp.Regexp { return approveBudgetRe }
func (*ApproveBudget) Help() Help {
	return Help{
		Usage:       "/approve-budget PLAN_ID",
		Description: "Approves a plan's budget escalation so that its run may continue past the escalation ratio (never past the stop ratio).",
		Who:         "Approvers of the highest rung (main) with write permission; never an agent identity or a bot.",
	}
}

// Handle implements Handler.
func (h *ApproveBudget) Handle(ctx context.Context, req Request) (Response, error) {
	return topRungAction(ctx, h.Client, h.Audit, h.AppLogins, req, "budget.approved", func(planID string) error {
		return h.Budget.ApproveBudget(ctx, planID, req.Commenter.Login)
	})
}
