package approval

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/gate/ladder"
	"github.com/agentgate/agentgate/policies"
)

// directory is a plain-struct Directory, in the manner of policy-bot's pulltest.
type directory struct {
	perms map[string]Permission
	teams map[string][]string // team -> members
	err   error
}

func (d directory) Permission(_ context.Context, login string) (Permission, error) {
	if d.err != nil {
		return "", d.err
	}
	return d.perms[strings.ToLower(login)], nil
}

func (d directory) IsTeamMember(_ context.Context, team, login string) (bool, error) {
	if d.err != nil {
		return false, d.err
	}
	for _, m := range d.teams[team] {
		if strings.EqualFold(m, login) {
			return true, nil
		}
	}
	return false, nil
}

const (
	head  = "abcdef0123456789abcdef0123456789abcdef01"
	older = "0123456789abcdef0123456789abcdef01234567"
)

var (
	rules = Rules{
		Ladder: ladder.MustSeed(),
		Approvers: []policies.RungApprovers{
			{Rung: "main", Users: []string{"carol", "dave", "mallory", "erin", "opal", "agent-bot", "renovate[bot]", "frank"}, Teams: []string{"acme/release"}},
			{Rung: "staging", Users: []string{"gina"}},
		},
		Agents:    []policies.AgentIdentity{{Login: "agent-bot", Email: "agent@example.com"}},
		AppLogins: []string{"agentgate[bot]"},
	}
	dir = directory{
		perms: map[string]Permission{
			"carol": PermWrite, "dave": PermAdmin, "mallory": PermWrite, "erin": PermWrite, "opal": PermRead,
			"agent-bot": PermWrite, "renovate[bot]": PermWrite, "frank": PermWrite, "henry": PermWrite,
			"ivan": PermMaintain, "agentgate[bot]": PermAdmin, "gina": PermWrite,
		},
		teams: map[string][]string{"acme/release": {"ivan"}},
	}
)

func promotion() PullRequest {
	return PullRequest{
		Repo: "acme/payments", Number: 7, Source: "staging", Target: "main", Head: head,
		Author:       User{Login: "mallory", ID: 10},
		Contributors: []User{{Login: "agent-bot", Email: "agent@example.com"}, {Login: "erin", ID: 12}, {Email: "frank@example.com"}},
		Launchers:    []User{{Login: "oscar"}},
	}
}

func cmd(login string) Command {
	return Command{Approver: User{Login: login, Type: "User"}, CommentID: 99, DeliveryID: "d-1", Action: "created"}
}

func TestApprovalAttacksAreRefused(t *testing.T) {
	tests := []struct {
		name   string
		pr     func(PullRequest) PullRequest
		cmd    Command
		prior  []Approval
		dir    Directory
		reason Reason
		msg    string
	}{
		{name: "self-approval by the PR author", cmd: cmd("mallory"), reason: ReasonAuthor, msg: "authors cannot approve"},
		{name: "author matched by id despite renamed login", cmd: Command{Approver: User{Login: "mallory2", ID: 10}, Action: "created"}, reason: ReasonAuthor},
		{name: "co-committer of a commit", cmd: cmd("erin"), reason: ReasonContributor, msg: "contributors cannot approve"},
		{name: "committer without GitHub user matched by e-mail", cmd: Command{Approver: User{Login: "frank", Email: "Frank@example.com"}, Action: "created"}, reason: ReasonContributor},
		{name: "human who launched the run", cmd: cmd("oscar"), reason: ReasonLauncher},
		{name: "co-author credited by a Co-authored-by trailer", pr: func(p PullRequest) PullRequest {
			p.Contributors = append(p.Contributors, CoAuthors("fix\n\nCo-authored-by: Dave D <dave@example.com>")...)
			return p
		}, cmd: Command{Approver: User{Login: "dave", Email: "DAVE@example.com"}, Action: "created"}, reason: ReasonContributor},
		{name: "agent identity", cmd: cmd("agent-bot"), reason: ReasonAgentIdentity, msg: "agents never approve"},
		{name: "agent identity by e-mail", cmd: Command{Approver: User{Login: "someone", Email: "AGENT@example.com"}, Action: "created"}, reason: ReasonAgentIdentity},
		{name: "bot by [bot] login", cmd: cmd("renovate[bot]"), reason: ReasonBot},
		{name: "bot by type", cmd: Command{Approver: User{Login: "helper", Type: "Bot"}, Action: "created"}, reason: ReasonBot},
		{name: "our own App", cmd: Command{Approver: User{Login: "AgentGate[bot]"}, Action: "created"}, reason: ReasonBot},
		{name: "user without write permission", cmd: cmd("opal"), reason: ReasonNoWrite, msg: "read permission"},
		{name: "user unknown to the repository", cmd: cmd("stranger"), reason: ReasonNoWrite, msg: "none permission"},
		{name: "writer who is not an approver of the rung", cmd: cmd("henry"), reason: ReasonNotApprover, msg: "not an approver of main"},
		{name: "approver of another rung", cmd: cmd("gina"), reason: ReasonNotApprover},
		{name: "stale SHA", cmd: func() Command { c := cmd("carol"); c.SHA = older[:10]; return c }(), reason: ReasonStaleSHA, msg: "not the current head " + head},
		{name: "malformed SHA", cmd: func() Command { c := cmd("carol"); c.SHA = "HEAD~1"; return c }(), reason: ReasonMalformed},
		{name: "edited comment (action edited)", cmd: func() Command { c := cmd("carol"); c.Action = "edited"; return c }(), reason: ReasonEdited},
		{name: "edited comment (body changed since)", cmd: func() Command { c := cmd("carol"); c.Edited = true; return c }(), reason: ReasonEdited},
		{name: "replayed delivery of the approving comment", cmd: cmd("carol"),
			prior: []Approval{{Repo: "acme/payments", Number: 7, CommentID: 99, DeliveryID: "d-1", HeadSHA: head, Target: "main"}}, reason: ReasonReplayed},
		{name: "replay under a new delivery id of the same comment", cmd: func() Command { c := cmd("carol"); c.DeliveryID = "d-2"; return c }(),
			prior: []Approval{{CommentID: 99, DeliveryID: "d-1"}}, reason: ReasonReplayed},
		{name: "PR not on the ladder", pr: func(p PullRequest) PullRequest { p.Source = "agent/x"; return p }, cmd: cmd("carol"),
			reason: ReasonNotOnLadder, msg: "agent/x -> main is not on the ladder; next rung: develop"},
		{name: "PR from a feature branch to staging", pr: func(p PullRequest) PullRequest { p.Source, p.Target = "feature", "staging"; return p }, cmd: cmd("carol"),
			reason: ReasonNotOnLadder},
		{name: "rung without human approval", pr: func(p PullRequest) PullRequest { p.Source, p.Target = "develop", "staging"; return p }, cmd: cmd("gina"),
			reason: ReasonNotRequired},
		{name: "permission lookup fails closed", cmd: cmd("carol"), dir: directory{err: errors.New("API 502")}, reason: ReasonLookupFailed, msg: "fail closed"},
		{name: "no directory fails closed", cmd: cmd("carol"), dir: Directory(nil), reason: ReasonLookupFailed},
		{name: "anonymous", cmd: Command{Action: "created"}, reason: ReasonUnknownPerson},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr := promotion()
			if tt.pr != nil {
				pr = tt.pr(pr)
			}
			var d Directory = dir
			if tt.dir != nil || strings.Contains(tt.name, "no directory") {
				d = tt.dir
			}
			a, ref := rules.Approve(context.Background(), pr, tt.cmd, tt.prior, d)
			if ref == nil {
				t.Fatalf("approval accepted: %+v", a)
			}
			if ref.Reason != tt.reason {
				t.Fatalf("reason = %s (%s), want %s", ref.Reason, ref.Message, tt.reason)
			}
			if !strings.Contains(ref.Message, tt.msg) {
				t.Fatalf("message %q does not contain %q", ref.Message, tt.msg)
			}
		})
	}
}

func TestLegitimateApprovalAccepted(t *testing.T) {
	for _, c := range []Command{
		cmd("carol"),
		func() Command { c := cmd("dave"); c.SHA = head[:7]; return c }(),
		func() Command { c := cmd("carol"); c.SHA = strings.ToUpper(head); return c }(),
		cmd("ivan"), // via team membership
	} {
		a, ref := rules.Approve(context.Background(), promotion(), c, nil, dir)
		if ref != nil {
			t.Fatalf("%s refused: %s", c.Approver.Login, ref.Message)
		}
		if a.HeadSHA != head || a.Target != "main" || a.Source != "staging" || a.Number != 7 || a.Approver.Login != c.Approver.Login {
			t.Fatalf("approval not bound to the promotion: %+v", a)
		}
		if res := Evaluate(promotion(), []Approval{a}); !res.Approved {
			t.Fatalf("evaluate: %s", res.Explanation())
		}
	}
}

func TestApprovalVoidedByNewPush(t *testing.T) {
	pr := promotion()
	a, ref := rules.Approve(context.Background(), pr, cmd("carol"), nil, dir)
	if ref != nil {
		t.Fatal(ref)
	}
	pr.Head = older // a new push moved the head; then a merge is attempted
	res := Evaluate(pr, []Approval{a})
	if res.Approved {
		t.Fatal("approval survived a new push")
	}
	if len(res.Dismissed) != 1 || res.Dismissed[0].Reason != ReasonNewPush {
		t.Fatalf("dismissed = %+v", res.Dismissed)
	}
	if !strings.Contains(res.Explanation(), "ignored 1 approval(s): 1 voided_by_new_push") {
		t.Fatalf("explanation %q", res.Explanation())
	}
}

func TestRetargetVoidsApproval(t *testing.T) {
	pr := promotion()
	a, ref := rules.Approve(context.Background(), pr, cmd("carol"), nil, dir)
	if ref != nil {
		t.Fatal(ref)
	}
	pr.Target = "release" // retargeted, same head
	res := Evaluate(pr, []Approval{a})
	if res.Approved || len(res.Dismissed) != 1 || res.Dismissed[0].Reason != ReasonRetarget {
		t.Fatalf("result = %+v", res)
	}
}

func TestEvaluateIgnoresOtherPromotionsAndCountsAuto(t *testing.T) {
	pr := promotion()
	other := Approval{Repo: "acme/payments", Number: 8, Target: "main", HeadSHA: head, Approver: User{Login: "carol"}}
	if res := Evaluate(pr, []Approval{other}); res.Approved || len(res.Dismissed) != 0 {
		t.Fatalf("another PR's approval counted or dismissed: %+v", res)
	}
	auto := AutoApproval(pr, "main", "low risk")
	res := Evaluate(pr, []Approval{auto})
	if !res.Approved || !strings.Contains(res.Explanation(), "automatic") {
		t.Fatalf("auto approval: %s", res.Explanation())
	}
}

func TestCheckPerson(t *testing.T) {
	ctx := context.Background()
	if ref := rules.CheckPerson(ctx, "main", User{Login: "carol"}, dir); ref != nil {
		t.Fatal(ref)
	}
	for login, want := range map[string]Reason{"agent-bot": ReasonAgentIdentity, "renovate[bot]": ReasonBot, "henry": ReasonNotApprover, "opal": ReasonNoWrite} {
		ref := rules.CheckPerson(ctx, "main", User{Login: login}, dir)
		if ref == nil || ref.Reason != want {
			t.Fatalf("%s: %v, want %s", login, ref, want)
		}
	}
}

func BenchmarkApprove(b *testing.B) {
	ctx := context.Background()
	pr := promotion()
	c := cmd("ivan")
	for b.Loop() {
		if _, ref := rules.Approve(ctx, pr, c, nil, dir); ref != nil {
			b.Fatal(ref)
		}
	}
}

func TestCoAuthors(t *testing.T) {
	got := CoAuthors("subject\n\nbody\n\nCo-authored-by: Ann Example <ann@example.com>\nco-authored-by:bob <bob@x.org>\nCo-authored-by: no email\n")
	if len(got) != 2 || got[0].Email != "ann@example.com" || got[0].Login != "Ann Example" || got[1].Email != "bob@x.org" {
		t.Fatalf("CoAuthors = %+v", got)
	}
}
