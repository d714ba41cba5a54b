package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/agentgate/agentgate/checks/vuln"
	"github.com/agentgate/agentgate/checks/vuln/vulndb"
)

func init() {
	register(newVulndbCmd)
}

func newVulndbCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "vulndb",
		Short: "Build and locate the offline Go vulnerability database used by the vuln check",
		Long: `The vuln check runs govulncheck against an offline database built from the
golang.org/x/vulndb module at a pinned version (` + vulndb.PinnedVersion + `).
"vulndb build" downloads that module through the Go module proxy (or takes an
already extracted copy with --from) and writes the database in a few seconds.
"vulndb path" prints where the cached database for a version lives.

The default cache is $XDG_CACHE_HOME/agentgate/vulndb/<version> (on Linux
~/.cache/agentgate/vulndb/<version>).`,
		Example: `  # build (or reuse) the cached database for the pinned version
  agentgate vulndb build

  # build into a directory of your choice from an extracted module
  go mod download -json golang.org/x/vulndb@` + vulndb.PinnedVersion + `
  agentgate vulndb build --out /srv/vulndb --from /root/go/pkg/mod/golang.org/x/vulndb@` + vulndb.PinnedVersion + `

  # use it by hand
  govulncheck -db "file://$(agentgate vulndb path)" ./...`,
	}
	root.AddCommand(newVulndbBuildCmd(), newVulndbPathCmd(), newVulndbScanCmd())
	return root
}

func newVulndbBuildCmd() *cobra.Command {
	var out, from, version, cacheDir string
	cmd := &cobra.Command{
		Use:   "build [--out DIR] [--from MODULE_DIR] [--version VERSION]",
		Short: "Build the offline vulnerability database (prints its metadata as JSON)",
		Long: `Build the offline vulnerability database from golang.org/x/vulndb.

Without --out the database goes into the cache directory, where "agentgate
check" finds it; an existing database for the same version is reused. With
--out it is written into DIR, which must not exist yet. --from takes the
directory of an extracted golang.org/x/vulndb module (the one holding
data/osv) instead of downloading it; then --version names that copy's
version for the report.`,
		Example: `  agentgate vulndb build
  agentgate vulndb build --cache-dir /var/cache/agentgate   # for 'agentgate check --cache-dir /var/cache/agentgate'
  agentgate vulndb build --out ./.cache/vulndb
  agentgate vulndb build --out /tmp/db --from ./vulndb-checkout --version v0.0.0-20261105234957-e22db6528018`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if version == "" {
				version = vulndb.PinnedVersion
			}
			var info vulndb.Info
			var err error
			switch {
			case out == "" && from == "":
				dir := ""
				if cacheDir != "" {
					dir = filepath.Join(cacheDir, "vulndb")
				}
				info, err = vulndb.Ensure(ctx, dir, version)
			default:
				if out == "" {
					return withCode(exitInvalid, fmt.Errorf("--from needs --out: say where the database should go"))
				}
				if entries, rerr := os.ReadDir(out); rerr == nil && len(entries) > 0 {
					return withCode(exitInvalid, fmt.Errorf("--out %s exists and is not empty: choose a new directory", out))
				}
				src := from
				if src == "" {
					src, err = vulndb.Download(ctx, version)
					if err != nil {
						return withCode(exitFail, err)
					}
				}
				info, err = vulndb.Build(src, out, version)
			}
			if err != nil {
				return withCode(exitFail, err)
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(info)
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write the database into (default: the cache)")
	cmd.Flags().StringVar(&from, "from", "", "extracted golang.org/x/vulndb module directory (default: go mod download)")
	cmd.Flags().StringVar(&version, "version", "", "x/vulndb version (default "+vulndb.PinnedVersion+")")
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "agentgate cache directory, as given to 'agentgate check --cache-dir' (the database goes into its vulndb/ subdirectory)")
	return cmd
}

func newVulndbPathCmd() *cobra.Command {
	var version, cacheDir string
	cmd := &cobra.Command{
		Use:   "path [--version VERSION]",
		Short: "Print the cache directory of the database for a version",
		Long: `Print the directory where "agentgate vulndb build" caches the database for a
version. It exits 1 when that database has not been built yet.`,
		Example: `  agentgate vulndb path
  govulncheck -db "file://$(agentgate vulndb path)" ./...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if version == "" {
				version = vulndb.PinnedVersion
			}
			base := filepath.Join(cacheDir, "vulndb")
			if cacheDir == "" {
				var err error
				if base, err = vulndb.DefaultCacheDir(); err != nil {
					return withCode(exitFail, err)
				}
			}
			dir := filepath.Join(base, version)
			if _, err := vulndb.Load(dir); err != nil {
				return withCode(exitFail, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&version, "version", "", "x/vulndb version (default "+vulndb.PinnedVersion+")")
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "agentgate cache directory, as given to 'agentgate check --cache-dir'")
	return cmd
}

// newVulndbScanCmd is the child the vuln check starts under its isolated
// runner: govulncheck in-process, arguments passed through.
func newVulndbScanCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "scan -- GOVULNCHECK_ARGS...",
		Short:              "Run govulncheck in-process (internal: started by the vuln check)",
		Long:               `Run govulncheck in-process with the given arguments. The vuln check starts this under its isolated runner; run it by hand only to debug a scan.`,
		Example:            `  agentgate vulndb scan -- -db file:///abs/db -format json -C ./module ./...`,
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && args[0] == "--" {
				args = args[1:]
			}
			if code := vuln.ScanMain(cmd.Context(), args, cmd.OutOrStdout(), cmd.ErrOrStderr()); code != 0 {
				return withCode(code, nil)
			}
			return nil
		},
	}
}
