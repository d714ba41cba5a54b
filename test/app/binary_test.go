package app_test

import (
	"database/sql"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/agentgate/agentgate/gate/sign"
	"github.com/agentgate/agentgate/test/githubdouble"
)

// copyTree copies the example repository into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func repoRoot(t *testing.T) string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("repository root not found")
		}
		dir = parent
	}
}

// TestServeBinaryGatesAgentPushWithAgentgateCheck is the whole product
// path: the real binary, its default evaluator (`agentgate check` in a
// child process, on the fetched clone, policy from the target branch), a
// signed attestation, the audit log, and check runs on the double. A clean
// in-scope change passes; a planted key stops the run, and the key appears
// nowhere in what is posted to GitHub.
func TestServeBinaryGatesAgentPushWithAgentgateCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agentgate binary")
	}
	bin := agentgateBinary(t)
	d := githubdouble.New(t)
	d.AddInstallation(installation, repoName)
	bare := d.AddRepo(repoName)
	work := t.TempDir()
	copyTree(t, filepath.Join(repoRoot(t), "examples", "payments-repo"), work)
	gitCmd(t, work, "init", "-q", "-b", "main")
	gitCmd(t, work, "add", "-A")
	gitCmd(t, work, "commit", "-q", "-m", "example repository")
	gitCmd(t, work, "branch", "develop")
	gitCmd(t, work, "push", "-q", bare, "main", "develop")
	base := gitCmd(t, work, "rev-parse", "develop")

	keys := t.TempDir()
	priv, _, err := sign.Generate(keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	env := baseEnv(t, d)
	addr := freeAddr(t)
	env["AGENTGATE_LISTEN"] = addr
	env["AGENTGATE_SIGNING_KEY"] = priv
	env["AGENTGATE_EVALUATOR_CHECKS"] = "scope,secrets"
	env["AGENTGATE_JOB_TIMEOUT"] = "2m"
	env["AGENTGATE_RESCUE_AFTER"] = "3m"
	url := "http://" + addr
	logPath := filepath.Join(t.TempDir(), "server.log")
	startBinary(t, bin, env, logPath)
	dump := func() { b, _ := os.ReadFile(logPath); t.Logf("server log:\n%s", b) }
	waitFor(t, 60*time.Second, "server ready", func() bool { return httpStatus(url+"/readyz") == 200 })

	// 1. A clean, in-scope change.
	gitCmd(t, work, "checkout", "-q", "-b", "agent/pay-idempotency")
	f, _ := os.OpenFile(filepath.Join(work, "services/payments/payments.go"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("\n// Keys are per merchant.\n")
	f.Close()
	gitCmd(t, work, "commit", "-q", "-am", "in scope")
	gitCmd(t, work, "push", "-q", bare, "agent/pay-idempotency")
	clean := gitCmd(t, work, "rev-parse", "HEAD")
	if code := deliver(t, url, "push", newDeliveryID(), pushPayload(t, "agent/pay-idempotency", base, clean)); code != 202 {
		dump()
		t.Fatalf("push: %d", code)
	}
	waitFor(t, 120*time.Second, "check run on the clean change", func() bool { return len(completedOn(d, clean)) == 1 })
	r := completedOn(d, clean)[0]
	if r.Conclusion != "success" || r.Name != "agentgate/develop" || !strings.Contains(r.Summary, "pay-2026-11-idempotency") ||
		!strings.Contains(r.Summary, "Attestation digest: `sha256:") {
		dump()
		t.Fatalf("clean change: %s %s\n%s", r.Conclusion, r.Title, r.Summary)
	}

	// 2. A planted key: the run stops, and the key is never posted.
	key := strings.Join([]string{"AK", "IA", "QYLPMN5HHHFPZAM2"}, "")
	os.WriteFile(filepath.Join(work, "services/payments/keys.go"), []byte("package payments\n\nconst awsKey = \""+key+"\"\n"), 0o644)
	gitCmd(t, work, "add", "-A")
	gitCmd(t, work, "commit", "-q", "-m", "add keys")
	gitCmd(t, work, "push", "-q", bare, "agent/pay-idempotency")
	leak := gitCmd(t, work, "rev-parse", "HEAD")
	if code := deliver(t, url, "push", newDeliveryID(), pushPayload(t, "agent/pay-idempotency", clean, leak)); code != 202 {
		t.Fatalf("push: %d", code)
	}
	waitFor(t, 120*time.Second, "check run on the leaking change", func() bool { return len(completedOn(d, leak)) == 1 })
	r = completedOn(d, leak)[0]
	if r.Conclusion != "failure" || !strings.Contains(r.Title, "STOP_SECRET_EXPOSURE") || len(r.Annotations) == 0 {
		dump()
		t.Fatalf("leaking change: %s %s (%d annotations)\n%s", r.Conclusion, r.Title, len(r.Annotations), r.Summary)
	}
	for _, c := range d.Calls() {
		if strings.Contains(string(c.Body), key) {
			t.Fatalf("the planted key was sent to GitHub in %s %s", c.Method, c.Path)
		}
	}
	logs, _ := os.ReadFile(logPath)
	if strings.Contains(string(logs), key) {
		t.Fatal("the planted key is in the server log")
	}

	// Both decisions are in the audit log (recorded by the check child and
	// by the server before posting).
	db, err := sql.Open("sqlite", env["AGENTGATE_DB"])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM audit WHERE sha IN (?, ?)`, clean, leak).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n < 4 {
		t.Fatalf("audit records for the two heads = %d, want at least 4", n)
	}
}
