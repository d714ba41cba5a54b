package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentgate/agentgate/gate/audit"
	"github.com/agentgate/agentgate/hooks/server"
	"github.com/agentgate/agentgate/hooks/webhook"
	"github.com/agentgate/agentgate/internal/store"
	"github.com/agentgate/agentgate/test/githubdouble"
)

const (
	repoName     = "octo/app"
	installation = 4711
	secret       = "whsec-test-current"
)

// repoFixture is a real git repository pushed to the double: main, develop
// and agent branches whose VERDICT file says what the test evaluator returns.
type repoFixture struct {
	t    testing.TB
	work string
	bare string
}

func gitCmd(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir, "GIT_AUTHOR_NAME=agent", "GIT_AUTHOR_EMAIL=agent@example.com",
		"GIT_COMMITTER_NAME=agent", "GIT_COMMITTER_EMAIL=agent@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func newRepo(t testing.TB, d *githubdouble.Double) *repoFixture {
	r := &repoFixture{t: t, work: t.TempDir(), bare: d.AddRepo(repoName)}
	gitCmd(t, r.work, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(r.work, "README.md"), []byte("app\n"), 0o644)
	gitCmd(t, r.work, "add", ".")
	gitCmd(t, r.work, "commit", "-q", "-m", "init")
	gitCmd(t, r.work, "branch", "develop")
	gitCmd(t, r.work, "push", "-q", r.bare, "main", "develop")
	return r
}

// commit creates branch (from develop) if needed, commits VERDICT and
// pushes; it returns the new head SHA.
func (r *repoFixture) commit(branch, verdict string) string {
	if out := gitCmd(r.t, r.work, "branch", "--list", branch); out == "" {
		gitCmd(r.t, r.work, "checkout", "-q", "-b", branch, "develop")
	} else {
		gitCmd(r.t, r.work, "checkout", "-q", branch)
	}
	os.WriteFile(filepath.Join(r.work, "VERDICT"), []byte(verdict+"\n"+time.Now().String()+"\n"), 0o644)
	gitCmd(r.t, r.work, "add", ".")
	gitCmd(r.t, r.work, "commit", "-q", "-m", "work on "+branch)
	gitCmd(r.t, r.work, "push", "-q", "-f", r.bare, branch)
	return gitCmd(r.t, r.work, "rev-parse", "HEAD")
}

func (r *repoFixture) tip(branch string) string {
	return gitCmd(r.t, r.work, "rev-parse", branch)
}

// verdictEvaluator reads VERDICT at head from the fetched clone: it proves
// the clone is real and gives each scenario the conclusion it wants.
func verdictEvaluator(ctx context.Context, req server.EvalRequest) (server.EvalResult, error) {
	out, err := exec.CommandContext(ctx, "git", "--git-dir", req.RepoDir, "show", req.Head+":VERDICT").Output()
	if err != nil {
		return server.EvalResult{}, fmt.Errorf("read VERDICT at %s: %w", req.Head, err)
	}
	v := strings.SplitN(string(out), "\n", 2)[0]
	return server.EvalResult{Conclusion: v, Title: "verdict " + v, Summary: "VERDICT says " + v}, nil
}

type appEnv struct {
	t      *testing.T
	d      *githubdouble.Double
	repo   *repoFixture
	st     *store.Store
	srv    *server.Server
	url    string
	env    map[string]string
	cancel context.CancelFunc
	done   chan error
}

// baseEnv is the environment the server (in process or the binary) runs with.
func baseEnv(t testing.TB, d *githubdouble.Double) map[string]string {
	dir := t.TempDir()
	key := filepath.Join(dir, "app.pem")
	if err := os.WriteFile(key, d.PrivateKeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"AGENTGATE_APP_ID":             fmt.Sprint(d.AppID),
		"AGENTGATE_PRIVATE_KEY_FILE":   key,
		"AGENTGATE_WEBHOOK_SECRET":     "whsec-test-old," + secret,
		"AGENTGATE_GITHUB_API_URL":     d.APIURL,
		"AGENTGATE_GITHUB_GIT_URL":     d.GitURL,
		"AGENTGATE_LISTEN":             "127.0.0.1:0",
		"AGENTGATE_DB":                 filepath.Join(dir, "agentgate.db"),
		"AGENTGATE_CLONE_CACHE":        filepath.Join(dir, "cache"),
		"AGENTGATE_RECONCILE_INTERVAL": "0s",
		"AGENTGATE_WORKERS":            "2",
		"AGENTGATE_LOG_LEVEL":          "debug",
	}
}

func startApp(t *testing.T, eval server.Evaluator, tweak func(map[string]string)) *appEnv {
	t.Helper()
	return startAppWith(t, eval, tweak, nil)
}

func startAppWith(t *testing.T, eval server.Evaluator, tweak func(map[string]string), deps func(*appEnv, *server.Deps)) *appEnv {
	t.Helper()
	d := githubdouble.New(t)
	d.AddInstallation(installation, repoName)
	e := &appEnv{t: t, d: d, repo: newRepo(t, d), env: baseEnv(t, d)}
	if tweak != nil {
		tweak(e.env)
	}
	cfg, err := server.LoadConfig("", func(k string) (string, bool) { v, ok := e.env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e.st, err = store.Open(ctx, cfg.DB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.st.Close() })
	log, err := audit.Open(ctx, e.st, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dp := server.Deps{Evaluator: eval, Audit: log, Logger: testLogger(t)}
	if deps != nil {
		deps(e, &dp)
	}
	e.srv, err = server.New(ctx, cfg, e.st, dp)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.url = "http://" + l.Addr().String()
	rctx, cancel := context.WithCancel(ctx)
	e.cancel, e.done = cancel, make(chan error, 1)
	go func() { e.done <- e.srv.Run(rctx, l, 5*time.Second) }()
	t.Cleanup(e.stop)
	return e
}

func (e *appEnv) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("server: %v", err)
		}
	case <-time.After(20 * time.Second):
		e.t.Errorf("server did not stop within 20s")
	}
}

// --- deliveries: GitHub's published payloads, adapted and signed ---

func loadPayload(t testing.TB, rel string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(githubdouble.MustSharedTestdata(t), "webhooks", rel))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func setRepo(m map[string]any) {
	owner, name, _ := strings.Cut(repoName, "/")
	if r, ok := m["repository"].(map[string]any); ok {
		r["full_name"], r["name"] = repoName, name
		if o, ok := r["owner"].(map[string]any); ok {
			o["login"] = owner
		}
	}
	m["installation"] = map[string]any{"id": installation, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="}
}

func pushPayload(t testing.TB, branch, before, after string) []byte {
	m := loadPayload(t, "push/with-installation.payload.json")
	setRepo(m)
	m["ref"], m["before"], m["after"] = "refs/heads/"+branch, before, after
	m["created"], m["deleted"], m["forced"] = false, false, false
	b, _ := json.Marshal(m)
	return b
}

func prPayload(t testing.TB, action string, number int, headRef, headSHA, baseRef, baseSHA string) []byte {
	m := loadPayload(t, "pull_request/synchronize.payload.json")
	setRepo(m)
	m["action"], m["number"] = action, number
	pr := m["pull_request"].(map[string]any)
	pr["number"], pr["draft"], pr["state"] = number, false, "open"
	for _, side := range []struct {
		key, ref, sha string
	}{{"head", headRef, headSHA}, {"base", baseRef, baseSHA}} {
		s := pr[side.key].(map[string]any)
		s["ref"], s["sha"] = side.ref, side.sha
		if r, ok := s["repo"].(map[string]any); ok {
			r["full_name"] = repoName
		}
	}
	b, _ := json.Marshal(m)
	return b
}

var deliveryN atomic.Int64

func newDeliveryID() string {
	return fmt.Sprintf("72d3162e-cc78-11e3-81ab-%012d", deliveryN.Add(1))
}

// post sends a delivery with the headers GitHub sends.
func post(t testing.TB, url, event, id string, body []byte, sig string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/044aadd")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", id)
	req.Header.Set("X-GitHub-Hook-ID", "292430182")
	req.Header.Set("X-GitHub-Hook-Installation-Target-ID", "79929171")
	req.Header.Set("X-GitHub-Hook-Installation-Target-Type", "integration")
	if sig != "" {
		req.Header.Set("X-Hub-Signature-256", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post %s: %v", event, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func deliver(t testing.TB, url, event, id string, body []byte) int {
	return post(t, url, event, id, body, webhook.Sign(secret, body))
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", timeout, what)
}

func runsOn(d *githubdouble.Double, sha string) []githubdouble.CheckRun {
	var out []githubdouble.CheckRun
	for _, r := range d.CheckRuns() {
		if r.HeadSHA == sha {
			out = append(out, r)
		}
	}
	return out
}

func completedOn(d *githubdouble.Double, sha string) []githubdouble.CheckRun {
	var out []githubdouble.CheckRun
	for _, r := range runsOn(d, sha) {
		if r.Status == "completed" {
			out = append(out, r)
		}
	}
	return out
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func httpBody(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
