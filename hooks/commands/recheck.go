package commands

import (
	"context"
	"fmt"
	"regexp"
)

var recheckRe = regexp.MustCompile(`(?i)^/recheck[ \t]*$`)

// Rechecker enqueues a fresh evaluation of a pull request's current head.
type Rechecker interface {
	Recheck(ctx context.Context, repo string, number int, deliveryID string) error
}

type recheckClient interface {
	policyReader
	prReader
	directoryProvider
}

// Recheck handles /recheck.
type Recheck struct {
	Client recheckClient
	Queue  Rechecker
	Audit  Auditor
}

func (*Recheck) Name() string            { return "recheck" }
func (*Recheck) Pattern() *regexp.Regexp { return recheckRe }
func (*Recheck) Help() Help {
	return Help{
		Usage:       "/recheck",
		Description: "Re-runs agentgate's evaluation of this pull request's current head (e.g. after a missed webhook).",
		Who:         "People with write permission (not bots or agent identities).",
	}
}

// Handle implements Handler.
func (h *Recheck) Handle(ctx context.Context, req Request) (Response, error) {
	pr, err := h.Client.PullRequest(ctx, req.Repo, req.Number)
	if err != nil {
		return Response{}, fmt.Errorf("read pull request: %w", err)
	}
	rules, err := rulesFor(ctx, h.Client, req.Repo, pr.Target, nil)
	if err != nil {
		return Response{}, err
	}
	if ref := writer(ctx, rules, h.Client.Directory(req.Repo), req.Commenter); ref != nil {
		return Response{Message: ref.Message}, nil
	}
	if err := h.Audit.Audit(ctx, AuditEvent{Kind: "recheck.requested", Repo: req.Repo, Number: req.Number, SHA: pr.Head, Actor: req.Commenter.Login, DeliveryID: req.DeliveryID, CommentID: req.CommentID}); err != nil {
		return Response{}, fmt.Errorf("audit: %w", err)
	}
	if err := h.Queue.Recheck(ctx, req.Repo, req.Number, req.DeliveryID); err != nil {
		return Response{}, fmt.Errorf("enqueue recheck: %w", err)
	}
	return Response{Accepted: true, Message: "re-evaluation queued"}, nil
}
