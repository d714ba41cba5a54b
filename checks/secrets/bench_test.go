package secrets_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/agentgate/agentgate/checks/secrets"
	"github.com/agentgate/agentgate/internal/repogen"
)

// gitleaksVersion is the pinned module version the CLI is built from.
const gitleaksVersion = "v8.30.1"

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
)

// gitleaksCLI builds the gitleaks command from the module cache at the
// version go.mod pins, once, into a cache directory.
func gitleaksCLI(b *testing.B) string {
	cliOnce.Do(func() {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		dir = filepath.Join(dir, "agentgate", "bench")
		if err = os.MkdirAll(dir, 0o755); err != nil {
			cliErr = err
			return
		}
		cliPath = filepath.Join(dir, "gitleaks-"+gitleaksVersion)
		if _, err := os.Stat(cliPath); err == nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", cliPath, "github.com/zricethezav/gitleaks/v8").CombinedOutput()
		if err != nil {
			cliErr = err
			cliPath = strings.TrimSpace(string(out))
		}
	})
	if cliErr != nil {
		b.Skipf("cannot build the gitleaks CLI %s from the module cache: %v: %s", gitleaksVersion, cliErr, cliPath)
	}
	return cliPath
}

// BenchmarkSecrets compares the in-process scan (net diff of
// merge-base..head plus commit messages, default rules) with the gitleaks
// CLI built from the same module version scanning the same range's
// history (`gitleaks git --log-opts=mb..head`). The repository is the
// generated agent repository: ~3,000 files, ~230 changed over 3 commits,
// 6 planted fake credentials.
func BenchmarkSecrets(b *testing.B) {
	if _, err := exec.LookPath("git"); err != nil {
		b.Skip("git is not installed")
	}
	r, err := repogen.Cached(repogen.Options{Files: 3000, Changed: 200, Added: 20, Renamed: 5, Secrets: 6, Commits: 3})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("in-process", func(b *testing.B) {
		defer cpu(b)()
		for b.Loop() {
			found, _, err := secrets.Scan(ctx, r.Dir, r.Base, r.Base, r.Head)
			if err != nil {
				b.Fatal(err)
			}
			if len(found) != len(r.Secrets) {
				b.Fatalf("found %d of %d planted secrets", len(found), len(r.Secrets))
			}
		}
	})
	cli := gitleaksCLI(b)
	b.Run("gitleaks-cli", func(b *testing.B) {
		report := filepath.Join(b.TempDir(), "report.json")
		defer cpu(b)()
		for b.Loop() {
			cmd := exec.Command(cli, "git", "--log-opts="+r.Base+".."+r.Head, "--no-banner", "--redact",
				"--exit-code", "0", "--log-level", "error", "-f", "json", "-r", report, r.Dir)
			cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("gitleaks: %v: %s", err, out)
			}
			data, err := os.ReadFile(report)
			if err != nil {
				b.Fatal(err)
			}
			var found []json.RawMessage
			if err := json.Unmarshal(data, &found); err != nil || len(found) != len(r.Secrets) {
				b.Fatalf("gitleaks found %d of %d planted secrets (%v)", len(found), len(r.Secrets), err)
			}
		}
	})
}

func cpu(b *testing.B) func() {
	start := repogen.CPUTime()
	return func() {
		b.ReportMetric(float64((repogen.CPUTime()-start).Microseconds())/1000/float64(b.N), "cpu-ms/op")
	}
}
