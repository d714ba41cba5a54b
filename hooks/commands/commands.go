package commands

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/agentgate/agentgate/gate/approval"
	"github.com/agentgate/agentgate/gate/ladder"
	"github.com/agentgate/agentgate/policies"
)

// Event is one issue_comment delivery, decoded by the webhook layer.
type Event struct {
	DeliveryID    string
	Action        string // "created", "edited", "deleted"
	Repo          string // "owner/name"
	Number        int    // issue / pull request number
	IsPullRequest bool   // issue.pull_request is set
	CommentID     int64
	Body          string
	Commenter     approval.User // comment.user
	Sender        approval.User // who caused the event (the editor, for "edited")
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// CommandHandler is what the webhook layer calls for issue_comment events.
type CommandHandler interface {
	HandleComment(ctx context.Context, ev Event) error
}

// Comment is a comment as re-read through the API.
type Comment struct {
	Body      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Reaction contents used for acknowledgements.
const (
	ReactAccepted = "+1"
	ReactRefused  = "-1"
	ReactError    = "confused"
)

// Request is one command line, with its verified context.
type Request struct {
	Event
	Line Line
	Args []string // the handler regex's submatches (without the full match)
	// Edited is true when the comment changed since it was created (re-read
	// body differs from the payload, or updated_at != created_at).
	Edited bool
}

// Response is a handler's answer. A refusal is Accepted == false with a
// Message saying why, in words.
type Response struct {
	Accepted bool
	Message  string
}

// Help describes a command for users.
type Help struct {
	Usage       string // "/approve-promotion [sha]"
	Description string
	Who         string // who may use it
}

// Handler handles one command.
type Handler interface {
	Name() string // the command word, lower case, without the slash
	Help() Help
	// Pattern matches a full command line; its submatches become Args.
	Pattern() *regexp.Regexp
	Handle(ctx context.Context, req Request) (Response, error)
}

// AuditEvent is one entry the command layer writes to the audit log.
type AuditEvent struct {
	Kind       string // e.g. "command.approve-promotion.accepted"
	Repo       string
	Number     int
	SHA        string
	Actor      string
	DeliveryID string
	CommentID  int64
	Reason     string
	Detail     string
}

// Auditor appends to the audit log. An audit failure stops the command:
// every decision is written before it is acted on.
type Auditor interface {
	Audit(ctx context.Context, e AuditEvent) error
}

// dispatchClient is what the Dispatcher itself needs from GitHub.
type dispatchClient interface {
	Comment(ctx context.Context, repo string, id int64) (Comment, bool, error)
	React(ctx context.Context, repo string, commentID int64, content string) error
	Reply(ctx context.Context, repo string, number int, body string) error
}

// Dispatcher routes comment commands to their handlers. It implements
// CommandHandler.
type Dispatcher struct {
	Client    dispatchClient
	Audit     Auditor
	Handlers  []Handler
	AppLogins []string // our own App's logins: never acted upon
	Log       *slog.Logger
}

var _ CommandHandler = (*Dispatcher)(nil)

// HandleComment implements CommandHandler.
func (d *Dispatcher) HandleComment(ctx context.Context, ev Event) error {
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("delivery", ev.DeliveryID, "repo", ev.Repo, "number", ev.Number, "comment", ev.CommentID)
	if !ev.IsPullRequest {
		return nil
	}
	if ev.Commenter.IsBot() || slices.ContainsFunc(d.AppLogins, func(l string) bool { return strings.EqualFold(l, ev.Commenter.Login) }) {
		return nil // never act on bots' comments, our own included
	}
	lines := Parse(ev.Body)
	var known []Line
	for _, l := range lines {
		if d.handler(l.Name) != nil {
			known = append(known, l)
		}
	}
	if len(known) == 0 {
		return nil
	}
	if ev.Action != "created" {
		// Edits and deletions never act; they are audit events, and an edit by
		// someone other than the author is a tampering finding.
		kind := "command.comment_" + ev.Action
		detail := fmt.Sprintf("%d command line(s) in a %s comment ignored", len(known), ev.Action)
		if ev.Action == "edited" && ev.Sender.Login != "" && !ev.Sender.Same(ev.Commenter) {
			kind = "command.comment_tampered"
			detail = fmt.Sprintf("%s edited a comment by %s so that it holds a command; edits never count", ev.Sender.Login, ev.Commenter.Login)
		}
		return d.audit(ctx, AuditEvent{Kind: kind, Repo: ev.Repo, Number: ev.Number, Actor: ev.Sender.Login, DeliveryID: ev.DeliveryID, CommentID: ev.CommentID, Detail: detail})
	}
	cur, exists, err := d.Client.Comment(ctx, ev.Repo, ev.CommentID)
	if err != nil {
		return fmt.Errorf("re-read comment %d on %s#%d: %w (the delivery will be retried)", ev.CommentID, ev.Repo, ev.Number, err)
	}
	if !exists {
		return d.audit(ctx, AuditEvent{Kind: "command.comment_gone", Repo: ev.Repo, Number: ev.Number, Actor: ev.Commenter.Login, DeliveryID: ev.DeliveryID, CommentID: ev.CommentID, Detail: "the comment was deleted before it was processed; ignored"})
	}
	edited := cur.Body != ev.Body || !cur.UpdatedAt.Equal(cur.CreatedAt)

	var refusals []string
	anyRefused, anyError := false, false
	for _, l := range known {
		h := d.handler(l.Name)
		req := Request{Event: ev, Line: l, Edited: edited}
		var resp Response
		if m := h.Pattern().FindStringSubmatch(l.Text); m == nil {
			resp = Response{Message: fmt.Sprintf("`%s` is not understood. Usage: `%s`", l.Text, h.Help().Usage)}
			if err := d.audit(ctx, AuditEvent{Kind: "command.malformed", Repo: ev.Repo, Number: ev.Number, Actor: ev.Commenter.Login, DeliveryID: ev.DeliveryID, CommentID: ev.CommentID, Reason: string(approval.ReasonMalformed), Detail: truncate(l.Text, 200)}); err != nil {
				return err
			}
		} else {
			req.Args = m[1:]
			resp, err = h.Handle(ctx, req)
			if err != nil {
				anyError = true
				log.Error("command failed", "command", l.Name, "err", err)
				refusals = append(refusals, fmt.Sprintf("`/%s` could not be processed (%v); nothing was changed. Try again, or ask an administrator to check agentgate's logs.", l.Name, err))
				continue
			}
		}
		log.Info("command", "command", l.Name, "actor", ev.Commenter.Login, "accepted", resp.Accepted)
		if !resp.Accepted {
			anyRefused = true
			refusals = append(refusals, fmt.Sprintf("`/%s` by @%s refused: %s", l.Name, ev.Commenter.Login, resp.Message))
		}
	}
	react := ReactAccepted
	switch {
	case anyError:
		react = ReactError
	case anyRefused:
		react = ReactRefused
	}
	if err := d.Client.React(ctx, ev.Repo, ev.CommentID, react); err != nil {
		log.Warn("reaction failed", "err", err)
	}
	if len(refusals) > 0 {
		if err := d.Client.Reply(ctx, ev.Repo, ev.Number, strings.Join(refusals, "\n\n")); err != nil {
			return fmt.Errorf("reply to %s#%d: %w", ev.Repo, ev.Number, err)
		}
	}
	return nil
}

func (d *Dispatcher) handler(name string) Handler {
	for _, h := range d.Handlers {
		if h.Name() == name {
			return h
		}
	}
	return nil
}

func (d *Dispatcher) audit(ctx context.Context, e AuditEvent) error {
	if d.Audit == nil {
		return fmt.Errorf("no audit log configured; refusing to act without one")
	}
	return d.Audit.Audit(ctx, e)
}

// HelpText renders the commands' help as Markdown, for a /help reply or docs.
func HelpText(hs []Handler) string {
	var b strings.Builder
	b.WriteString("| Command | What it does | Who may use it |\n|---|---|---|\n")
	for _, h := range hs {
		hp := h.Help()
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", hp.Usage, hp.Description, hp.Who)
	}
	return b.String()
}

// Narrow client pieces, composed per handler.

type prReader interface {
	PullRequest(ctx context.Context, repo string, number int) (approval.PullRequest, error)
}

type policyReader interface {
	// PolicyAt loads the repository policy from ref (the protected base
	// branch, never the PR head).
	PolicyAt(ctx context.Context, repo, ref string) (*policies.Policy, error)
}

type directoryProvider interface {
	Directory(repo string) approval.Directory
}

// rulesFor loads the approval rules from the PR's base branch.
func rulesFor(ctx context.Context, c policyReader, repo, base string, appLogins []string) (approval.Rules, error) {
	p, err := c.PolicyAt(ctx, repo, base)
	if err != nil {
		return approval.Rules{}, fmt.Errorf("load policy from %s: %w", base, err)
	}
	r, err := approval.RulesFromPolicy(p)
	if err != nil {
		return approval.Rules{}, fmt.Errorf("policy on %s: %w", base, err)
	}
	r.AppLogins = appLogins
	return r, nil
}

// writer checks the lighter rule of /hold and /recheck: a person (not a bot,
// not an agent identity) with write permission or better.
func writer(ctx context.Context, rules approval.Rules, dir approval.Directory, u approval.User) *approval.Refusal {
	if u.IsBot() {
		return &approval.Refusal{Reason: approval.ReasonBot, Message: u.Login + " is a bot"}
	}
	if ladder.IsAgent(rules.Agents, u.Login, u.Email) {
		return &approval.Refusal{Reason: approval.ReasonAgentIdentity, Message: u.Login + " is an agent identity"}
	}
	p, err := dir.Permission(ctx, u.Login)
	if err != nil {
		return &approval.Refusal{Reason: approval.ReasonLookupFailed, Message: fmt.Sprintf("cannot check %s's permission (%v); refused (fail closed)", u.Login, err)}
	}
	if !p.AtLeastWrite() {
		return &approval.Refusal{Reason: approval.ReasonNoWrite, Message: fmt.Sprintf("%s has %s permission; this command needs write permission or better", u.Login, permName(p))}
	}
	return nil
}

func permName(p approval.Permission) approval.Permission {
	if p == "" {
		return approval.PermNone
	}
	return p
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
