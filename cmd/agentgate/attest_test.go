package main

import (
	"bufio"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/internal/gitcli/gittest"
)

// TestEvidenceCommandsEndToEnd drives keys generate, check --sign-key --db,
// attest verify and audit verify/export/tail on a real repository.
func TestEvidenceCommandsEndToEnd(t *testing.T) {
	r := gittest.New(t)
	if err := os.CopyFS(r.Dir, os.DirFS(exampleRepo)); err != nil {
		t.Fatal(err)
	}
	r.Git("checkout", "-q", "-b", "develop")
	r.Commit("base")
	r.Branch("agent/pay")
	f := filepath.Join(r.Dir, "services", "payments", "payments.go")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	r.WriteBytes("services/payments/payments.go", append(b, []byte("\n// retried\n")...), 0o644)
	head := r.Commit("agent: change")

	dir := t.TempDir()
	keys, out, db := filepath.Join(dir, "keys"), filepath.Join(dir, "out"), filepath.Join(dir, "agentgate.db")
	if s, code := execValidate(t, "keys", "generate", "--out", keys); code != exitOK {
		t.Fatalf("keys generate: %d %s", code, s)
	}
	pub := filepath.Join(keys, "agentgate.pub")
	s, code := execValidate(t, "check", "--repo", r.Dir, "--base", "develop", "--head", "agent/pay", "--checks", "scope",
		"--out", out, "--sign-key", filepath.Join(keys, "agentgate.key"), "--db", db, "--repo-id", "github.com/acme/payments")
	if code != exitOK {
		t.Fatalf("check: %d %s", code, s)
	}
	bundle := filepath.Join(out, "attestation.sigstore.json")

	verifyCases := []struct {
		args []string
		code int
	}{
		{[]string{"--commit", head, "--rung", "develop", "--decision", "pass"}, exitOK},
		{[]string{"--rung", "main"}, exitFail},
		{[]string{"--commit", strings.Repeat("0", 40)}, exitFail},
		{[]string{"--decision", "stop"}, exitFail},
	}
	for _, vc := range verifyCases {
		args := append([]string{"attest", "verify", "--bundle", bundle, "--key", pub}, vc.args...)
		if s, code := execValidate(t, args...); code != vc.code {
			t.Errorf("attest verify %v: exit %d, want %d\n%s", vc.args, code, vc.code, s)
		}
	}
	if _, code := execValidate(t, "attest", "verify", "--bundle", filepath.Join(dir, "missing.json"), "--key", pub); code != exitInvalid {
		t.Errorf("missing bundle: exit %d", code)
	}

	if s, code := execValidate(t, "audit", "verify", "--db", db, "--key", pub); code != exitOK || !strings.Contains(s, "signatures verified") {
		t.Fatalf("audit verify: %d %s", code, s)
	}
	s, code = execValidate(t, "audit", "export", "--db", db, "--format", "jsonl")
	if lines := strings.Count(s, "\n"); code != exitOK || lines != 2 || !strings.Contains(s, `"kind":"gate.decision"`) {
		t.Fatalf("audit export: %d (%d lines)\n%s", code, lines, s)
	}
	if s, code := execValidate(t, "audit", "tail", "--db", db, "-n", "1"); code != exitOK || !strings.Contains(s, "gate.evidence") || strings.Contains(s, "gate.decision") {
		t.Fatalf("audit tail -n 1: %d %s", code, s)
	}
	if s, code := execValidate(t, "audit", "verify", "--db", db, "--key", pub, "--attestation", bundle); code != exitOK || !strings.Contains(s, "1 anchors") {
		t.Fatalf("audit verify --attestation: %d %s", code, s)
	}
	if _, code := execValidate(t, "audit", "verify", "--db", db, "--anchor", "9:"+strings.Repeat("a", 64)); code != exitFail {
		t.Fatalf("audit verify with an anchor beyond the log: exit %d", code)
	}
	if _, code := execValidate(t, "audit", "verify", "--db", db, "--anchor", "x"); code != exitInvalid {
		t.Fatalf("audit verify with a malformed anchor: exit %d", code)
	}
	if _, code := execValidate(t, "audit", "verify", "--db", filepath.Join(dir, "none.db")); code != exitInvalid {
		t.Fatalf("audit verify of a missing database: exit %d", code)
	}

	// Another program edits the decision record behind the triggers' back.
	raw, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, q := range []string{"DROP TRIGGER audit_no_update", `UPDATE audit SET payload = replace(payload, '"decision":"pass"', '"decision":"fail"') WHERE seq = 1`} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()
	s, code = execValidate(t, "audit", "verify", "--db", db, "--key", pub)
	if code != exitFail {
		t.Fatalf("tampered log: exit %d\n%s", code, s)
	}
	s, _ = execValidate(t, "audit", "verify", "--db", db, "--key", pub, "--json")
	sc := bufio.NewScanner(strings.NewReader(s))
	if !sc.Scan() || !strings.Contains(sc.Text(), `"broken_seq":1`) {
		t.Fatalf("tampered log, --json: %s", s)
	}
}

func TestSchemasPublished(t *testing.T) {
	for _, name := range []string{"attestation", "manifest"} {
		if s, code := execValidate(t, "schema", name); code != exitOK || !strings.Contains(s, "draft/2020-12") {
			t.Errorf("schema %s: %d", name, code)
		}
	}
}
