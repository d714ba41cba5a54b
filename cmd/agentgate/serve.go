package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentgate/agentgate/gate/approval/sqlstore"
	"github.com/agentgate/agentgate/gate/audit"
	"github.com/agentgate/agentgate/gate/budget"
	"github.com/agentgate/agentgate/gate/sign"
	"github.com/agentgate/agentgate/hooks/server"
	"github.com/agentgate/agentgate/internal/store"
)

func init() {
	registerSchema("serve-config", server.ConfigSchema)
	register(newServeCmd)
}

func newServeCmd() *cobra.Command {
	var configPath string
	var checkOnly bool
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run agentgate as a GitHub App: webhook intake, gate evaluations, check runs",
		Long: `Run agentgate as a GitHub App. It receives webhooks on POST /webhook (signed with
X-Hub-Signature-256 by one of the configured secrets), records each delivery and its job
in one database transaction and answers 202, then evaluates pushes to agent/* branches and
pull requests into ladder branches and reports a check run agentgate/<target> on the head
commit. Every decision is written to the audit log before it is posted.

Configuration comes from --config (agentgate.yaml; schema: agentgate schema serve-config)
and the environment, which overrides the file:
  AGENTGATE_APP_ID, AGENTGATE_PRIVATE_KEY_FILE, AGENTGATE_WEBHOOK_SECRET (comma-separated,
  for rotation) or AGENTGATE_WEBHOOK_SECRET_FILE, AGENTGATE_GITHUB_API_URL (GitHub
  Enterprise Server: https://HOST/api/v3/), AGENTGATE_GITHUB_GIT_URL, AGENTGATE_LISTEN,
  AGENTGATE_DB (SQLite path or postgres://...), AGENTGATE_SIGNING_KEY, AGENTGATE_WORKERS,
  AGENTGATE_CLONE_CACHE, AGENTGATE_RECONCILE_INTERVAL, AGENTGATE_STATUS_MIRROR,
  AGENTGATE_JOB_TIMEOUT, AGENTGATE_RESCUE_AFTER, AGENTGATE_EVALUATOR_COMMAND,
  AGENTGATE_LOG_LEVEL.

The server refuses to start without a webhook secret. Endpoints: POST /webhook,
GET /healthz, GET /readyz (store reachable, workers running), GET /metrics (Prometheus).
SIGINT/SIGTERM stop accepting deliveries, let running jobs finish for --grace, and leave
the rest to be retried on the next start. See docs/github-app.md to create the App.`,
		Example: `  # validate the configuration and exit
  agentgate serve --config /etc/agentgate/agentgate.yaml --check-config

  # run with secrets from the environment
  AGENTGATE_APP_ID=123456 AGENTGATE_PRIVATE_KEY_FILE=/etc/agentgate/app.pem \
  AGENTGATE_WEBHOOK_SECRET_FILE=/etc/agentgate/webhook-secret \
  agentgate serve --config /etc/agentgate/agentgate.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := server.LoadConfig(configPath, os.LookupEnv)
			if err != nil {
				return withCode(exitInvalid, fmt.Errorf("serve: invalid configuration:\n%w", err))
			}
			if checkOnly {
				fmt.Fprintln(cmd.OutOrStdout(), "configuration is valid")
				return nil
			}
			return runServe(cmd.Context(), cfg, grace)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "configuration file (agentgate.yaml); the environment overrides it")
	cmd.Flags().BoolVar(&checkOnly, "check-config", false, "validate the configuration and exit (0 valid, 2 invalid)")
	cmd.Flags().DurationVar(&grace, "grace", 30*time.Second, "how long running jobs may finish on shutdown")
	return cmd
}

func runServe(parent context.Context, cfg *server.Config, grace time.Duration) error {
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	st, err := store.Open(ctx, cfg.DB)
	if err != nil {
		return withCode(exitInvalid, err)
	}
	defer st.Close()
	opts := audit.Options{}
	if cfg.SigningKey != "" {
		signer, err := sign.Load(ctx, cfg.SigningKey, nil)
		if err != nil {
			return withCode(exitInvalid, fmt.Errorf("serve: load the signing key: %w", err))
		}
		opts.Signer = signer
		opts.CheckpointEvery = 100
	}
	auditLog, err := audit.Open(ctx, st, opts)
	if err != nil {
		return err
	}
	approvals, err := sqlstore.Open(ctx, st)
	if err != nil {
		return err
	}
	ledger, err := budget.NewStoreLedger(ctx, st, budget.AuditLog{Log: auditLog})
	if err != nil {
		return fmt.Errorf("serve: open the budget ledger: %w", err)
	}
	srv, err := server.New(ctx, cfg, st, server.Deps{
		Evaluator: server.DefaultEvaluator(cfg),
		Audit:     auditLog,
		Approvals: approvals,
		Holds:     approvals,
		Budget:    ledger,
		Logger:    log,
	})
	if err != nil {
		return withCode(exitInvalid, err)
	}
	if err := srv.Run(ctx, nil, grace); err != nil {
		return withCode(exitFail, err)
	}
	return nil
}
