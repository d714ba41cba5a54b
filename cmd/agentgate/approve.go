package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/agentgate/agentgate/gate/approval"
	"github.com/spf13/cobra"
)

func init() { register(newApproveCmd) }

func newApproveCmd() *cobra.Command {
	var repo, dsn, keyRef, rung, sha, as, email string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "approve --repo PATH.git --rung main --sha SHA --as NAME",
		Short: "Approve a promotion on the local forge (the /approve-promotion of plain git)",
		Long: `Record an approval of promoting the rung's source branch (staging for main) at
SHA into the rung's target, as NAME. The same rules as /approve-promotion on
GitHub apply, with the policy read from the target branch: NAME must be listed
under approvers: for the rung in .agentgate/policy.yaml (teams cannot be
resolved locally), must not be an agent identity or a bot, and must not have
authored or committed any commit being promoted; SHA (7 or more hex digits)
must be the source branch's current tip. A later push to the source voids
the approval. Every decision is written to the audit log.

On a local forge, whoever can run agentgate against the repository's files is
trusted to say who they are; on GitHub the same rules run on /approve-promotion
comments with the commenter's identity and permissions checked live.

Then promote: git push origin staging:main.

Exit status: 0 approved, 1 refused (the reason is printed), 2 bad input.`,
		Example: `  agentgate approve --repo /srv/git/payments.git --rung main --sha $(git rev-parse staging) --as alice-lead`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if repo == "" || rung == "" || sha == "" || as == "" {
				return withCode(exitInvalid, errors.New("approve: --repo, --rung, --sha and --as are required"))
			}
			ctx := cmd.Context()
			f, log, closeFn, err := openForge(ctx, repo, dsn, keyRef, forgeOptions{})
			if err != nil {
				return withCode(exitInvalid, fmt.Errorf("approve: %w", err))
			}
			defer closeFn()
			a, ref, err := f.Approve(ctx, rung, sha, approval.User{Login: as, Email: email})
			if _, cerr := log.Checkpoint(ctx); cerr != nil && err == nil {
				err = fmt.Errorf("sign an audit checkpoint: %w", cerr)
			}
			if err != nil {
				return withCode(exitInvalid, fmt.Errorf("approve: %w", err))
			}
			out := cmd.OutOrStdout()
			if ref != nil {
				if asJSON {
					_ = json.NewEncoder(out).Encode(map[string]any{"approved": false, "reason": ref.Reason, "message": ref.Message})
				}
				return withCode(exitFail, fmt.Errorf("approval refused (%s): %s", ref.Reason, ref.Message))
			}
			if asJSON {
				return json.NewEncoder(out).Encode(map[string]any{"approved": true, "approval": a})
			}
			fmt.Fprintf(out, "approved: %s -> %s at %s by %s\n", a.Source, a.Target, a.HeadSHA, a.Approver.Login)
			return nil
		},
	}
	cmd.Flags().StringVar(&repo, "repo", "", "the bare repository (PATH.git)")
	cmd.Flags().StringVar(&dsn, "db", "", "database (default PATH.git/agentgate/agentgate.db)")
	cmd.Flags().StringVar(&keyRef, "key", "", "gate signing key (default PATH.git/agentgate/agentgate.key)")
	cmd.Flags().StringVar(&rung, "rung", "", "the rung's target branch (e.g. main)")
	cmd.Flags().StringVar(&sha, "sha", "", "the commit being approved: the source branch's current tip (7+ hex digits)")
	cmd.Flags().StringVar(&as, "as", "", "the approver's name (as listed under approvers: in the policy)")
	cmd.Flags().StringVar(&email, "email", "", "the approver's e-mail, to match commit authors without a name match")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
