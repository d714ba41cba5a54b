package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentgate/agentgate/gate/audit"
	"github.com/agentgate/agentgate/gate/budget"
	"github.com/agentgate/agentgate/internal/store"
	"github.com/agentgate/agentgate/policies"
	"github.com/agentgate/agentgate/sandbox/gateway"
)

func init() {
	register(newGatewayCmd)
	registerSchema("gateway-config", gateway.ConfigSchema())
}

// gatewayStoreFlags select the database of the gateway's admin commands:
// --db, or the store named in --config.
type gatewayStoreFlags struct{ dsn, config string }

func (f *gatewayStoreFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dsn, "db", "", dbFlagHelp)
	cmd.Flags().StringVar(&f.config, "config", "", "gateway.yaml whose store to use (instead of --db)")
}

func (f *gatewayStoreFlags) open(ctx context.Context) (*store.Store, error) {
	dsn := f.dsn
	if dsn == "" && f.config != "" {
		d, err := gateway.ConfigStore(f.config)
		if err != nil {
			return nil, withCode(exitInvalid, err)
		}
		dsn = d
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return nil, withCode(exitInvalid, err)
	}
	return st, nil
}

// openLedger opens the budget ledger with the audit log attached.
// openLedger opens the store the flags name and the budget ledger on it; the
// returned func closes the store.
func (f *gatewayStoreFlags) openLedger(ctx context.Context) (*budget.StoreLedger, func() error, error) {
	st, err := f.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	l, err := openLedger(ctx, st)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return l, st.Close, nil
}

func openLedger(ctx context.Context, st *store.Store) (*budget.StoreLedger, error) {
	log, err := audit.Open(ctx, st, audit.Options{})
	if err != nil {
		return nil, err
	}
	return budget.NewStoreLedger(ctx, st, budget.AuditLog{Log: log})
}

func newGatewayCmd() *cobra.Command {
	var configPath, dsn string
	cmd := &cobra.Command{
		Use:   "gateway --config gateway.yaml",
		Short: "Run the metered, budget-enforcing gateway for every LLM API call of agent runs",
		Long: `Run the LLM cost gateway: a reverse proxy in front of the OpenAI (Chat Completions,
Responses), Anthropic (Messages) and local OpenAI-compatible APIs. The gateway
holds the provider keys; an agent run only gets a run key ("gateway keys issue")
bound to its plan, and reaches only the upstreams of gateway.yaml.

Before each call the gateway estimates its worst-case cost (offline tokenizer for
OpenAI models, a documented margin for Anthropic, plus max_tokens or the
configured cap) and reserves it atomically against the plan's budget and the
monthly caps. At the plan's warning ratio (default 70 %) responses carry
X-Budget-Warning; at the escalation ratio (90 %) calls are refused with 403
"approval required" until "agentgate budget approve"; a call that would cross
the stop ratio (100 %) is refused with 429, the plan is stopped and
STOP_BUDGET_EXCEEDED is written to the audit log. After each call the
reservation is settled to the provider's reported usage.

Agents point their SDK at http://LISTEN/UPSTREAM/v1 (for example
OPENAI_BASE_URL=http://127.0.0.1:8790/openai/v1) with the run key as API key.
/metrics serves Prometheus metrics. "agentgate schema gateway-config" prints
the config's JSON Schema.`,
		Example: `  export OPENAI_API_KEY=sk-... ANTHROPIC_API_KEY=sk-ant-...
  agentgate gateway --config gateway.yaml
  agentgate gateway keys issue --plan PLAN-42 --run run-7 --work-plan threads/pay/WORK_PLAN.json --repo acme/app --config gateway.yaml
  agentgate gateway prices`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return withCode(exitInvalid, errors.New("gateway: --config gateway.yaml is required"))
			}
			cfg, err := gateway.LoadConfig(configPath)
			if err != nil {
				return withCode(exitInvalid, err)
			}
			if dsn != "" {
				cfg.Store = dsn
			}
			prices, err := cfg.LoadPrices()
			if err != nil {
				return withCode(exitInvalid, err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			st, err := store.Open(ctx, cfg.Store)
			if err != nil {
				return withCode(exitInvalid, err)
			}
			defer st.Close()
			keys, err := gateway.NewKeys(ctx, st)
			if err != nil {
				return err
			}
			ledger, err := openLedger(ctx, st)
			if err != nil {
				return err
			}
			logger := slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), nil))
			gw, err := gateway.New(gateway.Options{Config: cfg, Prices: prices, Keys: keys, Ledger: ledger, Logger: logger,
				OnStop: func(_ context.Context, planID, runID, reason string) {
					logger.Error("gateway: plan stopped; the run's supervisor must stop the run",
						"stop_reason", policies.StopBudgetExceeded, "plan_id", planID, "run_id", runID, "reason", reason)
				}})
			if err != nil {
				return err
			}
			network, addr := cfg.ListenNetwork()
			if network == "unix" {
				_ = os.Remove(addr) // a stale socket of an earlier run
			}
			ln, err := net.Listen(network, addr)
			if err != nil {
				return fmt.Errorf("gateway: listen on %s: %w", cfg.Listen, err)
			}
			if network == "unix" {
				// Only the owner (and its group: the sandbox's) may connect.
				if err := os.Chmod(addr, 0o660); err != nil {
					return err
				}
			}
			srv := &http.Server{Handler: gw.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			logger.Info("gateway: listening", "addr", cfg.Listen, "prices", prices.Version, "store", string(st.Dialect()))
			select {
			case err := <-errc:
				return fmt.Errorf("gateway: serve on %s: %w", cfg.Listen, err)
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = srv.Shutdown(sctx) // lets in-flight calls finish
			if ferr := gw.Flush(sctx); ferr != nil {
				logger.Error("gateway: settlements still pending at shutdown; their reservations stay held", "err", ferr)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "gateway.yaml (see agentgate schema gateway-config)")
	cmd.Flags().StringVar(&dsn, "db", "", "database, overriding gateway.yaml's store: "+dbFlagHelp)
	cmd.AddCommand(newGatewayKeysCmd(), newGatewayPricesCmd())
	return cmd
}

func newGatewayKeysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Issue and revoke run keys",
		Long: `A run key is what an agent run uses as its API key towards the gateway. It is
bound to one plan (whose budget it spends) and one run, stored only as its
SHA-256, and revocable. The provider keys never leave the gateway.`,
		Example: `  agentgate gateway keys issue --plan PLAN-42 --run run-7 --limit-usd 5 --config gateway.yaml
  agentgate gateway keys revoke --run run-7 --config gateway.yaml`,
	}
	cmd.AddCommand(newGatewayKeysIssueCmd(), newGatewayKeysRevokeCmd())
	return cmd
}

func newGatewayKeysIssueCmd() *cobra.Command {
	var sf gatewayStoreFlags
	var planID, runID, workPlan, repo string
	var limitUSD float64
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "issue --plan PLAN_ID --run RUN_ID",
		Short: "Issue a run key bound to a plan and a run (prints the key once)",
		Long: `Issue a run key bound to a plan and a run. The key is printed once on stdout;
only its SHA-256 is stored. Give the plan's budget with --work-plan (the
WORK_PLAN.json from the protected base branch: limit_usd, ratios,
degrade_to_local) or --limit-usd (default ratios 70/90/100 %); without either
the plan must already have a budget in the ledger. --repo (owner/name) makes the
monthly organisation and repository caps apply.`,
		Example: `  KEY=$(agentgate gateway keys issue --plan PLAN-42 --run run-7 --work-plan WORK_PLAN.json --repo acme/app --config gateway.yaml)
  OPENAI_API_KEY=$KEY OPENAI_BASE_URL=http://127.0.0.1:8790/openai/v1 my-agent`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if planID == "" || runID == "" {
				return withCode(exitInvalid, errors.New("keys issue: --plan and --run are required"))
			}
			ctx := cmd.Context()
			var plan *budget.Plan
			switch {
			case workPlan != "" && limitUSD != 0:
				return withCode(exitInvalid, errors.New("keys issue: give --work-plan or --limit-usd, not both"))
			case workPlan != "":
				data, err := os.ReadFile(workPlan)
				if err != nil {
					return withCode(exitInvalid, err)
				}
				var wp policies.WorkPlan
				if err := json.Unmarshal(data, &wp); err != nil {
					return withCode(exitInvalid, fmt.Errorf("%s: %w", workPlan, err))
				}
				if wp.PlanID != planID {
					return withCode(exitInvalid, fmt.Errorf("%s is plan %q, not %q", workPlan, wp.PlanID, planID))
				}
				p := budget.PlanFromWorkPlan(wp, repo)
				plan = &p
			case limitUSD != 0:
				plan = &budget.Plan{ID: planID, Limit: budget.USDToNano(limitUSD), Ratios: budget.DefaultRatios, Repo: repo}
			}
			st, err := sf.open(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			ledger, err := openLedger(ctx, st)
			if err != nil {
				return err
			}
			if plan != nil {
				if err := ledger.EnsurePlan(ctx, *plan); err != nil {
					return withCode(exitInvalid, err)
				}
			} else if _, err := ledger.Status(ctx, planID); err != nil {
				return withCode(exitInvalid, fmt.Errorf("%w; give its budget with --work-plan or --limit-usd", err))
			}
			keys, err := gateway.NewKeys(ctx, st)
			if err != nil {
				return err
			}
			key, id, err := keys.Issue(ctx, planID, runID)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]string{"key": key, "key_id": id, "plan_id": planID, "run_id": runID})
			}
			fmt.Fprintln(cmd.OutOrStdout(), key)
			fmt.Fprintf(cmd.ErrOrStderr(), "run key %s issued for plan %s, run %s (revoke: agentgate gateway keys revoke %s)\n", id, planID, runID, id)
			return nil
		},
	}
	sf.add(cmd)
	cmd.Flags().StringVar(&planID, "plan", "", "plan id (WORK_PLAN.json plan_id)")
	cmd.Flags().StringVar(&runID, "run", "", "run id")
	cmd.Flags().StringVar(&workPlan, "work-plan", "", "WORK_PLAN.json to take the budget from")
	cmd.Flags().Float64Var(&limitUSD, "limit-usd", 0, "the plan's budget in USD (default ratios)")
	cmd.Flags().StringVar(&repo, "repo", "", "owner/name, for the monthly caps")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print key, key_id, plan_id and run_id as JSON")
	return cmd
}

func newGatewayKeysRevokeCmd() *cobra.Command {
	var sf gatewayStoreFlags
	var runID string
	cmd := &cobra.Command{
		Use:   "revoke [KEY_ID] [--run RUN_ID]",
		Short: "Revoke a run key by id, or every key of a run",
		Long: `Revoke a run key by its id (printed by "keys issue"), or every key of a run
with --run. Calls with a revoked key are refused with 401 at once.`,
		Example: `  agentgate gateway keys revoke 3f9a0c12b7e4 --config gateway.yaml
  agentgate gateway keys revoke --run run-7 --config gateway.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			if (id == "") == (runID == "") {
				return withCode(exitInvalid, errors.New("keys revoke: name a KEY_ID or --run RUN_ID"))
			}
			ctx := cmd.Context()
			st, err := sf.open(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			keys, err := gateway.NewKeys(ctx, st)
			if err != nil {
				return err
			}
			n, err := keys.Revoke(ctx, id, runID)
			if err != nil {
				return err
			}
			if n == 0 {
				return withCode(exitFail, errors.New("keys revoke: no active key matched"))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %d key(s)\n", n)
			return nil
		},
	}
	sf.add(cmd)
	cmd.Flags().StringVar(&runID, "run", "", "revoke every key of this run")
	return cmd
}

func newGatewayPricesCmd() *cobra.Command {
	var configPath string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "prices",
		Short: "List the models the gateway prices, in nano-USD per token",
		Long: `List the price table: per model, the integer nano-USD per token for input,
cached input (cache reads), cache writes (5 minutes, 1 hour) and output. 1000
nano-USD per token is $1 per million tokens. A model not listed here is refused
by the gateway, never priced at zero.`,
		Example: "  agentgate gateway prices\n  agentgate gateway prices --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t := gateway.BuiltinPrices()
			if configPath != "" {
				path := configPath
				c, err := gateway.ConfigPrices(path)
				if err != nil {
					return withCode(exitInvalid, err)
				}
				t = c
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(t)
			}
			fmt.Fprintf(out, "price table %s (%s)\n", t.Version, t.Unit)
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "MODEL\tPROVIDER\tINPUT\tCACHED\tWRITE 5M\tWRITE 1H\tOUTPUT\tMAX OUT\t")
			for _, name := range t.Names() {
				p := t.Models[name]
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", name, p.Provider, p.Input, p.CachedInput, p.CacheWrite5m, p.CacheWrite1h, p.Output, p.MaxOutputTokens)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(t.Aliases) > 0 {
				fmt.Fprintf(out, "%d dated aliases (see --json)\n", len(t.Aliases))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "gateway.yaml whose price table to list (default: the built-in table)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the table as JSON")
	return cmd
}
