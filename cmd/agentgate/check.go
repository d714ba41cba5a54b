package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/engine"
	"github.com/agentgate/agentgate/checks/isolate"
	"github.com/agentgate/agentgate/checks/report"
	"github.com/agentgate/agentgate/checks/scope"
	"github.com/agentgate/agentgate/checks/secrets"
	"github.com/agentgate/agentgate/checks/static"
	"github.com/agentgate/agentgate/checks/tests"
	"github.com/agentgate/agentgate/checks/vuln"
)

func init() {
	register(newCheckCmd)
	registerSchema("report", report.Schema)
}

// checkFactory builds one check from the command's options.
type checkFactory func(o *checkOptions) (checks.Check, error)

// checkRegistry lists every check `agentgate check` can run, in the order
// they are listed; a command file adds its own with registerCheck.
var (
	checkNames    []string
	checkRegistry = map[string]checkFactory{}
)

func registerCheck(name string, f checkFactory) {
	if _, dup := checkRegistry[name]; dup {
		panic("check registered twice: " + name)
	}
	checkNames = append(checkNames, name)
	checkRegistry[name] = f
}

func init() {
	registerCheck("scope", func(*checkOptions) (checks.Check, error) { return scope.New(), nil })
	registerCheck("secrets", func(*checkOptions) (checks.Check, error) { return secrets.New(), nil })
	registerCheck(vuln.Name, func(o *checkOptions) (checks.Check, error) {
		return vuln.New(vuln.Config{Runner: o.isolated(), DB: o.vulnDB, CacheDir: o.cacheDir, Timeout: o.timeout, DownloadModules: o.downloadModules}), nil
	})
	registerCheck(tests.Name, func(o *checkOptions) (checks.Check, error) {
		return tests.New(tests.Config{Runner: o.isolated(), CacheDir: o.cacheDir, Timeout: o.timeout, DownloadModules: o.downloadModules}), nil
	})
	registerCheck(static.Name, func(o *checkOptions) (checks.Check, error) {
		return static.New(static.Config{Runner: o.isolated(), CacheDir: o.cacheDir, Timeout: o.timeout, Staticcheck: o.staticcheck, DownloadModules: o.downloadModules}), nil
	})
}

// isolated returns the one runner shared by the checks that run
// repository code (no network, time-limited).
func (o *checkOptions) isolated() isolate.Runner {
	if o.runner == nil {
		opts := isolate.Options{Timeout: o.timeout, AllowUnisolated: o.allowUnisolated,
			RequireLandlock: o.requireLandlock, AllowUnixSockets: o.allowUnixSockets}
		opts.TestExec = o.testExec
		o.runner = isolate.NewNetless(opts)
	}
	return o.runner
}

// checkExtension lets another command file add flags to `agentgate check`
// and act on the finished report before it is printed (e.g. sign it, or
// record it in the store: --sign-key, --db). An error from After fails the
// command with exit 1.
type checkExtension struct {
	Flags func(fs *pflag.FlagSet)
	After func(ctx context.Context, rep *report.Report, outDir string) error
}

var checkExtensions []checkExtension

func registerCheckExtension(e checkExtension) { checkExtensions = append(checkExtensions, e) }

type checkOptions struct {
	repo, base, head, plan, out, output string
	checks                              []string
	timeout                             time.Duration

	vulnDB, cacheDir, staticcheck string
	allowUnisolated               bool
	downloadModules               bool
	requireLandlock               bool
	allowUnixSockets              bool
	sealTestBinaries              bool
	testExec                      string // this binary, with --seal-test-binaries
	runner                        isolate.Runner
}

func newCheckCmd() *cobra.Command {
	o := &checkOptions{}
	cmd := &cobra.Command{
		Use:   "check --repo DIR --base REF --head REF",
		Short: "Gate a change (base...head) of a local repository: scope, secrets, vulnerabilities, tests, static analysis",
		Long: `Evaluate the change base...head (everything head adds since the merge base) of a local
git repository and decide whether it may climb the promotion ladder.

Trust: the policy (.agentgate/policy.yaml, thread config.yaml and requirements.yaml,
.gitleaks.toml, .gitleaksignore) is read from the BASE commit, never from head. The
plan is the thread's WORK_PLAN.json on head: --plan names it; otherwise the plan the
change modifies, or the plan of the single thread that owns every changed file. The
head plan is validated against the base policy (fr_ids, target_files, ceilings); a
plan edited after it first appeared on the branch is a finding that needs approval.

Checks (run concurrently, each with its own --timeout; a check that errors, panics or
times out fails the gate with the reason, it never passes):
  scope     changed files against the plan's target_files and the thread ownership
            map (another thread's file stops the run: STOP_UNAUTHORIZED_ACCESS), policy
            artifacts and security-critical paths (need approval), max_files_changed,
            max_diff_lines, new dependencies, file types, binaries, executable bits,
            symlinks, submodules, oversized files
  secrets   gitleaks on the added lines, on lines earlier commits of the branch added
            and later removed, and on the commit messages, with the base's
            .gitleaks.toml and .gitleaksignore (STOP_SECRET_EXPOSURE; the secret is
            never printed)
  vuln      govulncheck against an offline database, new on head vs base, called
            symbols fail (stdlib findings follow the policy's vuln.stdlib)
  tests     the plan's test command on the affected packages (isolated, no network):
            failures, missing acceptance tests, test-change rule, changed-file
            coverage; a total-coverage drop beyond tolerance stops the run
            (STOP_COVERAGE_REGRESSION)
  static    go vet (and staticcheck with --staticcheck) on the changed packages

Dependencies: the isolated runs have no network (GOPROXY=off). By default the
module's dependencies are first fetched on this host with 'go mod download'
(verified against go.sum and the checksum database; it runs no repository
code). The module cache is shared with the isolated runs, so a host that can
fetch private modules lets the change's tests read them: on such hosts use
--download-modules=false and fill the cache yourself.

Outputs: --output text (default), json (report.json) or sarif (SARIF 2.1.0) on stdout.
--out DIR also writes DIR/report.json, DIR/report.sarif and DIR/<check>.log.
The report's JSON Schema: agentgate schema report.

Exit codes: 0 pass, 1 the gate fails, 2 usage or invalid input (bad ref, invalid
policy on base, invalid plan, plan above its thread's ceilings), 3 a stop condition
fired (the report's stop_reason says which).`,
		Example: `  # gate the agent branch against develop
  agentgate check --repo . --base develop --head agent/pay-idempotency

  # name the plan, keep the evidence, print JSON
  agentgate check --repo . --base origin/develop --head HEAD \
      --plan services/payments/WORK_PLAN.json --out gate-out --output json

  # only the fast checks, SARIF for GitHub code scanning
  agentgate check --repo . --base main --head HEAD --checks scope,secrets --output sarif > gate.sarif`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runCheck(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.repo, "repo", ".", "path of the local git repository")
	f.StringVar(&o.base, "base", "", "base ref: the protected branch the change targets (required)")
	f.StringVar(&o.head, "head", "", "head ref: the agent's branch or commit (required)")
	f.StringVar(&o.plan, "plan", "", "repo-relative path of the WORK_PLAN.json to evaluate against (default: discovered)")
	f.StringVar(&o.out, "out", "", "directory to write report.json, report.sarif and per-check logs into")
	f.StringVar(&o.output, "output", "text", "what to print on stdout: text, json or sarif")
	f.StringSliceVar(&o.checks, "checks", nil, "comma-separated checks to run (default: all of "+strings.Join(checkNames, ",")+")")
	f.DurationVar(&o.timeout, "timeout", engine.DefaultTimeout, "time limit of each check")
	f.StringVar(&o.vulnDB, "vuln-db", "", "vulnerability database built by 'agentgate vulndb build' (default: the cached one for the pinned x/vulndb version)")
	f.StringVar(&o.cacheDir, "cache-dir", "", "cache for the vulnerability database, base-commit results and work trees (default: the user cache directory)")
	f.StringVar(&o.staticcheck, "staticcheck", "", "absolute path of a staticcheck binary for the static check (default: go vet only)")
	f.BoolVar(&o.downloadModules, "download-modules", true, "run go mod download (on this host, with its network and module proxy, verified against go.sum and the checksum database; no repository code runs) before the isolated runs, which have no network; false: every dependency must already be in the module cache")
	f.BoolVar(&o.requireLandlock, "require-landlock", false, "refuse to run repository code when the kernel cannot confine its file access with Landlock (Linux 5.19+); without it such a machine runs it with network and PID isolation only, and the report's isolation says so")
	f.BoolVar(&o.allowUnixSockets, "allow-unix-sockets", false, "let repository code create unix sockets (for tests that listen on one); by default they are refused, because the host's Docker or systemd socket is reachable through the file system")
	f.BoolVar(&o.sealTestBinaries, "seal-test-binaries", false, "run the change's Go test binaries in a narrower Landlock domain without the shared Go build cache (and with a private GOCACHE), so test code cannot plant build- or test-cache entries that later evaluations trust; costs Go's test-result cache (go test -exec disables it): every test runs every time")
	f.BoolVar(&o.allowUnisolated, "allow-unisolated", false, "UNSAFE: run repository code (tests, go list) without network isolation when this machine cannot isolate it")
	for _, e := range checkExtensions {
		if e.Flags != nil {
			e.Flags(f)
		}
	}
	return cmd
}

func runCheck(cmd *cobra.Command, o *checkOptions) error {
	switch o.output {
	case "text", "json", "sarif":
	default:
		return withCode(exitInvalid, fmt.Errorf("check: --output must be text, json or sarif, got %q", o.output))
	}
	if o.base == "" || o.head == "" {
		return withCode(exitInvalid, errors.New("check: --base and --head are required"))
	}
	if o.timeout <= 0 {
		return withCode(exitInvalid, fmt.Errorf("check: --timeout must be positive, got %s", o.timeout))
	}
	if o.sealTestBinaries {
		// The wrapper is this binary: main calls isolate.TestExecMain.
		self, err := os.Executable()
		if err == nil {
			self, err = filepath.EvalSymlinks(self)
		}
		if err != nil {
			return withCode(exitInvalid, fmt.Errorf("check: --seal-test-binaries: locate this executable: %w", err))
		}
		o.testExec = self
	}
	names := o.checks
	if len(names) == 0 {
		names = checkNames
	}
	var list []checks.Check
	for _, n := range names {
		n = strings.TrimSpace(n)
		mk, ok := checkRegistry[n]
		if !ok {
			return withCode(exitInvalid, fmt.Errorf("check: unknown check %q; available: %s", n, strings.Join(checkNames, ", ")))
		}
		if slices.ContainsFunc(list, func(c checks.Check) bool { return c.Name() == n }) {
			continue
		}
		c, err := mk(o)
		if err != nil {
			return withCode(exitInvalid, fmt.Errorf("check: set up %s: %w", n, err))
		}
		list = append(list, c)
	}

	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	subject, meta, err := engine.Prepare(ctx, engine.Input{Repo: o.repo, Base: o.base, Head: o.head, PlanPath: o.plan})
	if err != nil {
		var ie *engine.InputError
		if errors.As(err, &ie) {
			return withCode(exitInvalid, fmt.Errorf("check: %w", err))
		}
		return withCode(exitFail, fmt.Errorf("check: %w", err))
	}
	opts := engine.Options{Checks: list, Timeout: o.timeout, Tool: report.Tool{Name: "agentgate", Version: version}}
	if o.out != "" {
		opts.LogDir = o.out
	}
	rep, err := engine.Evaluate(ctx, subject, meta, opts)
	if err != nil {
		return withCode(exitInvalid, fmt.Errorf("check: %w", err))
	}
	for _, e := range checkExtensions {
		if e.After != nil {
			if err := e.After(ctx, rep, o.out); err != nil {
				return withCode(exitFail, fmt.Errorf("check: %w", err))
			}
		}
	}
	if o.out != "" {
		if err := writeReportFiles(o.out, rep); err != nil {
			return withCode(exitFail, fmt.Errorf("check: %w", err))
		}
	}
	w := cmd.OutOrStdout()
	switch o.output {
	case "json":
		b, err := rep.Marshal()
		if err != nil {
			return withCode(exitFail, err)
		}
		if _, err := w.Write(b); err != nil {
			return withCode(exitFail, err)
		}
	case "sarif":
		if err := rep.WriteSARIF(w); err != nil {
			return withCode(exitFail, err)
		}
	default:
		if err := rep.WriteText(w); err != nil {
			return withCode(exitFail, err)
		}
	}
	if code := rep.ExitCode(); code != exitOK {
		return withCode(code, nil)
	}
	return nil
}

// writeReportFiles writes report.json and report.sarif into dir.
func writeReportFiles(dir string, rep *report.Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	b, err := rep.Marshal()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), b, 0o644); err != nil {
		return fmt.Errorf("write report.json: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "report.sarif"))
	if err != nil {
		return fmt.Errorf("write report.sarif: %w", err)
	}
	if err := rep.WriteSARIF(f); err != nil {
		f.Close()
		return fmt.Errorf("write report.sarif: %w", err)
	}
	return f.Close()
}
