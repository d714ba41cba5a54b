package budget

import (
	"context"

	"github.com/agentgate/agentgate/gate/audit"
)

// AuditLog records budget events in agentgate's audit log. A plan's stop is
// written as a "gate.stop" record (payload stop_reason STOP_BUDGET_EXCEEDED),
// like every other stop, so that whoever halts runs on stops sees it.
type AuditLog struct {
	Log  *audit.Log
	Repo string // optional: the repository the gateway serves
}

// RecordBudgetEvent implements Auditor.
func (a AuditLog) RecordBudgetEvent(ctx context.Context, e Event) error {
	actor := e.Actor
	if actor == "" {
		actor = "gateway"
	}
	_, err := a.Log.Append(ctx, audit.Event{Actor: actor, Kind: e.Kind, Repo: a.Repo, PlanID: e.PlanID, RunID: e.RunID, Payload: e})
	return err
}
