package commands

import (
	"context"
	"fmt"
	"regexp"

	"github.com/agentgate/agentgate/gate/audit"
)

// GitHubClient is every GitHub call the commands make, for the adapter in
// hooks/github to implement (assert it with var _ commands.GitHubClient = ...).
// Reads of people (Directory) must be live API calls, never the payload.
type GitHubClient interface {
	dispatchClient
	prReader
	policyReader
	directoryProvider
}

// Deps are the stores behind the commands. A nil dependency disables its
// command: it is then answered "not enabled on this server".
type Deps struct {
	Audit     Auditor // required
	Approvals ApprovalStore
	Holds     HoldStore
	Queue     Rechecker
	Runs      RunResumer
	Budget    BudgetApprover
	// AppLogins are our App's logins ("agentgate[bot]"): never acted upon,
	// never approvers.
	AppLogins []string
}

// NewDispatcher wires every command handler over gh and deps.
func NewDispatcher(gh GitHubClient, deps Deps) (*Dispatcher, error) {
	if deps.Audit == nil {
		return nil, fmt.Errorf("commands: an audit log is required; every command decision is audited before it takes effect")
	}
	d := &Dispatcher{Client: gh, Audit: deps.Audit, AppLogins: deps.AppLogins}
	add := func(ok bool, h Handler) {
		if ok {
			d.Handlers = append(d.Handlers, h)
		} else {
			d.Handlers = append(d.Handlers, unavailable{h})
		}
	}
	add(deps.Approvals != nil, &ApprovePromotion{Client: gh, Store: deps.Approvals, Audit: deps.Audit, AppLogins: deps.AppLogins})
	add(deps.Holds != nil, &Hold{Client: gh, Store: deps.Holds, Audit: deps.Audit})
	add(deps.Holds != nil, &Unhold{Client: gh, Store: deps.Holds, Audit: deps.Audit, AppLogins: deps.AppLogins})
	add(deps.Queue != nil, &Recheck{Client: gh, Queue: deps.Queue, Audit: deps.Audit})
	add(deps.Runs != nil, &ResumeRun{Client: gh, Runs: deps.Runs, Audit: deps.Audit, AppLogins: deps.AppLogins})
	add(deps.Budget != nil, &ApproveBudget{Client: gh, Budget: deps.Budget, Audit: deps.Audit, AppLogins: deps.AppLogins})
	return d, nil
}

// unavailable answers a command whose store is not configured.
type unavailable struct{ h Handler }

func (u unavailable) Name() string            { return u.h.Name() }
func (u unavailable) Help() Help              { return u.h.Help() }
func (u unavailable) Pattern() *regexp.Regexp { return u.h.Pattern() }
func (u unavailable) Handle(context.Context, Request) (Response, error) {
	return Response{Message: "/" + u.h.Name() + " is not enabled on this agentgate server; ask its administrator"}, nil
}

// AuditLog writes command events to agentgate's audit log.
type AuditLog struct{ Log *audit.Log }

// Audit implements Auditor.
func (a AuditLog) Audit(ctx context.Context, e AuditEvent) error {
	_, err := a.Log.Append(ctx, audit.Event{Actor: e.Actor, Kind: e.Kind, Repo: e.Repo, SHA: e.SHA, Payload: map[string]any{
		"number": e.Number, "delivery_id": e.DeliveryID, "comment_id": e.CommentID, "reason": e.Reason, "detail": e.Detail,
	}})
	return err
}
