package githubdouble

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v60/github"
	github88 "github.com/google/go-github/v88/github"
)

// lenientTB records errors instead of failing, for tests that expect the
// double to report a violation.
type lenientTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (l *lenientTB) Errorf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, fmt.Sprintf(format, args...))
}

func (l *lenientTB) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errs...)
}

func client(t *testing.T, d *Double, inst int64) (*github.Client, *ghinstallation.Transport) {
	t.Helper()
	tr, err := ghinstallation.New(http.DefaultTransport, d.AppID, inst, d.PrivateKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	tr.BaseURL = strings.TrimSuffix(d.APIURL, "/")
	// ghinstallation sends the JSON literal null without options; the
	// OpenAPI description (and so the double) wants an object.
	tr.InstallationTokenOptions = &github88.InstallationTokenOptions{}
	c := github.NewClient(&http.Client{Transport: tr})
	u, _ := url.Parse(d.APIURL)
	c.BaseURL = u
	return c, tr
}

func TestInstallationTokenAndValidCheckRunCalls(t *testing.T) {
	d := New(t)
	d.AddInstallation(7, "octo/app")
	c, _ := client(t, d, 7)
	ctx := context.Background()
	sha := strings.Repeat("a", 40)
	run, _, err := c.Checks.CreateCheckRun(ctx, "octo", "app", github.CreateCheckRunOptions{
		Name: "agentgate/develop", HeadSHA: sha, Status: github.String("in_progress"), ExternalID: github.String("k1"),
	})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	_, _, err = c.Checks.UpdateCheckRun(ctx, "octo", "app", run.GetID(), github.UpdateCheckRunOptions{
		Name: "agentgate/develop", Status: github.String("completed"), Conclusion: github.String("success"),
		Output: &github.CheckRunOutput{Title: github.String("ok"), Summary: github.String("all good")},
	})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	list, _, err := c.Checks.ListCheckRunsForRef(ctx, "octo", "app", sha, &github.ListCheckRunsOptions{CheckName: github.String("agentgate/develop")})
	if err != nil {
		t.Fatal(err)
	}
	if list.GetTotal() != 1 || list.CheckRuns[0].GetExternalID() != "k1" || list.CheckRuns[0].GetConclusion() != "success" {
		t.Fatalf("list-for-ref = %+v", list)
	}
	if n := len(d.CallsTo("apps/create-installation-access-token")); n != 1 {
		t.Fatalf("token requests = %d, want 1 (cached)", n)
	}
	// A branch name with a slash routes to get-branch, not to an unknown path.
	if _, _, err := c.Repositories.GetBranch(ctx, "octo", "app", "agent/feature-x", 0); err != nil {
		t.Fatalf("get-branch with slash: %v", err)
	}
	if v := d.Violations(); len(v) != 0 {
		t.Fatalf("violations: %v", v)
	}
}

func TestInvalidAndUnknownRequestsAreViolations(t *testing.T) {
	rec := &lenientTB{TB: t}
	d := New(rec)
	d.AddInstallation(7, "octo/app")
	c, _ := client(t, d, 7)
	ctx := context.Background()
	sha := strings.Repeat("b", 40)
	cases := []struct {
		name string
		call func() error
		want string
	}{
		{"completed without conclusion", func() error {
			_, _, err := c.Checks.CreateCheckRun(ctx, "octo", "app", github.CreateCheckRunOptions{Name: "x", HeadSHA: sha, Status: github.String("completed")})
			return err
		}, "checks/create"},
		{"create without status (discriminator)", func() error {
			_, _, err := c.Checks.CreateCheckRun(ctx, "octo", "app", github.CreateCheckRunOptions{Name: "x", HeadSHA: sha})
			return err
		}, "checks/create"},
		{"unknown status state", func() error {
			_, _, err := c.Repositories.CreateStatus(ctx, "octo", "app", sha, &github.RepoStatus{State: github.String("green"), Context: github.String("agentgate/main")})
			return err
		}, "repos/create-commit-status"},
		{"unknown route", func() error {
			req, _ := c.NewRequest("GET", "repos/octo/app/secret-scanning/alerts", nil)
			_, err := c.Do(ctx, req, nil)
			return err
		}, "unknown call"},
	}
	for _, tc := range cases {
		before := len(rec.errors())
		if err := tc.call(); err == nil {
			t.Errorf("%s: the double accepted the call", tc.name)
		}
		errs := rec.errors()
		if len(errs) != before+1 || !strings.Contains(errs[len(errs)-1], tc.want) {
			t.Errorf("%s: violations %v, want one naming %q", tc.name, errs[before:], tc.want)
		}
	}
}

func TestUnauthenticatedAndExpiredTokensRefused(t *testing.T) {
	d := New(t)
	d.AddInstallation(7, "octo/app")
	anon := github.NewClient(nil)
	u, _ := url.Parse(d.APIURL)
	anon.BaseURL = u
	_, resp, err := anon.PullRequests.Get(context.Background(), "octo", "app", 1)
	if err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous call: %v %v, want 401", err, resp)
	}
	// Forged JWT (other key) cannot mint tokens.
	other := New(t)
	other.AddInstallation(7, "octo/app")
	tr, _ := ghinstallation.New(http.DefaultTransport, d.AppID, 7, other.PrivateKeyPEM)
	tr.BaseURL = strings.TrimSuffix(d.APIURL, "/")
	tr.InstallationTokenOptions = &github88.InstallationTokenOptions{}
	if _, err := tr.Token(context.Background()); err == nil {
		t.Fatal("a JWT signed with another key got a token")
	}
}

func TestFaultsAreServedThenClear(t *testing.T) {
	d := New(t)
	d.AddInstallation(7, "octo/app")
	d.SetPull("octo/app", Pull{Number: 3, HeadRef: "agent/x", HeadSHA: strings.Repeat("c", 40), BaseRef: "develop"})
	d.Inject(Fault{OperationID: "pulls/get", Status: 403, SecondaryRateLimit: true, RetryAfter: time.Second, Times: 1})
	d.Inject(Fault{OperationID: "pulls/get", Status: 502, Times: 1})
	c, _ := client(t, d, 7)
	ctx := context.Background()
	_, _, err := c.PullRequests.Get(ctx, "octo", "app", 3)
	var abuse *github.AbuseRateLimitError
	if !errors.As(err, &abuse) || abuse.GetRetryAfter() != time.Second {
		t.Fatalf("first call: %v, want secondary rate limit with Retry-After 1s", err)
	}
	// go-github itself refuses to call until Retry-After has passed.
	time.Sleep(abuse.GetRetryAfter() + 50*time.Millisecond)
	if _, resp, err := c.PullRequests.Get(ctx, "octo", "app", 3); err == nil || resp.StatusCode != 502 {
		t.Fatalf("second call: %v, want 502", err)
	}
	pr, _, err := c.PullRequests.Get(ctx, "octo", "app", 3)
	if err != nil || pr.GetHead().GetRef() != "agent/x" || pr.GetBase().GetRef() != "develop" {
		t.Fatalf("third call: %v %+v", err, pr)
	}
}

func TestGitSmartHTTPNeedsInstallationToken(t *testing.T) {
	d := New(t)
	d.AddInstallation(7, "octo/app")
	bare := d.AddRepo("octo/app")
	work := t.TempDir()
	git := func(dir string, env []string, args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
		cmd.Env = append(cmd.Env, env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "one"}, {"push", "-q", bare, "main"}} {
		if out, err := git(work, nil, args...); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	clone := filepath.Join(t.TempDir(), "c")
	if out, err := git(t.TempDir(), nil, "clone", "-q", d.GitURL+"octo/app.git", clone); err == nil {
		t.Fatalf("clone without a token succeeded: %s", out)
	}
	_, tr := client(t, d, 7)
	tok, err := tr.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	helper := "!f() { echo username=x-access-token; echo password=$AG_TOKEN; }; f"
	out, err := git(t.TempDir(), []string{"AG_TOKEN=" + tok}, "-c", "credential.helper="+helper, "clone", "-q", d.GitURL+"octo/app.git", clone)
	if err != nil {
		t.Fatalf("clone with token: %v %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(clone, ".git")); err != nil {
		t.Fatal(err)
	}
}

func TestSharedTestdataFound(t *testing.T) {
	p, err := SharedTestdata()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(p, "webhooks", "push")); err != nil {
		t.Fatal(err)
	}
}
