package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"

	"github.com/agentgate/agentgate/gate/approval"
	"github.com/agentgate/agentgate/gate/audit"
	"github.com/agentgate/agentgate/hooks/commands"
	agh "github.com/agentgate/agentgate/hooks/github"
	"github.com/agentgate/agentgate/policies"
)

// commandClient gives the comment commands what they read from GitHub, for
// one installation: comments, reactions, replies, the pull request with
// every contributor, the policy from a branch, live permissions.
type commandClient struct {
	s    *Server
	c    *agh.Client
	inst int64
}

func (cc *commandClient) Comment(ctx context.Context, repo string, id int64) (commands.Comment, bool, error) {
	cm, ok, err := cc.c.GetComment(ctx, repo, id)
	if err != nil || !ok {
		return commands.Comment{}, ok, err
	}
	return commands.Comment{Body: cm.Body, CreatedAt: cm.CreatedAt, UpdatedAt: cm.UpdatedAt}, true, nil
}

func (cc *commandClient) React(ctx context.Context, repo string, commentID int64, content string) error {
	return cc.c.React(ctx, repo, commentID, content)
}

// Reply posts a reply, unless our latest comment on the PR already says
// exactly this: a job retried after its reply was posted must not post it
// twice.
func (cc *commandClient) Reply(ctx context.Context, repo string, number int, body string) error {
	if cs, err := cc.c.Comments(ctx, repo, number, 1000); err == nil {
		for i := len(cs) - 1; i >= 0; i-- {
			if cc.ours(cs[i].User) {
				if cs[i].Body == body {
					return nil
				}
				break
			}
		}
	}
	_, err := cc.c.CreateComment(ctx, repo, number, body)
	return err
}

// ours reports a comment written by this App.
func (cc *commandClient) ours(login string) bool {
	for _, l := range cc.s.cfg.GitHub.AppLogins {
		if strings.EqualFold(l, login) {
			return true
		}
	}
	return len(cc.s.cfg.GitHub.AppLogins) == 0 && strings.HasPrefix(login, "agentgate") && strings.HasSuffix(login, "[bot]")
}

// PullRequest reads the PR and every author and committer of its commits
// (fail closed beyond GitHub's 250-commit listing limit).
func (cc *commandClient) PullRequest(ctx context.Context, repo string, number int) (approval.PullRequest, error) {
	pr, err := cc.c.PullRequest(ctx, repo, number)
	if err != nil {
		return approval.PullRequest{}, err
	}
	if pr.Commits >= agh.MaxPRCommits {
		return approval.PullRequest{}, agh.ErrTooManyCommits
	}
	people, err := cc.c.PullRequestPeople(ctx, repo, number)
	if err != nil {
		return approval.PullRequest{}, err
	}
	out := approval.PullRequest{Repo: repo, Number: number, Source: pr.HeadRef, Target: pr.BaseRef, Head: pr.HeadSHA,
		Author: approval.User{Login: pr.Author, ID: pr.AuthorID, Type: pr.AuthorType}}
	for _, p := range people {
		out.Contributors = append(out.Contributors, approval.User{Login: p.Login, ID: p.ID, Type: p.Type, Email: p.Email})
	}
	return out, nil
}

// PolicyAt loads .agentgate/policy.yaml from the tip of ref (the protected
// base branch), fetched with the installation token.
func (cc *commandClient) PolicyAt(ctx context.Context, repo, ref string) (*policies.Policy, error) {
	token, err := cc.c.Token(ctx)
	if err != nil {
		return nil, err
	}
	// Fetch ref only: the head argument must be a commit, so resolve first.
	dir, shas, err := cc.s.repos.FetchBranch(ctx, repo, token, ref)
	if err != nil {
		return nil, err
	}
	sha, ok := shas[ref]
	if !ok {
		return nil, fmt.Errorf("branch %s of %s not found", ref, repo)
	}
	out, err := exec.CommandContext(ctx, "git", "--git-dir", dir, "show", sha+":"+policies.PolicyFile).Output()
	if err != nil {
		return nil, fmt.Errorf("%s has no %s on %s (%s); commands need the repository policy", repo, policies.PolicyFile, ref, sha[:12])
	}
	return policies.LoadPolicy(policies.PolicyFile, out)
}

func (cc *commandClient) Directory(repo string) approval.Directory {
	return directory{c: cc.c, repo: repo}
}

type directory struct {
	c    *agh.Client
	repo string
}

func (d directory) Permission(ctx context.Context, login string) (approval.Permission, error) {
	p, err := d.c.Permission(ctx, d.repo, login)
	if err != nil {
		return "", err
	}
	return approval.Permission(p), nil
}

func (d directory) IsTeamMember(ctx context.Context, team, login string) (bool, error) {
	return d.c.TeamMember(ctx, team, login)
}

// rechecker enqueues a fresh evaluation of a PR's current head (/recheck).
type rechecker struct {
	s    *Server
	c    *agh.Client
	inst int64
}

func (r rechecker) Recheck(ctx context.Context, repo string, number int, deliveryID string) error {
	pr, err := r.c.PullRequest(ctx, repo, number)
	if err != nil {
		return err
	}
	if _, ok := r.s.ladder.Into(pr.BaseRef); !ok {
		return fmt.Errorf("%s#%d targets %s, which is not a ladder branch", repo, number, pr.BaseRef)
	}
	_, err = r.s.queue.Insert(ctx, EvaluateArgs{Target: Target{DeliveryID: deliveryID, Installation: r.inst, Repo: repo, PR: number,
		HeadRef: pr.HeadRef, HeadSHA: pr.HeadSHA, BaseRef: pr.BaseRef, Rerun: true}})
	return err
}

// commandAudit writes command events to the audit log.
type commandAudit struct{ a Auditor }

func (c commandAudit) Audit(ctx context.Context, e commands.AuditEvent) error {
	payload, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = c.a.Append(ctx, audit.Event{Actor: e.Actor, Kind: e.Kind, Repo: e.Repo, SHA: e.SHA, Payload: json.RawMessage(payload)})
	return err
}

// dispatcher builds the comment-command dispatcher for one installation.
func (s *Server) dispatcher(inst int64) (commands.CommandHandler, error) {
	if s.cmds != nil {
		return s.cmds, nil
	}
	c, err := s.app.Installation(inst)
	if err != nil {
		return nil, err
	}
	cc := &commandClient{s: s, c: c, inst: inst}
	d, err := commands.NewDispatcher(cc, commands.Deps{
		Audit:     commandAudit{a: s.audit},
		Approvals: s.cmdDeps.Approvals,
		Holds:     s.cmdDeps.Holds,
		Queue:     rechecker{s: s, c: c, inst: inst},
		Runs:      s.cmdDeps.Runs,
		Budget:    s.cmdDeps.Budget,
		AppLogins: append([]string(nil), s.cfg.GitHub.AppLogins...),
	})
	if err != nil {
		return nil, err
	}
	d.Log = s.log
	return d, nil
}

var _ commands.GitHubClient = (*commandClient)(nil)
