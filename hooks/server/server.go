package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/agentgate/agentgate/gate/ladder"
	"github.com/agentgate/agentgate/hooks/commands"
	agh "github.com/agentgate/agentgate/hooks/github"
	"github.com/agentgate/agentgate/hooks/webhook"
	"github.com/agentgate/agentgate/internal/store"
)

// Deps are the parts the server is given rather than builds.
type Deps struct {
	// Evaluator evaluates changes (required).
	Evaluator Evaluator
	// Audit receives every decision before it is posted (required).
	Audit Auditor
	// Commands handles issue_comment commands; nil means hooks/commands'
	// dispatcher over this installation's GitHub client and the stores below.
	Commands commands.CommandHandler
	// Approvals stores accepted approvals (gate/approval/sqlstore); Holds
	// records /hold and /unhold; Budget approves budget escalations; Runs
	// resumes stopped runs. A nil store disables its command, which is then
	// answered "not enabled on this server".
	Approvals commands.ApprovalStore
	Holds     commands.HoldStore
	Budget    commands.BudgetApprover
	Runs      commands.RunResumer
	// Ladder decides rungs (nil: the seed ladder).
	Ladder *ladder.Ladder
	Logger *slog.Logger
	// Registry receives metrics (nil: a new registry).
	Registry *prometheus.Registry
	// Transport is the base HTTP transport to GitHub (nil: default).
	Transport http.RoundTripper
}

type metrics struct {
	evaluations   *prometheus.CounterVec
	jobs          *prometheus.HistogramVec
	checkDuration prometheus.Histogram
}

// Server is `agentgate serve`: the webhook intake, the workers, the
// reconciler and the operational endpoints.
type Server struct {
	cfg      *Config
	st       *store.Store
	app      *agh.App
	queue    *webhook.Queue
	intake   *webhook.Handler
	eval     Evaluator
	audit    Auditor
	cmds     commands.CommandHandler
	cmdDeps  Deps
	ladder   *ladder.Ladder
	repos    *repoCache
	serial   *serializer
	log      *slog.Logger
	registry *prometheus.Registry
	metrics  metrics
	started  atomic.Bool
}

// New wires the server: migrations, River client and workers, GitHub App,
// intake handler. It does not start anything.
func New(ctx context.Context, cfg *Config, st *store.Store, deps Deps) (*Server, error) {
	if deps.Evaluator == nil || deps.Audit == nil {
		return nil, errors.New("server: an evaluator and an audit log are required")
	}
	s := &Server{cfg: cfg, st: st, eval: deps.Evaluator, audit: deps.Audit, cmds: deps.Commands, cmdDeps: deps,
		ladder: deps.Ladder, log: deps.Logger, registry: deps.Registry, serial: newSerializer()}
	if s.ladder == nil {
		s.ladder = ladder.MustSeed()
	}
	if s.log == nil {
		s.log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
	}
	key, err := os.ReadFile(cfg.GitHub.PrivateKeyFile)
	if err != nil {
		return nil, fmt.Errorf("read the App's private key: %w", err)
	}
	ghm, err := agh.NewMetrics(s.registry)
	if err != nil {
		return nil, err
	}
	if s.app, err = agh.New(agh.Config{AppID: cfg.GitHub.AppID, PrivateKey: key, APIURL: cfg.GitHub.APIURL, Metrics: ghm, Base: deps.Transport}); err != nil {
		return nil, err
	}
	if s.repos, err = newRepoCache(cfg.CloneCache, cfg.GitHub.GitURL); err != nil {
		return nil, err
	}
	if err := webhook.MigrateAll(ctx, st); err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx, Component, Migrations); err != nil {
		return nil, fmt.Errorf("server: migrate: %w", err)
	}
	s.metrics = metrics{
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentgate_evaluations_total",
			Help: "Evaluations by outcome (check-run conclusion, or superseded)."}, []string{"outcome"}),
		jobs: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "agentgate_job_duration_seconds",
			Help: "Job latency by kind and result.", Buckets: []float64{.05, .1, .5, 1, 5, 15, 60, 300, 1800}}, []string{"kind", "result"}),
		checkDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "agentgate_check_duration_seconds",
			Help: "Time spent evaluating one change.", Buckets: []float64{.1, .5, 1, 5, 15, 60, 300, 1800}}),
	}
	s.registry.MustRegister(s.metrics.evaluations, s.metrics.jobs, s.metrics.checkDuration)
	s.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentgate_queue_depth",
		Help: "Jobs waiting or running."}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := webhook.PendingJobs(ctx, st)
		if err != nil {
			return -1
		}
		return float64(n)
	}))

	s.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentgate_jobs_discarded",
		Help: "Jobs that exhausted their attempts (dead letters); alert when it grows."}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var n int64
		if err := st.DB().QueryRowContext(ctx, `SELECT count(*) FROM river_job WHERE state = 'discarded'`).Scan(&n); err != nil {
			return -1
		}
		return float64(n)
	}))
	workers := river.NewWorkers()
	river.AddWorker(workers, &deliveryWorker{s: s})
	river.AddWorker(workers, &evaluateWorker{s: s})
	river.AddWorker(workers, &reconcileWorker{s: s})
	rcfg := &river.Config{
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}},
		Workers:              workers,
		JobTimeout:           time.Duration(cfg.JobTimeout),
		RescueStuckJobsAfter: time.Duration(cfg.RescueAfter),
		FetchCooldown:        50 * time.Millisecond,
		FetchPollInterval:    250 * time.Millisecond,
		Logger:               s.log.With("component", "river"),
		ErrorHandler:         &jobErrors{log: s.log},
	}
	if cfg.Reconcile() > 0 {
		rcfg.PeriodicJobs = []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(cfg.Reconcile()),
			func() (river.JobArgs, *river.InsertOpts) { return ReconcileArgs{}, nil }, &river.PeriodicJobOpts{RunOnStart: true})}
	}
	if s.queue, err = webhook.NewQueue(st, rcfg); err != nil {
		return nil, err
	}
	secrets, err := cfg.Secrets()
	if err != nil {
		return nil, err
	}
	if s.intake, err = webhook.NewHandler(webhook.Config{Secrets: secrets, Handled: handled, Recorder: s.queue,
		Logger: s.log, Registerer: s.registry}); err != nil {
		return nil, err
	}
	return s, nil
}

// Handler is the HTTP surface: POST /webhook, /healthz, /readyz, /metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/webhook", s.intake)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.st.DB().PingContext(ctx); err != nil {
			http.Error(w, "store unreachable", http.StatusServiceUnavailable)
			return
		}
		if !s.started.Load() {
			http.Error(w, "workers not started", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	return mux
}

// Run starts the workers and the HTTP server on l (nil: listen on
// cfg.Listen) and blocks until ctx ends; then it stops accepting
// deliveries, lets running jobs finish for up to grace, and cancels the
// rest (River retries them).
func (s *Server) Run(ctx context.Context, l net.Listener, grace time.Duration) error {
	if l == nil {
		var err error
		if l, err = net.Listen("tcp", s.cfg.Listen); err != nil {
			return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
		}
	}
	if err := s.queue.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start the workers: %w", err)
	}
	s.started.Store(true)
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	s.log.Info("agentgate serve listening", "addr", l.Addr().String(), "api_url", s.cfg.GitHub.APIURL, "workers", s.cfg.Workers)
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	_ = srv.Shutdown(sctx)
	s.started.Store(false)
	if err := s.queue.Stop(sctx); err != nil {
		// Hand the unfinished jobs back rather than leaving them "running"
		// until the rescuer notices: cancelled jobs are retried at once on
		// the next start.
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		err2 := s.queue.StopAndCancel(cctx)
		ccancel()
		s.log.Warn("jobs still running at the end of the grace period were cancelled; they will be retried", "err", err, "cancel_err", err2)
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return serveErr
}

// jobErrors logs job failures and panics.
type jobErrors struct{ log *slog.Logger }

func (h *jobErrors) HandleError(ctx context.Context, job *rivertype.JobRow, err error) *river.ErrorHandlerResult {
	h.log.Warn("job failed; it will be retried", "kind", job.Kind, "job_id", job.ID, "attempt", job.Attempt, "err", err)
	return nil
}

func (h *jobErrors) HandlePanic(ctx context.Context, job *rivertype.JobRow, panicVal any, trace string) *river.ErrorHandlerResult {
	h.log.Error("job panicked; it will be retried", "kind", job.Kind, "job_id", job.ID, "panic", fmt.Sprint(panicVal), "trace", trace)
	return nil
}
