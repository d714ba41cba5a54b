package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentgate/agentgate/gate/approval"
	"github.com/agentgate/agentgate/gate/approval/sqlstore"
	"github.com/agentgate/agentgate/gate/audit"
	"github.com/agentgate/agentgate/gate/sign"
	"github.com/agentgate/agentgate/hooks/forge"
	"github.com/agentgate/agentgate/internal/store"
	"github.com/spf13/cobra"
)

func init() { register(newHooksCmd) }

// forgeState is where a local forge keeps its state by default: inside the
// bare repository's directory, which git never serves to clients.
func forgeState(repo string) string { return filepath.Join(repo, "agentgate") }

func defaultForgeDB(repo string) string { return filepath.Join(forgeState(repo), "agentgate.db") }

func defaultForgeKey(repo string) string {
	return filepath.Join(forgeState(repo), sign.PrivateKeyFile)
}

// forgeExtras lets wiring files plug the checks engine and the budget
// ledger into the forge (kept apart so each follows its package).
var forgeExtras []func(ctx context.Context, f *forge.Forge, st *store.Store, log *audit.Log, o forgeOptions) error

// forgeOptions are the hook's own settings.
type forgeOptions struct {
	checks []string    // checks the develop rung runs (default: all of agentgate check's)
	signer sign.Signer // the gate key (set by openForge)
}

// openForge opens a bare repository's forge: store, audit log (checkpoints
// signed with the gate key), approvals, evaluations and attestations.
func openForge(ctx context.Context, repo, dsn, keyRef string, o forgeOptions) (*forge.Forge, *audit.Log, func(), error) {
	abs, err := filepath.Abs(repo)
	if err != nil {
		return nil, nil, nil, err
	}
	if dsn == "" {
		dsn = defaultForgeDB(abs)
		if err := os.MkdirAll(filepath.Dir(dsn), 0o700); err != nil {
			return nil, nil, nil, err
		}
	}
	if keyRef == "" {
		keyRef = defaultForgeKey(abs)
	}
	signer, err := sign.Load(ctx, keyRef, nil)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w (agentgate hooks install creates the forge's key)", err)
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return nil, nil, nil, err
	}
	closeAll := func() { st.Close() }
	log, err := audit.Open(ctx, st, audit.Options{Signer: signer})
	if err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	aps, err := sqlstore.Open(ctx, st)
	if err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	evals, err := forge.OpenEvaluations(ctx, st)
	if err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	o.signer = signer
	f := &forge.Forge{
		Repo: abs, Audit: log, Approvals: aps, Evals: evals,
		Attester: &forge.FileAttester{Dir: filepath.Join(forgeState(abs), "attestations"), Signer: signer},
	}
	for _, extra := range forgeExtras {
		if err := extra(ctx, f, st, log, o); err != nil {
			closeAll()
			return nil, nil, nil, err
		}
	}
	return f, log, closeAll, nil
}

func newHooksCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hooks",
		Short: "Run the promotion ladder on a plain git server (the local forge)",
		Long: `The local forge enforces the same promotion ladder as the GitHub App on a plain
bare git repository, through a pre-receive hook:

  - pushes to agent/* run the develop rung (checks, plan, Plan-Id:/Iteration:
    trailers) and are refused with the reasons when it fails; a pass is signed
    as an attestation;
  - develop, staging and main move only by fast-forward to the exact tip of
    the rung's source branch (git push origin agent/x:develop, develop:staging,
    staging:main), and only when the rung passes;
  - force pushes, deletions of ladder branches and pushes by agent identities
    outside agent/* are refused and recorded as STOP_UNAUTHORIZED_ACCESS.

State (audit log, approvals, evaluations) lives in PATH.git/agentgate/ unless
--db says otherwise; attestations in PATH.git/agentgate/attestations/.

The pusher is identified by $GITHUB_USER_LOGIN (GitHub Enterprise Server sets
it), else $AGENTGATE_PUSHER / $AGENTGATE_PUSHER_EMAIL, which an SSH forced
command should set; locally, whoever can write the repository is trusted.`,
		Example: `  agentgate hooks install --repo /srv/git/payments.git
  AGENTGATE_PUSHER=alice git push origin develop:staging`,
	}
	cmd.AddCommand(newHooksInstallCmd(), newHooksPreReceiveCmd(), newHooksResumeRunCmd())
	return cmd
}

func newHooksInstallCmd() *cobra.Command {
	var repo, dsn, keyRef, binary string
	var force bool
	var checkList []string
	cmd := &cobra.Command{
		Use:   "install --repo PATH.git",
		Short: "Install the pre-receive hook into a bare repository",
		Long: `Install PATH.git/hooks/pre-receive, which runs "agentgate hooks pre-receive" for
every push. Creates the forge's state directory PATH.git/agentgate/ with a new
signing key (agentgate.key, agentgate.pub) unless --key names one, and the
database unless --db names one. Refuses to replace a pre-receive hook it did
not write unless --force.

Create develop, staging and main before installing: through the gate, ladder
branches only move by promotion.`,
		Example: `  agentgate hooks install --repo /srv/git/payments.git
  agentgate hooks install --repo payments.git --db postgres://gate@db/agentgate --key /etc/agentgate/agentgate.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if repo == "" {
				return withCode(exitInvalid, errors.New("hooks install: --repo PATH.git is required"))
			}
			abs, err := filepath.Abs(repo)
			if err != nil {
				return withCode(exitInvalid, err)
			}
			if binary == "" {
				if binary, err = os.Executable(); err != nil {
					return withCode(exitInvalid, fmt.Errorf("hooks install: find the agentgate binary (pass --binary): %w", err))
				}
			}
			if keyRef == "" {
				keyRef = defaultForgeKey(abs)
				if _, err := os.Stat(keyRef); errors.Is(err, os.ErrNotExist) {
					if _, err := os.Stat(filepath.Join(abs, "objects")); err != nil {
						return withCode(exitInvalid, fmt.Errorf("hooks install: %s is not a bare git repository", repo))
					}
					if _, _, err := sign.Generate(forgeState(abs), nil); err != nil {
						return withCode(exitFail, fmt.Errorf("hooks install: create the forge's key: %w", err))
					}
				}
			} else if !sign.IsKMSRef(keyRef) {
				if keyRef, err = filepath.Abs(keyRef); err != nil {
					return withCode(exitInvalid, err)
				}
			}
			args := []string{"--key", keyRef}
			if len(checkList) > 0 {
				args = append(args, "--checks", strings.Join(checkList, ","))
			}
			if dsn != "" {
				if !filepath.IsAbs(dsn) && !hasScheme(dsn) {
					if dsn, err = filepath.Abs(dsn); err != nil {
						return withCode(exitInvalid, err)
					}
				}
				args = append(args, "--db", dsn)
			}
			// Open once now, so that a bad database or key fails here rather than
			// on the first push.
			_, _, closeFn, err := openForge(cmd.Context(), abs, dsn, keyRef, forgeOptions{checks: checkList})
			if err != nil {
				return withCode(exitInvalid, fmt.Errorf("hooks install: %w", err))
			}
			closeFn()
			path, err := forge.Install(abs, forge.InstallOptions{Binary: binary, Args: args, Force: force})
			if err != nil {
				return withCode(exitInvalid, fmt.Errorf("hooks install: %w", err))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "installed %s\n  state: %s\n  public key: %s\n", path, forgeState(abs), filepath.Join(forgeState(abs), sign.PublicKeyFile))
			return nil
		},
	}
	cmd.Flags().StringVar(&repo, "repo", "", "the bare repository (PATH.git)")
	cmd.Flags().StringVar(&dsn, "db", "", "database (default PATH.git/agentgate/agentgate.db); a file path, sqlite://PATH or postgres://...")
	cmd.Flags().StringVar(&keyRef, "key", "", "gate signing key (default: a new key in PATH.git/agentgate/)")
	cmd.Flags().StringVar(&binary, "binary", "", "agentgate binary the hook runs (default: this one)")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing pre-receive hook agentgate did not write")
	cmd.Flags().StringSliceVar(&checkList, "checks", nil, "checks the develop rung runs on agent pushes (default: all of agentgate check's)")
	return cmd
}

func hasScheme(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i:i+3] == "://" {
			return true
		}
	}
	return false
}

func newHooksPreReceiveCmd() *cobra.Command {
	var repo, dsn, keyRef string
	var checkList []string
	cmd := &cobra.Command{
		Use:   "pre-receive --repo PATH.git",
		Short: "Evaluate a push (run by the installed git hook)",
		Long: `Read "<old> <new> <ref>" lines on standard input, as git gives a pre-receive
hook, evaluate each update with the promotion ladder and print the decisions
on standard error (git shows them to the pusher). Exit status 0 accepts the
push, 1 refuses all of it. Installed by "agentgate hooks install"; also usable
as a GitHub Enterprise Server pre-receive hook script.`,
		Example: `  echo "$OLD $NEW refs/heads/staging" | agentgate hooks pre-receive --repo /srv/git/payments.git`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if repo == "" {
				return withCode(exitInvalid, errors.New("hooks pre-receive: --repo PATH.git is required"))
			}
			ctx := cmd.Context()
			f, log, closeFn, err := openForge(ctx, repo, dsn, keyRef, forgeOptions{checks: checkList})
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "agentgate: REFUSED: the gate cannot start (%v); push refused (fail closed)\n", err)
				return withCode(exitFail, nil)
			}
			defer closeFn()
			code := forge.RunHook(ctx, f, cmd.InOrStdin(), cmd.ErrOrStderr(), os.Getenv)
			if _, err := log.Checkpoint(ctx); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "agentgate: warning: could not sign an audit checkpoint: %v\n", err)
			}
			if code != 0 {
				return withCode(exitFail, nil)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&repo, "repo", "", "the bare repository (PATH.git)")
	cmd.Flags().StringVar(&dsn, "db", "", "database (default PATH.git/agentgate/agentgate.db)")
	cmd.Flags().StringVar(&keyRef, "key", "", "gate signing key (default PATH.git/agentgate/agentgate.key)")
	cmd.Flags().StringSliceVar(&checkList, "checks", nil, "checks the develop rung runs (default: all of agentgate check's)")
	return cmd
}

func newHooksResumeRunCmd() *cobra.Command {
	var repo, dsn, keyRef, planID, as string
	cmd := &cobra.Command{
		Use:   "resume-run --repo PATH.git --plan PLAN_ID --as NAME",
		Short: "Re-authorize a stopped plan on the local forge (the /resume-run of plain git)",
		Long: `A plan whose run hit a stop condition (a secret, an unauthorized push, a budget
stop, ...) is stopped: its agent branches take no pushes. An approver of the
ladder's highest rung (main) re-authorizes it here, after looking at the stop
evidence; the stop stays in the audit log and a "run.resumed" record is added.
The same rules as /resume-run on GitHub apply: never an agent identity or a bot.

Exit status: 0 resumed, 1 refused (the reason is printed), 2 bad input.`,
		Example: `  agentgate hooks resume-run --repo /srv/git/payments.git --plan pay-2026-11-idempotency --as alice-lead`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if repo == "" || planID == "" || as == "" {
				return withCode(exitInvalid, errors.New("hooks resume-run: --repo, --plan and --as are required"))
			}
			ctx := cmd.Context()
			f, log, closeFn, err := openForge(ctx, repo, dsn, keyRef, forgeOptions{})
			if err != nil {
				return withCode(exitInvalid, fmt.Errorf("hooks resume-run: %w", err))
			}
			defer closeFn()
			ref, err := f.ResumeRun(ctx, planID, approval.User{Login: as})
			if _, cerr := log.Checkpoint(ctx); cerr != nil && err == nil {
				err = fmt.Errorf("sign an audit checkpoint: %w", cerr)
			}
			if err != nil {
				return withCode(exitInvalid, fmt.Errorf("hooks resume-run: %w", err))
			}
			if ref != nil {
				return withCode(exitFail, fmt.Errorf("resume refused (%s): %s", ref.Reason, ref.Message))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "plan %s resumed by %s; its agent branches take pushes again\n", planID, as)
			return nil
		},
	}
	cmd.Flags().StringVar(&repo, "repo", "", "the bare repository (PATH.git)")
	cmd.Flags().StringVar(&dsn, "db", "", "database (default PATH.git/agentgate/agentgate.db)")
	cmd.Flags().StringVar(&keyRef, "key", "", "gate signing key (default PATH.git/agentgate/agentgate.key)")
	cmd.Flags().StringVar(&planID, "plan", "", "the stopped plan's plan_id")
	cmd.Flags().StringVar(&as, "as", "", "who re-authorizes it (an approver of the highest rung)")
	return cmd
}
