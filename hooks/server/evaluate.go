package server

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	gogithub "github.com/google/go-github/v60/github"

	"github.com/agentgate/agentgate/gate/audit"
	agh "github.com/agentgate/agentgate/hooks/github"
)

// Target is one evaluation to run: a head SHA for a rung.
type Target struct {
	DeliveryID   string `json:"delivery_id"`
	Installation int64  `json:"installation"`
	Repo         string `json:"repo"`
	PR           int    `json:"pr,omitempty"` // 0: a push to a branch without a PR
	HeadRef      string `json:"head_ref"`
	HeadSHA      string `json:"head_sha"`
	BaseRef      string `json:"base_ref"` // the target branch
	// Rerun makes a new check run even if one exists for the same inputs
	// (check_run/check_suite rerequested, /recheck).
	Rerun bool `json:"rerun,omitempty"`
}

func (t Target) key() string {
	if t.PR > 0 {
		return fmt.Sprintf("%s#%d", t.Repo, t.PR)
	}
	return t.Repo + "@" + t.HeadRef
}

// CheckName is the check run's name: the target in the name means an
// approval for one target cannot be carried to another by retargeting.
func CheckName(target string) string { return "agentgate/" + target }

// externalID is the check run's idempotency key. Without Rerun it depends
// only on what was evaluated, so a retried job or a second event about the
// same head never posts twice.
func (t Target) externalID(baseSHA string) string {
	h := sha256.New()
	// The PR number is left out on purpose: a push and a pull_request
	// event about the same head, target and base are one evaluation.
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s", t.Repo, t.HeadSHA, t.BaseRef, baseSHA)
	if t.Rerun {
		fmt.Fprintf(h, "\x00rerun\x00%s", t.DeliveryID)
	}
	return "agentgate-v1-" + hex.EncodeToString(h.Sum(nil))[:32]
}

// Auditor appends decisions to the audit log (*audit.Log).
type Auditor interface {
	Append(ctx context.Context, e audit.Event) (audit.Record, error)
}

// serializer runs one evaluation at a time per repository+PR (or branch)
// and lets a newer head cancel an older head's evaluation in flight.
type serializer struct {
	mu    sync.Mutex
	slots map[string]*slot
}

type slot struct {
	lock    chan struct{}
	head    string
	cancel  context.CancelCauseFunc
	waiters int
}

var errSuperseded = errors.New("superseded by a newer head")

func newSerializer() *serializer { return &serializer{slots: map[string]*slot{}} }

// supersede cancels an evaluation of key that is running for another head.
func (s *serializer) supersede(key, head string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sl, ok := s.slots[key]; ok && sl.cancel != nil && sl.head != head {
		sl.cancel(errSuperseded)
	}
}

// acquire waits for key's turn and returns a context cancelled when a newer
// head supersedes this one.
func (s *serializer) acquire(ctx context.Context, key, head string) (context.Context, func(), error) {
	s.mu.Lock()
	sl, ok := s.slots[key]
	if !ok {
		sl = &slot{lock: make(chan struct{}, 1)}
		s.slots[key] = sl
	}
	sl.waiters++
	s.mu.Unlock()
	done := func() {
		s.mu.Lock()
		sl.waiters--
		if sl.waiters == 0 {
			delete(s.slots, key)
		}
		s.mu.Unlock()
	}
	select {
	case sl.lock <- struct{}{}:
	case <-ctx.Done():
		done()
		return nil, nil, ctx.Err()
	}
	cctx, cancel := context.WithCancelCause(ctx)
	s.mu.Lock()
	sl.head, sl.cancel = head, cancel
	s.mu.Unlock()
	return cctx, func() {
		s.mu.Lock()
		sl.cancel, sl.head = nil, ""
		s.mu.Unlock()
		cancel(nil)
		<-sl.lock
		done()
	}, nil
}

// crossReplicaLock serialises evaluations of one key across replicas on
// PostgreSQL with a session advisory lock held for the evaluation. SQLite
// deployments are a single process, where the serializer suffices.
func (s *Server) crossReplicaLock(ctx context.Context, key string) (func(), error) {
	pool := s.st.Pool()
	if pool == nil {
		return func() {}, nil
	}
	h := sha256.Sum256([]byte("agentgate-eval\x00" + key))
	id := int64(binary.BigEndian.Uint64(h[:8]))
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire a database connection for the evaluation lock: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", id); err != nil {
		conn.Release()
		return nil, fmt.Errorf("take the evaluation lock for %s: %w", key, err)
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", id); err != nil {
			// Closing the session releases the lock for certain.
			_ = conn.Conn().Close(uctx)
		}
		conn.Release()
	}, nil
}

// currentHead reads the head the target refers to now: the PR's head (and
// its base must still be the target), or the branch tip. "" means gone.
func currentHead(ctx context.Context, c *agh.Client, t Target) (string, error) {
	if t.PR > 0 {
		pr, err := c.PullRequest(ctx, t.Repo, t.PR)
		if agh.IsNotFound(err) {
			return "", nil // the pull request is gone (or no longer visible to us)
		}
		if err != nil {
			return "", err
		}
		if pr.State != "open" || pr.BaseRef != t.BaseRef {
			return "", nil
		}
		return pr.HeadSHA, nil
	}
	owner, name, _ := strings.Cut(t.Repo, "/")
	b, _, err := c.GoGitHub().Repositories.GetBranch(ctx, owner, name, t.HeadRef, 0)
	if agh.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("github: read branch %s of %s: %w", t.HeadRef, t.Repo, err)
	}
	return b.GetCommit().GetSHA(), nil
}

// evaluate runs one evaluation end to end: serialise, check the head is
// still current, fetch, evaluate (fail closed), check again, audit, post.
func (s *Server) evaluate(ctx context.Context, t Target) error {
	log := s.log.With("delivery_id", t.DeliveryID, "repo", t.Repo, "pr", t.PR, "sha", t.HeadSHA, "target", t.BaseRef)
	client, err := s.app.Installation(t.Installation)
	if err != nil {
		return err
	}
	cur, err := currentHead(ctx, client, t)
	if err != nil {
		return err
	}
	if cur != t.HeadSHA {
		log.Info("evaluation skipped: head is no longer current", "current", cur)
		s.metrics.evaluations.WithLabelValues("superseded").Inc()
		return nil
	}
	// This head is current: an older head's evaluation in flight is moot.
	s.serial.supersede(t.key(), t.HeadSHA)
	ectx, release, err := s.serial.acquire(ctx, t.key(), t.HeadSHA)
	if err != nil {
		return err
	}
	defer release()
	unlock, err := s.crossReplicaLock(ectx, t.key())
	if err != nil {
		return superseded(ectx, err)
	}
	defer unlock()

	token, err := client.Token(ectx)
	if err != nil {
		return err
	}
	dir, shas, err := s.repos.Fetch(ectx, t.Repo, token, []string{t.HeadRef, t.BaseRef}, t.HeadSHA)
	if errors.Is(err, ErrCommitGone) {
		log.Info("evaluation skipped: head commit is gone")
		return nil
	}
	if err != nil {
		return superseded(ectx, err)
	}
	defer s.repos.Release(ectx, t.Repo, t.HeadSHA)
	baseSHA := shas[t.BaseRef]
	name := CheckName(t.BaseRef)
	ext := t.externalID(baseSHA)
	if _, done, err := client.FindCheckRun(ectx, t.Repo, t.HeadSHA, name, ext); err != nil {
		return superseded(ectx, err)
	} else if done {
		log.Info("check run already posted for these inputs", "external_id", ext)
		return nil
	}

	start := time.Now()
	var res EvalResult
	if baseSHA == "" {
		res = EvalResult{Conclusion: "failure", Title: "Target branch " + t.BaseRef + " not found",
			Summary: fmt.Sprintf("agentgate could not read the target branch `%s`, so it cannot evaluate this change; failing closed.", t.BaseRef)}
	} else {
		res, err = s.eval.Evaluate(ectx, EvalRequest{RepoDir: dir, Repo: t.Repo, Base: baseSHA, Head: t.HeadSHA,
			Source: t.HeadRef, Target: t.BaseRef, PR: t.PR, DeliveryID: t.DeliveryID})
		if err != nil {
			if cause := context.Cause(ectx); ectx.Err() != nil {
				if errors.Is(cause, errSuperseded) {
					log.Info("evaluation cancelled: a newer head arrived")
					s.metrics.evaluations.WithLabelValues("superseded").Inc()
					return nil
				}
				return ectx.Err()
			}
			log.Warn("evaluation failed; reporting failure", "err", err)
			res = EvalResult{Conclusion: "failure", Title: "agentgate could not evaluate this change",
				Summary: "The evaluation failed, so the gate fails closed:\n\n```\n" + err.Error() + "\n```\n\nRe-run the check once the cause is fixed."}
		}
	}
	s.metrics.checkDuration.Observe(time.Since(start).Seconds())
	res = normalize(res)

	// The head may have moved while we evaluated: never post an old head's
	// result once a newer one exists.
	if cur, err := currentHead(ectx, client, t); err != nil {
		return superseded(ectx, err)
	} else if cur != t.HeadSHA {
		log.Info("result not posted: head moved during evaluation", "current", cur)
		s.metrics.evaluations.WithLabelValues("superseded").Inc()
		return nil
	}

	summary := res.Summary + fmt.Sprintf("\n\n---\nEvaluated `%s` for `%s` against `%s` (`%s`).", t.HeadSHA, t.BaseRef, t.BaseRef, baseSHA)
	if res.AttestationDigest != "" {
		summary += fmt.Sprintf("\nAttestation digest: `%s`", res.AttestationDigest)
	}
	payload, _ := json.Marshal(map[string]any{
		"target": t.BaseRef, "pr": t.PR, "head_ref": t.HeadRef, "base_sha": baseSHA, "delivery_id": t.DeliveryID,
		"check_name": name, "external_id": ext, "conclusion": res.Conclusion, "title": res.Title,
		"attestation_digest": res.AttestationDigest, "decision": res.Decision,
	})
	// Written before it is acted on (DESIGN rule 5).
	if _, err := s.audit.Append(context.WithoutCancel(ectx), audit.Event{Actor: "gate", Kind: "gate.decision", Repo: t.Repo, SHA: t.HeadSHA,
		PlanID: res.PlanID, Payload: json.RawMessage(payload)}); err != nil {
		return fmt.Errorf("append the decision to the audit log (nothing was posted): %w", err)
	}
	id, err := client.PublishCheckRun(ectx, t.Repo, agh.CheckRun{Name: name, HeadSHA: t.HeadSHA, ExternalID: ext,
		Conclusion: res.Conclusion, Title: res.Title, Summary: summary, Text: res.Text, Annotations: res.Annotations})
	if err != nil {
		return superseded(ectx, err)
	}
	if s.cfg.StatusMirror {
		state := map[string]string{"success": "success", "neutral": "success", "skipped": "success"}[res.Conclusion]
		if state == "" {
			state = "failure"
		}
		if err := client.CommitStatus(ectx, t.Repo, t.HeadSHA, state, name, res.Title, ""); err != nil {
			log.Warn("status mirror failed", "err", err)
		}
	}
	s.metrics.evaluations.WithLabelValues(res.Conclusion).Inc()
	log.Info("check run posted", "check_run_id", id, "conclusion", res.Conclusion, "external_id", ext, "plan_id", res.PlanID)
	return nil
}

// superseded turns an error caused by a newer head's cancellation into a
// clean finish.
func superseded(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(context.Cause(ctx), errSuperseded) {
		return nil
	}
	return err
}

// targetsFromPRs turns a rerequested check suite's pull requests into
// targets (those into ladder branches, and into target when it is set).
func targetsFromPRs(onLadder func(string) bool, installation int64, repo, delivery, sha string, prs []*gogithub.PullRequest, target string) []Target {
	var out []Target
	for _, p := range prs {
		base := p.GetBase().GetRef()
		if (target != "" && base != target) || !onLadder(base) {
			continue
		}
		out = append(out, Target{DeliveryID: delivery, Installation: installation, Repo: repo, PR: p.GetNumber(),
			HeadRef: p.GetHead().GetRef(), HeadSHA: sha, BaseRef: base, Rerun: true})
	}
	return out
}
