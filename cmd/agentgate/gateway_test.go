package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/agentgate/agentgate/gate/budget"
	"github.com/agentgate/agentgate/internal/store"
	"github.com/agentgate/agentgate/sandbox/gateway"
	"github.com/agentgate/agentgate/test/githubdouble"
)

func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.Execute()
	code := exitOK
	if err != nil {
		code = exitInvalid
		if ee, ok := err.(*exitError); ok {
			code = ee.code
		}
		errb.WriteString(err.Error())
	}
	return out.String() + errb.String(), code
}

func TestGatewayKeysAndBudgetCommands(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "gw.db")
	cfg := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(cfg, []byte("store: "+db+"\nupstreams:\n  - {name: openai, api: openai, base_url: https://api.openai.com, key_env: OPENAI_API_KEY}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wp := filepath.Join(dir, "WORK_PLAN.json")
	if err := os.WriteFile(wp, []byte(`{"plan_id":"PLAN-1","budget":{"limit_usd":2.5,"warn_ratio":0.5,"degrade_to_local":true}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runCLI(t, "gateway", "keys", "issue", "--plan", "PLAN-2", "--run", "r", "--work-plan", wp, "--config", cfg); code != exitInvalid || !strings.Contains(out, `plan "PLAN-1"`) {
		t.Fatalf("a WORK_PLAN of another plan: %d %s", code, out)
	}
	if out, code := runCLI(t, "gateway", "keys", "issue", "--plan", "PLAN-9", "--run", "r", "--config", cfg); code != exitInvalid || !strings.Contains(out, "unknown plan") {
		t.Fatalf("a plan without a budget: %d %s", code, out)
	}
	if out, code := runCLI(t, "gateway", "keys", "issue", "--plan", "PLAN-1", "--run", "run-1", "--work-plan", wp, "--pr", "acme/app", "--config", cfg); code != exitInvalid || !strings.Contains(out, "owner/name#NUMBER") {
		t.Fatalf("a malformed --pr: %d %s", code, out)
	}
	out, code := runCLI(t, "gateway", "keys", "issue", "--plan", "PLAN-1", "--run", "run-1", "--work-plan", wp, "--repo", "acme/app", "--pr", "acme/app#17", "--config", cfg, "--json")
	if code != exitOK {
		t.Fatalf("issue: %d %s", code, out)
	}
	var issued map[string]string
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &issued); err != nil || !strings.HasPrefix(issued["key"], gateway.KeyPrefix) || issued["pr"] != "acme/app#17" {
		t.Fatalf("issue output %q", out)
	}
	out, code = runCLI(t, "budget", "show", "PLAN-1", "--db", db)
	if code != exitOK || !strings.Contains(out, "$2.500000") || !strings.Contains(out, "warn 50%, escalate 90%, stop 100%") || !strings.Contains(out, "degrade") ||
		!strings.Contains(out, "held by 0 open budget lease(s)") {
		t.Fatalf("show: %d %s", code, out)
	}
	if out, code := runCLI(t, "budget", "approve", "PLAN-1", "--config", cfg); code != exitInvalid {
		t.Fatalf("approve without --as: %d %s", code, out)
	}
	if out, code := runCLI(t, "budget", "approve", "PLAN-1", "--as", "alice", "--config", cfg); code != exitOK {
		t.Fatalf("approve: %d %s", code, out)
	}
	out, _ = runCLI(t, "budget", "show", "PLAN-1", "--config", cfg, "--json")
	if !strings.Contains(out, `"approved_by": "alice"`) {
		t.Fatalf("show --json after approval: %s", out)
	}
	if out, code := runCLI(t, "budget", "show", "NOPE", "--config", cfg); code != exitInvalid {
		t.Fatalf("unknown plan: %d %s", code, out)
	}
	if out, code := runCLI(t, "gateway", "keys", "revoke", issued["key_id"], "--config", cfg); code != exitOK || !strings.Contains(out, "revoked 1") {
		t.Fatalf("revoke: %d %s", code, out)
	}
	if out, code := runCLI(t, "gateway", "keys", "revoke", issued["key_id"], "--config", cfg); code != exitFail {
		t.Fatalf("second revoke: %d %s", code, out)
	}
	// A call that would cross the stop ratio stops the plan: show exits 3,
	// approve is refused, resume lifts the stop.
	func() {
		st, err := store.Open(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		l, err := budget.NewStoreLedger(context.Background(), st, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := l.Reserve(context.Background(), budget.ReserveRequest{PlanID: "PLAN-1", Amount: budget.USDToNano(3)}); err != nil || res.Verdict.Decision != budget.HardStop {
			t.Fatalf("reserve: %v %+v", err, res.Verdict)
		}
	}()
	if out, code := runCLI(t, "budget", "show", "PLAN-1", "--db", db); code != exitStop || !strings.Contains(out, "STOPPED") {
		t.Fatalf("show a stopped plan: %d %s", code, out)
	}
	if out, code := runCLI(t, "budget", "approve", "PLAN-1", "--as", "bob", "--db", db); code != exitFail || !strings.Contains(out, "budget resume") {
		t.Fatalf("approve a stopped plan: %d %s", code, out)
	}
	if out, code := runCLI(t, "budget", "resume", "PLAN-1", "--as", "carol", "--db", db); code != exitOK {
		t.Fatalf("resume: %d %s", code, out)
	}
	if out, code := runCLI(t, "budget", "show", "PLAN-1", "--db", db); code != exitOK {
		t.Fatalf("show after resume: %d %s", code, out)
	}
	if out, code := runCLI(t, "budget", "recover", "--db", db); code != exitOK || !strings.Contains(out, "charged 0 expired lease(s)") {
		t.Fatalf("recover: %d %s", code, out)
	}
	out, code = runCLI(t, "audit", "tail", "--db", db)
	if code != exitOK || !strings.Contains(out, "budget.approve") || !strings.Contains(out, "alice") {
		t.Fatalf("audit tail: %d %s", code, out)
	}
}

func TestGatewayPricesListsTheTable(t *testing.T) {
	out, code := runCLI(t, "gateway", "prices")
	if code != exitOK || !strings.Contains(out, "gpt-4o") || !strings.Contains(out, "claude-sonnet-4-5") || !strings.Contains(out, gateway.BuiltinPrices().Version) {
		t.Fatalf("prices: %d %s", code, out)
	}
	out, _ = runCLI(t, "gateway", "prices", "--json")
	var tbl gateway.PriceTable
	if err := json.Unmarshal([]byte(out), &tbl); err != nil || tbl.Models["gpt-4o"].Output != 10000 {
		t.Fatalf("prices --json: %v", err)
	}
}

func TestGatewayRefusesABadConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gateway.yaml")
	os.WriteFile(cfg, []byte("upstreams:\n  - {name: openai, api: openai, base_url: https://api.openai.com, key_env: AGENTGATE_TEST_UNSET_KEY}\n"), 0o600)
	if out, code := runCLI(t, "gateway", "--config", cfg); code != exitInvalid || !strings.Contains(out, "AGENTGATE_TEST_UNSET_KEY") {
		t.Fatalf("%d %s", code, out)
	}
	if _, code := runCLI(t, "gateway"); code != exitInvalid {
		t.Fatal("no --config accepted")
	}
}

// The published schema and the loader agree on what a gateway.yaml is.
func TestGatewayConfigSchemaAgreesWithTheLoader(t *testing.T) {
	c := jsonschema.NewCompiler()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(gateway.ConfigSchema()))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddResource("gateway.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("gateway.json")
	if err != nil {
		t.Fatal(err)
	}
	env := func(string) string { return "sk-x" }
	docs := map[string]bool{
		"upstreams:\n  - {name: openai, api: openai, base_url: https://api.openai.com, key_env: K}\n": true,
		`listen: 127.0.0.1:9000
max_request_bytes: 65536
estimate_margin: 1.2
request_ceiling_usd: 1.5
monthly_caps: {orgs: {acme: 100}, repos: {acme/app: 20}}
upstreams:
  - {name: anthropic, api: anthropic, base_url: https://api.anthropic.com, key_env: K}
  - {name: local, api: openai-compatible, base_url: http://127.0.0.1:11434, local: true, models: [m]}
cache: {enabled: true, ttl: 5m, max_entries: 10}
degrade: {upstream: local, model: m}
leases: {fraction: 0.1, window: 10s}
github: {app_id: 7, installation_id: 9, private_key_command: [vault, read, -field=pem, secret/app], api_url: https://ghe.example.com/api/v3/}
`: true,
		"upstreams:\n  - {name: openai, api: openai, base_url: https://api.openai.com, key_env: K}\nleases: {disabled: true}\n":                     true,
		"upstreams:\n  - {name: openai, api: openai, base_url: https://api.openai.com, key_env: K}\nleases: {fraction: 1.5}\n":                      false,
		"upstreams:\n  - {name: openai, api: openai, base_url: https://api.openai.com, key_env: K}\ngithub: {app_id: 7, installation_id: 9}\n":      false,
		"upstreams:\n  - {name: openai, api: openai, base_url: https://api.openai.com, key_env: K}\ngithub: {app_id: 7, private_key_file: k.pem}\n": false,
		"upstreams: []\n": false,
		"upstreams:\n  - {name: openai, api: gemini, base_url: https://x, key_env: K}\n":                                    false,
		"upstreams:\n  - {name: openai, api: openai, base_url: https://api.openai.com, key_env: K}\nbudget: 1\n":            false,
		"upstreams:\n  - {name: openai, api: openai, base_url: https://api.openai.com, key_env: K}\nestimate_margin: 0.5\n": false,
	}
	for text, valid := range docs {
		var y any
		if err := yaml.Unmarshal([]byte(text), &y); err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(y)
		inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(j))
		schemaErr := sch.Validate(inst)
		_, loadErr := gateway.ParseConfig([]byte(text), env)
		if (schemaErr == nil) != valid || (loadErr == nil) != valid {
			t.Errorf("%q: schema %v, loader %v, want valid=%v", text, schemaErr, loadErr, valid)
		}
	}
}

// TestGatewayCommentsOnThePullRequestOncePerThreshold runs the gateway as
// the command wires it (leases, PR notifier) against an OpenAI double and
// the GitHub double, and drives a run through warning, approval and stop.
// spend makes 12 calls with key through the gateway at url, approving the
// plan whenever a call needs approval; with untilStop it ends at the first
// 429. It returns the statuses.
func spend(t *testing.T, rt *gatewayRuntime, url, key, plan string, untilStop bool) []int {
	t.Helper()
	ctx := context.Background()
	var seq []int
	for i := 0; i < 12 && !(untilStop && len(seq) > 0 && seq[len(seq)-1] == http.StatusTooManyRequests); i++ {
		req, _ := http.NewRequest(http.MethodPost, url+"/openai/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o-mini","max_tokens":200,"messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		seq = append(seq, resp.StatusCode)
		if resp.StatusCode == http.StatusForbidden {
			if err := rt.ledger.Approve(ctx, plan, "alice"); err != nil {
				t.Fatal(err)
			}
		}
		if err := rt.gw.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return seq
}

// commentFixture is a GitHub double with the App installed on acme/app,
// the App's key in a file of a temp dir, and an upstream that answers every
// chat completion with 500 input and 200 output tokens.
func commentFixture(t *testing.T) (gh *githubdouble.Double, dir, keyFile, upstreamURL string) {
	t.Helper()
	gh = githubdouble.New(t)
	gh.AddInstallation(9, "acme/app")
	dir = t.TempDir()
	keyFile = filepath.Join(dir, "app.pem")
	if err := os.WriteFile(keyFile, gh.PrivateKeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":500,"completion_tokens":200,"total_tokens":700}}`)
	}))
	t.Cleanup(up.Close)
	return gh, dir, keyFile, up.URL
}

func TestGatewayCommentsOnThePullRequestOncePerThreshold(t *testing.T) {
	ctx := context.Background()
	gh, dir, keyFile, upURL := commentFixture(t)
	// The first comment attempt fails: the client retries it.
	gh.Inject(githubdouble.Fault{OperationID: "issues/create-comment", Status: 502, Times: 1})
	yml := fmt.Sprintf(`store: %s
upstreams:
  - {name: openai, api: openai, base_url: %q, key_env: OPENAI_API_KEY}
github: {app_id: %d, installation_id: 9, private_key_file: %q, api_url: %q}
`, filepath.Join(dir, "gw.db"), upURL, gh.AppID, keyFile, gh.APIURL)
	cfg, err := gateway.ParseConfig([]byte(yml), func(string) string { return "sk-test" })
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))
	rt, err := startGateway(ctx, cfg, nil, st, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.close(ctx)
	if err := rt.ledger.EnsurePlan(ctx, budget.Plan{ID: "PLAN-7", Limit: budget.USDToNano(0.001), Ratios: budget.DefaultRatios, Repo: "acme/app"}); err != nil {
		t.Fatal(err)
	}
	key, _, err := rt.keys.IssueFor(ctx, "PLAN-7", "run-7", "acme/app#17")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rt.gw.Handler())
	defer srv.Close()
	seq := spend(t, rt, srv.URL, key, "PLAN-7", false)
	if !slices.Contains(seq, 403) || seq[len(seq)-1] != 429 {
		t.Fatalf("statuses %v: want an approval and a stop", seq)
	}
	want := []string{"budget warning", "approval required", "budget exhausted"}
	var comments []githubdouble.Comment
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if comments = gh.Comments(); len(comments) >= len(want) {
			break
		}
	}
	if len(comments) != len(want) {
		t.Fatalf("%d comments, want %d (one per threshold, the stop once although every later call is refused): %+v", len(comments), len(want), comments)
	}
	for i, c := range comments {
		if c.Repo != "acme/app" || c.Issue != 17 || !strings.Contains(c.Body, want[i]) || !strings.Contains(c.Body, "PLAN-7") || strings.Contains(c.Body, "sk-test") {
			t.Errorf("comment %d on %s#%d: %s", i, c.Repo, c.Issue, c.Body)
		}
	}
	if !strings.Contains(comments[1].Body, "/approve-budget PLAN-7") {
		t.Errorf("the approval comment does not say how to approve: %s", comments[1].Body)
	}
	// Another gateway process (or this one restarted) does not post again.
	again, err := newPRNotifier(ctx, cfg.GitHub, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	again.notify(gateway.Notice{Kind: budget.EventWarn, PlanID: "PLAN-7", RunID: "run-7", PR: "acme/app#17"})
	again.notify(gateway.Notice{Kind: budget.EventWarn, PlanID: "PLAN-8", RunID: "run-8"}) // no pull request: nothing to post
	again.close(ctx)
	if n := len(gh.Comments()); n != len(want) {
		t.Fatalf("%d comments after a second process notified again, want %d", n, len(want))
	}
	if v := gh.Violations(); len(v) > 0 {
		t.Fatalf("requests GitHub would refuse: %v", v)
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestSandboxRunStopsWhenTheGatewayStopsItsPlan: a run's tool call is under
// way in the sandbox (the real binary, as root) when the gateway refuses a
// call that would cross the plan's budget; the supervisor, reading the
// budget ledger, kills the call and stops the run until both the budget
// and the sandbox are resumed by a human.
func TestSandboxRunStopsWhenTheGatewayStopsItsPlan(t *testing.T) {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("needs root on Linux: the sandbox mounts images, makes namespaces and switches uid (CI runs as root)")
	}
	ctx := context.Background()
	dir, bin, pins, thread, sh := sandboxThread(t, "budgetstop")
	wp, err := os.ReadFile(filepath.Join("..", "..", "examples", "payments-repo", "services", "payments", "WORK_PLAN.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(thread, "WORK_PLAN.json"), wp, 0o644)
	var plan struct {
		PlanID string `json:"plan_id"`
	}
	if err := json.Unmarshal(wp, &plan); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "gw.db")
	out, code := runCLI(t, "gateway", "keys", "issue", "--plan", plan.PlanID, "--run", "run-1", "--limit-usd", "0.01", "--db", db)
	if code != exitOK {
		t.Fatalf("keys issue: %d %s", code, out)
	}
	key := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])

	state := fmt.Sprintf("/var/lib/agentgate-budgetstop-%d", os.Getpid())
	common := []string{"--thread", thread, "--wrappers", pins, "--state-dir", state, "--size", "32Mi", "--user", "agentgate-budgetstop", "--group", "agentgate-budgetstop"}
	run := func(args ...string) (string, int) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	sandboxRun := append(append([]string{"sandbox", "run"}, common...), "--budget-db", db, "--")
	t.Cleanup(func() {
		if out, code := run(append([]string{"sandbox", "kill", "--detach"}, common...)...); code != 0 {
			t.Errorf("kill --detach: exit %d: %s", code, out)
			return
		}
		os.RemoveAll(state)
	})
	if out, code := run(append(sandboxRun, sh, "-c", "echo first")...); code != 0 || !strings.Contains(out, "first") {
		t.Fatalf("first tool call: exit %d\n%s", code, out)
	}

	// A long tool call is running ...
	long := exec.Command(bin, append(sandboxRun, sh, "-c", "sleep 60")...)
	var longOut bytes.Buffer
	long.Stdout, long.Stderr = &longOut, &longOut
	if err := long.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- long.Wait() }()
	time.Sleep(1500 * time.Millisecond)

	// ... when the gateway refuses a call that would cross the budget.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("a call over the budget reached the provider")
	}))
	defer up.Close()
	cfg, err := gateway.ParseConfig([]byte(fmt.Sprintf("store: %s\nupstreams:\n  - {name: openai, api: openai, base_url: %q, key_env: K}\n", db, up.URL)),
		func(string) string { return "sk-test" })
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rt, err := startGateway(ctx, cfg, nil, st, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.close(ctx)
	srv := httptest.NewServer(rt.gw.Handler())
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/openai/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o","max_tokens":2000,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "STOP_BUDGET_EXCEEDED") {
		t.Fatalf("gateway: %d %s", resp.StatusCode, body)
	}
	stoppedAt := time.Now()
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitStop || !strings.Contains(longOut.String(), "STOP_BUDGET_EXCEEDED") {
			t.Fatalf("the running tool call ended with %v, want exit %d and STOP_BUDGET_EXCEEDED:\n%s", err, exitStop, longOut.String())
		}
	case <-time.After(30 * time.Second):
		long.Process.Kill()
		t.Fatalf("the tool call still runs 30s after the budget stop:\n%s", longOut.String())
	}
	t.Logf("the sandbox stopped %v after the gateway's stop", time.Since(stoppedAt).Round(time.Millisecond))
	stops, _ := os.ReadFile(filepath.Join(state, "budgetstop", "stops.jsonl"))
	if !strings.Contains(string(stops), "STOP_BUDGET_EXCEEDED") {
		t.Errorf("stops.jsonl: %s", stops)
	}
	// Stopped until a human resumes both the sandbox and the budget.
	if out, code := run(append(sandboxRun, sh, "-c", "true")...); code != exitStop {
		t.Fatalf("after the stop: exit %d\n%s", code, out)
	}
	if out, code := run(append(append([]string{"sandbox", "resume"}, common...), "--by", "alice", "--reason", "test")...); code != 0 {
		t.Fatalf("sandbox resume: exit %d\n%s", code, out)
	}
	if out, code := run(append(sandboxRun, sh, "-c", "true")...); code != exitStop || !strings.Contains(out, "STOP_BUDGET_EXCEEDED") {
		t.Fatalf("the sandbox resumed but the budget still stopped: exit %d\n%s", code, out)
	}
	if out, code := runCLI(t, "gateway", "keys", "issue", "--plan", plan.PlanID, "--run", "run-2", "--limit-usd", "1", "--db", db); code != exitOK {
		t.Fatalf("raise the budget: %d %s", code, out)
	}
	if out, code := runCLI(t, "budget", "resume", plan.PlanID, "--as", "alice", "--db", db); code != exitOK {
		t.Fatalf("budget resume: %d %s", code, out)
	}
	if out, code := run(append(append([]string{"sandbox", "resume"}, common...), "--by", "alice", "--reason", "budget raised")...); code != 0 {
		t.Fatalf("sandbox resume: exit %d\n%s", code, out)
	}
	if out, code := run(append(sandboxRun, sh, "-c", "echo again")...); code != 0 || !strings.Contains(out, "again") {
		t.Fatalf("after both resumes: exit %d\n%s", code, out)
	}
}

// Thresholds are latched in the ledger with the crossing; a notice that
// never reached the pull request (here: the gateway that crossed them had
// no GitHub App configured, as after a crash or a full queue) is posted by
// the next gateway's reconciliation — an escalation already approved is not
// — and a further restart posts nothing twice.
func TestGatewayPostsLatchedNoticesItNeverDeliveredAtTheNextStart(t *testing.T) {
	ctx := context.Background()
	gh, dir, keyFile, upURL := commentFixture(t)
	base := fmt.Sprintf("store: %s\nupstreams:\n  - {name: openai, api: openai, base_url: %q, key_env: OPENAI_API_KEY}\n", filepath.Join(dir, "gw.db"), upURL)
	withGitHub := base + fmt.Sprintf("github: {app_id: %d, installation_id: 9, private_key_file: %q, api_url: %q}\n", gh.AppID, keyFile, gh.APIURL)
	start := func(yml string) (*gatewayRuntime, *store.Store) {
		t.Helper()
		cfg, err := gateway.ParseConfig([]byte(yml), func(string) string { return "sk-test" })
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.Open(ctx, cfg.Store)
		if err != nil {
			t.Fatal(err)
		}
		rt, err := startGateway(ctx, cfg, nil, st, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
		if err != nil {
			st.Close()
			t.Fatal(err)
		}
		return rt, st
	}

	rt, st := start(base)
	if err := rt.ledger.EnsurePlan(ctx, budget.Plan{ID: "PLAN-9", Limit: budget.USDToNano(0.001), Ratios: budget.DefaultRatios, Repo: "acme/app"}); err != nil {
		t.Fatal(err)
	}
	key, _, err := rt.keys.IssueFor(ctx, "PLAN-9", "run-9", "acme/app#21")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rt.gw.Handler())
	seq := spend(t, rt, srv.URL, key, "PLAN-9", true)
	last := seq[len(seq)-1]
	srv.Close()
	rt.close(ctx)
	st.Close()
	if last != http.StatusTooManyRequests || len(gh.Comments()) != 0 {
		t.Fatalf("setup: last status %d, %d comments", last, len(gh.Comments()))
	}

	// Someone else posts the warning's marker first: it must not count.
	gh.AddComment("acme/app", 21, "mallory", "nothing to see <!-- agentgate:budget "+budget.EventWarn+" PLAN-9 -->")
	ours := func() []githubdouble.Comment {
		var out []githubdouble.Comment
		for _, c := range gh.Comments() {
			if c.User == "agentgate[bot]" {
				out = append(out, c)
			}
		}
		return out
	}
	for run := 0; run < 2; run++ {
		rt, st = start(withGitHub)
		want := []string{"budget warning", "budget exhausted"}
		var comments []githubdouble.Comment
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if comments = ours(); len(comments) >= len(want) {
				break
			}
		}
		rt.close(ctx)
		st.Close()
		comments = ours()
		if len(comments) != len(want) {
			t.Fatalf("start %d: %d comments by the App, want %d (warning and stop — a marker posted by someone else does not count; the approved escalation not): %+v", run+1, len(comments), len(want), comments)
		}
		for i, c := range comments {
			if c.Repo != "acme/app" || c.Issue != 21 || !strings.Contains(c.Body, want[i]) || !strings.Contains(c.Body, "PLAN-9") {
				t.Errorf("start %d: comment %d on %s#%d: %s", run+1, i, c.Repo, c.Issue, c.Body)
			}
		}
	}
	if v := gh.Violations(); len(v) > 0 {
		t.Fatalf("requests GitHub would refuse: %v", v)
	}
}
