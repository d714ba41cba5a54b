package github

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the adapter's Prometheus collectors.
type Metrics struct {
	Calls     *prometheus.CounterVec   // endpoint, method, code
	Retries   *prometheus.CounterVec   // endpoint, reason
	Duration  *prometheus.HistogramVec // endpoint
	Remaining *prometheus.GaugeVec     // installation
	Limit     *prometheus.GaugeVec     // installation
}

// NewMetrics creates the collectors and registers them on reg (if not nil).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentgate_github_requests_total", Help: "GitHub API requests by endpoint, method and status code (\"error\" for transport errors).",
		}, []string{"endpoint", "method", "code"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentgate_github_retries_total", Help: "GitHub API retries by endpoint and reason (5xx, network, secondary_rate_limit, rate_limit).",
		}, []string{"endpoint", "reason"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "agentgate_github_request_duration_seconds", Help: "GitHub API request latency.",
			Buckets: prometheus.DefBuckets,
		}, []string{"endpoint"}),
		Remaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "agentgate_github_rate_limit_remaining", Help: "x-ratelimit-remaining last seen, per installation.",
		}, []string{"installation"}),
		Limit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "agentgate_github_rate_limit_limit", Help: "x-ratelimit-limit last seen, per installation.",
		}, []string{"installation"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.Calls, m.Retries, m.Duration, m.Remaining, m.Limit} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// RetryPolicy bounds retries of one request.
type RetryPolicy struct {
	MaxAttempts int           // total attempts including the first (default 8)
	BaseDelay   time.Duration // first backoff (default 500ms), doubled each time, with jitter
	MaxDelay    time.Duration // cap of one wait, also for Retry-After (default 60s)
	MaxElapsed  time.Duration // give up when the next wait would pass this (default 3m)
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 8
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 500 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = time.Minute
	}
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = 3 * time.Minute
	}
	return p
}

// retryTransport retries GitHub API requests: 5xx and network errors for
// requests that are safe to repeat, and rate-limit answers (403/429 with
// Retry-After, x-ratelimit-remaining: 0 or a secondary-rate-limit message)
// for every request, since GitHub refused those before acting on them.
type retryTransport struct {
	base         http.RoundTripper
	policy       RetryPolicy
	metrics      *Metrics
	installation string
	sleep        func(ctx context.Context, d time.Duration) error
	// attemptTimeout bounds one attempt (until the body is closed).
	attemptTimeout time.Duration
}

// cancelBody cancels the attempt's context once the body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// repeatable reports whether a request may be sent again after a 5xx or a
// network error without risking a duplicate side effect. POSTs that create
// tokens, reactions (GitHub answers 200 for an existing one) and statuses
// (a repeated status is the same state again) are safe; creating a check
// run or a comment is not, and is retried by the caller after looking for
// what it may already have created.
func repeatable(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	case http.MethodPost:
		p := r.URL.Path
		return strings.HasSuffix(p, "/access_tokens") || strings.HasSuffix(p, "/reactions") || strings.Contains(p, "/statuses/")
	}
	return false
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ep := endpoint(req.URL.Path)
	start := time.Now()
	var body []byte
	if req.Body != nil && req.GetBody == nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 || body != nil {
			r = req.Clone(req.Context())
			if body != nil {
				r.Body = io.NopCloser(bytes.NewReader(body))
			} else if req.GetBody != nil {
				b, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				r.Body = b
			}
		}
		cancel := context.CancelFunc(func() {})
		if t.attemptTimeout > 0 {
			var actx context.Context
			actx, cancel = context.WithTimeout(req.Context(), t.attemptTimeout)
			r = r.WithContext(actx)
		}
		t0 := time.Now()
		resp, err := t.base.RoundTrip(r)
		if resp != nil {
			resp.Body = cancelBody{ReadCloser: resp.Body, cancel: cancel}
		} else {
			cancel()
		}
		if err != nil && req.Context().Err() == nil && r.Context().Err() != nil {
			err = fmt.Errorf("github: no answer within %s: %w", t.attemptTimeout, err)
		}
		t.metrics.Duration.WithLabelValues(ep).Observe(time.Since(t0).Seconds())
		code := "error"
		if resp != nil {
			code = strconv.Itoa(resp.StatusCode)
			t.observeRate(resp)
		}
		t.metrics.Calls.WithLabelValues(ep, req.Method, code).Inc()

		wait, reason := t.decide(req, resp, err, attempt)
		if reason == "" {
			return resp, err
		}
		if attempt >= t.policy.MaxAttempts || time.Since(start)+wait > t.policy.MaxElapsed {
			return resp, err
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
		}
		t.metrics.Retries.WithLabelValues(ep, reason).Inc()
		if serr := t.sleep(req.Context(), wait); serr != nil {
			if err == nil {
				err = serr
			}
			return nil, errors.Join(serr, err)
		}
	}
}

var secondaryRE = regexp.MustCompile(`(?i)secondary rate limit|abuse detection`)

// decide returns how long to wait and why, or reason "" for no retry.
func (t *retryTransport) decide(req *http.Request, resp *http.Response, err error, attempt int) (time.Duration, string) {
	backoff := func() time.Duration {
		d := t.policy.BaseDelay << (attempt - 1)
		if d > t.policy.MaxDelay || d <= 0 {
			d = t.policy.MaxDelay
		}
		return d/2 + rand.N(d/2+1)
	}
	if err != nil {
		if req.Context().Err() != nil {
			return 0, ""
		}
		var ne net.Error
		if repeatable(req) && (errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)) {
			return backoff(), "network"
		}
		return 0, ""
	}
	switch resp.StatusCode {
	case http.StatusForbidden, http.StatusTooManyRequests:
		ra := retryAfter(resp)
		if resp.Header.Get("X-Ratelimit-Remaining") == "0" {
			if ra == 0 {
				if reset, e := strconv.ParseInt(resp.Header.Get("X-Ratelimit-Reset"), 10, 64); e == nil {
					ra = time.Until(time.Unix(reset, 0)) + time.Second
				}
			}
			return t.clamp(ra, backoff), "rate_limit"
		}
		if ra > 0 || resp.StatusCode == http.StatusTooManyRequests || t.peekSecondary(resp) {
			if ra == 0 {
				// GitHub: wait at least a minute when no Retry-After is given.
				ra = time.Minute
			}
			return t.clamp(ra, backoff), "secondary_rate_limit"
		}
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		if repeatable(req) {
			if ra := retryAfter(resp); ra > 0 {
				return t.clamp(ra, backoff), "5xx"
			}
			return backoff(), "5xx"
		}
	}
	return 0, ""
}

func (t *retryTransport) clamp(d time.Duration, backoff func() time.Duration) time.Duration {
	if d <= 0 {
		return backoff()
	}
	if d > t.policy.MaxDelay {
		return t.policy.MaxDelay
	}
	return d
}

// peekSecondary reads a 403 body to look for GitHub's secondary-rate-limit
// message, leaving the body readable for the caller.
func (t *retryTransport) peekSecondary(resp *http.Response) bool {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return secondaryRE.Match(b)
}

func retryAfter(resp *http.Response) time.Duration {
	v := resp.Header.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil {
		return time.Until(at)
	}
	return 0
}

func (t *retryTransport) observeRate(resp *http.Response) {
	if v, err := strconv.ParseFloat(resp.Header.Get("X-Ratelimit-Remaining"), 64); err == nil {
		t.metrics.Remaining.WithLabelValues(t.installation).Set(v)
	}
	if v, err := strconv.ParseFloat(resp.Header.Get("X-Ratelimit-Limit"), 64); err == nil {
		t.metrics.Limit.WithLabelValues(t.installation).Set(v)
	}
}

// endpoint reduces a path to a low-cardinality label: "check-runs",
// "pulls", "access_tokens", ...
func endpoint(path string) string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, s := range segs {
		if s == "repos" && i+3 < len(segs) {
			return segs[i+3]
		}
		if s == "app" || s == "installation" || s == "orgs" {
			last := segs[len(segs)-1]
			if _, err := strconv.Atoi(last); err == nil {
				last = "id"
			}
			return s + "/" + last
		}
	}
	return "other"
}
