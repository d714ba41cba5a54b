package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentgate/agentgate/gate/budget"
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
			Name: "agentgate_llm_cost_usd_total", Help: "Settled cost in USD (spent: what the providers reported, or what a cut call was charged).",
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

// leaseStats is a ledger with budget leases (budget.Leaser).
type leaseStats interface {
	Stats() budget.LeaseStats
}

// registerLeases exports what a leasing ledger holds and does. Spend that is
// settled is agentgate_llm_cost_usd_total; what is reserved but not spent
// (open leases and single-call reservations of this process) is
// agentgate_budget_reserved_usd.
func (m *metrics) registerLeases(src leaseStats) {
	gauge := func(name, help string, f func(budget.LeaseStats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(src.Stats()) })
	}
	counter := func(name, help string, labels prometheus.Labels, f func(budget.LeaseStats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, func() float64 { return f(src.Stats()) })
	}
	m.reg.MustRegister(
		gauge("agentgate_budget_reserved_usd", "Budget this gateway process holds reserved in the ledger (open leases and single-call reservations), not spent, USD.",
			func(s budget.LeaseStats) float64 { return budget.NanoToUSD(s.Outstanding) }),
		gauge("agentgate_budget_leases_open", "Budget leases of this process not yet closed.",
			func(s budget.LeaseStats) float64 { return float64(s.OpenLeases) }),
		gauge("agentgate_budget_calls_in_flight", "Calls admitted and not yet settled.",
			func(s budget.LeaseStats) float64 { return float64(s.InFlight) }),
		gauge("agentgate_budget_calls_in_flight_usd", "Worst-case cost of the calls admitted and not yet settled, USD.",
			func(s budget.LeaseStats) float64 { return budget.NanoToUSD(s.InFlightAmount) }),
		gauge("agentgate_budget_writes_queued", "Settlements, lease grants and releases waiting for the next group commit.",
			func(s budget.LeaseStats) float64 { return float64(s.QueuedWrites) }),
		counter("agentgate_budget_lease_grants_total", "Budget leases granted.", nil,
			func(s budget.LeaseStats) float64 { return float64(s.Grants) }),
		counter("agentgate_budget_admissions_total", "Calls admitted, by path: in memory against a lease, or judged alone in a durable transaction.", prometheus.Labels{"path": "memory"},
			func(s budget.LeaseStats) float64 { return float64(s.MemoryAdmits) }),
		counter("agentgate_budget_admissions_total", "Calls admitted, by path: in memory against a lease, or judged alone in a durable transaction.", prometheus.Labels{"path": "durable"},
			func(s budget.LeaseStats) float64 { return float64(s.DurableAdmits) }),
		counter("agentgate_budget_commits_total", "Group-commit transactions of the budget ledger.", nil,
			func(s budget.LeaseStats) float64 { return float64(s.Commits) }),
		counter("agentgate_budget_committed_writes_total", "Writes committed by those transactions.", nil,
			func(s budget.LeaseStats) float64 { return float64(s.CommittedWrites) }),
	)
}
