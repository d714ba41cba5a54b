package commands

import (
	"context"
	"fmt"
	"regexp"
)

var holdRe = regexp.MustCompile(`(?i)^/hold[ \t]*$`)

// HoldStore records holds on pull requests; a held PR is never promoted.
type HoldStore interface {
	SetHold(ctx context.Context, repo string, number int, held bool, by string) error
}

type holdClient interface {
	policyReader
	prReader
	directoryProvider
}

// Hold handles /hold.
type Hold struct {
	Client holdClient
	Store  HoldStore
	Audit  Auditor
}

func (*Hold) Name() string            { return "hold" }
func (*Hold) Pattern() *regexp.Regexp { return holdRe }
func (*Hold) Help() Help {
	return Help{
		Usage:       "/hold",
		Description: "Stops this pull request from being promoted until /unhold.",
		Who:         "People with write permission (not bots or agent identities).",
	}
}

// Handle implements Handler.
func (h *Hold) Handle(ctx context.Context, req Request) (Response, error) {
	pr, err := h.Client.PullRequest(ctx, req.Repo, req.Number)
	if err != nil {
		return Response{}, fmt.Errorf("read pull request: %w", err)
	}
	rules, err := rulesFor(ctx, h.Client, req.Repo, pr.Target, nil)
	if err != nil {
		return Response{}, err
	}
	if ref := writer(ctx, rules, h.Client.Directory(req.Repo), req.Commenter); ref != nil {
		return Response{Message: ref.Message}, h.Audit.Audit(ctx, AuditEvent{Kind: "hold.refused", Repo: req.Repo, Number: req.Number, Actor: req.Commenter.Login, DeliveryID: req.DeliveryID, CommentID: req.CommentID, Reason: string(ref.Reason), Detail: ref.Message})
	}
	if err := h.Audit.Audit(ctx, AuditEvent{Kind: "hold.set", Repo: req.Repo, Number: req.Number, SHA: pr.Head, Actor: req.Commenter.Login, DeliveryID: req.DeliveryID, CommentID: req.CommentID}); err != nil {
		return Response{}, fmt.Errorf("audit: %w", err)
	}
	if err := h.Store.SetHold(ctx, req.Repo, req.Number, true, req.Commenter.Login); err != nil {
		return Response{}, fmt.Errorf("record hold: %w", err)
	}
	return Response{Accepted: true, Message: "held by " + req.Commenter.Login}, nil
}
