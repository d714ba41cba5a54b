package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	gogithub "github.com/google/go-github/v60/github"
	"github.com/riverqueue/river"

	"github.com/agentgate/agentgate/gate/approval"
	"github.com/agentgate/agentgate/gate/audit"
	"github.com/agentgate/agentgate/gate/ladder"
	"github.com/agentgate/agentgate/hooks/commands"
	"github.com/agentgate/agentgate/hooks/webhook"
	"github.com/agentgate/agentgate/internal/store"
)

type dbTx = sql.Tx

// Component is the server's migration component.
const Component = "app"

// Migrations record where the App is installed.
var Migrations = []store.Migration{{
	Version: 1,
	Name:    "app_installations",
	SQLite: `CREATE TABLE app_installations (
	installation_id INTEGER NOT NULL PRIMARY KEY,
	account         TEXT    NOT NULL,
	active          INTEGER NOT NULL,
	updated_at      TEXT    NOT NULL
);
CREATE TABLE app_repositories (
	installation_id INTEGER NOT NULL,
	repo            TEXT    NOT NULL,
	PRIMARY KEY (installation_id, repo)
)`,
	Postgres: `CREATE TABLE app_installations (
	installation_id BIGINT  NOT NULL PRIMARY KEY,
	account         TEXT    NOT NULL,
	active          INTEGER NOT NULL,
	updated_at      TEXT    NOT NULL
);
CREATE TABLE app_repositories (
	installation_id BIGINT  NOT NULL,
	repo            TEXT    NOT NULL,
	PRIMARY KEY (installation_id, repo)
)`,
}}

// handledEvents get a job; every other event is recorded only.
var handledEvents = map[string]bool{
	"push": true, "pull_request": true, "check_run": true, "check_suite": true,
	"issue_comment": true, "installation": true, "installation_repositories": true,
}

func handled(event string) bool { return handledEvents[event] }

// EvaluateArgs is a job evaluating one target (from the reconciler).
type EvaluateArgs struct {
	Target Target `json:"target"`
}

// Kind is River's job kind.
func (EvaluateArgs) Kind() string { return "agentgate_evaluate" }

// ReconcileArgs is the periodic reconciliation job.
type ReconcileArgs struct{}

// Kind is River's job kind.
func (ReconcileArgs) Kind() string { return "agentgate_reconcile" }

type deliveryWorker struct {
	river.WorkerDefaults[webhook.DeliveryArgs]
	s *Server
}

func (w *deliveryWorker) Work(ctx context.Context, job *river.Job[webhook.DeliveryArgs]) error {
	start := time.Now()
	err := w.s.handleDelivery(ctx, job.Args.DeliveryID)
	result := "ok"
	if err != nil {
		result = "error"
	}
	w.s.metrics.jobs.WithLabelValues("delivery:"+job.Args.Event, result).Observe(time.Since(start).Seconds())
	return err
}

type evaluateWorker struct {
	river.WorkerDefaults[EvaluateArgs]
	s *Server
}

func (w *evaluateWorker) Work(ctx context.Context, job *river.Job[EvaluateArgs]) error {
	start := time.Now()
	err := w.s.evaluate(ctx, job.Args.Target)
	result := "ok"
	if err != nil {
		result = "error"
	}
	w.s.metrics.jobs.WithLabelValues("evaluate", result).Observe(time.Since(start).Seconds())
	return err
}

// handleDelivery routes one recorded delivery.
func (s *Server) handleDelivery(ctx context.Context, id string) error {
	d, err := webhook.Load(ctx, s.st, id)
	if errors.Is(err, webhook.ErrUnknownDelivery) {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	log := s.log.With("delivery_id", d.ID, "event", d.Event, "action", d.Action, "repo", d.Repo)
	if d.InstallationID == 0 {
		// A repository or organization webhook, not the App's: there is no
		// installation to act as.
		log.Warn("delivery without an installation; is the webhook configured on the GitHub App rather than on a repository?")
		return river.JobCancel(fmt.Errorf("delivery %s carries no installation", d.ID))
	}
	if d.Event == "check_run" {
		// Decoded by hand: GitHub has sent check_run timestamps that are not
		// RFC 3339 ("2018-04-25 20:42:10"), which go-github refuses.
		targets, err := s.checkRunTargets(d)
		if err != nil {
			log.Warn("cannot decode the delivery; dropped", "err", err)
			return river.JobCancel(err)
		}
		return s.evaluateAll(ctx, targets)
	}
	ev, err := gogithub.ParseWebHook(d.Event, d.Payload)
	if err != nil {
		log.Warn("cannot decode the delivery; dropped", "err", err)
		return river.JobCancel(fmt.Errorf("decode %s delivery %s: %w", d.Event, d.ID, err))
	}
	var targets []Target
	switch e := ev.(type) {
	case *gogithub.PushEvent:
		if err := s.pushSecurity(ctx, d, e); err != nil {
			return err
		}
		targets = s.pushTargets(d, e)
	case *gogithub.PullRequestEvent:
		targets = s.pullRequestTargets(d, e)
	case *gogithub.CheckSuiteEvent:
		if e.GetAction() == "rerequested" {
			cs := e.GetCheckSuite()
			targets = targetsFromPRs(s.onLadder, d.InstallationID, d.Repo, d.ID, cs.GetHeadSHA(), cs.PullRequests, "")
			if len(targets) == 0 && s.ladder.AgentBranch(cs.GetHeadBranch()) {
				if r, ok := s.ladder.Next(cs.GetHeadBranch()); ok {
					targets = []Target{{DeliveryID: d.ID, Installation: d.InstallationID, Repo: d.Repo, HeadRef: cs.GetHeadBranch(), HeadSHA: cs.GetHeadSHA(), BaseRef: r.Target, Rerun: true}}
				}
			}
		}
	case *gogithub.InstallationEvent:
		return s.recordInstallation(ctx, d, e)
	case *gogithub.InstallationRepositoriesEvent:
		return s.recordInstallationRepos(ctx, d, e)
	case *gogithub.IssueCommentEvent:
		return s.handleComment(ctx, d, e)
	default:
		log.Debug("event not acted upon")
		return nil
	}
	if len(targets) == 0 {
		log.Debug("nothing to evaluate")
		return nil
	}
	return s.evaluateAll(ctx, targets)
}

func (s *Server) evaluateAll(ctx context.Context, targets []Target) error {
	var errs []error
	for _, t := range targets {
		if err := s.evaluate(ctx, t); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// onLadder reports a branch that is a rung's target (gated).
func (s *Server) onLadder(branch string) bool { _, ok := s.ladder.Into(branch); return ok }

func isZeroSHA(s string) bool { return s == "" || strings.Trim(s, "0") == "" }

func (s *Server) pushTargets(d *webhook.Delivery, e *gogithub.PushEvent) []Target {
	branch := ladder.Branch(e.GetRef())
	if !strings.HasPrefix(e.GetRef(), "refs/heads/") || e.GetDeleted() || isZeroSHA(e.GetAfter()) || !s.ladder.AgentBranch(branch) {
		return nil
	}
	r, ok := s.ladder.Next(branch)
	if !ok {
		return nil
	}
	return []Target{{DeliveryID: d.ID, Installation: d.InstallationID, Repo: d.Repo, HeadRef: branch, HeadSHA: e.GetAfter(), BaseRef: r.Target}}
}

// pushSecurity applies the ladder's push rules to a push GitHub already
// accepted: an agent identity outside agent/*, a force push or a deletion
// of a ladder branch is recorded as a security event (it cannot be refused
// after the fact; rulesets should have refused it).
func (s *Server) pushSecurity(ctx context.Context, d *webhook.Delivery, e *gogithub.PushEvent) error {
	u := ladder.RefUpdate{Ref: e.GetRef(), Old: e.GetBefore(), New: e.GetAfter(), FastForward: !e.GetForced(),
		Pusher: ladder.Pusher{Login: e.GetSender().GetLogin(), Email: e.GetPusher().GetEmail()}}
	dec := s.ladder.EvaluatePush(u, s.cfg.Agents)
	if !dec.SecurityEvent() {
		return nil
	}
	s.log.Warn("security event", "delivery_id", d.ID, "repo", d.Repo, "ref", u.Ref, "sha", u.New, "stop_reason", string(dec.Stop), "reason", dec.Reason)
	payload, _ := json.Marshal(map[string]any{"delivery_id": d.ID, "ref": u.Ref, "before": u.Old, "after": u.New, "forced": e.GetForced(),
		"pusher": u.Pusher.String(), "stop_reason": dec.Stop, "reason": dec.Reason})
	_, err := s.audit.Append(ctx, audit.Event{Actor: u.Pusher.Login, Kind: "gate.security_event", Repo: d.Repo, SHA: u.New, Payload: json.RawMessage(payload)})
	return err
}

func (s *Server) pullRequestTargets(d *webhook.Delivery, e *gogithub.PullRequestEvent) []Target {
	pr := e.GetPullRequest()
	switch e.GetAction() {
	case "opened", "synchronize", "reopened", "ready_for_review":
	case "edited":
		if e.GetChanges().GetBase() == nil {
			return nil // title or body edits change nothing we evaluate
		}
	default:
		return nil
	}
	if pr.GetDraft() {
		return nil
	}
	base := pr.GetBase().GetRef()
	if _, ok := s.ladder.Into(base); !ok {
		return nil // not a ladder branch: not gated
	}
	if pr.GetHead().GetRepo().GetFullName() != "" && pr.GetHead().GetRepo().GetFullName() != d.Repo {
		s.log.Warn("pull requests from forks are not evaluated", "delivery_id", d.ID, "repo", d.Repo, "pr", pr.GetNumber())
		return nil
	}
	return []Target{{DeliveryID: d.ID, Installation: d.InstallationID, Repo: d.Repo, PR: pr.GetNumber(),
		HeadRef: pr.GetHead().GetRef(), HeadSHA: pr.GetHead().GetSHA(), BaseRef: base}}
}

func (s *Server) recordInstallation(ctx context.Context, d *webhook.Delivery, e *gogithub.InstallationEvent) error {
	inst := e.GetInstallation()
	active := 1
	switch e.GetAction() {
	case "deleted", "suspend":
		active = 0
	}
	return s.st.InTx(ctx, func(tx *dbTx) error {
		now := time.Now().UTC().Format(time.RFC3339)
		if _, err := tx.ExecContext(ctx, s.st.Rebind(`INSERT INTO app_installations (installation_id, account, active, updated_at)
			VALUES (?, ?, ?, ?) ON CONFLICT (installation_id) DO UPDATE SET account = excluded.account, active = excluded.active, updated_at = excluded.updated_at`),
			inst.GetID(), inst.GetAccount().GetLogin(), active, now); err != nil {
			return err
		}
		if e.GetAction() == "deleted" {
			_, err := tx.ExecContext(ctx, s.st.Rebind(`DELETE FROM app_repositories WHERE installation_id = ?`), inst.GetID())
			return err
		}
		for _, r := range e.Repositories {
			if _, err := tx.ExecContext(ctx, s.st.Rebind(`INSERT INTO app_repositories (installation_id, repo) VALUES (?, ?) ON CONFLICT DO NOTHING`),
				inst.GetID(), r.GetFullName()); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Server) recordInstallationRepos(ctx context.Context, d *webhook.Delivery, e *gogithub.InstallationRepositoriesEvent) error {
	id := e.GetInstallation().GetID()
	return s.st.InTx(ctx, func(tx *dbTx) error {
		now := time.Now().UTC().Format(time.RFC3339)
		if _, err := tx.ExecContext(ctx, s.st.Rebind(`INSERT INTO app_installations (installation_id, account, active, updated_at)
			VALUES (?, ?, 1, ?) ON CONFLICT (installation_id) DO UPDATE SET active = 1, updated_at = excluded.updated_at`),
			id, e.GetInstallation().GetAccount().GetLogin(), now); err != nil {
			return err
		}
		for _, r := range e.RepositoriesAdded {
			if _, err := tx.ExecContext(ctx, s.st.Rebind(`INSERT INTO app_repositories (installation_id, repo) VALUES (?, ?) ON CONFLICT DO NOTHING`), id, r.GetFullName()); err != nil {
				return err
			}
		}
		for _, r := range e.RepositoriesRemoved {
			if _, err := tx.ExecContext(ctx, s.st.Rebind(`DELETE FROM app_repositories WHERE installation_id = ? AND repo = ?`), id, r.GetFullName()); err != nil {
				return err
			}
		}
		return nil
	})
}

// InstalledRepos lists the recorded repositories of active installations.
func (s *Server) InstalledRepos(ctx context.Context) (map[int64][]string, error) {
	rows, err := s.st.DB().QueryContext(ctx, `SELECT i.installation_id, r.repo FROM app_installations i
		JOIN app_repositories r ON r.installation_id = i.installation_id WHERE i.active = 1 ORDER BY r.repo`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64][]string{}
	for rows.Next() {
		var id int64
		var repo string
		if err := rows.Scan(&id, &repo); err != nil {
			return nil, err
		}
		out[id] = append(out[id], repo)
	}
	return out, rows.Err()
}

func (s *Server) activeInstallations(ctx context.Context) ([]int64, error) {
	rows, err := s.st.DB().QueryContext(ctx, `SELECT installation_id FROM app_installations WHERE active = 1`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func (s *Server) handleComment(ctx context.Context, d *webhook.Delivery, e *gogithub.IssueCommentEvent) error {
	c := e.GetComment()
	ev := commands.Event{
		DeliveryID: d.ID, Action: e.GetAction(), Repo: d.Repo, Number: e.GetIssue().GetNumber(),
		IsPullRequest: e.GetIssue().IsPullRequest(), CommentID: c.GetID(), Body: c.GetBody(),
		Commenter: user(c.GetUser()), Sender: user(e.GetSender()),
		CreatedAt: c.GetCreatedAt().Time, UpdatedAt: c.GetUpdatedAt().Time,
	}
	h, err := s.dispatcher(d.InstallationID)
	if err != nil {
		return err
	}
	return h.HandleComment(ctx, ev)
}

func user(u *gogithub.User) approval.User {
	return approval.User{ID: u.GetID(), Login: u.GetLogin(), Type: u.GetType()}
}

type reconcileWorker struct {
	river.WorkerDefaults[ReconcileArgs]
	s *Server
}

// Work lists open pull requests into ladder branches of every installed
// repository and enqueues an evaluation for each head without an
// agentgate check run: GitHub never redelivers a failed webhook by itself.
func (w *reconcileWorker) Work(ctx context.Context, _ *river.Job[ReconcileArgs]) error {
	n, err := w.s.Reconcile(ctx)
	if err != nil {
		return err
	}
	w.s.log.Info("reconciled", "evaluations_enqueued", n)
	return nil
}

// Reconcile runs one reconciliation pass and returns how many evaluations
// it enqueued.
func (s *Server) Reconcile(ctx context.Context) (int, error) {
	ids, err := s.activeInstallations(ctx)
	if err != nil {
		return 0, err
	}
	enqueued := 0
	var errs []error
	for _, id := range ids {
		c, err := s.app.Installation(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		repos, err := c.InstallationRepos(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, repo := range repos {
			prs, err := c.OpenPullRequests(ctx, repo, "", 1000)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, pr := range prs {
				if _, ok := s.ladder.Into(pr.BaseRef); !ok || pr.Draft {
					continue
				}
				has, err := c.HasCheckRun(ctx, repo, pr.HeadSHA, CheckName(pr.BaseRef))
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if has {
					continue
				}
				t := Target{DeliveryID: "reconcile", Installation: id, Repo: repo, PR: pr.Number, HeadRef: pr.HeadRef, HeadSHA: pr.HeadSHA, BaseRef: pr.BaseRef}
				if _, err := s.queue.Insert(ctx, EvaluateArgs{Target: t}); err != nil {
					errs = append(errs, err)
					continue
				}
				enqueued++
			}
		}
	}
	return enqueued, errors.Join(errs...)
}

// checkRunEvent is the part of a check_run delivery agentgate reads.
type checkRunEvent struct {
	Action   string `json:"action"`
	CheckRun struct {
		Name       string `json:"name"`
		HeadSHA    string `json:"head_sha"`
		CheckSuite struct {
			HeadBranch string `json:"head_branch"`
		} `json:"check_suite"`
		PullRequests []struct {
			Number int `json:"number"`
			Head   struct {
				Ref string `json:"ref"`
			} `json:"head"`
			Base struct {
				Ref string `json:"ref"`
			} `json:"base"`
		} `json:"pull_requests"`
	} `json:"check_run"`
}

// checkRunTargets: a rerequested agentgate/<target> run is evaluated again.
func (s *Server) checkRunTargets(d *webhook.Delivery) ([]Target, error) {
	var e checkRunEvent
	if err := json.Unmarshal(d.Payload, &e); err != nil {
		return nil, fmt.Errorf("decode check_run delivery %s: %w", d.ID, err)
	}
	if e.Action != "rerequested" {
		return nil, nil
	}
	cr := e.CheckRun
	target, ok := strings.CutPrefix(cr.Name, "agentgate/")
	if !ok || target == "" {
		return nil, nil
	}
	var out []Target
	if !s.onLadder(target) {
		return nil, nil
	}
	for _, p := range cr.PullRequests {
		if p.Base.Ref != target {
			continue
		}
		out = append(out, Target{DeliveryID: d.ID, Installation: d.InstallationID, Repo: d.Repo, PR: p.Number,
			HeadRef: p.Head.Ref, HeadSHA: cr.HeadSHA, BaseRef: target, Rerun: true})
	}
	if len(out) == 0 {
		if b := cr.CheckSuite.HeadBranch; s.ladder.AgentBranch(b) {
			if r, ok := s.ladder.Next(b); ok && r.Target == target {
				out = append(out, Target{DeliveryID: d.ID, Installation: d.InstallationID, Repo: d.Repo, HeadRef: b, HeadSHA: cr.HeadSHA, BaseRef: target, Rerun: true})
			}
		}
	}
	return out, nil
}
