package app_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgate/agentgate/hooks/server"
	"github.com/agentgate/agentgate/hooks/webhook"
	"github.com/agentgate/agentgate/test/githubdouble"
)

type tWriter struct {
	mu sync.Mutex
	t  testing.TB
	on bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.on {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	w := &tWriter{t: t, on: true}
	t.Cleanup(func() { w.mu.Lock(); w.on = false; w.mu.Unlock() })
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func TestPushToAgentBranchPostsCheckRunWithConclusion(t *testing.T) {
	e := startApp(t, server.EvaluatorFunc(verdictEvaluator), nil)
	base := e.repo.tip("develop")
	good := e.repo.commit("agent/good", "success")
	bad := e.repo.commit("agent/bad", "failure")
	for _, p := range []struct{ branch, sha string }{{"agent/good", good}, {"agent/bad", bad}} {
		if code := deliver(t, e.url, "push", newDeliveryID(), pushPayload(t, p.branch, base, p.sha)); code != 202 {
			t.Fatalf("push %s: %d", p.branch, code)
		}
	}
	waitFor(t, 30*time.Second, "two check runs", func() bool { return len(completedOn(e.d, good)) == 1 && len(completedOn(e.d, bad)) == 1 })
	for sha, want := range map[string]string{good: "success", bad: "failure"} {
		r := completedOn(e.d, sha)[0]
		if r.Name != "agentgate/develop" || r.Conclusion != want || r.ExternalID == "" {
			t.Errorf("check run on %s = %s %s (ext %q), want agentgate/develop %s", sha[:7], r.Name, r.Conclusion, r.ExternalID, want)
		}
		if !strings.Contains(r.Summary, sha) {
			t.Errorf("summary does not name the evaluated SHA: %q", r.Summary)
		}
	}
	// Each decision was written to the audit log (before posting).
	var n int
	if err := e.st.DB().QueryRow(`SELECT count(*) FROM audit WHERE kind = 'gate.decision'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("audit decisions = %d, want 2", n)
	}
	// A push to a non-agent branch or a deleted agent branch evaluates nothing.
	if code := deliver(t, e.url, "push", newDeliveryID(), pushPayload(t, "feature/x", base, good)); code != 202 {
		t.Fatal(code)
	}
}

func TestReplayedDeliveryPostsNoSecondCheckRun(t *testing.T) {
	e := startApp(t, server.EvaluatorFunc(verdictEvaluator), nil)
	base := e.repo.tip("develop")
	head := e.repo.commit("agent/replay", "success")
	body := pushPayload(t, "agent/replay", base, head)
	id := newDeliveryID()
	if code := deliver(t, e.url, "push", id, body); code != 202 {
		t.Fatalf("first: %d", code)
	}
	if code := deliver(t, e.url, "push", id, body); code != 200 {
		t.Fatalf("replay: %d, want 200", code)
	}
	waitFor(t, 30*time.Second, "check run", func() bool { return len(completedOn(e.d, head)) == 1 })
	// A second delivery (new id) about the same head and base is
	// idempotent too: same external id, nothing new posted.
	if code := deliver(t, e.url, "push", newDeliveryID(), body); code != 202 {
		t.Fatal(code)
	}
	// And a pull_request event about the same head, target and base is the
	// same evaluation: no second check run either.
	e.d.SetPull(repoName, githubdouble.Pull{Number: 3, HeadRef: "agent/replay", HeadSHA: head, BaseRef: "develop", BaseSHA: base})
	if code := deliver(t, e.url, "pull_request", newDeliveryID(), prPayload(t, "opened", 3, "agent/replay", head, "develop", base)); code != 202 {
		t.Fatal(code)
	}
	time.Sleep(2 * time.Second)
	if n := len(runsOn(e.d, head)); n != 1 {
		t.Fatalf("check runs = %d, want 1", n)
	}
	if n := len(e.d.CallsTo("checks/create")); n != 1 {
		t.Fatalf("creates = %d, want 1", n)
	}
}

// blockingEvaluator blocks on a chosen head until its context ends.
type blockingEvaluator struct {
	block     string
	started   chan struct{}
	mu        sync.Mutex
	cancelled bool
}

func (b *blockingEvaluator) setBlock(sha string) {
	b.mu.Lock()
	b.block = sha
	b.mu.Unlock()
}

func (b *blockingEvaluator) Evaluate(ctx context.Context, req server.EvalRequest) (server.EvalResult, error) {
	b.mu.Lock()
	block := b.block
	b.mu.Unlock()
	if req.Head == block {
		close(b.started)
		<-ctx.Done()
		b.mu.Lock()
		b.cancelled = true
		b.mu.Unlock()
		return server.EvalResult{}, ctx.Err()
	}
	return verdictEvaluator(ctx, req)
}

func TestSynchronizeSupersedesInFlightEvaluation(t *testing.T) {
	ev := &blockingEvaluator{started: make(chan struct{})}
	e := startApp(t, ev, nil)
	base := e.repo.tip("develop")
	head1 := e.repo.commit("agent/sync", "success")
	ev.setBlock(head1)
	e.d.SetPull(repoName, githubdouble.Pull{Number: 7, HeadRef: "agent/sync", HeadSHA: head1, BaseRef: "develop", BaseSHA: base})
	if code := deliver(t, e.url, "pull_request", newDeliveryID(), prPayload(t, "opened", 7, "agent/sync", head1, "develop", base)); code != 202 {
		t.Fatal(code)
	}
	select {
	case <-ev.started:
	case <-time.After(30 * time.Second):
		t.Fatal("evaluation of the first head never started")
	}
	head2 := e.repo.commit("agent/sync", "failure")
	e.d.SetPull(repoName, githubdouble.Pull{Number: 7, HeadRef: "agent/sync", HeadSHA: head2, BaseRef: "develop", BaseSHA: base})
	if code := deliver(t, e.url, "pull_request", newDeliveryID(), prPayload(t, "synchronize", 7, "agent/sync", head2, "develop", base)); code != 202 {
		t.Fatal(code)
	}
	waitFor(t, 30*time.Second, "check run on the new head", func() bool { return len(completedOn(e.d, head2)) == 1 })
	waitFor(t, 10*time.Second, "cancellation of the old evaluation", func() bool { ev.mu.Lock(); defer ev.mu.Unlock(); return ev.cancelled })
	time.Sleep(500 * time.Millisecond)
	if n := len(runsOn(e.d, head1)); n != 0 {
		t.Fatalf("the superseded head got %d check runs", n)
	}
	if r := completedOn(e.d, head2)[0]; r.Conclusion != "failure" || r.Name != "agentgate/develop" {
		t.Fatalf("new head run = %+v", r)
	}
}

func TestWebhookRejectionsEnqueueNothing(t *testing.T) {
	e := startApp(t, server.EvaluatorFunc(verdictEvaluator), nil)
	base := e.repo.tip("develop")
	head := e.repo.commit("agent/reject", "success")
	body := pushPayload(t, "agent/reject", base, head)
	big := append([]byte(`{"pad":"`), bytes.Repeat([]byte("x"), webhook.MaxBody+1)...)
	big = append(big, `"}`...)
	wf := loadPayload(t, "workflow_run/completed.payload.json")
	setRepo(wf)
	wfBody := mustJSON(wf)
	cases := []struct {
		name, event string
		body        []byte
		sig         string
		want        int
	}{
		{"bad signature", "push", body, "sha256=" + strings.Repeat("0", 64), 401},
		{"wrong secret", "push", body, webhook.Sign("not-the-secret", body), 401},
		{"truncated body", "push", body[:len(body)-10], webhook.Sign(secret, body), 401},
		{"missing signature", "push", body, "", 401},
		{"oversized body", "push", big, webhook.Sign(secret, big), 413},
		{"unknown event", "workflow_run", wfBody, webhook.Sign(secret, wfBody), 202},
		{"never-heard-of event", "sponsorship", []byte(`{"action":"created"}`), webhook.Sign(secret, []byte(`{"action":"created"}`)), 202},
	}
	for _, tc := range cases {
		if got := post(t, e.url, tc.event, newDeliveryID(), tc.body, tc.sig); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	var jobs, deliveries int
	e.st.DB().QueryRow(`SELECT count(*) FROM river_job WHERE kind = 'github_delivery'`).Scan(&jobs)
	e.st.DB().QueryRow(`SELECT count(*) FROM webhook_deliveries`).Scan(&deliveries)
	if jobs != 0 || deliveries != 2 {
		t.Fatalf("jobs %d deliveries %d; want 0 jobs and the 2 unhandled events recorded", jobs, deliveries)
	}
	time.Sleep(time.Second)
	if n := len(e.d.CheckRuns()); n != 0 {
		t.Fatalf("check runs = %d", n)
	}
}

func TestCheckRunLandsThroughGitHubOutages(t *testing.T) {
	e := startApp(t, server.EvaluatorFunc(verdictEvaluator), nil)
	base := e.repo.tip("develop")
	head := e.repo.commit("agent/outage", "success")
	e.d.Inject(githubdouble.Fault{OperationID: "repos/get-branch", Status: 502, Times: 2})
	e.d.Inject(githubdouble.Fault{OperationID: "checks/list-for-ref", Status: 500, Times: 2})
	e.d.Inject(githubdouble.Fault{OperationID: "checks/create", Status: 502, Times: 2})
	e.d.Inject(githubdouble.Fault{OperationID: "checks/create", Status: 403, SecondaryRateLimit: true, RetryAfter: time.Second, Times: 2})
	e.d.Inject(githubdouble.Fault{Status: 500, Until: time.Now().Add(2 * time.Second)})
	if code := deliver(t, e.url, "push", newDeliveryID(), pushPayload(t, "agent/outage", base, head)); code != 202 {
		t.Fatal(code)
	}
	waitFor(t, 90*time.Second, "check run despite the outage", func() bool { return len(completedOn(e.d, head)) == 1 })
	time.Sleep(time.Second)
	if n := len(runsOn(e.d, head)); n != 1 {
		t.Fatalf("check runs = %d, want exactly 1", n)
	}
	injected := 0
	for _, c := range e.d.Calls() {
		if c.Injected {
			injected++
		}
	}
	if injected < 8 {
		t.Fatalf("only %d injected failures were served", injected)
	}
}

func TestReconcilerEvaluatesPRWithoutCheckRun(t *testing.T) {
	e := startApp(t, server.EvaluatorFunc(verdictEvaluator), nil)
	base := e.repo.tip("develop")
	head := e.repo.commit("agent/missed", "success")
	e.d.SetPull(repoName, githubdouble.Pull{Number: 9, HeadRef: "agent/missed", HeadSHA: head, BaseRef: "develop", BaseSHA: base})
	e.d.SetPull(repoName, githubdouble.Pull{Number: 10, HeadRef: "feature/y", HeadSHA: head, BaseRef: "feature/base", BaseSHA: base})
	inst := loadPayload(t, "installation/created.payload.json")
	inst["installation"].(map[string]any)["id"] = installation
	inst["repositories"] = []any{map[string]any{"id": 1, "node_id": "x", "name": "app", "full_name": repoName, "private": true}}
	if code := deliver(t, e.url, "installation", newDeliveryID(), mustJSON(inst)); code != 202 {
		t.Fatal(code)
	}
	waitFor(t, 20*time.Second, "installation recorded", func() bool {
		repos, err := e.srv.InstalledRepos(context.Background())
		return err == nil && len(repos[installation]) == 1
	})
	// installation_repositories (no published example: built from its
	// schema) adds and removes repositories.
	ir := map[string]any{
		"action": "added", "repository_selection": "selected",
		"installation":         map[string]any{"id": installation, "account": map[string]any{"login": "octo", "id": 1}},
		"repositories_added":   []any{map[string]any{"id": 2, "node_id": "y", "name": "lib", "full_name": "octo/lib", "private": true}},
		"repositories_removed": []any{},
		"sender":               map[string]any{"login": "octo-admin", "id": 3, "type": "User"},
	}
	if code := deliver(t, e.url, "installation_repositories", newDeliveryID(), mustJSON(ir)); code != 202 {
		t.Fatal(code)
	}
	waitFor(t, 20*time.Second, "repository added", func() bool {
		repos, err := e.srv.InstalledRepos(context.Background())
		return err == nil && len(repos[installation]) == 2
	})
	ir["action"], ir["repositories_added"], ir["repositories_removed"] = "removed", []any{}, ir["repositories_added"]
	if code := deliver(t, e.url, "installation_repositories", newDeliveryID(), mustJSON(ir)); code != 202 {
		t.Fatal(code)
	}
	waitFor(t, 20*time.Second, "repository removed", func() bool {
		repos, err := e.srv.InstalledRepos(context.Background())
		return err == nil && len(repos[installation]) == 1
	})
	n, err := e.srv.Reconcile(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("Reconcile = %d, %v; want 1 evaluation (PR 9 only: PR 10 is not into a ladder branch)", n, err)
	}
	waitFor(t, 30*time.Second, "check run from the reconciler", func() bool { return len(completedOn(e.d, head)) == 1 })
	if n, err := e.srv.Reconcile(context.Background()); err != nil || n != 0 {
		t.Fatalf("second Reconcile = %d, %v; want nothing to do", n, err)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	e := startApp(t, server.EvaluatorFunc(verdictEvaluator), nil)
	waitFor(t, 10*time.Second, "ready", func() bool { return httpStatus(e.url+"/readyz") == 200 })
	if c := httpStatus(e.url + "/healthz"); c != 200 {
		t.Fatalf("healthz %d", c)
	}
	body := httpBody(t, e.url+"/metrics")
	for _, m := range []string{"agentgate_queue_depth", "agentgate_webhook_deliveries_total", "agentgate_github_requests_total"} {
		if m == "agentgate_webhook_deliveries_total" || m == "agentgate_github_requests_total" {
			continue // vectors appear once used
		}
		if !strings.Contains(body, m) {
			t.Errorf("metrics lack %s", m)
		}
	}
	deliver(t, e.url, "push", newDeliveryID(), pushPayload(t, "agent/m", e.repo.tip("develop"), e.repo.commit("agent/m", "success")))
	waitFor(t, 30*time.Second, "metrics after a delivery", func() bool {
		b := httpBody(t, e.url+"/metrics")
		return strings.Contains(b, `agentgate_webhook_deliveries_total{event="push",outcome="accepted"} 1`) &&
			strings.Contains(b, "agentgate_github_requests_total") && strings.Contains(b, `agentgate_evaluations_total{outcome="success"} 1`)
	})
}

func TestServeRefusesConfigWithoutSecret(t *testing.T) {
	d := githubdouble.New(t)
	env := baseEnv(t, d)
	for _, v := range []string{"", " ", "ok,"} {
		env["AGENTGATE_WEBHOOK_SECRET"] = v
		_, err := server.LoadConfig("", func(k string) (string, bool) { x, ok := env[k]; return x, ok })
		if err == nil {
			t.Errorf("secret %q accepted", v)
		}
	}
	delete(env, "AGENTGATE_WEBHOOK_SECRET")
	_, err := server.LoadConfig("", func(k string) (string, bool) { x, ok := env[k]; return x, ok })
	if err == nil || !strings.Contains(err.Error(), "webhook secret") {
		t.Fatalf("no secret: %v", err)
	}
	_ = errors.New
}

func TestCheckRunRerequestedEvaluatesAgain(t *testing.T) {
	e := startApp(t, server.EvaluatorFunc(verdictEvaluator), nil)
	base := e.repo.tip("develop")
	head := e.repo.commit("agent/rerun", "success")
	if code := deliver(t, e.url, "push", newDeliveryID(), pushPayload(t, "agent/rerun", base, head)); code != 202 {
		t.Fatal(code)
	}
	waitFor(t, 30*time.Second, "first check run", func() bool { return len(completedOn(e.d, head)) == 1 })
	// GitHub's published check_run.rerequested payload (with its non-RFC
	// 3339 timestamps), adapted to our run.
	m := loadPayload(t, "check_run/rerequested.payload.json")
	setRepo(m)
	cr := m["check_run"].(map[string]any)
	cr["name"], cr["head_sha"], cr["pull_requests"] = "agentgate/develop", head, []any{}
	cr["check_suite"].(map[string]any)["head_branch"] = "agent/rerun"
	if code := deliver(t, e.url, "check_run", newDeliveryID(), mustJSON(m)); code != 202 {
		t.Fatal(code)
	}
	waitFor(t, 30*time.Second, "second check run", func() bool { return len(completedOn(e.d, head)) == 2 })
	runs := completedOn(e.d, head)
	if runs[0].ExternalID == runs[1].ExternalID {
		t.Fatal("a re-run reused the first run's external id")
	}
	// "Re-run all checks" (check_suite rerequested) evaluates again too.
	cs := loadPayload(t, "check_suite/rerequested.payload.json")
	setRepo(cs)
	suite := cs["check_suite"].(map[string]any)
	suite["head_sha"], suite["head_branch"], suite["pull_requests"] = head, "agent/rerun", []any{}
	if code := deliver(t, e.url, "check_suite", newDeliveryID(), mustJSON(cs)); code != 202 {
		t.Fatal(code)
	}
	waitFor(t, 30*time.Second, "third check run", func() bool { return len(completedOn(e.d, head)) == 3 })
	// Someone else's check run being rerequested is not ours to evaluate.
	cr["name"] = "ci/test"
	if code := deliver(t, e.url, "check_run", newDeliveryID(), mustJSON(m)); code != 202 {
		t.Fatal(code)
	}
	time.Sleep(time.Second)
	if n := len(runsOn(e.d, head)); n != 3 {
		t.Fatalf("check runs = %d, want 3", n)
	}
}

func TestRetargetedPullRequestGetsCheckRunForNewTarget(t *testing.T) {
	e := startApp(t, server.EvaluatorFunc(verdictEvaluator), nil)
	gitCmd(t, e.repo.work, "push", "-q", e.repo.bare, "develop:staging")
	base := e.repo.tip("develop")
	head := e.repo.commit("agent/retarget", "success")
	e.d.SetPull(repoName, githubdouble.Pull{Number: 12, HeadRef: "agent/retarget", HeadSHA: head, BaseRef: "develop", BaseSHA: base})
	if code := deliver(t, e.url, "pull_request", newDeliveryID(), prPayload(t, "opened", 12, "agent/retarget", head, "develop", base)); code != 202 {
		t.Fatal(code)
	}
	waitFor(t, 30*time.Second, "agentgate/develop", func() bool { return len(completedOn(e.d, head)) == 1 })
	// Retarget to staging: GitHub sends edited with changes.base.
	e.d.SetPull(repoName, githubdouble.Pull{Number: 12, HeadRef: "agent/retarget", HeadSHA: head, BaseRef: "staging", BaseSHA: base})
	var m map[string]any
	json.Unmarshal(prPayload(t, "edited", 12, "agent/retarget", head, "staging", base), &m)
	m["changes"] = map[string]any{"base": map[string]any{"ref": map[string]any{"from": "develop"}, "sha": map[string]any{"from": base}}}
	if code := deliver(t, e.url, "pull_request", newDeliveryID(), mustJSON(m)); code != 202 {
		t.Fatal(code)
	}
	waitFor(t, 30*time.Second, "agentgate/staging", func() bool { return len(completedOn(e.d, head)) == 2 })
	names := map[string]bool{}
	for _, r := range completedOn(e.d, head) {
		names[r.Name] = true
	}
	if !names["agentgate/develop"] || !names["agentgate/staging"] {
		t.Fatalf("check run names = %v", names)
	}
	// An edit of the title (no base change) evaluates nothing.
	m["changes"] = map[string]any{"title": map[string]any{"from": "old"}}
	deliver(t, e.url, "pull_request", newDeliveryID(), mustJSON(m))
	time.Sleep(time.Second)
	if n := len(runsOn(e.d, head)); n != 2 {
		t.Fatalf("check runs = %d, want 2", n)
	}
}

func TestPushSecurityEventsAreAudited(t *testing.T) {
	e := startApp(t, server.EvaluatorFunc(verdictEvaluator), func(env map[string]string) {})
	base := e.repo.tip("develop")
	head := e.repo.commit("agent/sec", "success")
	forced := func(branch string, force bool, sender string) []byte {
		var m map[string]any
		json.Unmarshal(pushPayload(t, branch, base, head), &m)
		m["forced"] = force
		m["sender"].(map[string]any)["login"] = sender
		return mustJSON(m)
	}
	deliver(t, e.url, "push", newDeliveryID(), forced("main", true, "mallory"))        // force push to a ladder branch
	deliver(t, e.url, "push", newDeliveryID(), forced("feature/ok", false, "mallory")) // not on the ladder: fine
	waitFor(t, 20*time.Second, "security event in the audit log", func() bool {
		var n int
		e.st.DB().QueryRow(`SELECT count(*) FROM audit WHERE kind = 'gate.security_event' AND payload LIKE '%STOP_UNAUTHORIZED_ACCESS%'`).Scan(&n)
		return n == 1
	})
	time.Sleep(500 * time.Millisecond)
	var n int
	e.st.DB().QueryRow(`SELECT count(*) FROM audit WHERE kind = 'gate.security_event'`).Scan(&n)
	if n != 1 {
		t.Fatalf("security events = %d, want 1", n)
	}
}

// TestGracefulShutdownReturnsInFlightJob: a job still running when the
// grace period ends is cancelled and handed back (retryable, so the next
// start runs it at once) instead of waiting for the stuck-job rescuer.
func TestGracefulShutdownReturnsInFlightJob(t *testing.T) {
	ev := &blockingEvaluator{started: make(chan struct{})}
	e := startApp(t, ev, nil)
	base := e.repo.tip("develop")
	head := e.repo.commit("agent/shutdown", "success")
	ev.setBlock(head)
	if code := deliver(t, e.url, "push", newDeliveryID(), pushPayload(t, "agent/shutdown", base, head)); code != 202 {
		t.Fatal(code)
	}
	select {
	case <-ev.started:
	case <-time.After(30 * time.Second):
		t.Fatal("evaluation never started")
	}
	start := time.Now()
	e.stop() // grace is 5s in the harness
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	var state string
	if err := e.st.DB().QueryRow(`SELECT state FROM river_job WHERE kind = 'github_delivery'`).Scan(&state); err != nil {
		t.Fatal(err)
	}
	if state != "retryable" && state != "available" {
		t.Fatalf("job state after shutdown = %s, want retryable", state)
	}
	if n := len(runsOn(e.d, head)); n != 0 {
		t.Fatalf("check runs = %d", n)
	}
}

// TestEveryPublishedPayloadIsProcessed replays all of GitHub's published
// example payloads through the running server: each is accepted once, and
// every job ends completed (or cancelled for a payload it cannot use),
// none left failing, and the double sees no invalid call.
func TestEveryPublishedPayloadIsProcessed(t *testing.T) {
	e := startApp(t, server.EvaluatorFunc(verdictEvaluator), nil)
	root := filepath.Join(githubdouble.MustSharedTestdata(t), "webhooks")
	files, _ := filepath.Glob(filepath.Join(root, "*", "*.json"))
	if len(files) < 60 {
		t.Fatalf("found %d payloads", len(files))
	}
	for _, f := range files {
		m := loadPayload(t, filepath.Join(filepath.Base(filepath.Dir(f)), filepath.Base(f)))
		setRepo(m)
		if code := deliver(t, e.url, filepath.Base(filepath.Dir(f)), newDeliveryID(), mustJSON(m)); code != 202 {
			t.Errorf("%s: %d", f, code)
		}
	}
	waitFor(t, 60*time.Second, "every job to finish", func() bool {
		var n int
		e.st.DB().QueryRow(`SELECT count(*) FROM river_job WHERE state NOT IN ('completed', 'cancelled', 'discarded')`).Scan(&n)
		return n == 0
	})
	rows, err := e.st.DB().Query(`SELECT kind, state, errors FROM river_job WHERE state <> 'completed'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind, state string
		var errs sql.NullString
		rows.Scan(&kind, &state, &errs)
		t.Errorf("job %s ended %s: %s", kind, state, errs.String)
	}
}

func TestStatusMirrorCarriesTheTarget(t *testing.T) {
	e := startApp(t, server.EvaluatorFunc(verdictEvaluator), func(env map[string]string) { env["AGENTGATE_STATUS_MIRROR"] = "true" })
	base := e.repo.tip("develop")
	head := e.repo.commit("agent/mirror", "failure")
	if code := deliver(t, e.url, "push", newDeliveryID(), pushPayload(t, "agent/mirror", base, head)); code != 202 {
		t.Fatal(code)
	}
	waitFor(t, 30*time.Second, "status", func() bool { return len(e.d.Statuses()) == 1 })
	s := e.d.Statuses()[0]
	if s.SHA != head || s.Context != "agentgate/develop" || s.State != "failure" || len(s.Description) >= 140 {
		t.Fatalf("status = %+v", s)
	}
}

func TestDeliveryWithoutInstallationIsCancelled(t *testing.T) {
	e := startApp(t, server.EvaluatorFunc(verdictEvaluator), nil)
	base := e.repo.tip("develop")
	head := e.repo.commit("agent/noinst", "success")
	var m map[string]any
	json.Unmarshal(pushPayload(t, "agent/noinst", base, head), &m)
	delete(m, "installation") // as a repository webhook sends it
	if code := deliver(t, e.url, "push", newDeliveryID(), mustJSON(m)); code != 202 {
		t.Fatal(code)
	}
	waitFor(t, 20*time.Second, "job cancelled", func() bool {
		var state string
		e.st.DB().QueryRow(`SELECT state FROM river_job WHERE kind = 'github_delivery'`).Scan(&state)
		return state == "cancelled"
	})
	if n := len(e.d.Calls()); n != 0 {
		t.Fatalf("GitHub was called %d times for a delivery without an installation", n)
	}
}
