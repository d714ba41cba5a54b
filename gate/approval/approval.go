package approval

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/agentgate/agentgate/gate/ladder"
	"github.com/agentgate/agentgate/policies"
)

// Reason is a machine-readable dismissal or refusal code.
type Reason string

const (
	ReasonEdited        Reason = "edited_comment"        // not a created comment, or edited since
	ReasonReplayed      Reason = "replayed_delivery"     // this comment or delivery was already processed
	ReasonNotOnLadder   Reason = "not_on_ladder"         // the PR's (source, target) is not a rung
	ReasonNotRequired   Reason = "approval_not_required" // the rung does not take human approval
	ReasonStaleSHA      Reason = "stale_sha"             // the SHA given is not the PR's head
	ReasonBot           Reason = "bot"                   // type Bot, a [bot] login, or our App
	ReasonAgentIdentity Reason = "agent_identity"        // one of the policy's agent identities
	ReasonAuthor        Reason = "pr_author"             // the PR's author
	ReasonLauncher      Reason = "run_launcher"          // the human who launched the agent run
	ReasonContributor   Reason = "commit_author"         // authored or committed a commit in the PR
	ReasonNoWrite       Reason = "no_write_permission"   // below write permission
	ReasonNotApprover   Reason = "not_rung_approver"     // not listed (user or team) for the rung
	ReasonLookupFailed  Reason = "lookup_failed"         // a live permission/team lookup failed (fail closed)
	ReasonNewPush       Reason = "voided_by_new_push"    // head moved after the approval
	ReasonRetarget      Reason = "voided_by_retarget"    // base changed after the approval
	ReasonMalformed     Reason = "malformed_command"     // the command's arguments are invalid
	ReasonUnknownPerson Reason = "unidentified_approver" // no login to check
)

// User is a GitHub (or forge) account as the adapter saw it.
type User struct {
	Login string `json:"login"`
	ID    int64  `json:"id,omitempty"`
	Email string `json:"email,omitempty"`
	Type  string `json:"type,omitempty"` // "User", "Bot", "Organization"
}

// IsBot reports a bot account: type Bot or a login ending in [bot].
func (u User) IsBot() bool {
	return strings.EqualFold(u.Type, "Bot") || strings.HasSuffix(strings.ToLower(u.Login), "[bot]")
}

// Same reports whether two users are the same person: by GitHub id when both
// have one, else by login, else by e-mail (all case-insensitive). When the
// ids differ the logins are still compared, failing closed towards "same".
func (u User) Same(o User) bool {
	if u.ID != 0 && o.ID != 0 && u.ID == o.ID {
		return true
	}
	if u.Login != "" && o.Login != "" && strings.EqualFold(u.Login, o.Login) {
		return true
	}
	if u.Email != "" && o.Email != "" && strings.EqualFold(u.Email, o.Email) {
		return true
	}
	return false
}

// PullRequest is the promotion being approved: a GitHub PR, or for the local
// forge a (source, target, sha) triple with the commits it would promote.
type PullRequest struct {
	Repo   string `json:"repo"`
	Number int    `json:"number,omitempty"` // 0 for a forge promotion
	Source string `json:"source"`           // head branch
	Target string `json:"target"`           // base branch
	Head   string `json:"head"`             // current head SHA
	Author User   `json:"author"`
	// Contributors are the authors and committers of every commit in the PR.
	Contributors []User `json:"contributors,omitempty"`
	// Launchers are the humans who launched the agent runs in the PR.
	Launchers []User `json:"launchers,omitempty"`
}

// Command is one /approve-promotion as the command handler received it.
type Command struct {
	SHA        string    // optional SHA prefix given with the command
	Approver   User      // the commenter
	CommentID  int64     // GitHub comment id (0 on the forge)
	DeliveryID string    // webhook delivery id, or a forge request id
	Action     string    // issue_comment action: only "created" counts
	Edited     bool      // re-read body differs from the payload, or updated_at != created_at
	At         time.Time // when the command was given
}

// Permission is a repository permission level.
type Permission string

const (
	PermNone     Permission = "none"
	PermRead     Permission = "read"
	PermTriage   Permission = "triage"
	PermWrite    Permission = "write"
	PermMaintain Permission = "maintain"
	PermAdmin    Permission = "admin"
)

var permRank = map[Permission]int{PermNone: 0, PermRead: 1, PermTriage: 2, PermWrite: 3, PermMaintain: 4, PermAdmin: 5}

// AtLeastWrite reports write, maintain or admin.
func (p Permission) AtLeastWrite() bool { return permRank[p] >= permRank[PermWrite] }

// Directory answers live questions about people; the GitHub adapter asks the
// API (collaborator permission, team membership) at command time, never the
// payload. Errors fail closed.
type Directory interface {
	Permission(ctx context.Context, login string) (Permission, error)
	IsTeamMember(ctx context.Context, team, login string) (bool, error)
}

// Rules are the policy inputs to approval, read from the protected base.
type Rules struct {
	Ladder    *ladder.Ladder
	Approvers []policies.RungApprovers
	Agents    []policies.AgentIdentity
	// AppLogins are our own App's logins (e.g. "agentgate[bot]"), never approvers.
	AppLogins []string
}

// RulesFromPolicy builds Rules from a loaded policy.
func RulesFromPolicy(p *policies.Policy) (Rules, error) {
	l, err := ladder.New(p.Ladder)
	if err != nil {
		return Rules{}, err
	}
	return Rules{Ladder: l, Approvers: p.Approvers, Agents: p.AgentIdentities}, nil
}

// Approval is a recorded, accepted approval, bound to (repo, PR, target,
// head SHA, approver).
type Approval struct {
	Repo       string    `json:"repo"`
	Number     int       `json:"number,omitempty"`
	Rung       string    `json:"rung"`
	Source     string    `json:"source"`
	Target     string    `json:"target"`
	HeadSHA    string    `json:"head_sha"`
	Approver   User      `json:"approver"`
	CommentID  int64     `json:"comment_id,omitempty"`
	DeliveryID string    `json:"delivery_id,omitempty"`
	At         time.Time `json:"at"`
	// Auto marks an approval granted by the policy's auto_approve rule.
	Auto   bool   `json:"auto,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Refusal is why a command did not become an approval.
type Refusal struct {
	Reason  Reason
	Message string
}

func (r *Refusal) Error() string { return r.Message }

func refuse(reason Reason, format string, args ...any) *Refusal {
	return &Refusal{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

var hexPrefix = regexp.MustCompile(`^[0-9a-f]{7,40}$`)

// Approve decides whether cmd approves pr. It returns the approval to record,
// or a *Refusal saying why not. prior are the approvals already recorded for
// this repository (used to refuse replayed deliveries). Lookup errors are
// refusals with ReasonLookupFailed: never a pass.
func (r Rules) Approve(ctx context.Context, pr PullRequest, cmd Command, prior []Approval, dir Directory) (Approval, *Refusal) {
	if cmd.Action != "" && cmd.Action != "created" {
		return Approval{}, refuse(ReasonEdited, "only newly created comments approve; this comment was %s (the change is audited)", cmd.Action)
	}
	if cmd.Edited {
		return Approval{}, refuse(ReasonEdited, "this comment was edited; edited comments never approve: post a new /approve-promotion comment")
	}
	for _, p := range prior {
		if (cmd.CommentID != 0 && p.CommentID == cmd.CommentID) || (cmd.DeliveryID != "" && p.DeliveryID == cmd.DeliveryID) {
			return Approval{}, refuse(ReasonReplayed, "replayed delivery: comment %d (delivery %s) was already processed; a replay never approves again", cmd.CommentID, cmd.DeliveryID)
		}
	}
	if r.Ladder == nil {
		return Approval{}, refuse(ReasonNotOnLadder, "no ladder is configured; fix .agentgate/policy.yaml on the protected base branch")
	}
	rung, err := r.Ladder.Resolve(pr.Source, pr.Target)
	if err != nil {
		return Approval{}, refuse(ReasonNotOnLadder, "/approve-promotion refused: %v", err)
	}
	if !slices.Contains(rung.Requires, policies.RequireHumanApproval) {
		return Approval{}, refuse(ReasonNotRequired, "the %s -> %s rung does not take a human approval (it requires %s); nothing to approve", rung.Source, rung.Target, strings.Join(rung.Requires, ", "))
	}
	if cmd.SHA != "" {
		sha := strings.ToLower(cmd.SHA)
		if !hexPrefix.MatchString(sha) {
			return Approval{}, refuse(ReasonMalformed, "%q is not a commit SHA (7 to 40 hex digits); the current head is %s", cmd.SHA, pr.Head)
		}
		if !strings.HasPrefix(strings.ToLower(pr.Head), sha) {
			return Approval{}, refuse(ReasonStaleSHA, "the SHA given (%s) is not the current head %s; review the new commits and approve the current head", cmd.SHA, pr.Head)
		}
	}
	if ref := r.disqualified(pr, cmd.Approver); ref != nil {
		return Approval{}, ref
	}
	if ref := r.authorized(ctx, rung.Target, cmd.Approver, dir); ref != nil {
		return Approval{}, ref
	}
	return Approval{
		Repo: pr.Repo, Number: pr.Number, Rung: rung.Name, Source: ladder.Branch(pr.Source), Target: rung.Target,
		HeadSHA: pr.Head, Approver: cmd.Approver, CommentID: cmd.CommentID, DeliveryID: cmd.DeliveryID, At: cmd.At,
		Detail: fmt.Sprintf("approved by %s for %s -> %s at %s", cmd.Approver.Login, rung.Source, rung.Target, pr.Head),
	}, nil
}

// disqualified applies the identity exclusions that hold whatever the
// person's permissions: bots, our App, agent identities, the PR author, run
// launchers, and commit authors/committers.
func (r Rules) disqualified(pr PullRequest, u User) *Refusal {
	if u.Login == "" && u.ID == 0 {
		return refuse(ReasonUnknownPerson, "the approver could not be identified; approvals need a named account")
	}
	if u.IsBot() || slices.ContainsFunc(r.AppLogins, func(l string) bool { return strings.EqualFold(l, u.Login) }) {
		return refuse(ReasonBot, "%s is a bot; bots never approve promotions or re-authorize runs", u.Login)
	}
	if ladder.IsAgent(r.Agents, u.Login, u.Email) {
		return refuse(ReasonAgentIdentity, "%s is an agent identity; agents never approve promotions or re-authorize runs", u.Login)
	}
	if pr.Author.Same(u) {
		return refuse(ReasonAuthor, "%s opened this pull request; authors cannot approve their own promotion", u.Login)
	}
	for _, l := range pr.Launchers {
		if l.Same(u) {
			return refuse(ReasonLauncher, "%s launched the agent run in this promotion; the operator of a run cannot approve it", u.Login)
		}
	}
	for _, c := range pr.Contributors {
		if c.Same(u) {
			return refuse(ReasonContributor, "%s authored or committed a commit in this promotion; contributors cannot approve it", u.Login)
		}
	}
	return nil
}

// authorized checks live permission (write or better) and rung membership
// (listed user, or member of a listed team).
func (r Rules) authorized(ctx context.Context, target string, u User, dir Directory) *Refusal {
	if dir == nil {
		return refuse(ReasonLookupFailed, "cannot check %s's permission (no directory configured); refused (fail closed)", u.Login)
	}
	perm, err := dir.Permission(ctx, u.Login)
	if err != nil {
		return refuse(ReasonLookupFailed, "cannot check %s's repository permission (%v); refused (fail closed): try again with /approve-promotion", u.Login, err)
	}
	if !perm.AtLeastWrite() {
		return refuse(ReasonNoWrite, "%s has %s permission; approving a promotion needs write permission or better", u.Login, orNone(perm))
	}
	var ra *policies.RungApprovers
	for i := range r.Approvers {
		if ladder.Branch(r.Approvers[i].Rung) == target {
			ra = &r.Approvers[i]
			break
		}
	}
	if ra == nil {
		return refuse(ReasonNotApprover, "the policy lists no approvers for %s; add them under approvers: in .agentgate/policy.yaml", target)
	}
	for _, name := range ra.Users {
		if strings.EqualFold(name, u.Login) {
			return nil
		}
	}
	for _, team := range ra.Teams {
		ok, err := dir.IsTeamMember(ctx, team, u.Login)
		if err != nil {
			return refuse(ReasonLookupFailed, "cannot check %s's membership of %s (%v); refused (fail closed)", u.Login, team, err)
		}
		if ok {
			return nil
		}
	}
	return refuse(ReasonNotApprover, "%s is not an approver of %s (approvers: %s)", u.Login, target, describe(ra))
}

// CheckPerson applies the identity exclusions and the live authorization for
// commands that act on a rung without a PR (/resume-run, /approve-budget,
// forge approvals of the highest rung): not a bot, not an agent identity,
// write permission, listed approver of target.
func (r Rules) CheckPerson(ctx context.Context, target string, u User, dir Directory) *Refusal {
	if ref := r.disqualified(PullRequest{}, u); ref != nil {
		return ref
	}
	return r.authorized(ctx, target, u, dir)
}

func orNone(p Permission) Permission {
	if p == "" {
		return PermNone
	}
	return p
}

func describe(ra *policies.RungApprovers) string {
	var s []string
	s = append(s, ra.Users...)
	for _, t := range ra.Teams {
		s = append(s, "team "+t)
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// coAuthorLine matches a Co-authored-by: trailer ("Name <email>").
var coAuthorLine = regexp.MustCompile(`(?mi)^co-authored-by:[ \t]*(.*?)[ \t]*<([^<>\s]+)>[ \t]*$`)

// CoAuthors returns the people a commit message credits with
// Co-authored-by: trailers. They count as contributors: a co-author never
// approves the promotion of the commit.
func CoAuthors(message string) []User {
	var out []User
	for _, m := range coAuthorLine.FindAllStringSubmatch(message, 50) {
		out = append(out, User{Login: m[1], Email: m[2]})
	}
	return out
}
