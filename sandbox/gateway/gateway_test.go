package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgate/agentgate/gate/budget"
	"github.com/agentgate/agentgate/internal/store"
	"github.com/agentgate/agentgate/internal/store/storetest"
	"github.com/agentgate/agentgate/policies"
)

func TestMain(m *testing.M) { os.Exit(storetest.Run(m)) }

// rig is a gateway on a real store in front of upstream doubles.
type rig struct {
	t           testing.TB
	up          *upstream
	local       *upstream
	srv         *httptest.Server
	gw          *Gateway
	keys        *Keys
	ledger      *budget.StoreLedger
	leaser      *budget.Leaser // nil with rigOpts.perCall
	stops       []string
	warns       []string
	escalations []string
	mu          sync.Mutex
}

type rigOpts struct {
	dsn     string // a database to share with another rig (another gateway process)
	dialect store.Dialect
	extra   string // appended to gateway.yaml
	perCall bool   // the plain store ledger: one durable reservation per call, no leases
}

func newRig(t testing.TB, o rigOpts) *rig {
	t.Helper()
	if o.dialect == "" {
		o.dialect = store.SQLite
	}
	ctx := context.Background()
	r := &rig{t: t, up: newUpstream(t), local: newUpstream(t)}
	var st *store.Store
	if o.dsn != "" {
		var err error
		if st, err = store.Open(ctx, o.dsn); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
	} else {
		st = storetest.Open(t, o.dialect)
	}
	var err error
	if r.keys, err = NewKeys(ctx, st); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.keys.Close() })
	if r.ledger, err = budget.NewStoreLedger(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	var ledger budget.Ledger = r.ledger
	if !o.perCall {
		if r.leaser, err = budget.NewLeaser(ctx, r.ledger, budget.LeaseOptions{Holder: fmt.Sprintf("rig-%p", r)}); err != nil {
			t.Fatal(err)
		}
		ledger = r.leaser
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = r.gw.Flush(ctx)
			_ = r.leaser.Close(ctx)
		})
	}
	yml := fmt.Sprintf(`
upstreams:
  - {name: openai, api: openai, base_url: %q, key_env: OPENAI_KEY}
  - {name: anthropic, api: anthropic, base_url: %q, key_env: ANTHROPIC_KEY}
  - {name: local, api: openai-compatible, base_url: %q, local: true, models: [qwen-coder]}
%s`, r.up.srv.URL, r.up.srv.URL, r.local.srv.URL, o.extra)
	env := map[string]string{"OPENAI_KEY": "sk-provider-openai", "ANTHROPIC_KEY": "sk-ant-provider"}
	cfg, err := ParseConfig([]byte(yml), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	r.gw, err = New(Options{Config: cfg, Keys: r.keys, Ledger: ledger, OnStop: func(_ context.Context, n Notice) {
		r.mu.Lock()
		r.stops = append(r.stops, n.PlanID+"/"+n.RunID)
		r.mu.Unlock()
	}, OnWarn: func(_ context.Context, n Notice) {
		r.mu.Lock()
		r.warns = append(r.warns, n.PlanID+"/"+n.RunID+"@"+n.PR)
		r.mu.Unlock()
	}, OnEscalate: func(_ context.Context, n Notice) {
		r.mu.Lock()
		r.escalations = append(r.escalations, n.PlanID+"/"+n.RunID)
		r.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	r.srv = httptest.NewServer(r.gw.Handler())
	t.Cleanup(r.srv.Close)
	return r
}

// plan registers a plan with a budget in USD and issues a run key for it.
func (r *rig) plan(id string, usd float64, mod func(*budget.Plan)) string {
	r.t.Helper()
	p := budget.Plan{ID: id, Limit: budget.USDToNano(usd), Ratios: budget.DefaultRatios, Repo: "acme/app"}
	if mod != nil {
		mod(&p)
	}
	if err := r.ledger.EnsurePlan(context.Background(), p); err != nil {
		r.t.Fatal(err)
	}
	key, _, err := r.keys.IssueFor(context.Background(), id, "run-"+id, "acme/app#42")
	if err != nil {
		r.t.Fatal(err)
	}
	return key
}

type result struct {
	status int
	header http.Header
	body   []byte
}

func (res result) errorCode() string {
	var e apiError
	_ = json.Unmarshal(res.body, &e)
	return e.Error.Code
}

func (r *rig) do(key, path, body string, hdr ...string) result {
	r.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.srv.URL+path, strings.NewReader(body))
	if path == "/v1/models" || strings.HasSuffix(path, "/v1/models") {
		req.Method = http.MethodGet
	}
	req.Header.Set("Content-Type", "application/json")
	if strings.HasPrefix(path, "/anthropic/") {
		req.Header.Set("X-Api-Key", key)
	} else {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, b}
}

// flush waits for settlements written after their responses.
func (r *rig) flush() {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.gw.Flush(ctx); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) totals(run string) (budget.RunTotals, error) {
	r.flush()
	return r.ledger.RunTotals(context.Background(), run)
}

// status returns a plan's state once every call settled and this
// gateway's leases on the plan gave back what they do not use.
func (r *rig) status(plan string) budget.PlanStatus {
	r.t.Helper()
	r.flush()
	if r.leaser != nil {
		if err := r.leaser.ReleasePlan(context.Background(), plan); err != nil {
			r.t.Fatal(err)
		}
	}
	p, err := r.ledger.Status(context.Background(), plan)
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

func TestProviderUsageSettlesAtTheRealCost(t *testing.T) {
	r := newRig(t, rigOpts{})
	key := r.plan("p-usage", 10, nil)
	gpt4o, _ := BuiltinPrices().Lookup("gpt-4o")
	sonnet, _ := BuiltinPrices().Lookup("claude-sonnet-4-5")
	cases := []struct {
		name, path, body       string
		in, out, cached, write int64
		want                   int64
	}{
		{"chat non-stream", "/openai/v1/chat/completions", chatBody("gpt-4o", 50, ""), 1000, 200, 400, 0,
			600*gpt4o.Input + 400*gpt4o.CachedInput + 200*gpt4o.Output},
		{"chat stream (include_usage injected)", "/openai/v1/chat/completions", chatBody("gpt-4o", 50, `,"stream":true`), 1000, 200, 0, 0,
			1000*gpt4o.Input + 200*gpt4o.Output},
		{"responses non-stream", "/openai/v1/responses", `{"model":"gpt-4o","input":"hi"}`, 900, 100, 100, 0,
			800*gpt4o.Input + 100*gpt4o.CachedInput + 100*gpt4o.Output},
		{"responses stream (response.completed)", "/openai/v1/responses", `{"model":"gpt-4o","input":"hi","stream":true}`, 900, 100, 0, 0,
			900*gpt4o.Input + 100*gpt4o.Output},
		{"anthropic non-stream with cache read and write", "/anthropic/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}`, 3000, 300, 1000, 1500,
			500*sonnet.Input + 1000*sonnet.CachedInput + 1500*sonnet.CacheWrite5m + 300*sonnet.Output},
		{"anthropic stream (last cumulative message_delta)", "/anthropic/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":1000,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, 3000, 300, 1000, 1500,
			500*sonnet.Input + 1000*sonnet.CachedInput + 1500*sonnet.CacheWrite5m + 300*sonnet.Output},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r.up.mu.Lock()
			r.up.in, r.up.out, r.up.cached, r.up.cacheWrite = c.in, c.out, c.cached, c.write
			r.up.mu.Unlock()
			before := r.status("p-usage").Spent
			res := r.do(key, c.path, c.body)
			if res.status != 200 {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
			if got := r.status("p-usage").Spent - before; got != c.want {
				t.Fatalf("charged %d nano-USD, want %d", got, c.want)
			}
			if p := r.status("p-usage"); p.Reserved != 0 {
				t.Fatalf("reservation left behind: %d", p.Reserved)
			}
			if res.header.Get("Openai-Organization") != "" {
				t.Error("the provider's organisation header leaked to the agent")
			}
		})
	}
	sent, hdr := r.up.received()
	if hdr.Get("X-Api-Key") != "sk-ant-provider" || strings.Contains(fmt.Sprint(hdr), "agk_") {
		t.Errorf("upstream headers: %v", hdr)
	}
	if sent["max_tokens"] != float64(1000) {
		t.Errorf("client max_tokens not kept: %v", sent["max_tokens"])
	}
	tot, err := r.totals("run-p-usage")
	if err != nil {
		t.Fatal(err)
	}
	if tot.ExternalCalls != len(cases) || tot.ByModel["gpt-4o"].Calls != 4 || tot.ByModel["claude-sonnet-4-5"].CachedInputTokens != 2000 {
		t.Fatalf("run totals: %+v", tot)
	}
}

func TestChatStreamGetsIncludeUsageAndAnOutputBound(t *testing.T) {
	r := newRig(t, rigOpts{})
	key := r.plan("p-inject", 10, nil)
	res := r.do(key, "/openai/v1/chat/completions", chatBody("gpt-4o", 5, `,"stream":true,"stream_options":{"foo":1}`))
	if res.status != 200 || !bytes.Contains(res.body, []byte(`"usage":{"prompt_tokens"`)) || !bytes.HasSuffix(res.body, []byte("data: [DONE]\n\n")) {
		t.Fatalf("status %d body %s", res.status, res.body)
	}
	sent, hdr := r.up.received()
	opts, _ := sent["stream_options"].(map[string]any)
	if opts["include_usage"] != true || opts["foo"] != float64(1) {
		t.Errorf("stream_options sent upstream: %v", sent["stream_options"])
	}
	if sent["max_completion_tokens"] != float64(4096) {
		t.Errorf("no output bound injected: %v", sent)
	}
	if hdr.Get("Authorization") != "Bearer sk-provider-openai" || hdr.Get("Accept-Encoding") != "" {
		t.Errorf("upstream headers: %v", hdr)
	}
}

func TestUnknownModelIsRefusedNotPricedAtZero(t *testing.T) {
	r := newRig(t, rigOpts{})
	key := r.plan("p-unknown", 10, nil)
	for _, c := range []struct{ path, body string }{
		{"/openai/v1/chat/completions", chatBody("gpt-9-ultra", 1, "")},
		{"/openai/v1/chat/completions", chatBody("claude-sonnet-4-5", 1, "")}, // right name, wrong provider
		{"/anthropic/v1/messages", `{"model":"claude-unknown","max_tokens":10,"messages":[]}`},
		{"/local/v1/chat/completions", chatBody("gpt-4o", 1, "")}, // local serves only its listed models
	} {
		res := r.do(key, c.path, c.body)
		if res.status != 400 || res.errorCode() != "unknown_model" {
			t.Errorf("%s %s: %d %s", c.path, c.body[:30], res.status, res.body)
		}
	}
	if r.up.count() != 0 || r.local.count() != 0 {
		t.Fatal("an unpriced call reached a provider")
	}
}

func TestRunKeysAreCheckedRevocableAndBound(t *testing.T) {
	r := newRig(t, rigOpts{})
	key := r.plan("p-key", 10, nil)
	other := r.plan("p-other", 10, nil)
	ctx := context.Background()
	body := chatBody("gpt-4o", 1, "")
	if res := r.do(key, "/openai/v1/chat/completions", body); res.status != 200 {
		t.Fatalf("valid key: %d %s", res.status, res.body)
	}
	bad := []struct{ name, key string }{
		{"no key", ""},
		{"the provider's key", "sk-provider-openai"},
		{"right id, wrong secret", key[:len(KeyPrefix)+13] + strings.Repeat("A", 43)},
		{"truncated", key[:20]},
	}
	for _, b := range bad {
		if res := r.do(b.key, "/openai/v1/chat/completions", body); res.status != 401 || res.errorCode() != "invalid_run_key" {
			t.Errorf("%s: %d %s", b.name, res.status, res.body)
		}
	}
	if res := r.do(other, "/openai/v1/chat/completions", body, "X-Agentgate-Plan", "p-key"); res.status != 403 || res.errorCode() != "key_plan_mismatch" {
		t.Errorf("a key for another plan: %d %s", res.status, res.body)
	}
	rk, err := r.keys.Verify(ctx, key)
	if err != nil || rk.PR != "acme/app#42" || rk.Plan == nil {
		t.Fatalf("verify: %+v %v", rk, err)
	}
	for _, pr := range []string{"acme/app", "acme#1", "acme/app#0", "acme/app#1; rm -rf", "../x/y#1"} {
		if _, _, err := r.keys.IssueFor(ctx, "p-key", "r", pr); err == nil {
			t.Errorf("pull request %q accepted", pr)
		}
	}
	if n, err := r.keys.Revoke(ctx, rk.ID, ""); err != nil || n != 1 {
		t.Fatalf("revoke: %d %v", n, err)
	}
	if res := r.do(key, "/openai/v1/chat/completions", body); res.status != 401 {
		t.Fatalf("revoked key: %d %s", res.status, res.body)
	}
	if n, _ := r.keys.Revoke(ctx, "", "run-p-other"); n != 1 {
		t.Fatalf("revoke by run: %d", n)
	}
	if res := r.do(other, "/openai/v1/chat/completions", body); res.status != 401 {
		t.Fatalf("key of a revoked run: %d", res.status)
	}
}

func TestOnlyConfiguredUpstreamsAndMeteredEndpointsAreReachable(t *testing.T) {
	r := newRig(t, rigOpts{})
	key := r.plan("p-route", 10, nil)
	for _, path := range []string{"/evil.example.com/v1/chat/completions", "/openai/v1/embeddings", "/openai/v1/files", "/anthropic/v1/chat/completions", "/openai/v1/messages"} {
		if res := r.do(key, path, chatBody("gpt-4o", 1, "")); res.status != 404 {
			t.Errorf("%s: %d", path, res.status)
		}
	}
	if res := r.do(key, "/openai/v1/models", ""); res.status != 200 {
		t.Errorf("free model listing: %d %s", res.status, res.body)
	}
}

func TestBadInputIsRefusedBeforeAnyCharge(t *testing.T) {
	r := newRig(t, rigOpts{extra: "max_request_bytes: 65536\n"})
	key := r.plan("p-bad", 10, nil)
	cases := []struct {
		name, body string
		status     int
	}{
		{"malformed JSON", `{"model":"gpt-4o","messages":[`, 400},
		{"not an object", `["gpt-4o"]`, 400},
		{"null", `null`, 400},
		{"missing model", `{"messages":[{"role":"user","content":"hi"}]}`, 400},
		{"model not a string", `{"model":42,"messages":[]}`, 400},
		{"trailing data", `{"model":"gpt-4o","messages":[]} {"x":1}`, 400},
		{"negative max_tokens", `{"model":"gpt-4o","max_tokens":-1,"messages":[]}`, 400},
		{"absurd n", `{"model":"gpt-4o","n":100000,"messages":[]}`, 400},
		{"stream not a bool", `{"model":"gpt-4o","stream":"yes","messages":[]}`, 400},
		{"huge body", chatBody("gpt-4o", 20000, ""), 413},
		{"prompt beyond the context window", `{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"` + strings.Repeat("z ", 30000) + `"}]}`, 400},
	}
	for _, c := range cases {
		if c.name == "prompt beyond the context window" {
			continue // exceeds max_request_bytes here; covered by the price tests
		}
		res := r.do(key, "/openai/v1/chat/completions", c.body)
		if res.status != c.status {
			t.Errorf("%s: %d %s", c.name, res.status, res.body)
		}
	}
	if r.up.count() != 0 {
		t.Fatal("bad input reached the provider")
	}
	if p := r.status("p-bad"); p.Spent != 0 || p.Reserved != 0 {
		t.Fatalf("bad input was charged: %+v", p)
	}
}

func TestProviderErrorDoesNotChargeTheReservation(t *testing.T) {
	r := newRig(t, rigOpts{})
	key := r.plan("p-err", 10, nil)
	for _, status := range []int{400, 429, 500, 529} {
		r.up.mu.Lock()
		r.up.status = status
		r.up.mu.Unlock()
		res := r.do(key, "/openai/v1/chat/completions", chatBody("gpt-4o", 100, ""))
		if res.status != status {
			t.Fatalf("status %d passed through as %d", status, res.status)
		}
	}
	if p := r.status("p-err"); p.Spent != 0 || p.Reserved != 0 {
		t.Fatalf("provider errors charged %d (reserved %d)", p.Spent, p.Reserved)
	}
	// An unreachable provider is not charged either.
	r.up.srv.Close()
	if res := r.do(key, "/openai/v1/chat/completions", chatBody("gpt-4o", 100, "")); res.status != 502 {
		t.Fatalf("unreachable: %d", res.status)
	}
	if p := r.status("p-err"); p.Spent != 0 || p.Reserved != 0 {
		t.Fatalf("unreachable provider charged %d (reserved %d)", p.Spent, p.Reserved)
	}
}

func TestCutStreamIsSettledFromWhatArrived(t *testing.T) {
	cases := []struct{ name, path, body string }{
		{"chat", "/openai/v1/chat/completions", chatBody("gpt-4o", 50, `,"stream":true,"max_tokens":2000`)},
		{"responses", "/openai/v1/responses", `{"model":"gpt-4o","input":"hi","stream":true,"max_output_tokens":2000}`},
		{"anthropic", "/anthropic/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":2000,"stream":true,"messages":[{"role":"user","content":"hi"}]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, rigOpts{})
			key := r.plan("p-cut", 10, nil)
			r.up.cutAfter = 3
			req, _ := http.NewRequest(http.MethodPost, r.srv.URL+c.path, strings.NewReader(c.body))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("X-Api-Key", key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body) // ends with an error: the stream was cut
			resp.Body.Close()
			if !bytes.Contains(got, []byte("word2")) || bytes.Contains(got, []byte("word3")) {
				t.Fatalf("the client should have received the first three events: %s", got)
			}
			var p budget.PlanStatus
			for i := 0; i < 100; i++ { // settlement runs as the handler unwinds
				if p = r.status("p-cut"); p.Reserved == 0 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			price, _ := BuiltinPrices().Lookup(map[string]string{"chat": "gpt-4o", "responses": "gpt-4o", "anthropic": "claude-sonnet-4-5"}[c.name])
			maxCost := 1000*price.CacheWrite5m + 1000*price.Input + 2000*price.Output
			if p.Reserved != 0 || p.Spent <= 0 || p.Spent >= maxCost/4 {
				t.Fatalf("spent %d reserved %d: a cut stream must be charged for what arrived, well under the reservation", p.Spent, p.Reserved)
			}
			tot, _ := r.totals("run-p-cut")
			if m := tot.ByModel[price.Provider+""]; m.Calls != 0 {
				t.Fatal("by-model keyed by provider")
			}
			for _, m := range tot.ByModel {
				if c.name == "anthropic" && m.OutputTokens != 100 {
					t.Errorf("anthropic's last cumulative count before the cut was 100, charged for %d", m.OutputTokens)
				}
				if c.name != "anthropic" && (m.OutputTokens < 15 || m.OutputTokens > 60) {
					t.Errorf("output tokens counted from three chunks: %d", m.OutputTokens)
				}
			}
		})
	}
}

func TestHighCostPromptLoopIsStoppedAtTheBudget(t *testing.T) {
	r := newRig(t, rigOpts{})
	key := r.plan("p-loop", 0.05, nil)
	r.up.in, r.up.out = 1210, 500 // each call really costs about $0.008 on gpt-4o
	ctx := context.Background()
	var codes []int
	var warned bool
	for i := 0; i < 40; i++ {
		res := r.do(key, "/openai/v1/chat/completions", chatBody("gpt-4o", 1200, `,"max_tokens":500`))
		codes = append(codes, res.status)
		if res.header.Get("X-Budget-Warning") != "" {
			warned = true
		}
		switch res.errorCode() {
		case "budget_approval_required":
			if err := r.ledger.Approve(ctx, "p-loop", "alice"); err != nil {
				t.Fatal(err)
			}
		case "budget_exceeded":
			var e apiError
			_ = json.Unmarshal(res.body, &e)
			if e.Error.StopReason != string(policies.StopBudgetExceeded) {
				t.Fatalf("429 without the stop reason: %s", res.body)
			}
		}
	}
	p := r.status("p-loop")
	if p.Spent > p.Limit || !p.Stopped {
		t.Fatalf("loop: spent %d of %d, stopped %v; codes %v", p.Spent, p.Limit, p.Stopped, codes)
	}
	if !warned || len(r.stops) == 0 || r.stops[0] != "p-loop/run-p-loop" {
		t.Fatalf("warned %v, supervisor told to stop %v", warned, r.stops)
	}
	if len(r.warns) != 1 || r.warns[0] != "p-loop/run-p-loop@acme/app#42" {
		t.Fatalf("the warning hook (PR comment) fired %d times, want once with the key's pull request: %v", len(r.warns), r.warns)
	}
	if len(r.escalations) != 1 {
		t.Fatalf("the escalation hook fired %d times, want once: %v", len(r.escalations), r.escalations)
	}
	// The run's supervisor, polling with the run key, sees the stop.
	req, _ := http.NewRequest(http.MethodGet, r.srv.URL+"/agentgate/v1/run", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var rs RunStatus
	err = json.NewDecoder(resp.Body).Decode(&rs)
	resp.Body.Close()
	if err != nil || !rs.Stopped || rs.StopReason != string(policies.StopBudgetExceeded) || rs.Run.ExternalCalls != 6 || rs.Run.Cost != rs.Plan.Spent {
		t.Fatalf("run status %+v %v", rs, err)
	}
	// Every call after the stop is refused without reaching the provider.
	n := r.up.count()
	if res := r.do(key, "/openai/v1/chat/completions", chatBody("gpt-4o", 1, `,"max_tokens":1`)); res.status != 429 {
		t.Fatalf("after the stop: %d", res.status)
	}
	if r.up.count() != n {
		t.Fatal("a call after the stop reached the provider")
	}
	if n != 6 {
		t.Fatalf("%d calls at $0.008 reached the provider on a $0.05 budget, want 6", n)
	}
}

func TestThresholdTransitionsThroughTheGateway(t *testing.T) {
	r := newRig(t, rigOpts{})
	// gpt-4o-mini, 1000 in + 200 out = $0.00027 per call; budget $0.001,
	// reservations are about 12 % of the budget each.
	key := r.plan("p-trans", 0.001, nil)
	r.up.in = 500 // each call costs $0.000195
	body := chatBody("gpt-4o-mini", 20, `,"max_tokens":200`)
	var seq []string
	for i := 0; i < 8; i++ {
		res := r.do(key, "/openai/v1/chat/completions", body)
		switch {
		case res.status == 200 && res.header.Get("X-Budget-Warning") != "":
			seq = append(seq, "warn")
		case res.status == 200:
			seq = append(seq, "ok")
		case res.status == 403:
			seq = append(seq, "approval")
			if len(seq) > 1 && seq[len(seq)-2] == "approval" {
				if err := r.ledger.Approve(context.Background(), "p-trans", "alice"); err != nil {
					t.Fatal(err)
				}
			}
		case res.status == 429:
			seq = append(seq, "stop")
		default:
			t.Fatalf("unexpected %d %s", res.status, res.body)
		}
	}
	got := strings.Join(seq, ",")
	if got != "ok,ok,ok,warn,approval,approval,warn,stop" {
		t.Fatalf("transitions %s", got)
	}
}

func TestConcurrentCallsThroughTheGatewayNeverOvershoot(t *testing.T) {
	for _, d := range storetest.Backends {
		t.Run(string(d), func(t *testing.T) {
			r := newRig(t, rigOpts{dialect: d})
			key := r.plan("p-race", 0.01, func(p *budget.Plan) { p.Ratios = budget.Ratios{Warn: 0.7, Escalate: 0, Stop: 1} })
			r.up.in, r.up.out = 20, 400
			// Each call reserves ~ 50 + 400 tokens of gpt-4o ≈ $0.0042 and
			// costs $0.00405; only two fit in $0.01.
			var wg sync.WaitGroup
			codes := make([]int, 50)
			for i := range codes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					codes[i] = r.do(key, "/openai/v1/chat/completions", chatBody("gpt-4o", 5, `,"max_tokens":400`)).status
				}()
			}
			wg.Wait()
			ok := 0
			for _, c := range codes {
				if c == 200 {
					ok++
				} else if c != 429 {
					t.Fatalf("unexpected status %d", c)
				}
			}
			p := r.status("p-race")
			if p.Spent > p.Limit || p.Reserved != 0 || ok != 2 || r.up.count() != 2 {
				t.Fatalf("%d calls passed, %d reached the provider, spent %d of %d (reserved %d)", ok, r.up.count(), p.Spent, p.Limit, p.Reserved)
			}
		})
	}
}

// Two gateway processes (each its own store handle, ledger and leases)
// serve the same run on one PostgreSQL database.
func TestTwoGatewaysSharingAPlanOnPostgresNeverOvershootTogether(t *testing.T) {
	dsn := storetest.DSN(t, store.Postgres)
	a := newRig(t, rigOpts{dsn: dsn})
	b := newRig(t, rigOpts{dsn: dsn})
	key := a.plan("p-two", 0.05, func(p *budget.Plan) { p.Ratios = budget.Ratios{Warn: 0.7, Stop: 1} })
	for _, r := range []*rig{a, b} {
		r.up.in, r.up.out = 20, 400 // each call reserves ~$0.0042 and costs $0.00405
	}
	codes := make([]int, 50)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = []*rig{a, b}[i%2].do(key, "/openai/v1/chat/completions", chatBody("gpt-4o", 5, `,"max_tokens":400`)).status
		}()
	}
	wg.Wait()
	ok := 0
	for _, c := range codes {
		switch c {
		case 200:
			ok++
		case 429:
		default:
			t.Fatalf("status %d", c)
		}
	}
	b.status("p-two") // b's leases give back what they do not use
	p := a.status("p-two")
	paid := a.up.count() + b.up.count()
	if p.Spent > p.Limit || p.Reserved != 0 || ok != paid || ok == 0 || ok > 12 {
		t.Fatalf("%d calls passed (%d paid), spent %d of %d, reserved %d", ok, paid, p.Spent, p.Limit, p.Reserved)
	}
	t.Logf("%d of 50 calls passed; spent %s of %s", ok, budget.FormatUSD(p.Spent), budget.FormatUSD(p.Limit))

	// A stop latched through one gateway refuses the next call at the other,
	// although its lease would have admitted it; a key revoked through one
	// is refused at the other.
	key2 := a.plan("p-two-b", 10, nil)
	if res := b.do(key2, "/openai/v1/chat/completions", chatBody("gpt-4o", 5, "")); res.status != 200 {
		t.Fatalf("b: %d %s", res.status, res.body)
	}
	if res := a.do(key2, "/openai/v1/chat/completions", chatBody("gpt-4o", 5, `,"max_tokens":16000`)); res.status != 200 {
		t.Fatalf("a, a large call: %d %s", res.status, res.body)
	}
	if err := a.ledger.EnsurePlan(context.Background(), budget.Plan{ID: "p-two-b", Limit: budget.USDToNano(0.05), Ratios: budget.DefaultRatios}); err != nil {
		t.Fatal(err)
	}
	if res := a.do(key2, "/openai/v1/chat/completions", chatBody("gpt-4o", 5, `,"max_tokens":16000`)); res.status != 429 || res.errorCode() != "budget_exceeded" {
		t.Fatalf("a, over the lowered budget: %d %s", res.status, res.body)
	}
	if res := b.do(key2, "/openai/v1/chat/completions", chatBody("gpt-4o", 1, `,"max_tokens":1`)); res.status != 429 || res.errorCode() != "budget_exceeded" {
		t.Fatalf("b after a stopped the plan: %d %s", res.status, res.body)
	}
	rk, err := a.keys.Verify(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.keys.Revoke(context.Background(), rk.ID, ""); err != nil {
		t.Fatal(err)
	}
	if res := b.do(key, "/openai/v1/chat/completions", chatBody("gpt-4o", 1, "")); res.status != 401 {
		t.Fatalf("b, a key revoked through a: %d", res.status)
	}
}

func TestDeterministicRepeatsAreFreeCacheHits(t *testing.T) {
	r := newRig(t, rigOpts{extra: "cache: {enabled: true, ttl: 1m}\n"})
	key := r.plan("p-cache", 10, nil)
	body := chatBody("gpt-4o", 10, `,"temperature":0`)
	first := r.do(key, "/openai/v1/chat/completions", body)
	spent := r.status("p-cache").Spent
	second := r.do(key, "/openai/v1/chat/completions", body)
	if first.status != 200 || second.status != 200 || second.header.Get("X-Agentgate-Cache") != "hit" || !bytes.Equal(first.body, second.body) {
		t.Fatalf("first %d, second %d %q", first.status, second.status, second.header.Get("X-Agentgate-Cache"))
	}
	if r.up.count() != 1 || r.status("p-cache").Spent != spent {
		t.Fatalf("a cache hit reached the provider or was charged")
	}
	// Not deterministic, or another plan: not served from the cache.
	r.do(key, "/openai/v1/chat/completions", chatBody("gpt-4o", 10, `,"temperature":0.7`))
	other := r.plan("p-cache-2", 10, nil)
	r.do(other, "/openai/v1/chat/completions", body)
	if r.up.count() != 3 {
		t.Fatalf("upstream calls %d, want 3", r.up.count())
	}
	tot, _ := r.totals("run-p-cache")
	if tot.CacheHits != 1 || tot.ExternalCalls != 2 {
		t.Fatalf("totals %+v", tot)
	}
}

func TestDegradeToLocalPastTheWarningRatio(t *testing.T) {
	r := newRig(t, rigOpts{extra: "degrade: {upstream: local, model: qwen-coder}\n"})
	key := r.plan("p-deg", 0.01, func(p *budget.Plan) { p.DegradeToLocal = true })
	r.up.in, r.up.out = 20, 400
	body := chatBody("gpt-4o", 5, `,"max_tokens":400`)
	if res := r.do(key, "/openai/v1/chat/completions", body); res.status != 200 || res.header.Get("X-Agentgate-Degraded") != "" {
		t.Fatalf("first call: %d %v", res.status, res.header)
	}
	for i := 0; i < 5; i++ {
		res := r.do(key, "/openai/v1/chat/completions", body)
		if res.status != 200 || res.header.Get("X-Agentgate-Degraded") != "qwen-coder" {
			t.Fatalf("call %d: %d %v %s", i, res.status, res.header, res.body)
		}
	}
	sent, hdr := r.local.received()
	if sent["model"] != "qwen-coder" || hdr.Get("Authorization") != "" {
		t.Fatalf("local upstream got %v %v", sent["model"], hdr)
	}
	if r.up.count() != 1 || r.local.count() != 5 {
		t.Fatalf("paid %d local %d", r.up.count(), r.local.count())
	}
	tot, _ := r.totals("run-p-deg")
	if !tot.Degraded || tot.LocalCalls != 5 || tot.ExternalCalls != 1 {
		t.Fatalf("manifest totals %+v", tot)
	}
	// A plan without degrade_to_local is not degraded.
	key2 := r.plan("p-nodeg", 0.01, nil)
	r.do(key2, "/openai/v1/chat/completions", body)
	if res := r.do(key2, "/openai/v1/chat/completions", body); res.header.Get("X-Agentgate-Degraded") != "" {
		t.Fatal("degraded without degrade_to_local")
	}
}

func TestStreamsPassThroughUnbuffered(t *testing.T) {
	r := newRig(t, rigOpts{})
	key := r.plan("p-flow", 10, nil)
	r.up.hold = make(chan struct{})
	req, _ := http.NewRequest(http.MethodPost, r.srv.URL+"/openai/v1/chat/completions", strings.NewReader(chatBody("gpt-4o", 5, `,"stream":true`)))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The upstream holds its last events until we have read the first ones.
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 4096)
	deadline := time.After(5 * time.Second)
	for !bytes.Contains(buf, []byte("word4")) {
		select {
		case <-deadline:
			t.Fatalf("the first events did not arrive while the upstream was still streaming: %q", buf)
		default:
		}
		n, err := resp.Body.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			t.Fatalf("read: %v (%q)", err, buf)
		}
	}
	close(r.up.hold)
	rest, _ := io.ReadAll(resp.Body)
	if !bytes.Contains(rest, []byte("[DONE]")) {
		t.Fatalf("rest %q", rest)
	}
}

func TestMetricsAreExposed(t *testing.T) {
	r := newRig(t, rigOpts{})
	key := r.plan("p-metrics", 10, nil)
	r.do(key, "/openai/v1/chat/completions", chatBody("gpt-4o", 5, ""))
	r.flush()
	resp, err := http.Get(r.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`agentgate_llm_tokens_total{model="gpt-4o",provider="openai",type="output"} 200`,
		`agentgate_llm_cost_usd_total{model="gpt-4o",provider="openai"}`,
		`agentgate_budget_decisions_total{decision="allow",scope="plan"} 1`,
		`agentgate_llm_requests_total{outcome="ok",provider="openai"} 1`,
		`agentgate_time_to_first_token_seconds_bucket`,
		`agentgate_budget_admissions_total{path="memory"} 1`,
		`agentgate_budget_lease_grants_total 1`,
		`agentgate_budget_leases_open 1`,
		`agentgate_budget_calls_in_flight 0`,
		`agentgate_budget_reserved_usd 0.4955`, // the lease (5 % of $10) less the call's cost, now spent
	} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if bytes.Contains(b, []byte("p-metrics")) || bytes.Contains(b, []byte("run-")) {
		t.Error("metrics carry a plan or run id")
	}
}

func TestRequestCeilingAndMonthlyCapsRefuseWithoutStoppingThePlan(t *testing.T) {
	r := newRig(t, rigOpts{extra: "request_ceiling_usd: 0.01\nmonthly_caps: {repos: {acme/app: 0.03}}\n"})
	key := r.plan("p-caps", 10, nil)
	r.up.in, r.up.out = 20, 400
	// Worst case above the ceiling: 2000 output tokens of gpt-4o = $0.02.
	res := r.do(key, "/openai/v1/chat/completions", chatBody("gpt-4o", 5, `,"max_tokens":2000`))
	if res.status != 429 || !strings.Contains(string(res.body), "per-request ceiling") || strings.Contains(string(res.body), "STOP_BUDGET_EXCEEDED") {
		t.Fatalf("over the ceiling: %d %s", res.status, res.body)
	}
	// Calls of about $0.004 each until the repository's monthly cap ($0.03).
	var last result
	for i := 0; i < 10; i++ {
		if last = r.do(key, "/openai/v1/chat/completions", chatBody("gpt-4o", 5, `,"max_tokens":400`)); last.status != 200 {
			break
		}
	}
	if last.status != 429 || !strings.Contains(string(last.body), "repo acme/app") {
		t.Fatalf("monthly repo cap: %d %s", last.status, last.body)
	}
	if p := r.status("p-caps"); p.Stopped || p.Spent > budgetNano(0.03) {
		t.Fatalf("plan %+v", p)
	}
}

func budgetNano(usd float64) int64 { return int64(usd * 1e9) }

func TestUpstreamTimeoutCutsAStreamAndSettlesWhatArrived(t *testing.T) {
	r := newRig(t, rigOpts{extra: "upstream_timeout: 300ms\n"})
	key := r.plan("p-timeout", 10, nil)
	r.up.hold = make(chan struct{}) // the upstream never finishes on its own
	defer close(r.up.hold)
	start := time.Now()
	res := r.do(key, "/openai/v1/chat/completions", chatBody("gpt-4o", 5, `,"stream":true,"max_tokens":1000`))
	if time.Since(start) > 5*time.Second || !bytes.Contains(res.body, []byte("word4")) || bytes.Contains(res.body, []byte("[DONE]")) {
		t.Fatalf("after %v: %q", time.Since(start), res.body)
	}
	p := r.status("p-timeout")
	if p.Reserved != 0 || p.Spent <= 0 || p.Spent >= 1000*10000 {
		t.Fatalf("spent %d reserved %d", p.Spent, p.Reserved)
	}
}
