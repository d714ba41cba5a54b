package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v60/github"
	"github.com/spf13/cobra"

	"github.com/agentgate/agentgate/hooks/rulesets"
)

func init() { register(newSetupCmd) }

func newSetupCmd() *cobra.Command {
	var repo, apiURL, tokenEnv, appKey string
	var appID, installationID int64
	var targets []string
	var dryRun, autoMerge bool
	cmd := &cobra.Command{
		Use:   "setup --repo OWNER/NAME --app-id ID [--dry-run]",
		Short: "Create or update the GitHub rulesets that enforce the promotion ladder",
		Long: `Create or update one repository ruleset per ladder branch (develop, staging,
main), named "agentgate: <branch>":

  - the agentgate/<branch> check is required, bound to the agentgate GitHub App
    (--app-id), so that a commit status from anyone else cannot satisfy it;
  - force pushes, deletions and creation of the branch are blocked;
  - changes land only through pull requests (direct pushes are refused); stale
    reviews are dismissed on push;
  - with --auto-merge (the policy's auto_merge: true) updates are restricted to
    the App, which merges pinned to the evaluated head SHA.

Running setup again updates the rulesets in place. --dry-run prints the
rulesets as JSON and calls nothing.

Authentication: a token with administration:write on the repository in the
environment variable named by --token-env (default GITHUB_TOKEN), or the App
itself with --app-key and --installation-id (the App needs Administration:
write). --api-url points at GitHub Enterprise Server (https://HOST/api/v3/).`,
		Example: `  agentgate setup --repo acme/payments --app-id 123456 --dry-run
  GITHUB_TOKEN=... agentgate setup --repo acme/payments --app-id 123456
  agentgate setup --repo acme/payments --app-id 123456 --app-key app.pem --installation-id 987`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if repo == "" {
				return withCode(exitInvalid, errors.New("setup: --repo OWNER/NAME is required"))
			}
			if _, _, err := rulesets.SplitRepo(repo); err != nil {
				return withCode(exitInvalid, fmt.Errorf("setup: %w", err))
			}
			plan, err := rulesets.Plan(rulesets.Options{AppID: appID, Targets: targets, AutoMerge: autoMerge})
			if err != nil {
				return withCode(exitInvalid, fmt.Errorf("setup: %w", err))
			}
			out := cmd.OutOrStdout()
			if dryRun {
				b, err := rulesets.MarshalPlan(repo, appID, plan)
				if err != nil {
					return withCode(exitFail, err)
				}
				fmt.Fprintln(out, string(b))
				return nil
			}
			client, err := setupClient(apiURL, tokenEnv, appKey, appID, installationID)
			if err != nil {
				return withCode(exitInvalid, fmt.Errorf("setup: %w", err))
			}
			changes, err := rulesets.Apply(cmd.Context(), client.Repositories, repo, plan)
			for _, c := range changes {
				fmt.Fprintf(out, "%sd ruleset %q (id %d)\n", c.Op, c.Name, c.ID)
			}
			if err != nil {
				return withCode(exitFail, fmt.Errorf("setup: %w", err))
			}
			fmt.Fprintf(out, "%s: %d rulesets in place; agentgate/<branch> is required from App %d\n", repo, len(changes), appID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&repo, "repo", "", "the repository, OWNER/NAME")
	f.Int64Var(&appID, "app-id", 0, "the agentgate GitHub App's id: the required check is bound to it")
	f.StringSliceVar(&targets, "branches", nil, "ladder branches to protect (default develop,staging,main)")
	f.BoolVar(&autoMerge, "auto-merge", false, "restrict updates to the App (the policy's auto_merge: true)")
	f.BoolVar(&dryRun, "dry-run", false, "print the rulesets as JSON; change nothing")
	f.StringVar(&apiURL, "api-url", "https://api.github.com/", "GitHub API base URL (GHES: https://HOST/api/v3/)")
	f.StringVar(&tokenEnv, "token-env", "GITHUB_TOKEN", "environment variable holding an admin token")
	f.StringVar(&appKey, "app-key", "", "authenticate as the App installation with this private key (PEM) instead of a token")
	f.Int64Var(&installationID, "installation-id", 0, "the App installation id (with --app-key)")
	return cmd
}

func setupClient(apiURL, tokenEnv, appKey string, appID, installationID int64) (*github.Client, error) {
	base, err := url.Parse(apiURL)
	if err != nil || base.Scheme == "" || base.Host == "" {
		return nil, fmt.Errorf("--api-url %q is not a URL", apiURL)
	}
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
	}
	var hc *http.Client
	switch {
	case appKey != "":
		if installationID == 0 {
			return nil, errors.New("--app-key needs --installation-id")
		}
		tr, err := ghinstallation.NewKeyFromFile(http.DefaultTransport, appID, installationID, appKey)
		if err != nil {
			return nil, fmt.Errorf("load the App key: %w", err)
		}
		tr.BaseURL = strings.TrimSuffix(base.String(), "/")
		hc = &http.Client{Transport: tr}
	default:
		tok := os.Getenv(tokenEnv)
		if tok == "" {
			return nil, fmt.Errorf("no token: set %s to a token with administration:write on the repository, or pass --app-key and --installation-id (or use --dry-run)", tokenEnv)
		}
		hc = &http.Client{Transport: &tokenTransport{token: tok}}
	}
	c := github.NewClient(hc)
	c.BaseURL = base
	return c, nil
}

// tokenTransport adds a bearer token; the token is never logged.
type tokenTransport struct{ token string }

func (t *tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.Header.Set("Authorization", "Bearer "+t.token)
	return http.DefaultTransport.RoundTrip(r2)
}
