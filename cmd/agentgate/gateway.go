package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/agentgate/agentgate/gate/audit"
	"github.com/agentgate/agentgate/gate/budget"
	agh "github.com/agentgate/agentgate/hooks/github"
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
monthly caps: in blocks (budget leases, granted by one durable transaction and
never spanning a threshold; calls that fit are admitted in memory) or, at a
threshold, call by call. Settlements are group-committed. At the plan's warning ratio (default 70 %) responses carry
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
			logger := slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), nil))
			rt, err := startGateway(ctx, cfg, prices, st, logger, nil)
			if err != nil {
				return err
			}
			gw := rt.gw
			network, addr := cfg.ListenNetwork()
			if network == "unix" {
				_ = os.Remove(addr) // a stale socket of an earlier run
			}
			ln, err := net.Listen(network, addr)
			if err != nil {
				rt.close(ctx)
				return fmt.Errorf("gateway: listen on %s: %w", cfg.Listen, err)
			}
			if network == "unix" {
				// Only the owner (and its group: the sandbox's) may connect.
				if err := os.Chmod(addr, 0o660); err != nil {
					ln.Close()
					rt.close(ctx)
					return err
				}
			}
			srv := &http.Server{Handler: gw.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			logger.Info("gateway: listening", "addr", cfg.Listen, "prices", prices.Version, "store", string(st.Dialect()))
			var serveErr error
			select {
			case err := <-errc:
				serveErr = fmt.Errorf("gateway: serve on %s: %w", cfg.Listen, err)
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = srv.Shutdown(sctx) // lets in-flight calls finish
			rt.close(sctx)           // settlements written, unused lease parts released
			if serveErr != nil {
				return serveErr
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
	var planID, runID, workPlan, repo, pr string
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
monthly organisation and repository caps apply. --pr owner/name#N records the pull
request the run works on: with a github section in gateway.yaml the gateway
comments there when the plan's budget warns, needs approval or stops.`,
		Example: `  KEY=$(agentgate gateway keys issue --plan PLAN-42 --run run-7 --work-plan WORK_PLAN.json --repo acme/app --pr acme/app#17 --config gateway.yaml)
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
			key, id, err := keys.IssueFor(ctx, planID, runID, pr)
			if err != nil {
				return withCode(exitInvalid, err)
			}
			if asJSON {
				out := map[string]string{"key": key, "key_id": id, "plan_id": planID, "run_id": runID}
				if pr != "" {
					out["pr"] = pr
				}
				return json.NewEncoder(cmd.OutOrStdout()).Encode(out)
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
	cmd.Flags().StringVar(&pr, "pr", "", "the pull request the run works on, owner/name#NUMBER: the gateway comments there (github section of gateway.yaml) when the plan warns, needs approval or stops")
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

// gatewayRuntime is a configured gateway and what it owns.
type gatewayRuntime struct {
	gw       *gateway.Gateway
	keys     *gateway.Keys
	ledger   *budget.StoreLedger
	leaser   *budget.Leaser // nil when leases are disabled
	notifier *prNotifier    // nil without a github section
	log      *slog.Logger
	stopSync chan struct{} // ends the notice reconciler
	synced   chan struct{} // closed when it has ended
}

// startGateway wires a gateway on st: run keys, the budget ledger (with
// leases unless disabled), the PR notifier (with a github section), and the
// budget notices. transport reaches the upstreams (nil: the gateway's own).
func startGateway(ctx context.Context, cfg *gateway.Config, prices *gateway.PriceTable, st *store.Store, logger *slog.Logger, transport http.RoundTripper) (*gatewayRuntime, error) {
	rt := &gatewayRuntime{log: logger}
	var err error
	if rt.keys, err = gateway.NewKeys(ctx, st); err != nil {
		return nil, err
	}
	if rt.ledger, err = openLedger(ctx, st); err != nil {
		rt.keys.Close()
		return nil, err
	}
	var ledger budget.Ledger = rt.ledger
	if !cfg.Leases.Disabled {
		if rt.leaser, err = budget.NewLeaser(ctx, rt.ledger, cfg.LeaseOptions()); err != nil {
			rt.keys.Close()
			return nil, err
		}
		ledger = rt.leaser
	}
	onStop := func(_ context.Context, n gateway.Notice) {
		// The stop is latched in the ledger: supervisors started with
		// --budget-db stop the run (agentgate sandbox run).
		logger.Error("gateway: plan stopped; its runs' supervisors stop them", "stop_reason", policies.StopBudgetExceeded,
			"plan_id", n.PlanID, "run_id", n.RunID, "reason", n.Verdict.Reason)
		rt.notifier.notify(n)
	}
	notify := func(_ context.Context, n gateway.Notice) { rt.notifier.notify(n) }
	rt.gw, err = gateway.New(gateway.Options{Config: cfg, Prices: prices, Keys: rt.keys, Ledger: ledger, Logger: logger, Transport: transport,
		OnStop: onStop, OnWarn: notify, OnEscalate: notify})
	if err != nil {
		rt.close(ctx)
		return nil, err
	}
	if cfg.GitHub != nil {
		if rt.notifier, err = newPRNotifier(ctx, cfg.GitHub, logger, rt.gw.Registerer()); err != nil {
			rt.close(ctx)
			return nil, withCode(exitInvalid, err)
		}
		rt.stopSync, rt.synced = make(chan struct{}), make(chan struct{})
		go rt.reconcileNotices(noticeReconcile)
	}
	return rt, nil
}

// noticeReconcile is how often the ledger's latched thresholds are
// compared with the pull requests' comments.
var noticeReconcile = 5 * time.Minute

// reconcileNotices re-derives the PR notices from the ledger, at start and
// then every interval: a plan's warn, escalation and stop are latched in
// the same transaction as the crossing, so a notice that a crash, a full
// queue or exhausted retries lost is posted from here (the marker search
// keeps it to once). An escalation already approved is not announced.
func (rt *gatewayRuntime) reconcileNotices(interval time.Duration) {
	defer close(rt.synced)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		n, err := rt.queueLatchedNotices(ctx)
		cancel()
		if err != nil {
			rt.log.Warn("gateway: reconciling the pull-request notices failed; trying again later", "err", err)
		} else if n > 0 {
			rt.log.Info("gateway: pull-request notices reconciled from the ledger", "queued", n)
		}
		select {
		case <-rt.stopSync:
			return
		case <-time.After(interval):
		}
	}
}

// queueLatchedNotices hands the notifier one notice per flagged plan,
// threshold and pull request; it returns how many the notifier took.
func (rt *gatewayRuntime) queueLatchedNotices(ctx context.Context) (int, error) {
	plans, err := rt.ledger.Flagged(ctx)
	if err != nil {
		return 0, err
	}
	queued := 0
	for _, p := range plans {
		prs, err := rt.keys.PullRequests(ctx, p.ID)
		if err != nil {
			return queued, err
		}
		v := budget.Verdict{Scope: budget.ScopePlan, Key: p.ID, Limit: p.Limit, Projected: p.Spent + p.Reserved, Ratio: p.Ratio, Reason: p.StopReason}
		var kinds []string
		if p.Warned {
			kinds = append(kinds, budget.EventWarn)
		}
		if p.Escalated && p.ApprovedBy == "" {
			kinds = append(kinds, budget.EventEscalate)
		}
		if p.Stopped {
			kinds = append(kinds, budget.EventStop)
		}
		for _, r := range prs {
			for _, k := range kinds {
				if rt.notifier.notify(gateway.Notice{Kind: k, PlanID: p.ID, RunID: r.RunID, PR: r.PR, Verdict: v}) {
					queued++
				}
			}
		}
	}
	return queued, nil
}

// close lets settlements finish, releases the unused parts of the leases,
// waits (until ctx ends) for pending PR comments, and closes the keys.
func (rt *gatewayRuntime) close(ctx context.Context) {
	if rt.gw != nil {
		if err := rt.gw.Flush(ctx); err != nil {
			rt.log.Error("gateway: settlements still pending at shutdown; their reservations stay held", "err", err)
		}
	}
	if rt.leaser != nil {
		if err := rt.leaser.Close(ctx); err != nil {
			rt.log.Error("gateway: releasing the budget leases at shutdown failed; they are charged when they expire", "err", err)
		}
	}
	if rt.stopSync != nil {
		close(rt.stopSync)
		<-rt.synced
		rt.stopSync = nil
	}
	rt.notifier.close(ctx)
	rt.keys.Close()
}

// prNotifier comments on a run's pull request when its plan's budget warns,
// needs approval or stops: once per plan and threshold. Comments are queued
// and posted by one goroutine, never on a call's path. The GitHub client
// retries transient failures itself; a post that still fails is logged and
// tried again later (up to notifyAttempts times). Before posting, the
// pull request's comments are searched for the notice's marker, so a
// retry after an answer that got lost, another gateway process or a restart
// never posts it twice.
type prNotifier struct {
	client *agh.Client
	own    func(login string) bool // the App's own comments
	log    *slog.Logger
	queue  chan gateway.Notice
	done   chan struct{}
	retry  []time.Duration

	mu     sync.Mutex
	sent   map[string]bool // plan and kind: posted or queued
	closed bool
}

const notifyQueue = 256

var notifyRetry = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute}

func newPRNotifier(ctx context.Context, gc *gateway.GitHubConfig, logger *slog.Logger, reg prometheus.Registerer) (*prNotifier, error) {
	key, err := appPrivateKey(ctx, gc)
	if err != nil {
		return nil, err
	}
	m, err := agh.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	app, err := agh.New(agh.Config{AppID: gc.AppID, PrivateKey: key, APIURL: gc.APIURL, Metrics: m})
	if err != nil {
		return nil, err
	}
	c, err := app.Installation(gc.InstallationID)
	if err != nil {
		return nil, err
	}
	p := &prNotifier{client: c, own: gc.OwnComment, log: logger, queue: make(chan gateway.Notice, notifyQueue), done: make(chan struct{}),
		retry: notifyRetry, sent: map[string]bool{}}
	go p.loop()
	return p, nil
}

// appPrivateKey reads the App's key from its file (which must not be
// readable by others) or from the credential helper's standard output.
func appPrivateKey(ctx context.Context, gc *gateway.GitHubConfig) ([]byte, error) {
	if gc.PrivateKeyFile != "" {
		fi, err := os.Stat(gc.PrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("github.private_key_file: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("github.private_key_file %s is readable by group or others (mode %o): chmod 600 it", gc.PrivateKeyFile, fi.Mode().Perm())
		}
		return os.ReadFile(gc.PrivateKeyFile)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	c := exec.CommandContext(cctx, gc.PrivateKeyCmd[0], gc.PrivateKeyCmd[1:]...)
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		// The helper's own words, not its output: that would be the key.
		return nil, fmt.Errorf("github.private_key_command %s: %w: %s", gc.PrivateKeyCmd[0], err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// notify queues n's comment, once per plan, threshold and pull request;
// it never blocks. It reports whether it queued n.
func (p *prNotifier) notify(n gateway.Notice) bool {
	if p == nil || n.PR == "" {
		return false
	}
	k := n.PlanID + "\x00" + n.Kind + "\x00" + n.PR
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sent[k] || p.closed {
		return false
	}
	select {
	case p.queue <- n:
		p.sent[k] = true
		return true
	default:
		p.log.Error("gateway: the PR comment queue is full; the notice is queued again by the next reconciliation", "plan_id", n.PlanID, "kind", n.Kind, "pr", n.PR)
		return false
	}
}

func (p *prNotifier) loop() {
	defer close(p.done)
	for n := range p.queue {
		p.deliver(n)
	}
}

// deliver posts n, retrying after the waits of p.retry.
func (p *prNotifier) deliver(n gateway.Notice) {
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		err := p.post(ctx, n)
		cancel()
		if err == nil {
			return
		}
		if attempt >= len(p.retry) {
			p.log.Error("gateway: cannot comment on the pull request; giving up", "plan_id", n.PlanID, "kind", n.Kind, "pr", n.PR, "err", err)
			p.mu.Lock()
			delete(p.sent, n.PlanID+"\x00"+n.Kind+"\x00"+n.PR) // the next reconciliation tries again
			p.mu.Unlock()
			return
		}
		p.log.Warn("gateway: commenting on the pull request failed; retrying", "plan_id", n.PlanID, "kind", n.Kind, "pr", n.PR,
			"retry_in", p.retry[attempt].String(), "err", err)
		time.Sleep(p.retry[attempt])
	}
}

func noticeMarker(n gateway.Notice) string {
	return fmt.Sprintf("<!-- agentgate:budget %s %s -->", n.Kind, n.PlanID)
}

func (p *prNotifier) post(ctx context.Context, n gateway.Notice) error {
	repo, number, err := gateway.ParsePR(n.PR)
	if err != nil {
		return err
	}
	marker := noticeMarker(n)
	comments, err := p.client.Comments(ctx, repo, number, 1000)
	if err != nil {
		return err
	}
	for _, c := range comments {
		if p.own(c.User) && strings.Contains(c.Body, marker) {
			return nil // posted before (a lost answer, another gateway process, a restart)
		}
	}
	_, err = p.client.CreateComment(ctx, repo, number, noticeBody(n)+"\n\n"+marker)
	if err == nil {
		p.log.Info("gateway: commented on the pull request", "plan_id", n.PlanID, "kind", n.Kind, "pr", n.PR)
	}
	return err
}

func noticeBody(n gateway.Notice) string {
	v := n.Verdict
	used := fmt.Sprintf("%.1f %% of its %s LLM budget (projected: spent, in flight and the next call's worst case)", 100*v.Ratio, budget.FormatUSD(v.Limit))
	switch n.Kind {
	case budget.EventWarn:
		return fmt.Sprintf("**agentgate: LLM budget warning.** Plan `%s` (run `%s`) is at %s. Calls go on; at the escalation ratio they will need a human's approval.", n.PlanID, n.RunID, used)
	case budget.EventEscalate:
		return fmt.Sprintf("**agentgate: LLM budget approval required.** Plan `%s` (run `%s`) reached its escalation ratio at %s. Its LLM calls are refused until an authorized human approves continuing: comment `/approve-budget %s` (or run `agentgate budget approve %s --as NAME`).",
			n.PlanID, n.RunID, used, n.PlanID, n.PlanID)
	default:
		return fmt.Sprintf("**agentgate: LLM budget exhausted (`%s`).** Plan `%s` (run `%s`) is stopped: %s. Every LLM call is refused and the run's supervisor stops the run. To go on, raise `budget.limit_usd` in a reviewed WORK_PLAN.json, then `agentgate budget resume %s --as NAME` and `agentgate sandbox resume`.",
			policies.StopBudgetExceeded, n.PlanID, n.RunID, v.Reason, n.PlanID)
	}
}

// close stops taking notices and waits, until ctx ends, for the queued ones.
func (p *prNotifier) close(ctx context.Context) {
	if p == nil {
		return
	}
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.queue)
	}
	p.mu.Unlock()
	select {
	case <-p.done:
	case <-ctx.Done():
		p.log.Error("gateway: PR comments still pending at shutdown")
	}
}
