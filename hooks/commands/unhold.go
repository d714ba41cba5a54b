package commands

import (
	"context"
	"fmt"
	"regexp"
)

var unholdRe = regexp.MustCompile(`(?i)^/unhold[ \t]*$`)

type unholdClient interface {
	policyReader
	prReader
	directoryProvider
}

// Unhold handles /unhold. Lifting a hold loosens the gate, so it takes an
// approver of the PR's target rung.
type Unhold struct {
	Client    unholdClient
	Store     HoldStore
	Audit     Auditor
	AppLogins []string
}

func (*Unhold) Name() string            { return "unhold" }
func (*Unhold) Pattern() *regexp.Regexp { return unholdRe }
func (*Unhold) Help() Help {
	return Help{
		Usage:       "/unhold",
		Description: "Lifts a /hold on this pull request.",
		Who:         "Approvers of the pull request's target rung with write permission (not bots or agent identities).",
	}
}

// Handle implements Handler.
func (h *Unhold) Handle(ctx context.Context, req Request) (Response, error) {
	pr, err := h.Client.PullRequest(ctx, req.Repo, req.Number)
	if err != nil {
		return Response{}, fmt.Errorf("read pull request: %w", err)
	}
	rules, err := rulesFor(ctx, h.Client, req.Repo, pr.Target, h.AppLogins)
	if err != nil {
		return Response{}, err
	}
	if ref := rules.CheckPerson(ctx, pr.Target, req.Commenter, h.Client.Directory(req.Repo)); ref != nil {
		return Response{Message: ref.Message}, h.Audit.Audit(ctx, AuditEvent{Kind: "unhold.refused", Repo: req.Repo, Number: req.Number, Actor: req.Commenter.Login, DeliveryID: req.DeliveryID, CommentID: req.CommentID, Reason: string(ref.Reason), Detail: ref.Message})
	}
	if err := h.Audit.Audit(ctx, AuditEvent{Kind: "hold.lifted", Repo: req.Repo, Number: req.Number, SHA: pr.Head, Actor: req.Commenter.Login, DeliveryID: req.DeliveryID, CommentID: req.CommentID}); err != nil {
		return Response{}, fmt.Errorf("audit: %w", err)
	}
	if err := h.Store.SetHold(ctx, req.Repo, req.Number, false, req.Commenter.Login); err != nil {
		return Response{}, fmt.Errorf("lift hold: %w", err)
	}
	return Response{Accepted: true, Message: "hold lifted by " + req.Commenter.Login}, nil
}
