package main

import (
	"fmt"
	"runtime/debug"
	"sort"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// keyDependencies are the modules whose versions matter to a security review
// of a gate decision.
var keyDependencies = []string{
	"github.com/zricethezav/gitleaks/v8",
	"golang.org/x/vuln",
	"github.com/sigstore/sigstore",
	"github.com/in-toto/attestation",
	"github.com/go-git/go-git/v5",
	"github.com/google/go-github/v60",
	"github.com/bradleyfalzon/ghinstallation/v2",
	"github.com/riverqueue/river",
	"modernc.org/sqlite",
	"github.com/jackc/pgx/v5",
}

func init() {
	register(func() *cobra.Command {
		return &cobra.Command{
			Use:   "version",
			Short: "Print agentgate's version and the versions of the libraries it gates with",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				out := cmd.OutOrStdout()
				bi, ok := debug.ReadBuildInfo()
				goVersion := "unknown"
				if ok {
					goVersion = bi.GoVersion
				}
				fmt.Fprintf(out, "agentgate %s (%s)\n", version, goVersion)
				deps := map[string]string{}
				if ok {
					for _, d := range bi.Deps {
						v := d.Version
						if d.Replace != nil {
							v = d.Replace.Version
						}
						deps[d.Path] = v
					}
				}
				names := append([]string(nil), keyDependencies...)
				sort.Strings(names)
				for _, n := range names {
					v, ok := deps[n]
					if !ok {
						continue // not linked into this build
					}
					fmt.Fprintf(out, "  %s %s\n", n, v)
				}
				return nil
			},
		}
	})
}
