package forge

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/agentgate/agentgate/gate/approval"
	"github.com/agentgate/agentgate/gate/audit"
	"github.com/agentgate/agentgate/gate/ladder"
)

// Audit kinds that stop and resume a plan. A plan is stopped from its latest
// gate.stop record until a later run.resumed record (written by
// /resume-run on GitHub or `agentgate resume-run` here).
const (
	KindStop    = "gate.stop"
	KindResumed = "run.resumed"
)

// auditReader is the part of *audit.Log that reads records back.
type auditReader interface {
	Each(ctx context.Context, after int64, fn func(audit.Record) error) error
}

// StopState is a plan's stop, if any.
type StopState struct {
	Stopped bool
	Reason  string // the stop reason code
	Seq     int64  // the audit record that stopped it
}

// PlanStopped reads the audit log for planID's latest stop or resume. An
// unreadable log fails closed (reported as an error).
func (f *Forge) PlanStopped(ctx context.Context, planID string) (StopState, error) {
	r, ok := f.Audit.(auditReader)
	if !ok {
		return StopState{}, fmt.Errorf("the audit log cannot be read back to check plan %s for stops", planID)
	}
	var st StopState
	err := r.Each(ctx, 0, func(rec audit.Record) error {
		if rec.PlanID != planID {
			return nil
		}
		switch rec.Kind {
		case KindStop:
			var p struct {
				StopReason string `json:"stop_reason"`
			}
			_ = json.Unmarshal(rec.Payload, &p)
			st = StopState{Stopped: true, Reason: p.StopReason, Seq: rec.Seq}
		case KindResumed:
			st = StopState{}
		}
		return nil
	})
	if err != nil {
		return StopState{}, fmt.Errorf("read the audit log for stops of plan %s: %w", planID, err)
	}
	return st, nil
}

// budgetResumer is the ledger's Resume (*budget.StoreLedger has it).
type budgetResumer interface {
	Resume(ctx context.Context, planID, by string) error
}

// ResumeRun is `agentgate resume-run`: an approver of the ladder's highest
// rung re-authorizes a stopped plan. The stop stays in the audit log.
func (f *Forge) ResumeRun(ctx context.Context, planID string, as approval.User) (*approval.Refusal, error) {
	heads, err := f.branches(ctx)
	if err != nil {
		return nil, err
	}
	pol, err := f.policyAt(ctx, f.Repo, heads, "refs/heads/main")
	if err != nil {
		return nil, err
	}
	rules, err := approval.RulesFromPolicy(pol)
	if err != nil {
		return nil, err
	}
	pusher := ladder.Pusher{Login: as.Login, Email: as.Email}
	top := rules.Ladder.Top()
	if ref := rules.CheckPerson(ctx, top, as, localDirectory{}); ref != nil {
		return ref, f.audit(ctx, pusher, KindResumed+".refused", "", planID, map[string]any{"reason": ref.Reason, "message": ref.Message})
	}
	st, err := f.PlanStopped(ctx, planID)
	if err != nil {
		return nil, err
	}
	if !st.Stopped {
		return &approval.Refusal{Reason: approval.ReasonNotRequired, Message: fmt.Sprintf("plan %s is not stopped; nothing to resume", planID)}, nil
	}
	if err := f.audit(ctx, pusher, KindResumed, "", planID, map[string]any{"stop_reason": st.Reason, "stop_seq": st.Seq, "by": as.Login}); err != nil {
		return nil, err
	}
	if br, ok := f.Budget.(budgetResumer); ok {
		if s, err := f.Budget.Status(ctx, planID); err == nil && s.Stopped {
			if err := br.Resume(ctx, planID, as.Login); err != nil {
				return nil, fmt.Errorf("resume plan %s in the budget ledger: %w", planID, err)
			}
		}
	}
	return nil, nil
}
