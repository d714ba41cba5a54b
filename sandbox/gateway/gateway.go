package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/agentgate/agentgate/gate/budget"
	"github.com/agentgate/agentgate/policies"
)

// KeyVerifier checks run keys; *Keys implements it.
type KeyVerifier interface {
	Verify(ctx context.Context, key string) (RunKey, error)
}

// Options wire a Gateway.
type Options struct {
	Config *Config
	Prices *PriceTable // nil: the built-in table
	Keys   KeyVerifier
	Ledger budget.Ledger
	Logger *slog.Logger
	// Transport reaches the upstreams; nil uses a dedicated http.Transport
	// that ignores proxy environment variables.
	Transport http.RoundTripper
	// OnStop is called when a call is refused because the plan hit its stop
	// ratio (at the transition and at every refused call after it): the
	// run's supervisor must stop the run (fail closed). The stop is already
	// latched in the ledger, where supervisors in other processes read it.
	OnStop func(ctx context.Context, n Notice)
	// OnWarn is called when a call crosses the plan's warning ratio, once
	// per plan (for a PR comment through the GitHub App).
	OnWarn func(ctx context.Context, n Notice)
	// OnEscalate is called when a call reaches the plan's escalation ratio
	// and a human's approval is needed, once until the next approval.
	OnEscalate func(ctx context.Context, n Notice)
	// The callbacks run on the call's path: they must return at once (queue
	// their work).
}

// Notice is a budget transition a call caused, for the wiring (a PR
// comment, the run's supervisor).
type Notice struct {
	Kind   string // budget.EventWarn, budget.EventEscalate or budget.EventStop
	PlanID string
	RunID  string
	// PR is the pull request of the run key ("owner/name#N"), or "".
	PR      string
	Verdict budget.Verdict
}

// Gateway is the metered reverse proxy.
type Gateway struct {
	cfg        *Config
	prices     *PriceTable
	keys       KeyVerifier
	ledger     budget.Ledger
	log        *slog.Logger
	proxy      *httputil.ReverseProxy
	cache      *responseCache
	metrics    *metrics
	orgCaps    map[string]int64
	repoCaps   map[string]int64
	ceiling    int64
	onStop     func(ctx context.Context, n Notice)
	onWarn     func(ctx context.Context, n Notice)
	onEscalate func(ctx context.Context, n Notice)
	pending    *pendingSettles
	timeout    time.Duration
}

// New builds a Gateway from a validated Config.
func New(o Options) (*Gateway, error) {
	if o.Config == nil || o.Keys == nil || o.Ledger == nil {
		return nil, errors.New("gateway: Config, Keys and Ledger are required")
	}
	g := &Gateway{cfg: o.Config, prices: o.Prices, keys: o.Keys, ledger: o.Ledger, log: o.Logger,
		metrics: newMetrics(), pending: newPendingSettles(), ceiling: budget.USDToNano(o.Config.RequestCeilingUSD), onStop: o.OnStop, onWarn: o.OnWarn, onEscalate: o.OnEscalate}
	if g.prices == nil {
		g.prices = BuiltinPrices()
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if o.Config.Cache.Enabled {
		g.cache = newResponseCache(o.Config.Cache)
	}
	if ls, ok := o.Ledger.(leaseStats); ok {
		g.metrics.registerLeases(ls)
	}
	g.orgCaps, g.repoCaps = o.Config.capLimits()
	timeout, _ := time.ParseDuration(o.Config.UpstreamTimeout)
	g.timeout = timeout
	tr := o.Transport
	if tr == nil {
		tr = &http.Transport{
			Proxy:                 nil, // never route provider keys through an environment proxy
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: timeout,
			DisableCompression:    true, // bytes pass through as sent, so the meter reads them as the client does
		}
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		Transport:      tr,
		FlushInterval:  -1,
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.upstreamError,
		ErrorLog:       slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	return g, nil
}

// Registerer is the registry /metrics serves, for the wiring's own metrics
// (the GitHub client's, say).
func (g *Gateway) Registerer() prometheus.Registerer { return g.metrics.reg }

// Handler serves the proxy, /metrics and /healthz.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /agentgate/v1/run", g.serveRunStatus)
	mux.Handle("/", g)
	return mux
}

// RunStatus is what GET /agentgate/v1/run answers to a run key: its plan's
// live budget state and the run's totals. A supervisor outside the gateway
// process polls it and stops the run when Stopped is true.
type RunStatus struct {
	PlanID     string            `json:"plan_id"`
	RunID      string            `json:"run_id"`
	Plan       budget.PlanStatus `json:"plan"`
	Run        budget.RunTotals  `json:"run"`
	Stopped    bool              `json:"stopped"`
	StopReason string            `json:"stop_reason,omitempty"`
}

func (g *Gateway) serveRunStatus(w http.ResponseWriter, r *http.Request) {
	rk, err := g.keys.Verify(r.Context(), runKeyOf(r))
	if err != nil {
		writeError(w, http.StatusUnauthorized, "invalid_run_key", "invalid or revoked run key", nil)
		return
	}
	g.pending.wait(r.Context(), rk.PlanID)
	if f, ok := g.ledger.(flusher); ok {
		_ = f.Flush(r.Context())
	}
	ps, err := g.ledger.Status(r.Context(), rk.PlanID)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "budget_unavailable", "the budget ledger is unavailable", nil)
		return
	}
	rt, err := g.ledger.RunTotals(r.Context(), rk.RunID)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "budget_unavailable", "the budget ledger is unavailable", nil)
		return
	}
	st := RunStatus{PlanID: rk.PlanID, RunID: rk.RunID, Plan: ps, Run: rt, Stopped: ps.Stopped}
	if ps.Stopped {
		st.StopReason = string(policies.StopBudgetExceeded)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}

type stateKey struct{}

// callState follows one call from admission to settlement.
type callState struct {
	plan, run    string
	pr           string           // the run key's pull request
	planRead     *budget.PlanRead // read with the run key
	target       *Upstream
	rest         string
	api          API
	call         *callRequest
	price        Price
	local        bool
	degraded     bool
	reservation  string
	reserved     int64
	inputTokens  int64
	warning      string
	cacheKey     string
	start        time.Time
	forwarded    time.Time
	firstByte    time.Time
	mu           sync.Mutex
	status       int
	meter        *meter
	upstreamErr  error
	capture      *bytes.Buffer
	captureLimit int64
	contentType  string
}

// endpoint says how the gateway treats a path of an upstream.
func endpoint(kind, method, rest string) (api API, free, ok bool) {
	switch {
	case method == http.MethodGet && rest == "/v1/models":
		return "", true, true
	case method != http.MethodPost:
		return "", false, false
	case rest == "/v1/chat/completions" && kind != UpstreamAnthropic:
		return APIChat, false, true
	case rest == "/v1/responses" && kind == UpstreamOpenAI:
		return APIResponses, false, true
	case rest == "/v1/messages" && kind == UpstreamAnthropic:
		return APIMessages, false, true
	case rest == "/v1/messages/count_tokens" && kind == UpstreamAnthropic:
		return "", true, true
	}
	return "", false, false
}

func runKeyOf(r *http.Request) string {
	if k := r.Header.Get("X-Api-Key"); k != "" {
		return k
	}
	if a, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(a)
	}
	return ""
}

// apiError is the JSON error body; its shape is readable by both the
// OpenAI and the Anthropic SDKs.
type apiError struct {
	Type  string         `json:"type"`
	Error apiErrorDetail `json:"error"`
}

type apiErrorDetail struct {
	Type       string   `json:"type"`
	Code       string   `json:"code"`
	Message    string   `json:"message"`
	StopReason string   `json:"stop_reason,omitempty"`
	Ratio      *float64 `json:"projected_ratio,omitempty"`
}

func writeError(w http.ResponseWriter, status int, code, msg string, extra func(*apiErrorDetail)) {
	d := apiErrorDetail{Type: code, Code: code, Message: msg}
	if extra != nil {
		extra(&d)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Agentgate-Error", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(apiError{Type: "error", Error: d})
}

// ServeHTTP admits, forwards and settles one call.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	rest = "/" + rest
	up := g.cfg.upstream(name)
	if up == nil || strings.Contains(r.URL.Path, "..") {
		writeError(w, http.StatusNotFound, "unknown_upstream", fmt.Sprintf("no upstream %q is configured; the gateway reaches only its configured providers", name), nil)
		return
	}
	api, free, ok := endpoint(up.API, r.Method, rest)
	if !ok {
		writeError(w, http.StatusNotFound, "endpoint_not_metered", fmt.Sprintf("%s %s is not an endpoint the gateway meters; it is refused", r.Method, rest), nil)
		return
	}
	rk, err := g.keys.Verify(r.Context(), runKeyOf(r))
	if err != nil {
		if errors.Is(err, ErrBadKey) {
			writeError(w, http.StatusUnauthorized, "invalid_run_key", "invalid or revoked run key: ask the run's supervisor for a key (agentgate gateway keys issue)", nil)
			return
		}
		g.log.Error("gateway: key lookup failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "store_unavailable", "the gateway cannot check run keys right now; retry later", nil)
		return
	}
	if p := r.Header.Get("X-Agentgate-Plan"); p != "" && p != rk.PlanID {
		writeError(w, http.StatusForbidden, "key_plan_mismatch", "this run key is bound to another plan", nil)
		return
	}
	if p := r.Header.Get("X-Agentgate-Run"); p != "" && p != rk.RunID {
		writeError(w, http.StatusForbidden, "key_run_mismatch", "this run key is bound to another run", nil)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxRequestBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "request_too_large", fmt.Sprintf("the request body exceeds %d bytes", g.cfg.MaxRequestBytes), nil)
			return
		}
		writeError(w, http.StatusBadRequest, "bad_request", "cannot read the request body", nil)
		return
	}
	st := &callState{plan: rk.PlanID, run: rk.RunID, pr: rk.PR, planRead: rk.Plan, target: up, rest: rest, api: api, start: start}
	if free {
		st.local = true // nothing to meter
		g.forward(w, r, st, body)
		return
	}
	g.serveCall(w, r, st, body)
}

func (g *Gateway) serveCall(w http.ResponseWriter, r *http.Request, st *callState, body []byte) {
	ctx := r.Context()
	call, err := parseCall(st.api, body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error(), nil)
		return
	}
	st.call = call
	up := st.target
	if up.Local {
		if !up.serves(call.Model) {
			writeError(w, http.StatusBadRequest, "unknown_model", fmt.Sprintf("model %q is not served by the local upstream %s", call.Model, up.Name), nil)
			return
		}
		st.local = true
	} else {
		price, ok := g.prices.Lookup(call.Model)
		if !ok {
			writeError(w, http.StatusBadRequest, "unknown_model", fmt.Sprintf("model %q is not in the price table (version %s): refused, never priced at zero; see `agentgate gateway prices`", call.Model, g.prices.Version), nil)
			return
		}
		if price.Provider != up.API {
			writeError(w, http.StatusBadRequest, "unknown_model", fmt.Sprintf("model %q is a %s model, not served by the %s upstream %s", call.Model, price.Provider, up.API, up.Name), nil)
			return
		}
		st.price = price
	}
	maxField := "max_completion_tokens"
	if up.API == UpstreamOpenAICompatible {
		maxField = "max_tokens"
	}
	if err := call.finalize(g.cfg.DefaultMaxOutputTokens, maxField); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error(), nil)
		return
	}
	g.pending.wait(ctx, st.plan) // judge this call on its predecessors' real cost
	var worst int64
	if !st.local {
		n, err := countTokens(st.price.Tokenizer, g.cfg.EstimateMargin, call.textForCount, call.imageLikeCount)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "estimate_failed", "cannot estimate the prompt size: "+err.Error(), nil)
			return
		}
		if call.ServerState {
			// The provider holds earlier turns we cannot see: assume a full context.
			n = st.price.MaxInputTokens
		}
		st.inputTokens = n
		worst, err = st.price.WorstCase(n, min(call.MaxOutput, st.price.MaxOutputTokens), call.N)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", err.Error(), nil)
			return
		}
		if g.cfg.Degrade != nil && st.api == APIChat {
			g.maybeDegrade(ctx, st, worst)
			if st.degraded {
				worst = 0
			}
		}
	}

	if g.cache != nil && call.Deterministic {
		st.cacheKey = cacheKey(st.plan, st.target.Name, st.rest, call.Body)
		if e, ok := g.cache.get(st.cacheKey); ok {
			g.serveCacheHit(w, r, st, e)
			return
		}
	}

	res, err := g.ledger.Reserve(ctx, budget.ReserveRequest{PlanID: st.plan, RunID: st.run, Provider: g.provider(st), Model: call.Model,
		Amount: worst, OrgCaps: g.orgCaps, RepoCaps: g.repoCaps, Ceiling: g.ceiling, Degraded: st.degraded, PlanRead: st.planRead})
	if err != nil {
		g.log.Error("gateway: reservation failed", "plan_id", st.plan, "run_id", st.run, "model", call.Model, "err", err)
		if errors.Is(err, budget.ErrUnknownPlan) {
			writeError(w, http.StatusForbidden, "unknown_plan", "the run key's plan has no budget in the ledger", nil)
			return
		}
		writeError(w, http.StatusServiceUnavailable, "budget_unavailable", "the budget ledger is unavailable; the call is refused (fail closed)", nil)
		return
	}
	if !g.admit(w, r, st, res) {
		return
	}
	st.reservation, st.reserved = res.ID, worst
	g.forward(w, r, st, call.Body)
}

func (g *Gateway) provider(st *callState) string {
	if st.local {
		return ProviderLocal
	}
	return st.price.Provider
}

// admit answers a refusal, or records the warning header; it reports
// whether the call goes ahead.
func (g *Gateway) admit(w http.ResponseWriter, r *http.Request, st *callState, res budget.Reservation) bool {
	v := res.Verdict
	g.metrics.decisions.WithLabelValues(v.Scope, string(v.Decision)).Inc()
	for _, sv := range res.Verdicts {
		if sv.Scope != budget.ScopeRequest && sv.Limit > 0 {
			g.metrics.utilization.WithLabelValues(sv.Scope).Set(sv.Ratio)
		}
	}
	logAttrs := []any{"plan_id", st.plan, "run_id", st.run, "model", st.call.Model, "decision", v.Decision, "scope", v.Scope, "ratio", v.Ratio}
	ratio := v.Ratio
	notice := func(kind string) Notice {
		return Notice{Kind: kind, PlanID: st.plan, RunID: st.run, PR: st.pr, Verdict: v}
	}
	ctx := context.WithoutCancel(r.Context())
	switch v.Decision {
	case budget.ApprovalRequired:
		g.log.Warn("gateway: approval required", logAttrs...)
		for _, e := range res.Events {
			if e.Kind == budget.EventEscalate && e.Scope == budget.ScopePlan && g.onEscalate != nil {
				g.onEscalate(ctx, notice(budget.EventEscalate))
			}
		}
		writeError(w, http.StatusForbidden, "budget_approval_required", "approval required: "+v.Reason, func(d *apiErrorDetail) { d.Ratio = &ratio })
		return false
	case budget.Busy:
		g.log.Info("gateway: budget busy", logAttrs...)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "budget_busy", v.Reason, func(d *apiErrorDetail) { d.Ratio = &ratio })
		return false
	case budget.HardStop:
		g.log.Warn("gateway: budget exceeded", logAttrs...)
		writeError(w, http.StatusTooManyRequests, "budget_exceeded", v.Reason, func(d *apiErrorDetail) {
			d.Ratio = &ratio
			if v.Scope == budget.ScopePlan {
				d.StopReason = string(policies.StopBudgetExceeded)
			}
		})
		if v.Scope == budget.ScopePlan && g.onStop != nil {
			g.onStop(ctx, notice(budget.EventStop))
		}
		return false
	case budget.Warn:
		st.warning = fmt.Sprintf("%.1f%% of the %s budget (%s)", 100*v.Ratio, v.Scope, budget.FormatUSD(v.Limit))
		for _, e := range res.Events {
			if e.Kind == budget.EventWarn && e.Scope == budget.ScopePlan && g.onWarn != nil {
				g.onWarn(ctx, notice(budget.EventWarn))
			}
		}
	}
	return true
}

// maybeDegrade routes a Chat Completions call to the local model when the
// plan allows it and the call would reach the warning ratio.
func (g *Gateway) maybeDegrade(ctx context.Context, st *callState, worst int64) {
	ps, err := g.ledger.Status(ctx, st.plan)
	if err != nil || !ps.DegradeToLocal || ps.Stopped {
		return
	}
	if float64(ps.Spent+ps.Reserved+worst) < float64(ps.Limit)*ps.Ratios.Warn {
		return
	}
	local := g.cfg.upstream(g.cfg.Degrade.Upstream)
	st.target, st.local, st.degraded = local, true, true
	if st.call.Injected {
		delete(st.call.fields, "max_completion_tokens")
		st.call.setField("max_tokens", st.call.MaxOutput)
	}
	st.call.setModel(g.cfg.Degrade.Model)
	_ = st.call.finalize(g.cfg.DefaultMaxOutputTokens, "max_tokens")
	g.log.Info("gateway: degraded to the local model", "plan_id", st.plan, "run_id", st.run, "model", g.cfg.Degrade.Model)
}

func (g *Gateway) serveCacheHit(w http.ResponseWriter, r *http.Request, st *callState, e cacheEntry) {
	ctx := r.Context()
	res, err := g.ledger.Reserve(ctx, budget.ReserveRequest{PlanID: st.plan, RunID: st.run, Provider: g.provider(st), Model: st.call.Model, CacheHit: true, Degraded: st.degraded, PlanRead: st.planRead})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "budget_unavailable", "the budget ledger is unavailable; the call is refused (fail closed)", nil)
		return
	}
	if !g.admit(w, r, st, res) {
		return
	}
	g.pending.add(st)
	go func() {
		defer g.pending.done(st)
		if err := g.settleWith(context.WithoutCancel(ctx), st, budget.Settlement{ReservationID: res.ID, Outcome: budget.OutcomeCacheHit, Detail: "response cache"}); err != nil {
			g.log.Error("gateway: settle cache hit", "plan_id", st.plan, "err", err)
		}
	}()
	g.metrics.requests.WithLabelValues(g.provider(st), string(budget.OutcomeCacheHit)).Inc()
	w.Header().Set("Content-Type", e.contentType)
	w.Header().Set("X-Agentgate-Cache", "hit")
	if st.warning != "" {
		w.Header().Set("X-Budget-Warning", st.warning)
	}
	w.WriteHeader(e.status)
	_, _ = w.Write(e.body)
}

func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, st *callState, body []byte) {
	if st.reservation != "" {
		// Settlement is written after the response is delivered (also when
		// the client hangs up: the proxy then aborts with a panic, and this
		// deferred call still runs). The plan's next admission waits for it.
		g.pending.add(st)
		ctx := context.WithoutCancel(r.Context())
		defer func() {
			go func() {
				defer g.pending.done(st)
				g.settle(ctx, st)
			}()
		}()
	}
	// The whole upstream call, stream included, is bounded.
	ctx, cancel := context.WithTimeout(r.Context(), g.timeout)
	defer cancel()
	out := r.Clone(context.WithValue(ctx, stateKey{}, st))
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.Header.Del("Content-Length")
	st.forwarded = time.Now()
	g.proxy.ServeHTTP(w, out)
	g.metrics.duration.WithLabelValues(string(st.api)).Observe(time.Since(st.start).Seconds())
}

var stripRequestHeaders = []string{"Authorization", "X-Api-Key", "X-Agentgate-Plan", "X-Agentgate-Run", "Accept-Encoding", "Cookie", "Proxy-Authorization", "Forwarded"}

func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	st := pr.In.Context().Value(stateKey{}).(*callState)
	u := st.target
	pr.Out.URL.Scheme = u.base.Scheme
	pr.Out.URL.Host = u.base.Host
	pr.Out.URL.Path = u.base.Path + st.rest
	pr.Out.URL.RawPath = ""
	pr.Out.Host = ""
	for _, h := range stripRequestHeaders {
		pr.Out.Header.Del(h)
	}
	switch u.API {
	case UpstreamAnthropic:
		pr.Out.Header.Set("X-Api-Key", u.key)
		if pr.Out.Header.Get("Anthropic-Version") == "" {
			pr.Out.Header.Set("Anthropic-Version", "2023-06-01")
		}
	default:
		if u.key != "" {
			pr.Out.Header.Set("Authorization", "Bearer "+u.key)
		}
	}
}

// Response headers that describe the provider account, not the call.
var stripResponseHeaders = []string{"Openai-Organization", "Openai-Project", "Anthropic-Organization-Id", "Set-Cookie"}

func (g *Gateway) modifyResponse(resp *http.Response) error {
	st := resp.Request.Context().Value(stateKey{}).(*callState)
	for _, h := range stripResponseHeaders {
		resp.Header.Del(h)
	}
	if st.warning != "" {
		resp.Header.Set("X-Budget-Warning", st.warning)
	}
	if st.degraded {
		resp.Header.Set("X-Agentgate-Degraded", g.cfg.Degrade.Model)
	}
	if st.reservation == "" {
		return nil
	}
	stream := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	st.mu.Lock()
	st.status = resp.StatusCode
	st.meter = newMeter(st.api, stream)
	st.contentType = resp.Header.Get("Content-Type")
	if st.cacheKey != "" && resp.StatusCode == http.StatusOK {
		st.capture, st.captureLimit = &bytes.Buffer{}, g.cfg.Cache.MaxEntryBytes
	}
	st.mu.Unlock()
	resp.Body = &meteredBody{rc: resp.Body, st: st}
	return nil
}

// meteredBody passes the upstream's bytes through unchanged while the meter
// reads them.
type meteredBody struct {
	rc io.ReadCloser
	st *callState
}

func (b *meteredBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		st := b.st
		st.mu.Lock()
		if st.firstByte.IsZero() {
			st.firstByte = time.Now()
		}
		st.meter.observe(p[:n])
		if st.capture != nil {
			if int64(st.capture.Len()+n) > st.captureLimit {
				st.capture = nil
			} else {
				st.capture.Write(p[:n])
			}
		}
		st.mu.Unlock()
	}
	return n, err
}

func (b *meteredBody) Close() error { return b.rc.Close() }

func (g *Gateway) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	st, _ := r.Context().Value(stateKey{}).(*callState)
	if st != nil {
		st.mu.Lock()
		st.upstreamErr = err
		st.mu.Unlock()
	}
	g.log.Warn("gateway: upstream error", "upstream", st.target.Name, "err", err)
	writeError(w, http.StatusBadGateway, "upstream_unreachable", "the provider could not be reached or did not answer in time", nil)
}

// settleWith hands s to the ledger — from then on the plan's next admission
// is judged on it — and waits until it is written.
func (g *Gateway) settleWith(ctx context.Context, st *callState, s budget.Settlement) error {
	if a, ok := g.ledger.(asyncSettler); ok {
		wait := a.SettleAsync(ctx, s)
		g.pending.handed(st)
		return wait()
	}
	return g.ledger.Settle(ctx, s)
}

// settle replaces the reservation by what the call really cost. It runs
// deferred, so it also runs when the client hangs up mid-stream (the proxy
// then aborts the handler with a panic).
func (g *Gateway) settle(ctx context.Context, st *callState) {
	ctx = context.WithoutCancel(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	s := budget.Settlement{ReservationID: st.reservation}
	var u TokenUsage
	var estimateRatio float64
	switch {
	case st.meter == nil:
		// No response. A refused connection never reached the provider; a
		// timeout after sending may have been billed for the prompt.
		var op *net.OpError
		if errors.As(st.upstreamErr, &op) && op.Op == "dial" {
			s.Outcome, s.Detail = budget.OutcomeUnreached, "provider unreachable"
		} else {
			s.Outcome, s.Detail = budget.OutcomeCut, "no response: prompt charged at the estimate"
			u = TokenUsage{Input: st.inputTokens}
		}
	case st.status >= 400:
		// Providers do not bill a call they answered with an error.
		s.Outcome, s.Detail = budget.OutcomeProviderError, fmt.Sprintf("provider answered %d", st.status)
		st.meter.finish()
	default:
		m := st.meter
		m.finish()
		complete := m.haveUsage && (!m.stream || m.terminal || m.api == APIChat)
		switch {
		case complete:
			s.Outcome, u = budget.OutcomeOK, m.usage
			if u.Input > 0 {
				estimateRatio = float64(st.inputTokens) / float64(u.Input)
			}
		case !m.stream:
			// A finished non-streamed call without usage: charge the worst case.
			s.Outcome, s.Detail = budget.OutcomeCut, "no usage in the response: charged the reservation"
			s.Cost = st.reserved
		default:
			// A cut stream is priced from what arrived: the input side as the
			// provider reported it (or our estimate), the output counted.
			s.Outcome, s.Detail = budget.OutcomeCut, "stream ended early: priced from what arrived"
			u = m.usage
			if !m.sawInput && !m.haveUsage {
				u = TokenUsage{Input: st.inputTokens}
			}
			u.Output = max(u.Output, outputTokensOf(st.price.Tokenizer, g.cfg.EstimateMargin, m))
		}
	}
	if s.Cost == 0 && !st.local {
		c, err := st.price.Cost(u)
		if err != nil {
			c, s.Detail = st.reserved, "unpriceable usage ("+err.Error()+"): charged the reservation"
		}
		s.Cost = c
	}
	s.Usage = budget.Usage{InputTokens: u.Input, CachedInputTokens: u.CachedInput, CacheWriteTokens: u.CacheWrite5m + u.CacheWrite1h, OutputTokens: u.Output, ReasoningTokens: u.Reasoning}
	if s.Cost > st.reserved && !st.local {
		// Only an input estimate below the provider's count can get here.
		g.log.Warn("gateway: a call cost more than its reservation; raise estimate_margin", "plan_id", st.plan, "run_id", st.run,
			"model", st.call.Model, "reserved_nano_usd", st.reserved, "cost_nano_usd", s.Cost, "estimated_input_tokens", st.inputTokens, "input_tokens", u.Input)
	}
	if err := g.settleWith(ctx, st, s); err != nil {
		// The reservation stays held: money is never released on doubt.
		g.log.Error("gateway: settlement failed; the reservation stays held", "plan_id", st.plan, "run_id", st.run, "reservation", st.reservation, "err", err)
	}
	provider := g.provider(st)
	model := st.call.Model
	g.metrics.requests.WithLabelValues(provider, string(s.Outcome)).Inc()
	g.metrics.tokens.WithLabelValues(provider, model, "input").Add(float64(u.Input - u.CachedInput - u.CacheWrite5m - u.CacheWrite1h))
	g.metrics.tokens.WithLabelValues(provider, model, "cache_read").Add(float64(u.CachedInput))
	g.metrics.tokens.WithLabelValues(provider, model, "cache_write").Add(float64(u.CacheWrite5m + u.CacheWrite1h))
	g.metrics.tokens.WithLabelValues(provider, model, "output").Add(float64(u.Output))
	g.metrics.cost.WithLabelValues(provider, model).Add(budget.NanoToUSD(s.Cost))
	if !st.forwarded.IsZero() {
		g.metrics.upstream.WithLabelValues(provider).Observe(time.Since(st.forwarded).Seconds())
		if !st.firstByte.IsZero() {
			g.metrics.ttft.WithLabelValues(provider).Observe(st.firstByte.Sub(st.forwarded).Seconds())
		}
	}
	if estimateRatio > 0 {
		g.metrics.estimateRatio.WithLabelValues(provider).Observe(estimateRatio)
	}
	g.log.Info("gateway: call settled", "plan_id", st.plan, "run_id", st.run, "model", model, "outcome", s.Outcome,
		"reserved_nano_usd", st.reserved, "cost_nano_usd", s.Cost, "estimated_input_tokens", st.inputTokens, "input_tokens", u.Input, "output_tokens", u.Output)
	if st.capture != nil && s.Outcome == budget.OutcomeOK && st.status == http.StatusOK {
		g.cache.put(st.cacheKey, cacheEntry{status: st.status, contentType: st.contentType, body: bytes.Clone(st.capture.Bytes())})
	}
}
