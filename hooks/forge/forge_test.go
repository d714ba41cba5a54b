package forge_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/hooks/forge"
	"github.com/agentgate/agentgate/internal/pgtest"
)

// agentgateBin is the agentgate binary built once for this test binary; the
// installed hook execs it, as in production.
var agentgateBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if _, err := exec.LookPath("git"); err != nil {
		fmt.Fprintln(os.Stderr, "forge tests need the git CLI:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "forge-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	agentgateBin = filepath.Join(dir, "agentgate")
	build := exec.Command("go", "build", "-o", agentgateBin, "github.com/agentgate/agentgate/cmd/agentgate")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build agentgate:", err)
		return 1
	}
	return pgtest.Run(m)
}

// Names from examples/payments-repo/.agentgate/policy.yaml.
const (
	human     = "alice-lead"
	approver  = "bob-sre"
	agent     = "ledger-agent"
	agentMail = "ledger-agent@agents.example.com"
	plan      = "ledger-2026-11-balanced-postings"
	branch    = "agent/ledger-balanced"
)

// server is a bare repository with the example project on main, develop and
// staging, the hook installed, and a clone to push from.
type server struct {
	t          testing.TB
	bare, work string
}

func newServer(t *testing.T) *server { return newServerTB(t) }

func newServerTB(t testing.TB) *server {
	t.Helper()
	root := t.TempDir()
	s := &server{t: t, bare: filepath.Join(root, "origin.git"), work: filepath.Join(root, "work")}
	s.git(root, nil, "init", "-q", "--bare", s.bare)
	s.git(root, nil, "init", "-q", s.work)
	copyDir(t, filepath.Join("..", "..", "examples", "payments-repo"), s.work)
	s.git(s.work, nil, "add", "-A")
	s.commit(human, "alice@example.com", "initial")
	s.git(s.work, nil, "branch", "-M", "main")
	s.git(s.work, nil, "remote", "add", "origin", s.bare)
	s.git(s.work, nil, "push", "-q", "origin", "main:main", "main:develop", "main:staging")
	// The fast checks: the full default set (tests, vuln, static) runs in
	// cmd/agentgate's demo test.
	if out, err := s.agentgate("hooks", "install", "--repo", s.bare, "--checks", "scope,secrets"); err != nil {
		t.Fatalf("hooks install: %v\n%s", err, out)
	}
	return s
}

func env() []string {
	var out []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "GIT_") || strings.HasPrefix(k, "AGENTGATE_") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME="+human, "GIT_AUTHOR_EMAIL=alice@example.com", "GIT_COMMITTER_NAME="+human, "GIT_COMMITTER_EMAIL=alice@example.com")
}

func (s *server) git(dir string, extra []string, args ...string) string {
	s.t.Helper()
	out, err := s.gitErr(dir, extra, args...)
	if err != nil {
		s.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

func (s *server) gitErr(dir string, extra []string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(env(), extra...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

func (s *server) agentgate(args ...string) (string, error) {
	cmd := exec.Command(agentgateBin, args...)
	cmd.Env = env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *server) commit(name, email, msg string) string {
	s.t.Helper()
	s.git(s.work, []string{"GIT_AUTHOR_NAME=" + name, "GIT_AUTHOR_EMAIL=" + email, "GIT_COMMITTER_NAME=" + name, "GIT_COMMITTER_EMAIL=" + email},
		"commit", "-q", "--allow-empty", "-m", msg)
	return s.git(s.work, nil, "rev-parse", "HEAD")
}

// agentCommit appends a line to the ledger (in the plan's scope) and commits
// it as the agent, with trailers unless msg is given in full.
func (s *server) agentCommit(line string, iteration int) string {
	s.t.Helper()
	f, err := os.OpenFile(filepath.Join(s.work, "services/ledger/ledger.go"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		s.t.Fatal(err)
	}
	fmt.Fprintf(f, "\n// %s\n", line)
	f.Close()
	s.git(s.work, nil, "add", "-A")
	return s.commit(agent, agentMail, fmt.Sprintf("ledger: %s\n\nPlan-Id: %s\nIteration: %d", line, plan, iteration))
}

// push pushes refspec as pusher; it reports whether git accepted it.
func (s *server) push(pusher, refspec string) (string, bool) {
	s.t.Helper()
	var extra []string
	if pusher != "" {
		extra = []string{"AGENTGATE_PUSHER=" + pusher}
	}
	out, err := s.gitErr(s.work, extra, "push", "origin", refspec)
	return out, err == nil
}

func (s *server) tip(branch string) string {
	return s.git(s.bare, nil, "rev-parse", "refs/heads/"+branch)
}

func (s *server) mustPush(pusher, refspec string) string {
	s.t.Helper()
	out, ok := s.push(pusher, refspec)
	if !ok {
		s.t.Fatalf("push %s as %s refused:\n%s", refspec, pusher, out)
	}
	return out
}

func (s *server) mustRefuse(pusher, refspec string, want ...string) string {
	s.t.Helper()
	before := s.git(s.bare, nil, "for-each-ref")
	out, ok := s.push(pusher, refspec)
	if ok {
		s.t.Fatalf("push %s as %s accepted, want refused:\n%s", refspec, pusher, out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			s.t.Fatalf("push %s output does not contain %q:\n%s", refspec, w, out)
		}
	}
	if after := s.git(s.bare, nil, "for-each-ref"); after != before {
		s.t.Fatalf("refs changed although the push was refused:\nbefore %s\nafter  %s", before, after)
	}
	return out
}

func (s *server) auditKinds() string {
	out, err := s.agentgate("audit", "tail", "--db", filepath.Join(s.bare, "agentgate", "agentgate.db"), "-n", "200")
	if err != nil {
		s.t.Fatalf("audit tail: %v\n%s", err, out)
	}
	return out
}

func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if e.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, _ := e.Info()
		return os.WriteFile(target, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPushRulesRefuseSecurityEvents(t *testing.T) {
	s := newServer(t)
	initial := s.tip("main")

	// A force push to main (history rewritten).
	s.git(s.work, nil, "checkout", "-q", "-b", "rewrite", initial)
	s.git(s.work, nil, "commit", "-q", "--amend", "-m", "rewritten")
	s.mustRefuse(human, "+rewrite:main", "force push refused", "STOP_UNAUTHORIZED_ACCESS")
	// A force push to develop to an older commit of another line of history.
	s.mustRefuse(human, "+rewrite:develop", "force push refused")
	// Deleting a ladder branch.
	s.mustRefuse(human, ":staging", "deleting a ladder branch is not allowed", "STOP_UNAUTHORIZED_ACCESS")
	// Creating a ladder branch that does not exist is not a promotion.
	s.git(s.bare, nil, "update-ref", "-d", "refs/heads/staging")
	s.mustRefuse(human, "main:staging", "cannot be created by a push through the gate")

	// An agent identity pushing anywhere but agent/*.
	s.git(s.work, nil, "checkout", "-q", "main")
	s.agentCommit("agent change", 1)
	s.mustRefuse(agent, "HEAD:develop", "agent identity ledger-agent may push only to agent/*", "STOP_UNAUTHORIZED_ACCESS")
	s.mustRefuse(agent, "HEAD:feature/x", "may push only to agent/*")
	s.mustRefuse(agent, "HEAD:refs/tags/v1", "may push only to agent/*")
	// ...identified by GitHub Enterprise Server's login as well.
	out, err := s.gitErr(s.work, []string{"GITHUB_USER_LOGIN=" + agent}, "push", "origin", "HEAD:main")
	if err == nil || !strings.Contains(out, "may push only to agent/*") {
		t.Fatalf("GHES login not used:\n%s", out)
	}

	// A human pushing a branch off the ladder is accepted (it cannot be promoted).
	out = s.mustPush(human, "HEAD:feature/x")
	if !strings.Contains(out, "not a ladder branch") {
		t.Fatalf("feature push output:\n%s", out)
	}
	kinds := s.auditKinds()
	for _, k := range []string{"gate.security_event", "gate.stop", "gate.push.refused", "gate.push.accepted"} {
		if !strings.Contains(kinds, k) {
			t.Fatalf("audit log lacks %s:\n%s", k, kinds)
		}
	}
}

func TestAgentPushRunsTheDevelopRung(t *testing.T) {
	s := newServer(t)
	s.git(s.work, nil, "checkout", "-q", "-b", branch)

	// Missing trailers: refused with the reason, the branch not created.
	s.git(s.work, nil, "commit", "-q", "--allow-empty", "-m", "no trailers")
	s.mustRefuse(agent, "HEAD:"+branch, "missing Plan-Id: trailer", "[FAIL] trailers")

	// Trailers naming another plan.
	s.git(s.work, nil, "commit", "-q", "--amend", "--allow-empty", "-m", "wrong plan\n\nPlan-Id: someone-else\nIteration: 1")
	s.mustRefuse(agent, "HEAD:"+branch, `does not match the plan's plan_id "`+plan+`"`)

	// In scope, with trailers: accepted, recorded and attested.
	s.git(s.work, nil, "reset", "-q", "--hard", "main")
	head := s.agentCommit("postings are immutable", 1)
	out := s.mustPush(agent, "HEAD:"+branch)
	for _, w := range []string{"[ok] checks", "[ok] plan_valid", "[ok] trailers", "all 4 requirements hold"} {
		if !strings.Contains(out, w) {
			t.Fatalf("output lacks %q:\n%s", w, out)
		}
	}
	bundle := filepath.Join(s.bare, "agentgate", "attestations", "develop-"+head+".sigstore.json")
	if out, err := s.agentgate("attest", "verify", "--bundle", bundle, "--key", filepath.Join(s.bare, "agentgate", "agentgate.pub"),
		"--commit", head, "--rung", "develop", "--decision", "pass"); err != nil {
		t.Fatalf("attest verify: %v\n%s", err, out)
	}

	// Out of scope: a file of another thread.
	if err := os.WriteFile(filepath.Join(s.work, "services/payments/hack.go"), []byte("package payments\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.git(s.work, nil, "add", "-A")
	s.commit(agent, agentMail, "reach into payments\n\nPlan-Id: "+plan+"\nIteration: 2")
	s.mustRefuse(agent, "HEAD:"+branch, "[FAIL] checks", "services/payments/hack.go")
}

func TestPromotionUpTheLadderWithApproval(t *testing.T) {
	s := newServer(t)
	s.git(s.work, nil, "checkout", "-q", "-b", branch)
	head := s.agentCommit("first", 1)
	s.mustPush(agent, "HEAD:"+branch)

	// staging cannot skip develop; main cannot skip staging.
	s.mustRefuse(human, branch+":staging", "is not the tip of any develop branch")
	s.mustRefuse(human, branch+":main", "is not the tip of any staging branch")

	s.mustPush(human, branch+":develop")
	out := s.mustPush(human, branch+":staging")
	if !strings.Contains(out, "[ok] gate_evidence") || !strings.Contains(out, "[ok] budget_compliant") {
		t.Fatalf("staging output:\n%s", out)
	}
	s.mustRefuse(human, branch+":main", "[FAIL] human_approval", "Waiting for approval")

	key := head[:10]
	for who, want := range map[string]string{
		agent:     "agent_identity",
		"mallory": "not_rung_approver",
	} {
		out, err := s.agentgate("approve", "--repo", s.bare, "--rung", "main", "--sha", key, "--as", who)
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("approve as %s: err %v, output:\n%s", who, err, out)
		}
	}
	if out, err := s.agentgate("approve", "--repo", s.bare, "--rung", "main", "--sha", "0123456789", "--as", approver); err == nil || !strings.Contains(out, "stale_sha") {
		t.Fatalf("stale SHA approval: %v\n%s", err, out)
	}
	if out, err := s.agentgate("approve", "--repo", s.bare, "--rung", "main", "--sha", key, "--as", approver); err != nil {
		t.Fatalf("approve: %v\n%s", err, out)
	}
	out = s.mustPush(human, branch+":main")
	if !strings.Contains(out, "Approved by "+approver) {
		t.Fatalf("main output:\n%s", out)
	}
	if s.tip("main") != head {
		t.Fatal("main did not move")
	}
	if out, err := s.agentgate("audit", "verify", "--db", filepath.Join(s.bare, "agentgate", "agentgate.db"), "--key", filepath.Join(s.bare, "agentgate", "agentgate.pub")); err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
}

func TestApprovalVoidedByNewPush(t *testing.T) {
	s := newServer(t)
	s.git(s.work, nil, "checkout", "-q", "-b", branch)
	first := s.agentCommit("first", 1)
	s.mustPush(agent, "HEAD:"+branch)
	s.mustPush(human, branch+":develop")
	s.mustPush(human, branch+":staging")
	if out, err := s.agentgate("approve", "--repo", s.bare, "--rung", "main", "--sha", first, "--as", approver); err != nil {
		t.Fatalf("approve: %v\n%s", err, out)
	}
	// New commits reach staging after the approval; then a merge is attempted.
	s.agentCommit("second", 2)
	s.mustPush(agent, "HEAD:"+branch)
	s.mustPush(human, branch+":develop")
	s.mustPush(human, branch+":staging")
	s.mustRefuse(human, branch+":main", "[FAIL] human_approval", "voided_by_new_push")
	// The old head can no longer be approved either: it is not staging's tip.
	if out, err := s.agentgate("approve", "--repo", s.bare, "--rung", "main", "--sha", first[:8], "--as", approver); err == nil || !strings.Contains(out, "stale_sha") {
		t.Fatalf("approval of an old head: %v\n%s", err, out)
	}
}

func TestInstallRefusesAForeignHook(t *testing.T) {
	dir := t.TempDir()
	bare := filepath.Join(dir, "r.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", bare).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	hook := filepath.Join(bare, "hooks", "pre-receive")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := forge.Install(bare, forge.InstallOptions{Binary: agentgateBin}); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("Install over a foreign hook: %v", err)
	}
	if _, err := forge.Install(bare, forge.InstallOptions{Binary: "relative/agentgate"}); err == nil {
		t.Fatal("relative binary path accepted")
	}
	if _, err := forge.Install(dir, forge.InstallOptions{Binary: agentgateBin}); err == nil {
		t.Fatal("a non-repository accepted")
	}
	p, err := forge.Install(bare, forge.InstallOptions{Binary: agentgateBin, Force: true, Args: []string{"--db", "/tmp/it's here.db"}})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	if !strings.Contains(string(data), `'/tmp/it'\''s here.db'`) {
		t.Fatalf("argument not shell-quoted:\n%s", data)
	}
	// Reinstalling over our own hook needs no --force.
	if _, err := forge.Install(bare, forge.InstallOptions{Binary: agentgateBin}); err != nil {
		t.Fatal(err)
	}
}

func TestHookFailsClosedWithoutItsState(t *testing.T) {
	s := newServer(t)
	if err := os.Remove(filepath.Join(s.bare, "agentgate", "agentgate.key")); err != nil {
		t.Fatal(err)
	}
	s.git(s.work, nil, "checkout", "-q", "-b", branch)
	s.agentCommit("x", 1)
	s.mustRefuse(agent, "HEAD:"+branch, "the gate cannot start", "fail closed")
}

func TestParseUpdates(t *testing.T) {
	a, b := strings.Repeat("a", 40), strings.Repeat("b", 40)
	ok := []string{
		a + " " + b + " refs/heads/main\n",
		a + " " + b + " refs/heads/agent/x\n\n" + b + " " + a + " refs/tags/v1",
		strings.Repeat("c", 64) + " " + strings.Repeat("d", 64) + " refs/heads/x", // SHA-256 repositories
	}
	for _, in := range ok {
		if _, err := forge.ParseUpdates(strings.NewReader(in)); err != nil {
			t.Errorf("ParseUpdates(%q): %v", in, err)
		}
	}
	bad := []string{
		"garbage",
		a + " " + b,
		a + " " + b + " main",                // not a full ref
		a + " " + b + " refs/heads/x y",      // space in ref
		a + " " + b + " refs/heads/a..b\x00", // NUL
		strings.ToUpper(a) + " " + b + " refs/heads/x",
		a + " " + b + " refs/heads/" + strings.Repeat("x", 5000),
		strings.Repeat(a+" "+b+" refs/heads/x\n", forge.MaxUpdates+1),
	}
	for _, in := range bad {
		if _, err := forge.ParseUpdates(strings.NewReader(in)); err == nil {
			t.Errorf("ParseUpdates(%.60q) accepted", in)
		}
	}
}

func FuzzParseUpdates(f *testing.F) {
	a, b := strings.Repeat("a", 40), strings.Repeat("0", 40)
	f.Add(a + " " + b + " refs/heads/main\n")
	f.Add("x y z")
	f.Fuzz(func(t *testing.T, in string) {
		ups, err := forge.ParseUpdates(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, u := range ups {
			if !strings.HasPrefix(u.Ref, "refs/") || strings.ContainsAny(u.Ref, " \t\n\x00") || (len(u.Old) != 40 && len(u.Old) != 64) {
				t.Fatalf("accepted %+v", u)
			}
		}
	})
}

// BenchmarkPreReceiveAgentPush measures one `git push` of an agent branch
// through the hook: process start, store, develop rung (scope and secrets
// checks, trailers, policy), attestation signing and audit.
func BenchmarkPreReceiveAgentPush(b *testing.B) {
	s := newServerTB(b)
	s.git(s.work, nil, "checkout", "-q", "-b", branch)
	s.agentCommit("bench", 1)
	i := 0
	for b.Loop() {
		i++
		if out, ok := s.push(agent, fmt.Sprintf("HEAD:refs/heads/agent/b%d", i)); !ok {
			b.Fatalf("push refused:\n%s", out)
		}
	}
}

func TestHookFailsClosedOnAnInvalidPolicy(t *testing.T) {
	s := newServer(t)
	// An administrator moves develop to a commit whose policy is broken,
	// outside the gate (directly in the bare repository).
	if err := os.WriteFile(filepath.Join(s.work, ".agentgate", "policy.yaml"), []byte("apiVersion: agentgate.dev/v1\nkind: Policy\nladder: 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.git(s.work, nil, "add", "-A")
	broken := s.commit(human, "alice@example.com", "break the policy")
	s.mustPush(human, "HEAD:refs/heads/feature/broken")
	s.git(s.bare, nil, "update-ref", "refs/heads/develop", broken)

	s.git(s.work, nil, "checkout", "-q", "-b", branch, broken)
	s.agentCommit("x", 1)
	s.mustRefuse(agent, "HEAD:"+branch, "policy on the protected branch", "fail closed")
}

func TestInstallRejectsAnUnknownCheck(t *testing.T) {
	dir := t.TempDir()
	bare := filepath.Join(dir, "r.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", bare).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	cmd := exec.Command(agentgateBin, "hooks", "install", "--repo", bare, "--checks", "scope,vibes")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `unknown check "vibes"`) {
		t.Fatalf("install with an unknown check: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(bare, "hooks", "pre-receive")); err == nil {
		t.Fatal("the hook was installed anyway")
	}
}

func TestStoppedPlanTakesNoPushesUntilResumed(t *testing.T) {
	s := newServer(t)
	s.git(s.work, nil, "checkout", "-q", "-b", branch)
	s.agentCommit("first", 1)
	// The agent pushes its work straight to develop: a security event that
	// stops its plan.
	s.mustRefuse(agent, "HEAD:develop", "STOP_UNAUTHORIZED_ACCESS")
	// Its branch now takes no pushes.
	s.mustRefuse(agent, "HEAD:"+branch, "plan "+plan+" is stopped (STOP_UNAUTHORIZED_ACCESS")

	for who, want := range map[string]string{agent: "agent_identity", "mallory": "not_rung_approver"} {
		out, err := s.agentgate("hooks", "resume-run", "--repo", s.bare, "--plan", plan, "--as", who)
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("resume by %s: %v\n%s", who, err, out)
		}
	}
	if out, err := s.agentgate("hooks", "resume-run", "--repo", s.bare, "--plan", plan, "--as", human); err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	s.mustPush(agent, "HEAD:"+branch)
	if out, err := s.agentgate("hooks", "resume-run", "--repo", s.bare, "--plan", plan, "--as", human); err == nil || !strings.Contains(out, "not stopped") {
		t.Fatalf("second resume: %v\n%s", err, out)
	}
}

func TestStopsHitOnlyThePlanThatCausedThem(t *testing.T) {
	s := newServer(t)
	// The ledger plan's work is promoted into develop.
	s.git(s.work, nil, "checkout", "-q", "-b", branch)
	s.agentCommit("first", 1)
	s.mustPush(agent, "HEAD:"+branch)
	s.mustPush(human, branch+":develop")
	// Its agent then pushes develop itself: the ledger plan is stopped...
	s.agentCommit("second", 2)
	s.mustRefuse(agent, "HEAD:develop", "STOP_UNAUTHORIZED_ACCESS")
	s.mustRefuse(agent, "HEAD:"+branch, "plan "+plan+" is stopped")
	// ...but a branch of the payments plan created from develop (which holds
	// ledger commits) is not.
	s.git(s.work, nil, "checkout", "-q", "-b", "agent/pay-idempotency", "origin/develop")
	f, err := os.OpenFile(filepath.Join(s.work, "services/payments/payments.go"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n// Authorization IDs are opaque to callers.\n")
	f.Close()
	s.git(s.work, nil, "add", "-A")
	s.commit("payments-agent[bot]", "payments-agent@agents.example.com", "payments: document IDs\n\nPlan-Id: pay-2026-11-idempotency\nIteration: 1")
	s.mustPush("payments-agent[bot]", "HEAD:agent/pay-idempotency")
}
