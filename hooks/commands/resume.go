package commands

import (
	"context"
	"fmt"
	"regexp"
)

// resumeRunRe takes exactly one plan id (the plan_id charset of WORK_PLAN.json).
var resumeRunRe = regexp.MustCompile(`(?i)^/resume-run[ \t]+([A-Za-z0-9][A-Za-z0-9._-]{0,127})[ \t]*$`)

// RunResumer re-authorizes a stopped plan.
type RunResumer interface {
	ResumeRun(ctx context.Context, planID, by string) error
}

type resumeClient interface {
	policyReader
	prReader
	directoryProvider
}

// ResumeRun handles /resume-run PLAN_ID. A stopped run stays stopped until an
// approver of the highest rung re-authorizes it.
type ResumeRun struct {
	Client    resumeClient
	Runs      RunResumer
	Audit     Auditor
	AppLogins []string
}

func (*ResumeRun) Name() string            { return "resume-run" }
func (*ResumeRun) Pattern() *regexp.Regexp { return resumeRunRe }
func (*ResumeRun) Help() Help {
	return Help{
		Usage:       "/resume-run PLAN_ID",
		Description: "Re-authorizes a plan whose runs were stopped (STOP_* reason); the stop event stays in the audit log.",
		Who:         "Approvers of the highest rung (main) with write permission; never an agent identity or a bot.",
	}
}

// Handle implements Handler.
func (h *ResumeRun) Handle(ctx context.Context, req Request) (Response, error) {
	return topRungAction(ctx, h.Client, h.Audit, h.AppLogins, req, "run.resumed", func(planID string) error {
		return h.Runs.ResumeRun(ctx, planID, req.Commenter.Login)
	})
}

// topRungAction is the shared body of /resume-run and /approve-budget: the
// actor must be an approver of the ladder's highest rung.
func topRungAction(ctx context.Context, c resumeClient, audit Auditor, appLogins []string, req Request, kind string, act func(planID string) error) (Response, error) {
	planID := req.Args[0]
	pr, err := c.PullRequest(ctx, req.Repo, req.Number)
	if err != nil {
		return Response{}, fmt.Errorf("read pull request: %w", err)
	}
	rules, err := rulesFor(ctx, c, req.Repo, pr.Target, appLogins)
	if err != nil {
		return Response{}, err
	}
	top := rules.Ladder.Top()
	if req.Edited {
		return Response{Message: "this comment was edited; edited comments never authorize anything: post a new comment"}, nil
	}
	ev := AuditEvent{Repo: req.Repo, Number: req.Number, SHA: pr.Head, Actor: req.Commenter.Login, DeliveryID: req.DeliveryID, CommentID: req.CommentID, Detail: "plan " + planID}
	if ref := rules.CheckPerson(ctx, top, req.Commenter, c.Directory(req.Repo)); ref != nil {
		ev.Kind, ev.Reason, ev.Detail = kind+".refused", string(ref.Reason), "plan "+planID+": "+ref.Message
		if err := audit.Audit(ctx, ev); err != nil {
			return Response{}, fmt.Errorf("audit: %w", err)
		}
		return Response{Message: ref.Message}, nil
	}
	ev.Kind = kind
	if err := audit.Audit(ctx, ev); err != nil {
		return Response{}, fmt.Errorf("audit: %w", err)
	}
	if err := act(planID); err != nil {
		return Response{}, err
	}
	return Response{Accepted: true, Message: fmt.Sprintf("%s for plan %s by %s", kind, planID, req.Commenter.Login)}, nil
}
