package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentgate/agentgate/gate/approval"
	"github.com/agentgate/agentgate/gate/audit"
	"github.com/agentgate/agentgate/internal/store"
	"github.com/agentgate/agentgate/policies"
)

// fakeGitHub is an in-memory client recording its side effects as strings,
// in the manner of Prow's fakegithub.
type fakeGitHub struct {
	comments  map[int64]Comment
	prs       map[int]approval.PullRequest
	policy    *policies.Policy
	policyRef []string
	perms     map[string]approval.Permission
	teams     map[string][]string
	reactions []string
	replies   []string
}

func (f *fakeGitHub) Comment(_ context.Context, _ string, id int64) (Comment, bool, error) {
	c, ok := f.comments[id]
	return c, ok, nil
}
func (f *fakeGitHub) React(_ context.Context, _ string, id int64, content string) error {
	f.reactions = append(f.reactions, fmt.Sprintf("%d:%s", id, content))
	return nil
}
func (f *fakeGitHub) Reply(_ context.Context, _ string, n int, body string) error {
	f.replies = append(f.replies, body)
	return nil
}
func (f *fakeGitHub) PullRequest(_ context.Context, _ string, n int) (approval.PullRequest, error) {
	pr, ok := f.prs[n]
	if !ok {
		return pr, errors.New("404 Not Found")
	}
	return pr, nil
}
func (f *fakeGitHub) PolicyAt(_ context.Context, _, ref string) (*policies.Policy, error) {
	f.policyRef = append(f.policyRef, ref)
	return f.policy, nil
}
func (f *fakeGitHub) Directory(string) approval.Directory { return f }
func (f *fakeGitHub) Permission(_ context.Context, login string) (approval.Permission, error) {
	return f.perms[login], nil
}
func (f *fakeGitHub) IsTeamMember(_ context.Context, team, login string) (bool, error) {
	for _, m := range f.teams[team] {
		if m == login {
			return true, nil
		}
	}
	return false, nil
}

type memStore struct {
	approvals []approval.Approval
	holds     map[int]bool
	audit     []AuditEvent
	resumed   []string
	budgets   []string
	rechecks  int
}

func (m *memStore) Approvals(_ context.Context, repo string, n int) ([]approval.Approval, error) {
	var out []approval.Approval
	for _, a := range m.approvals {
		if a.Repo == repo && a.Number == n {
			out = append(out, a)
		}
	}
	return out, nil
}
func (m *memStore) SaveApproval(_ context.Context, a approval.Approval) error {
	m.approvals = append(m.approvals, a)
	return nil
}
func (m *memStore) SetHold(_ context.Context, _ string, n int, held bool, _ string) error {
	if m.holds == nil {
		m.holds = map[int]bool{}
	}
	m.holds[n] = held
	return nil
}
func (m *memStore) Audit(_ context.Context, e AuditEvent) error {
	m.audit = append(m.audit, e)
	return nil
}
func (m *memStore) ResumeRun(_ context.Context, plan, by string) error {
	m.resumed = append(m.resumed, plan+":"+by)
	return nil
}
func (m *memStore) ApproveBudget(_ context.Context, plan, by string) error {
	m.budgets = append(m.budgets, plan+":"+by)
	return nil
}
func (m *memStore) Recheck(context.Context, string, int, string) error { m.rechecks++; return nil }

const (
	repo = "acme/payments"
	head = "abcdef0123456789abcdef0123456789abcdef01"
)

var created = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)

func setup() (*Dispatcher, *fakeGitHub, *memStore) {
	gh := &fakeGitHub{
		comments: map[int64]Comment{},
		prs: map[int]approval.PullRequest{
			1: {Repo: repo, Number: 1, Source: "staging", Target: "main", Head: head, Author: approval.User{Login: "mallory"},
				Contributors: []approval.User{{Login: "agent-bot"}, {Login: "erin"}}},
			2: {Repo: repo, Number: 2, Source: "agent/x", Target: "main", Head: head, Author: approval.User{Login: "mallory"}},
		},
		policy: &policies.Policy{
			Approvers:       []policies.RungApprovers{{Rung: "main", Users: []string{"carol", "erin", "opal", "henry-not"}, Teams: []string{"acme/release"}}},
			AgentIdentities: []policies.AgentIdentity{{Login: "agent-bot"}},
		},
		perms: map[string]approval.Permission{"carol": "write", "erin": "write", "opal": "read", "henry": "write", "ivan": "admin", "agent-bot": "write", "mallory": "admin"},
		teams: map[string][]string{"acme/release": {"ivan"}},
	}
	st := &memStore{}
	app := []string{"agentgate[bot]"}
	d := &Dispatcher{
		Client: gh, Audit: st, AppLogins: app, Log: slog.New(slog.DiscardHandler),
		Handlers: []Handler{
			&ApprovePromotion{Client: gh, Store: st, Audit: st, AppLogins: app},
			&Hold{Client: gh, Store: st, Audit: st},
			&Unhold{Client: gh, Store: st, Audit: st, AppLogins: app},
			&Recheck{Client: gh, Queue: st, Audit: st},
			&ResumeRun{Client: gh, Runs: st, Audit: st, AppLogins: app},
			&ApproveBudget{Client: gh, Budget: st, Audit: st, AppLogins: app},
		},
	}
	return d, gh, st
}

var nextID int64 = 100

// comment posts a comment (stored as GitHub would re-read it) and returns its event.
func comment(gh *fakeGitHub, number int, login, body string) Event {
	nextID++
	gh.comments[nextID] = Comment{Body: body, CreatedAt: created, UpdatedAt: created}
	return Event{DeliveryID: fmt.Sprintf("dlv-%d", nextID), Action: "created", Repo: repo, Number: number, IsPullRequest: true,
		CommentID: nextID, Body: body, Commenter: approval.User{Login: login, Type: "User"}, Sender: approval.User{Login: login}, CreatedAt: created, UpdatedAt: created}
}

// TestCommandApprovalAttacks drives the attack table through the whole
// command path (parse, re-read, evaluate, record, react, reply).
func TestCommandApprovalAttacks(t *testing.T) {
	tests := []struct {
		name   string
		event  func(gh *fakeGitHub) Event
		replay bool   // deliver the event twice
		reply  string // substring of the refusal reply; "" means no reply at all
	}{
		{"self-approval by the author", func(gh *fakeGitHub) Event { return comment(gh, 1, "mallory", "/approve-promotion") }, false, "authors cannot approve"},
		{"co-committer", func(gh *fakeGitHub) Event { return comment(gh, 1, "erin", "/approve-promotion") }, false, "contributors cannot approve"},
		{"agent identity", func(gh *fakeGitHub) Event { return comment(gh, 1, "agent-bot", "/approve-promotion") }, false, "agents never approve"},
		{"user without write", func(gh *fakeGitHub) Event { return comment(gh, 1, "opal", "/approve-promotion") }, false, "needs write permission"},
		{"writer who is not an approver", func(gh *fakeGitHub) Event { return comment(gh, 1, "henry", "/approve-promotion") }, false, "not an approver of main"},
		{"stale SHA", func(gh *fakeGitHub) Event { return comment(gh, 1, "carol", "/approve-promotion 0123456") }, false, "not the current head " + head},
		{"malformed argument", func(gh *fakeGitHub) Event { return comment(gh, 1, "carol", "/approve-promotion now please") }, false, "Usage: `/approve-promotion [sha]`"},
		{"PR not on the ladder", func(gh *fakeGitHub) Event { return comment(gh, 2, "carol", "/approve-promotion") }, false, "agent/x -> main is not on the ladder; next rung: develop"},
		{"edited comment (body changed before processing)", func(gh *fakeGitHub) Event {
			ev := comment(gh, 1, "carol", "/approve-promotion")
			gh.comments[ev.CommentID] = Comment{Body: "/approve-promotion", CreatedAt: created, UpdatedAt: created.Add(time.Minute)}
			return ev
		}, false, "edited comments never approve"},
		{"replayed delivery of the approving comment", func(gh *fakeGitHub) Event { return comment(gh, 1, "carol", "/approve-promotion") }, true, "replayed delivery"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, gh, st := setup()
			ev := tt.event(gh)
			if err := d.HandleComment(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			want := 0
			if tt.replay {
				want = 1 // the first delivery is legitimate
				if err := d.HandleComment(context.Background(), ev); err != nil {
					t.Fatal(err)
				}
			}
			if len(st.approvals) != want {
				t.Fatalf("%d approvals recorded, want %d: %+v", len(st.approvals), want, st.approvals)
			}
			if len(gh.replies) != 1 || !strings.Contains(gh.replies[0], tt.reply) {
				t.Fatalf("replies = %q, want one containing %q", gh.replies, tt.reply)
			}
			if last := gh.reactions[len(gh.reactions)-1]; !strings.HasSuffix(last, ":"+ReactRefused) {
				t.Fatalf("reaction %s, want %s", last, ReactRefused)
			}
			if ev := st.audit[len(st.audit)-1]; ev.Kind != "approval.refused" && ev.Kind != "command.malformed" {
				t.Fatalf("last audit event %+v, want approval.refused", ev)
			}
		})
	}
}

func TestCommandsThatNeverReachAHandler(t *testing.T) {
	tests := []struct {
		name  string
		event func(gh *fakeGitHub) Event
		audit string // audit kind expected, "" for none
	}{
		{"quoted command", func(gh *fakeGitHub) Event { return comment(gh, 1, "carol", "> /approve-promotion\nquoting the docs") }, ""},
		{"command inside a code block", func(gh *fakeGitHub) Event { return comment(gh, 1, "carol", "try:\n```\n/approve-promotion\n```") }, ""},
		{"indented code block", func(gh *fakeGitHub) Event { return comment(gh, 1, "carol", "    /approve-promotion") }, ""},
		{"bot comment", func(gh *fakeGitHub) Event {
			ev := comment(gh, 1, "renovate[bot]", "/approve-promotion")
			ev.Commenter.Type = "Bot"
			return ev
		}, ""},
		{"our own App", func(gh *fakeGitHub) Event { return comment(gh, 1, "agentgate[bot]", "/approve-promotion") }, ""},
		{"comment on an issue, not a PR", func(gh *fakeGitHub) Event {
			ev := comment(gh, 1, "carol", "/approve-promotion")
			ev.IsPullRequest = false
			return ev
		}, ""},
		{"edited into a command by its author", func(gh *fakeGitHub) Event {
			ev := comment(gh, 1, "carol", "/approve-promotion")
			ev.Action = "edited"
			return ev
		}, "command.comment_edited"},
		{"edited into a command by someone else", func(gh *fakeGitHub) Event {
			ev := comment(gh, 1, "carol", "/approve-promotion")
			ev.Action, ev.Sender = "edited", approval.User{Login: "mallory"}
			return ev
		}, "command.comment_tampered"},
		{"deleted", func(gh *fakeGitHub) Event {
			ev := comment(gh, 1, "carol", "/approve-promotion")
			ev.Action = "deleted"
			return ev
		}, "command.comment_deleted"},
		{"comment gone before processing", func(gh *fakeGitHub) Event {
			ev := comment(gh, 1, "carol", "/approve-promotion")
			delete(gh.comments, ev.CommentID)
			return ev
		}, "command.comment_gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, gh, st := setup()
			if err := d.HandleComment(context.Background(), tt.event(gh)); err != nil {
				t.Fatal(err)
			}
			if len(st.approvals) != 0 || len(gh.replies) != 0 || len(gh.reactions) != 0 {
				t.Fatalf("acted: approvals %v replies %q reactions %v", st.approvals, gh.replies, gh.reactions)
			}
			var kinds []string
			for _, e := range st.audit {
				kinds = append(kinds, e.Kind)
			}
			if strings.Join(kinds, ",") != tt.audit {
				t.Fatalf("audit = %v, want %q", kinds, tt.audit)
			}
		})
	}
}

func TestCommandLegitimateApproval(t *testing.T) {
	for _, c := range []struct{ who, body string }{
		{"carol", "LGTM, checked the evidence.\n\n/approve-promotion " + head[:7]},
		{"ivan", "/approve-promotion"}, // team member
	} {
		d, gh, st := setup()
		if err := d.HandleComment(context.Background(), comment(gh, 1, c.who, c.body)); err != nil {
			t.Fatal(err)
		}
		if len(st.approvals) != 1 || st.approvals[0].HeadSHA != head || st.approvals[0].Target != "main" || st.approvals[0].Approver.Login != c.who {
			t.Fatalf("approvals = %+v", st.approvals)
		}
		if len(gh.replies) != 0 || len(gh.reactions) != 1 || !strings.HasSuffix(gh.reactions[0], ":+1") {
			t.Fatalf("replies %q reactions %v", gh.replies, gh.reactions)
		}
		if st.audit[0].Kind != "approval.accepted" {
			t.Fatalf("audit %+v", st.audit)
		}
		if gh.policyRef[0] != "main" {
			t.Fatalf("policy read from %q, want the base branch main", gh.policyRef[0])
		}
		if res := approval.Evaluate(gh.prs[1], st.approvals); !res.Approved {
			t.Fatal(res.Explanation())
		}
		// then a new push: the same approval no longer counts at merge time
		pr := gh.prs[1]
		pr.Head = strings.Repeat("9", 40)
		if res := approval.Evaluate(pr, st.approvals); res.Approved {
			t.Fatal("approval survived a new push")
		}
	}
}

func TestOtherCommands(t *testing.T) {
	tests := []struct {
		name   string
		who    string
		body   string
		accept bool
		check  func(*memStore) bool
	}{
		{"hold by a writer", "henry", "/hold", true, func(s *memStore) bool { return s.holds[1] }},
		{"hold by a reader refused", "opal", "/hold", false, func(s *memStore) bool { return !s.holds[1] }},
		{"hold by the agent refused", "agent-bot", "/hold", false, func(s *memStore) bool { return !s.holds[1] }},
		{"unhold by a rung approver", "carol", "/unhold", true, func(s *memStore) bool { v, ok := s.holds[1]; return ok && !v }},
		{"unhold by a mere writer refused", "henry", "/unhold", false, func(s *memStore) bool { _, ok := s.holds[1]; return !ok }},
		{"recheck by a writer", "henry", "/recheck", true, func(s *memStore) bool { return s.rechecks == 1 }},
		{"resume-run by a top-rung approver", "carol", "/resume-run pay-7", true, func(s *memStore) bool { return len(s.resumed) == 1 && s.resumed[0] == "pay-7:carol" }},
		{"resume-run by a writer refused", "henry", "/resume-run pay-7", false, func(s *memStore) bool { return len(s.resumed) == 0 }},
		{"resume-run by the agent refused", "agent-bot", "/resume-run pay-7", false, func(s *memStore) bool { return len(s.resumed) == 0 }},
		{"resume-run without plan id", "carol", "/resume-run", false, func(s *memStore) bool { return len(s.resumed) == 0 }},
		{"approve-budget by a top-rung approver", "ivan", "/approve-budget pay-7", true, func(s *memStore) bool { return len(s.budgets) == 1 }},
		{"approve-budget with a hostile id", "ivan", "/approve-budget ../../etc", false, func(s *memStore) bool { return len(s.budgets) == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, gh, st := setup()
			if err := d.HandleComment(context.Background(), comment(gh, 1, tt.who, tt.body)); err != nil {
				t.Fatal(err)
			}
			if accepted := len(gh.replies) == 0; accepted != tt.accept {
				t.Fatalf("accepted = %v, replies %q", accepted, gh.replies)
			}
			if !tt.check(st) {
				t.Fatalf("state not as expected: %+v", st)
			}
		})
	}
}

func TestHelpTextSaysWhoMayUseEachCommand(t *testing.T) {
	d, _, _ := setup()
	txt := HelpText(d.Handlers)
	for _, h := range d.Handlers {
		if h.Help().Who == "" || !strings.Contains(txt, h.Help().Usage) {
			t.Fatalf("%s: help incomplete", h.Name())
		}
		if !h.Pattern().MatchString(strings.Fields(h.Help().Usage)[0]) && !strings.Contains(h.Help().Usage, "PLAN_ID") {
			t.Fatalf("%s: usage %q does not match its own pattern", h.Name(), h.Help().Usage)
		}
	}
}

func TestNewDispatcherAnswersDisabledCommands(t *testing.T) {
	_, gh, st := setup()
	if _, err := NewDispatcher(gh, Deps{}); err == nil {
		t.Fatal("a dispatcher without an audit log was built")
	}
	d, err := NewDispatcher(gh, Deps{Audit: st, Approvals: st})
	if err != nil {
		t.Fatal(err)
	}
	d.Log = slog.New(slog.DiscardHandler)
	if err := d.HandleComment(context.Background(), comment(gh, 1, "carol", "/hold\n/approve-promotion")); err != nil {
		t.Fatal(err)
	}
	if len(st.approvals) != 1 || len(gh.replies) != 1 || !strings.Contains(gh.replies[0], "/hold is not enabled") {
		t.Fatalf("approvals %d, replies %q", len(st.approvals), gh.replies)
	}
}

func TestAuditLogAdapter(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(ctx, filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := audit.Open(ctx, s, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := (AuditLog{Log: l}).Audit(ctx, AuditEvent{Kind: "approval.refused", Repo: repo, Actor: "mallory", Reason: "pr_author"}); err != nil {
		t.Fatal(err)
	}
	recs, err := l.Tail(ctx, 1)
	if err != nil || len(recs) != 1 || recs[0].Kind != "approval.refused" || !strings.Contains(string(recs[0].Payload), "pr_author") {
		t.Fatalf("records %+v, %v", recs, err)
	}
}
