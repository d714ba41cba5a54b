package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoEndToEnd builds agentgate and runs `agentgate demo` as `make run`
// does: every step must behave as expected and the command must exit 0.
func TestDemoEndToEnd(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("the demo needs the git CLI:", err)
	}
	bin := filepath.Join(t.TempDir(), "agentgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	work := filepath.Join(t.TempDir(), "demo")
	cmd := exec.Command(bin, "demo", "--example", filepath.Join("..", "..", "examples", "payments-repo"), "--dir", work, "--keep")
	cmd.Env = append(os.Environ(), "AGENTGATE_PUSHER=someone-else") // must not leak into the demo's pushes
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("agentgate demo: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		"All 11 steps behaved as expected",
		"is stopped (STOP_",
		"resume refused (bot)",
		"resumed by alice-lead",
		"accepted promotion agent/ledger-balanced -> develop",
		"STOP_SECRET_EXPOSURE",
		"services/ledger/fees.go",
		"may push only to agent/*",
		"force push refused",
		"[ok] gate_evidence",
		"[FAIL] human_approval",
		"approval refused (agent_identity)",
		"approval refused (not_rung_approver)",
		"Approved by bob-sre",
		"audit log intact",
		"signatures verified",
		"decision=stop stop=STOP_SECRET_EXPOSURE",
		"stop evidence (decision, manifest, report, diff snapshot)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if strings.Contains(text, "UNEXPECTED") {
		t.Errorf("a step misbehaved")
	}
	// What the demo claims, checked independently: main moved to the agent's
	// commit, and three attestations exist.
	bundles, _ := filepath.Glob(filepath.Join(work, "origin.git", "agentgate", "attestations", "*.sigstore.json"))
	if len(bundles) != 3 {
		t.Errorf("%d attestations, want develop, staging and main", len(bundles))
	}
	mainTip, _ := exec.Command("git", "--git-dir", filepath.Join(work, "origin.git"), "rev-parse", "main").Output()
	branchTip, _ := exec.Command("git", "--git-dir", filepath.Join(work, "origin.git"), "rev-parse", "agent/ledger-balanced").Output()
	if len(mainTip) == 0 || string(mainTip) != string(branchTip) {
		t.Errorf("main is at %q, want the agent branch tip %q", mainTip, branchTip)
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", text)
	}
}
