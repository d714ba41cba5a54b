package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/agentgate/agentgate/checks/report"
	"github.com/agentgate/agentgate/gate/attest"
	"github.com/agentgate/agentgate/gate/audit"
	"github.com/agentgate/agentgate/gate/evidence"
	"github.com/agentgate/agentgate/gate/manifest"
	"github.com/agentgate/agentgate/gate/sign"
	"github.com/agentgate/agentgate/internal/store"
)

func init() {
	registerSchema("attestation", attest.Schema)
	registerSchema("manifest", manifest.Schema)
	register(newAttestCmd)
	registerCheckExtension(checkExtension{Flags: evidenceFlags, After: recordEvidence})
}

// evidenceOpts are the `agentgate check` flags this file adds.
var evidenceOpts struct {
	signKey, db, target, repoID, runID string
}

func evidenceFlags(fs *pflag.FlagSet) {
	fs.StringVar(&evidenceOpts.signKey, "sign-key", "", "sign the decision: write OUT/attestation.sigstore.json and checkpoint the audit log with this key (PEM file or KMS reference; needs --out)")
	fs.StringVar(&evidenceOpts.db, "db", "", "record the decision in the audit log of this database (file path, sqlite://PATH or postgres://...; with --sign-key the default is $XDG_STATE_HOME/agentgate/agentgate.db)")
	fs.StringVar(&evidenceOpts.target, "target", "", "branch this promotion targets, attested as the rung's target (default: the --base branch name)")
	fs.StringVar(&evidenceOpts.repoID, "repo-id", "", "repository identity for the attestation, e.g. github.com/acme/payments (default: the --repo path)")
	fs.StringVar(&evidenceOpts.runID, "run-id", "", "agent run id, recorded in the audit log and the manifest")
}

// recordEvidence runs after the evaluation and before the report is
// printed: the decision is in the audit log (with --db or --sign-key) and
// the manifest, stop evidence and attestation are on disk (with --out)
// before anyone acts on the result. Any failure fails the check.
func recordEvidence(ctx context.Context, rep *report.Report, outDir string) error {
	o := evidenceOpts
	if o.signKey == "" && o.db == "" && outDir == "" {
		return nil
	}
	opts := evidence.Options{Report: rep, OutDir: outDir, RepoID: o.repoID, RunID: o.runID,
		Rung: attest.Rung{Target: o.target}, Tools: map[string]string{"git": gitVersion(ctx)}}
	if o.signKey != "" {
		if outDir == "" {
			return fmt.Errorf("--sign-key needs --out DIR for attestation.sigstore.json")
		}
		s, err := sign.Load(ctx, o.signKey, nil)
		if err != nil {
			return err
		}
		opts.Signer = s
	}
	if o.db != "" || o.signKey != "" {
		st, err := store.Open(ctx, o.db)
		if err != nil {
			return err
		}
		defer st.Close()
		l, err := audit.Open(ctx, st, audit.Options{Signer: opts.Signer})
		if err != nil {
			return err
		}
		opts.Log = l
	}
	_, err := evidence.Record(ctx, opts)
	return err
}

func gitVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "git version ")
}

func newAttestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "attest",
		Short: "Verify the gate's signed decision attestations",
		Long: `Every gate decision is attested: an in-toto Statement v1 about the head commit
(digest gitCommit, predicate type ` + attest.PredicateType + `),
signed as a DSSE envelope and written as a Sigstore bundle v0.3
(attestation.sigstore.json). The predicate's JSON Schema is printed by
"agentgate schema attestation".

cosign verifies the same file offline:
  cosign verify-blob-attestation --bundle attestation.sigstore.json --key agentgate.pub \
    --insecure-ignore-tlog --digest HEAD_SHA --digestAlg gitCommit --type ` + attest.PredicateType,
		Example: "  agentgate attest verify --bundle out/attestation.sigstore.json --key keys/agentgate.pub --commit $(git rev-parse HEAD) --rung develop --decision pass",
	}
	cmd.AddCommand(newAttestVerifyCmd())
	return cmd
}

func newAttestVerifyCmd() *cobra.Command {
	var bundlePath, keyRef string
	var exp attest.Expect
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify --bundle FILE --key PUB",
		Short: "Check an attestation's signature, subject, predicate type, rung and decision",
		Long: `Verify a gate attestation offline: the DSSE signature with the gate's public
key, the statement and predicate types, the predicate against its schema, and,
when given, that it is about --commit, promotes to --rung and records
--decision. Exit status: 0 only when all of these hold; 1 when the
attestation is rejected (the reason is printed); 2 when a file cannot be read.`,
		Example: `  agentgate attest verify --bundle attestation.sigstore.json --key agentgate.pub
  agentgate attest verify --bundle attestation.sigstore.json --key agentgate.pub \
    --commit 0123abcd... --rung staging --decision pass --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if bundlePath == "" || keyRef == "" {
				return withCode(exitInvalid, fmt.Errorf("attest verify: --bundle and --key are required"))
			}
			ctx := cmd.Context()
			v, err := sign.LoadVerifier(ctx, keyRef)
			if err != nil {
				return withCode(exitInvalid, err)
			}
			f, err := os.Open(bundlePath)
			if err != nil {
				return withCode(exitInvalid, fmt.Errorf("attest verify: %w", err))
			}
			data, err := io.ReadAll(io.LimitReader(f, 16<<20))
			f.Close()
			if err != nil {
				return withCode(exitInvalid, fmt.Errorf("attest verify: read %s: %w", bundlePath, err))
			}
			res, err := attest.Verify(ctx, data, v, exp)
			out := cmd.OutOrStdout()
			if err != nil {
				if asJSON {
					_ = json.NewEncoder(out).Encode(map[string]any{"verified": false, "reason": err.Error()})
				}
				if attest.IsRejected(err) {
					return withCode(exitFail, err)
				}
				return withCode(exitInvalid, err)
			}
			if asJSON {
				return json.NewEncoder(out).Encode(map[string]any{"verified": true, "subject": res.Subject, "predicate": res.Predicate})
			}
			p := res.Predicate
			fmt.Fprintf(out, "Verified OK: %s %s -> %s decision=%s", p.Repo, p.Rung.Source, p.Rung.Target, p.Decision)
			if p.StopReason != "" {
				fmt.Fprintf(out, " stop=%s", p.StopReason)
			}
			fmt.Fprintf(out, "\n  commit %s, plan %s, %d checks, %d approvals\n", res.Subject, orDash(p.Plan.ID), len(p.Checks), len(p.Approvals))
			return nil
		},
	}
	cmd.Flags().StringVar(&bundlePath, "bundle", "", "the Sigstore bundle (attestation.sigstore.json)")
	cmd.Flags().StringVar(&keyRef, "key", "", "the gate's public key (PEM), or a KMS reference")
	cmd.Flags().StringVar(&exp.Commit, "commit", "", "require this head commit (full SHA)")
	cmd.Flags().StringVar(&exp.Target, "rung", "", "require promotion to this target branch")
	cmd.Flags().StringVar(&exp.Decision, "decision", "", "require this decision (pass, fail, stop)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
