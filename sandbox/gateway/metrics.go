package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics follow Prometheus naming (snake_case, base units, _total on
// counters) with low-cardinality labels only: never a plan, run or key id.
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	tokens        *prometheus.CounterVec
	cost          *prometheus.CounterVec
	decisions     *prometheus.CounterVec
	utilization   *prometheus.GaugeVec
	duration      *prometheus.HistogramVec
	upstream      *prometheus.HistogramVec
	ttft          *prometheus.HistogramVec
	estimateRatio *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentgate_llm_requests_total", Help: "LLM API calls through the gateway by outcome.",
		}, []string{"provider", "outcome"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentgate_llm_tokens_total", Help: "Tokens used, by type (input, cache_read, cache_write, output).",
		}, []string{"provider", "model", "type"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentgate_llm_cost_usd_total", Help: "Settled cost in USD.",
		}, []string{"provider", "model"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentgate_budget_decisions_total", Help: "Budget admission decisions by deciding scope.",
		}, []string{"scope", "decision"}),
		utilization: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "agentgate_budget_utilization_ratio", Help: "Projected spend over limit of the last judged call, by scope kind (0-1+).",
		}, []string{"scope"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "agentgate_http_request_duration_seconds", Help: "Gateway request duration, including the upstream.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"api"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "agentgate_upstream_request_duration_seconds", Help: "Upstream call duration until the response body ended.",
			Buckets: prometheus.ExponentialBuckets(0.01, 3, 10),
		}, []string{"provider"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "agentgate_time_to_first_token_seconds", Help: "Time from forwarding to the first response byte.",
			Buckets: prometheus.ExponentialBuckets(0.01, 3, 10),
		}, []string{"provider"}),
		estimateRatio: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "agentgate_llm_input_estimate_ratio", Help: "Estimated over reported input tokens, to calibrate estimate_margin.",
			Buckets: []float64{0.5, 0.8, 0.9, 1, 1.1, 1.2, 1.3, 1.5, 2, 4},
		}, []string{"provider"}),
	}
	m.reg.MustRegister(m.requests, m.tokens, m.cost, m.decisions, m.utilization, m.duration, m.upstream, m.ttft, m.estimateRatio)
	return m
}
