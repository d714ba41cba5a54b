package commands

import (
	"context"
	"fmt"
	"regexp"

	"github.com/agentgate/agentgate/gate/approval"
)

// approvePromotionRe is the only accepted form: the command, then optionally
// one SHA (7 to 40 hex digits), nothing else on the line.
var approvePromotionRe = regexp.MustCompile(`(?i)^/approve-promotion(?:[ \t]+([0-9a-f]{7,40}))?[ \t]*$`)

type approveClient interface {
	prReader
	policyReader
	directoryProvider
}

// ApprovalStore keeps accepted approvals (all of them, voided ones too: they
// are how replays are recognised).
type ApprovalStore interface {
	Approvals(ctx context.Context, repo string, number int) ([]approval.Approval, error)
	SaveApproval(ctx context.Context, a approval.Approval) error
}

// ApprovePromotion handles /approve-promotion [sha].
type ApprovePromotion struct {
	Client    approveClient
	Store     ApprovalStore
	Audit     Auditor
	AppLogins []string
}

func (*ApprovePromotion) Name() string            { return "approve-promotion" }
func (*ApprovePromotion) Pattern() *regexp.Regexp { return approvePromotionRe }
func (*ApprovePromotion) Help() Help {
	return Help{
		Usage:       "/approve-promotion [sha]",
		Description: "Approves promoting this pull request's current head to its target rung (e.g. staging -> main). With a SHA (7+ hex digits) the approval applies only if it is the current head. A new push or a retarget voids it.",
		Who:         "People with write permission who are listed as approvers of the target rung (user or team) in .agentgate/policy.yaml; never the PR author, a commit author or committer, the human who launched the run, an agent identity or a bot.",
	}
}

// Handle implements Handler.
func (h *ApprovePromotion) Handle(ctx context.Context, req Request) (Response, error) {
	pr, err := h.Client.PullRequest(ctx, req.Repo, req.Number)
	if err != nil {
		return Response{}, fmt.Errorf("read pull request: %w", err)
	}
	rules, err := rulesFor(ctx, h.Client, req.Repo, pr.Target, h.AppLogins)
	if err != nil {
		return Response{}, err
	}
	prior, err := h.Store.Approvals(ctx, req.Repo, req.Number)
	if err != nil {
		return Response{}, fmt.Errorf("read recorded approvals: %w", err)
	}
	cmd := approval.Command{
		SHA: req.Args[0], Approver: req.Commenter, CommentID: req.CommentID, DeliveryID: req.DeliveryID,
		Action: req.Action, Edited: req.Edited, At: req.CreatedAt,
	}
	a, ref := rules.Approve(ctx, pr, cmd, prior, h.Client.Directory(req.Repo))
	ev := AuditEvent{Repo: req.Repo, Number: req.Number, SHA: pr.Head, Actor: req.Commenter.Login, DeliveryID: req.DeliveryID, CommentID: req.CommentID}
	if ref != nil {
		ev.Kind, ev.Reason, ev.Detail = "approval.refused", string(ref.Reason), ref.Message
		if err := h.Audit.Audit(ctx, ev); err != nil {
			return Response{}, fmt.Errorf("audit: %w", err)
		}
		return Response{Message: ref.Message}, nil
	}
	// Audit first, then record: every decision is logged before it takes effect.
	ev.Kind, ev.Detail = "approval.accepted", a.Detail
	if err := h.Audit.Audit(ctx, ev); err != nil {
		return Response{}, fmt.Errorf("audit: %w", err)
	}
	if err := h.Store.SaveApproval(ctx, a); err != nil {
		return Response{}, fmt.Errorf("record approval: %w", err)
	}
	return Response{Accepted: true, Message: a.Detail}, nil
}
