package evidence_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/report"
	"github.com/agentgate/agentgate/gate/attest"
	"github.com/agentgate/agentgate/gate/audit"
	"github.com/agentgate/agentgate/gate/evidence"
	"github.com/agentgate/agentgate/gate/manifest"
	"github.com/agentgate/agentgate/gate/sign"
	"github.com/agentgate/agentgate/internal/gitcli/gittest"
	"github.com/agentgate/agentgate/internal/store"
	"github.com/agentgate/agentgate/policies"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

type fixture struct {
	repo                  *gittest.Repo
	base, head, mergeBase string
	plan                  []byte
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	r := gittest.New(t)
	r.Write(".agentgate/policy.yaml", "apiVersion: agentgate.dev/v1\nkind: Policy\n")
	r.Write("services/pay/main.go", "package pay\n")
	base := r.Commit("base")
	r.Branch("agent/pay-retry")
	plan := []byte(`{"apiVersion":"agentgate.dev/v1","plan_id":"PAY-1","fr_ids":["FR-PAY-1","FR-PAY-2"]}`)
	r.WriteBytes("services/pay/WORK_PLAN.json", plan, 0o644)
	r.Write("services/pay/retry.go", "package pay\n\nfunc Retry() {}\n")
	r.Write("services/pay/key.txt", "AKIA....\n")
	r.Commit("agent: retry")
	r.Remove("services/pay/main.go")
	head := r.Commit("agent: drop main")
	return fixture{repo: r, base: base, head: head, mergeBase: base, plan: plan}
}

func (f fixture) report(stop bool) *report.Report {
	rep := &report.Report{
		Version: report.Version, Repo: f.repo.Dir, BaseRef: "main", HeadRef: "agent/pay-retry",
		Base: f.base, Head: f.head, MergeBase: f.mergeBase, PlanID: "PAY-1", PlanPath: "services/pay/WORK_PLAN.json",
		StartedAt: time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC), Tool: report.Tool{Name: "agentgate", Version: "v0.1.0-test"},
		Checks: []checks.Result{
			{Name: "scope", Status: checks.StatusPass, Findings: []checks.Finding{}},
			{Name: "vuln", Status: checks.StatusPass, Findings: []checks.Finding{}, Details: map[string]any{"db_version": "2026-11-20", "scanner": "golang.org/x/vuln v1.9.0"}},
		},
	}
	if stop {
		rep.Checks = append(rep.Checks, checks.Result{Name: "secrets", Status: checks.StatusFail, Findings: []checks.Finding{{
			Rule: "aws-access-key", Severity: checks.SeverityCritical, Path: "services/pay/key.txt", Line: 1,
			Message: "AWS access key (redacted)", Fingerprint: "f1", Stop: policies.StopSecretExposure,
		}}})
	}
	rep.Decide()
	return rep
}

type deps struct {
	log    *audit.Log
	signer sign.Signer
	pub    string
}

func newDeps(t *testing.T) deps {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	priv, pub, err := sign.Generate(filepath.Join(dir, "keys"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.Load(ctx, priv, cryptoutils.SkipPassword)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(dir, "agentgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l, err := audit.Open(ctx, st, audit.Options{Signer: s})
	if err != nil {
		t.Fatal(err)
	}
	return deps{log: l, signer: s, pub: pub}
}

func sha(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestStopAppendsAuditThenPersistsEvidenceAndAttests(t *testing.T) {
	f := newFixture(t)
	d := newDeps(t)
	ctx := context.Background()
	out := t.TempDir()
	if err := os.WriteFile(filepath.Join(out, "secrets.log"), []byte("gitleaks: 1 leak (redacted)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := f.report(true)
	if rep.Decision != report.Stop {
		t.Fatalf("fixture decision %s", rep.Decision)
	}
	res, err := evidence.Record(ctx, evidence.Options{Report: rep, Log: d.log, Signer: d.signer, OutDir: out, RepoID: "github.com/acme/payments"})
	if err != nil {
		t.Fatal(err)
	}

	// The audit log: the stop first, then the digests of what was written.
	recs, err := d.log.Tail(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Kind != evidence.KindStop || recs[1].Kind != evidence.KindEvidence || recs[0].SHA != f.head {
		t.Fatalf("audit records: %+v", recs)
	}
	var stopPayload struct {
		StopReason string `json:"stop_reason"`
	}
	_ = json.Unmarshal(recs[0].Payload, &stopPayload)
	if stopPayload.StopReason != string(policies.StopSecretExposure) {
		t.Fatalf("stop payload %s", recs[0].Payload)
	}
	var ev struct {
		SHA256 map[string]string `json:"sha256"`
	}
	if err := json.Unmarshal(recs[1].Payload, &ev); err != nil {
		t.Fatal(err)
	}
	stops, err := os.ReadDir(filepath.Join(out, evidence.StopDir))
	if err != nil || len(stops) != 1 || !strings.HasSuffix(stops[0].Name(), "-"+f.head[:12]) {
		t.Fatalf("stop evidence directories: %v, %v", stops, err)
	}
	sub := evidence.StopDir + "/" + stops[0].Name()
	want := []string{"manifest.json", "attestation.sigstore.json", sub + "/stop.json", sub + "/manifest.json",
		sub + "/report.json", sub + "/logs/secrets.log", sub + "/diff.bundle", sub + "/diff.patch.omitted"}
	for _, name := range want {
		if got := sha(t, filepath.Join(out, filepath.FromSlash(name))); ev.SHA256[name] != got {
			t.Errorf("%s: audited digest %q, file digest %s", name, ev.SHA256[name], got)
		}
	}
	if res.Checkpoint == nil || res.Checkpoint.HeadSeq != 2 {
		t.Fatalf("checkpoint %+v", res.Checkpoint)
	}
	v, _ := sign.LoadVerifier(ctx, d.pub)
	if _, err := d.log.Verify(ctx, v); err != nil {
		t.Fatal(err)
	}

	// The diff snapshot is a real bundle of merge-base..head.
	bundle := filepath.Join(out, filepath.FromSlash(sub), "diff.bundle")
	if outp, err := f.repo.GitErr("bundle", "verify", bundle); err != nil {
		t.Fatalf("git bundle verify: %v %s", err, outp)
	}
	heads := f.repo.Git("bundle", "list-heads", bundle)
	if !strings.HasPrefix(heads, f.head+" ") {
		t.Fatalf("bundle heads %q; want %s", heads, f.head)
	}
	// A secret stop keeps no plaintext patch: it would spread the secret.
	if _, err := os.Stat(filepath.Join(out, filepath.FromSlash(sub), "diff.patch")); !os.IsNotExist(err) {
		t.Fatalf("a secret stop wrote a plaintext diff.patch (stat: %v)", err)
	}
	note, _ := os.ReadFile(filepath.Join(out, filepath.FromSlash(sub), "diff.patch.omitted"))
	if !bytes.Contains(note, []byte(string(policies.StopSecretExposure))) {
		t.Fatalf("diff.patch.omitted does not say why:\n%s", note)
	}
	if refs := f.repo.Git("for-each-ref", "--format=%(refname)"); strings.Contains(refs, "snapshot") {
		t.Fatalf("the snapshot wrote a ref into the judged repository: %s", refs)
	}

	// The manifest says what it knows and why it does not know the rest.
	mf, err := os.Open(filepath.Join(out, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer mf.Close()
	m, err := manifest.Load(mf)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := m.StopReason.Get(); !ok || s != string(policies.StopSecretExposure) {
		t.Errorf("manifest stop reason %q %v", s, ok)
	}
	if fr, ok := m.FRIDs.Get(); !ok || strings.Join(fr, ",") != "FR-PAY-1,FR-PAY-2" {
		t.Errorf("fr_ids %v %v", fr, ok)
	}
	if w, ok := m.FilesWritten.Get(); !ok || strings.Join(w, ",") != "services/pay/WORK_PLAN.json,services/pay/key.txt,services/pay/retry.go" {
		t.Errorf("files_written %v %v", w, ok)
	}
	if ds, ok := m.Diff.Get(); !ok || ds.FilesChanged != 4 || ds.Deletions != 1 {
		t.Errorf("diff %+v %v", ds, ok)
	}
	if _, ok := m.TokenUsage.Get(); ok || !strings.Contains(m.TokenUsage.Reason(), "gateway") {
		t.Errorf("token usage should be unknown (gateway): %q", m.TokenUsage.Reason())
	}
	if p, ok := m.Plan.Get(); !ok || p.SHA256 != hex.EncodeToString(func() []byte { s := sha256.Sum256(f.plan); return s[:] }()) {
		t.Errorf("plan %+v", p)
	}

	// The attestation verifies, anchors the audit record and names the rung.
	b, _ := os.ReadFile(res.Attestation)
	got, err := attest.Verify(ctx, b, v, attest.Expect{Commit: f.head, Target: "main", Decision: "stop"})
	if err != nil {
		t.Fatal(err)
	}
	p := got.Predicate
	if p.Audit == nil || p.Audit.Seq != recs[0].Seq || p.Audit.Hash != recs[0].Hash || p.StopReason != string(policies.StopSecretExposure) ||
		p.Rung.Source != "agent/pay-retry" || !strings.HasPrefix(p.PolicyDigest, "gitTree:") || p.Databases["vuln.db_version"] != "2026-11-20" ||
		!strings.HasPrefix(p.Databases["audit_store"], "sqlite ") || p.Tools["agentgate"] != "v0.1.0-test" {
		t.Fatalf("predicate %+v", p)
	}
	if want := f.repo.Git("rev-parse", f.base+":.agentgate"); p.PolicyDigest != "gitTree:"+want {
		t.Fatalf("policy digest %s; want the base tree %s", p.PolicyDigest, want)
	}
}

func TestPassWritesManifestAndAttestationOnly(t *testing.T) {
	f := newFixture(t)
	d := newDeps(t)
	out := t.TempDir()
	res, err := evidence.Record(context.Background(), evidence.Options{Report: f.report(false), Log: d.log, Signer: d.signer, OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	if res.Decision.Kind != evidence.KindDecision || len(res.StopDir) != 0 {
		t.Fatalf("result %+v", res)
	}
	if _, err := os.Stat(filepath.Join(out, evidence.StopDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a pass wrote stop evidence: %v", err)
	}
	for _, name := range []string{"manifest.json", "attestation.sigstore.json"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRecordFailsClosed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	t.Run("AuditUnavailableWritesNothing", func(t *testing.T) {
		d := newDeps(t)
		d.log.Store().Close()
		out := t.TempDir()
		if _, err := evidence.Record(ctx, evidence.Options{Report: f.report(true), Log: d.log, Signer: d.signer, OutDir: out}); err == nil {
			t.Fatal("recorded with a closed audit store")
		}
		if entries, _ := os.ReadDir(out); len(entries) != 0 {
			t.Fatalf("wrote %d artifacts although the audit append failed", len(entries))
		}
	})
	t.Run("StopWithoutOutDir", func(t *testing.T) {
		d := newDeps(t)
		if _, err := evidence.Record(ctx, evidence.Options{Report: f.report(true), Log: d.log}); err == nil {
			t.Fatal("a stop without an evidence directory succeeded")
		}
	})
	t.Run("SignWithoutOutDir", func(t *testing.T) {
		d := newDeps(t)
		if _, err := evidence.Record(ctx, evidence.Options{Report: f.report(false), Log: d.log, Signer: d.signer}); err == nil {
			t.Fatal("signing without an output directory succeeded")
		}
	})
	t.Run("SameSecondStopIsNotOverwritten", func(t *testing.T) {
		d := newDeps(t)
		out := t.TempDir()
		at := func() time.Time { return time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC) }
		if _, err := evidence.Record(ctx, evidence.Options{Report: f.report(true), Log: d.log, OutDir: out, Now: at}); err != nil {
			t.Fatal(err)
		}
		if _, err := evidence.Record(ctx, evidence.Options{Report: f.report(true), Log: d.log, OutDir: out, Now: at}); err == nil || !strings.Contains(err.Error(), "never overwritten") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("NoReport", func(t *testing.T) {
		if _, err := evidence.Record(ctx, evidence.Options{}); err == nil {
			t.Fatal("recorded nothing successfully")
		}
	})
}

func TestRerunIntoSameOutDirKeepsEarlierStopEvidence(t *testing.T) {
	f := newFixture(t)
	d := newDeps(t)
	ctx := context.Background()
	out := t.TempDir()
	for i, at := range []time.Time{time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC), time.Date(2026, 11, 26, 8, 5, 0, 0, time.UTC)} {
		if _, err := evidence.Record(ctx, evidence.Options{Report: f.report(true), Log: d.log, Signer: d.signer, OutDir: out, Now: func() time.Time { return at }}); err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
	}
	stops, _ := os.ReadDir(filepath.Join(out, evidence.StopDir))
	if len(stops) != 2 {
		t.Fatalf("%d stop evidence directories; want one per stop", len(stops))
	}
	if h, _ := d.log.Head(ctx); h.Seq != 4 {
		t.Fatalf("audit head %d; want 4 (two stops, two evidence records)", h.Seq)
	}
}

func TestBundleIgnoresRepositoryConfiguredCode(t *testing.T) {
	f := newFixture(t)
	marker := filepath.Join(t.TempDir(), "ran")
	script := filepath.Join(t.TempDir(), "evil.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.repo.Git("config", "core.fsmonitor", script)
	f.repo.Git("config", "core.hooksPath", filepath.Dir(script))
	f.repo.Git("config", "diff.external", script)
	out := filepath.Join(t.TempDir(), "x.bundle")
	if err := evidence.Bundle(context.Background(), f.repo.Dir, f.mergeBase, f.head, out); err != nil {
		t.Fatal(err)
	}
	if _, err := evidence.Patch(context.Background(), f.repo.Dir, f.mergeBase, f.head); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("repository-configured program ran")
	}
	if err := evidence.Bundle(context.Background(), f.repo.Dir, f.head, f.head, out+"2"); !errors.Is(err, evidence.ErrEmptyRange) {
		t.Fatalf("empty range: %v", err)
	}
	for _, bad := range [][2]string{{"HEAD~1", f.head}, {f.base, "--upload-pack=x"}, {f.base, "main"}} {
		if err := evidence.Bundle(context.Background(), f.repo.Dir, bad[0], bad[1], out+"3"); err == nil {
			t.Errorf("Bundle(%q, %q) accepted", bad[0], bad[1])
		}
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git missing")
	}
}

func TestDirSinkRejectsEscapingNames(t *testing.T) {
	d := evidence.Dir(t.TempDir())
	for _, name := range []string{"", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a\\b", "a\x00b"} {
		if _, err := d.Put(context.Background(), name, strings.NewReader("x")); err == nil {
			t.Errorf("Put(%q) accepted", name)
		}
	}
	if _, err := d.Put(context.Background(), "logs/a.log", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Put(context.Background(), "logs/a.log", strings.NewReader("y")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(string(d), "logs", "a.log")); string(b) != "y" {
		t.Fatalf("artifact is %q; want the replacement", b)
	}
	target := filepath.Join(t.TempDir(), "outside")
	if err := os.Symlink(target, filepath.Join(string(d), "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Put(context.Background(), "link", strings.NewReader("z")); err == nil {
		t.Fatal("wrote through a symlink")
	}
	if _, err := os.Stat(target); err == nil {
		t.Fatal("the symlink target was created")
	}
}

func FuzzDirSinkName(f *testing.F) {
	for _, s := range []string{"a", "../a", "a/b", "/a", "a/./b"} {
		f.Add(s)
	}
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, name string) {
		dir := filepath.Join(root, "sink")
		loc, err := evidence.Dir(dir).Put(context.Background(), name, strings.NewReader("x"))
		if err != nil {
			return
		}
		defer os.Remove(loc)
		rel, err := filepath.Rel(dir, loc)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			t.Fatalf("Put(%q) wrote outside the sink: %s", name, loc)
		}
	})
}
