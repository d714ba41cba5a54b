package github_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	gogithub "github.com/google/go-github/v60/github"

	agh "github.com/agentgate/agentgate/hooks/github"
	"github.com/agentgate/agentgate/test/githubdouble"
)

const repo = "octo/app"

func setup(t *testing.T) (*githubdouble.Double, *agh.Client) {
	t.Helper()
	d := githubdouble.New(t)
	d.AddInstallation(7, repo)
	m, _ := agh.NewMetrics(nil)
	app, err := agh.New(agh.Config{AppID: d.AppID, PrivateKey: d.PrivateKeyPEM, APIURL: d.APIURL, Metrics: m,
		Retry: agh.RetryPolicy{BaseDelay: 20 * time.Millisecond, MaxDelay: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := app.Installation(7)
	if err != nil {
		t.Fatal(err)
	}
	return d, c
}

func sha(c byte) string { return strings.Repeat(string(c), 40) }

func annotations(n int) []agh.Annotation {
	out := make([]agh.Annotation, n)
	for i := range out {
		out[i] = agh.Annotation{Path: "a.go", StartLine: i + 1, Message: fmt.Sprintf("finding %d", i), Level: "warning"}
	}
	return out
}

func TestCheckRunAnnotationsBatchedBy50(t *testing.T) {
	d, c := setup(t)
	cr := agh.CheckRun{Name: "agentgate/develop", HeadSHA: sha('a'), ExternalID: "k-120", Conclusion: "failure", Title: "3 findings", Summary: "## agentgate", Annotations: annotations(120)}
	if _, err := c.PublishCheckRun(context.Background(), repo, cr); err != nil {
		t.Fatal(err)
	}
	runs := d.CheckRuns()
	if len(runs) != 1 {
		t.Fatalf("check runs = %d", len(runs))
	}
	r := runs[0]
	if r.Writes != 3 || len(r.Annotations) != 120 || r.Status != "completed" || r.Conclusion != "failure" {
		t.Fatalf("run = writes %d annotations %d status %s conclusion %s; want 3 writes (50+50+20)", r.Writes, len(r.Annotations), r.Status, r.Conclusion)
	}
	if n := len(d.CallsTo("checks/create")); n != 1 {
		t.Fatalf("creates = %d", n)
	}
	if n := len(d.CallsTo("checks/update")); n != 2 {
		t.Fatalf("updates = %d", n)
	}
}

func TestCheckRunRepublishIsIdempotent(t *testing.T) {
	d, c := setup(t)
	cr := agh.CheckRun{Name: "agentgate/staging", HeadSHA: sha('b'), ExternalID: "k-1", Conclusion: "success", Title: "ok", Summary: "ok"}
	for i := 0; i < 3; i++ {
		if _, err := c.PublishCheckRun(context.Background(), repo, cr); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(d.CheckRuns()); n != 1 {
		t.Fatalf("check runs = %d, want 1", n)
	}
	cr.ExternalID = "k-2" // a new evaluation of the same SHA is a new run
	if _, err := c.PublishCheckRun(context.Background(), repo, cr); err != nil {
		t.Fatal(err)
	}
	if n := len(d.CheckRuns()); n != 2 {
		t.Fatalf("check runs = %d, want 2", n)
	}
}

func TestCheckRunLandsThroughOutages(t *testing.T) {
	cases := []struct {
		name  string
		fault githubdouble.Fault
	}{
		{"500 on create", githubdouble.Fault{OperationID: "checks/create", Status: 500, Times: 2}},
		{"502 on list", githubdouble.Fault{OperationID: "checks/list-for-ref", Status: 502, Times: 3}},
		{"secondary rate limit on create", githubdouble.Fault{OperationID: "checks/create", Status: 403, SecondaryRateLimit: true, RetryAfter: time.Second, Times: 2}},
		{"429 on token", githubdouble.Fault{OperationID: "apps/create-installation-access-token", Status: 429, RetryAfter: time.Second, Times: 1}},
		{"500 for a while", githubdouble.Fault{Status: 500, Until: time.Now().Add(1500 * time.Millisecond)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, c := setup(t)
			if !tc.fault.Until.IsZero() {
				tc.fault.Until = time.Now().Add(1500 * time.Millisecond)
			}
			d.Inject(tc.fault)
			cr := agh.CheckRun{Name: "agentgate/main", HeadSHA: sha('c'), ExternalID: "k", Conclusion: "success", Title: "ok", Summary: "ok"}
			if _, err := c.PublishCheckRun(context.Background(), repo, cr); err != nil {
				t.Fatal(err)
			}
			if n := len(d.CheckRuns()); n != 1 {
				t.Fatalf("check runs = %d, want exactly 1", n)
			}
		})
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	d, c := setup(t)
	d.SetPull(repo, githubdouble.Pull{Number: 4, HeadRef: "agent/x", HeadSHA: sha('d'), BaseRef: "develop"})
	d.Inject(githubdouble.Fault{OperationID: "pulls/get", Status: 403, SecondaryRateLimit: true, RetryAfter: time.Second, Times: 1})
	start := time.Now()
	if _, err := c.PullRequest(context.Background(), repo, 4); err != nil {
		t.Fatal(err)
	}
	var first, second time.Time
	for _, call := range d.CallsTo("pulls/get") {
		if first.IsZero() {
			first = call.Time
		} else {
			second = call.Time
		}
	}
	if gap := second.Sub(first); gap < 900*time.Millisecond {
		t.Fatalf("retried after %v, Retry-After was 1s (total %v)", gap, time.Since(start))
	}
}

func TestPrimaryRateLimitWaitsForReset(t *testing.T) {
	d, c := setup(t)
	d.SetPull(repo, githubdouble.Pull{Number: 6, HeadRef: "agent/y", HeadSHA: sha('d'), BaseRef: "develop"})
	d.Inject(githubdouble.Fault{OperationID: "pulls/get", Status: 403, PrimaryRateLimit: true, RetryAfter: 2 * time.Second, Times: 1})
	start := time.Now()
	if _, err := c.PullRequest(context.Background(), repo, 6); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < time.Second {
		t.Fatalf("retried after %v; x-ratelimit-reset was ~2s away", el)
	}
	if n := len(d.CallsTo("pulls/get")); n != 2 {
		t.Fatalf("pulls/get calls = %d, want 2", n)
	}
}

func TestNetworkFailuresAreRetried(t *testing.T) {
	d := githubdouble.New(t)
	d.AddInstallation(7, repo)
	m, _ := agh.NewMetrics(nil)
	app, err := agh.New(agh.Config{AppID: d.AppID, PrivateKey: d.PrivateKeyPEM, APIURL: d.APIURL, Metrics: m,
		Timeout: 300 * time.Millisecond, Retry: agh.RetryPolicy{BaseDelay: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := app.Installation(7)
	d.SetPull(repo, githubdouble.Pull{Number: 8, HeadRef: "agent/z", HeadSHA: sha('e'), BaseRef: "develop"})
	d.Inject(githubdouble.Fault{OperationID: "pulls/get", HangUp: true, Times: 1})
	d.Inject(githubdouble.Fault{OperationID: "pulls/get", Delay: time.Second, Times: 1})
	pr, err := c.PullRequest(context.Background(), repo, 8)
	if err != nil || pr.HeadRef != "agent/z" {
		t.Fatalf("PullRequest = %+v, %v", pr, err)
	}
	// The timed-out attempt is recorded when its handler notices the
	// client went away; give it a moment.
	for i := 0; i < 100 && len(d.CallsTo("pulls/get")) < 3; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(d.CallsTo("pulls/get")); n != 3 {
		t.Fatalf("pulls/get attempts = %d, want 3 (hang-up, timeout, answer)", n)
	}
	// A create is not blindly repeated after a hang-up: the error surfaces
	// (PublishCheckRun looks the run up before trying again).
	d.Inject(githubdouble.Fault{OperationID: "checks/create", HangUp: true, Times: 1})
	_, _, err = c.GoGitHub().Checks.CreateCheckRun(context.Background(), "octo", "app", gogithub.CreateCheckRunOptions{Name: "x", HeadSHA: sha('f'), Status: gogithub.String("queued")})
	if err == nil {
		t.Fatal("a hung-up create was retried blindly")
	}
}

func TestMergePinnedToSHA(t *testing.T) {
	d, c := setup(t)
	d.SetPull(repo, githubdouble.Pull{Number: 5, HeadRef: "develop", HeadSHA: sha('e'), BaseRef: "staging"})
	if _, err := c.Merge(context.Background(), repo, 5, sha('f'), "merge"); !errors.Is(err, agh.ErrHeadMoved) {
		t.Fatalf("merge with stale sha: %v, want ErrHeadMoved", err)
	}
	if _, err := c.Merge(context.Background(), repo, 5, sha('e'), "merge"); err != nil {
		t.Fatal(err)
	}
	if m := d.Merges(); len(m) != 1 || m[0].SHA != sha('e') {
		t.Fatalf("merges = %+v", m)
	}
}

func TestCommentsReactionsStatusesDispatch(t *testing.T) {
	d, c := setup(t)
	ctx := context.Background()
	id := d.AddComment(repo, 5, "alice", "/approve-promotion")
	got, ok, err := c.GetComment(ctx, repo, id)
	if err != nil || !ok || got.Body != "/approve-promotion" || got.User != "alice" {
		t.Fatalf("GetComment = %+v %v %v", got, ok, err)
	}
	if _, ok, err := c.GetComment(ctx, repo, 99999); ok || err != nil {
		t.Fatalf("missing comment: %v %v", ok, err)
	}
	if err := c.React(ctx, repo, id, "+1"); err != nil {
		t.Fatal(err)
	}
	cid, err := c.CreateComment(ctx, repo, 5, "refused: you wrote the change")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateComment(ctx, repo, cid, "updated"); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 300)
	if err := c.CommitStatus(ctx, repo, sha('a'), "failure", "agentgate/develop", long, ""); err != nil {
		t.Fatal(err)
	}
	if s := d.Statuses(); len(s) != 1 || len(s[0].Description) >= 140 {
		t.Fatalf("statuses = %+v", s)
	}
	if err := c.DispatchWorkflow(ctx, repo, "agentgate-macos.yml", "agent/x", map[string]any{"plan_id": "p1"}); err != nil {
		t.Fatal(err)
	}
	if len(d.Reactions()) != 1 || len(d.Dispatches()) != 1 {
		t.Fatalf("reactions %v dispatches %v", d.Reactions(), d.Dispatches())
	}
	perm, err := c.Permission(ctx, repo, "alice")
	if err != nil || perm == "" {
		t.Fatalf("permission = %q %v", perm, err)
	}
}

func TestConfigRejectsBadInput(t *testing.T) {
	m, _ := agh.NewMetrics(nil)
	d := githubdouble.New(t)
	for name, cfg := range map[string]agh.Config{
		"no app id":   {PrivateKey: d.PrivateKeyPEM, Metrics: m},
		"no key":      {AppID: 1, Metrics: m},
		"garbage key": {AppID: 1, PrivateKey: []byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"), Metrics: m},
		"bad url":     {AppID: 1, PrivateKey: d.PrivateKeyPEM, APIURL: "ftp://x", Metrics: m},
	} {
		if _, err := agh.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	_ = http.StatusOK
}
