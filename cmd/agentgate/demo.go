package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func init() { register(newDemoCmd) }

// The demo's cast. Names match examples/payments-repo/.agentgate/policy.yaml.
const (
	demoHuman      = "alice-lead" // maintainer who promotes (approver of staging and main)
	demoApprover   = "bob-sre"    // approver of main
	demoOutsider   = "mallory"    // has write access, is not an approver
	demoAgent      = "ledger-agent"
	demoAgentMail  = "ledger-agent@agents.example.com"
	demoAgent2     = "payments-agent[bot]"
	demoAgent2Mail = "payments-agent@agents.example.com"
	demoPlan       = "ledger-2026-11-balanced-postings"
	demoPlan2      = "pay-2026-11-idempotency"
	demoBranch     = "agent/ledger-balanced"
	demoBranch2    = "agent/pay-idempotency"
)

func newDemoCmd() *cobra.Command {
	var example, dir string
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Walk the promotion ladder end to end on a throwaway local git server",
		Long: `Create a temporary bare repository holding the example payments project
(main, develop and staging), install agentgate's pre-receive hook, and play
the ladder with the real git CLI:

  1. an agent pushes an in-scope change for its plan to agent/...: checks pass,
     the decision is signed (attestation);
  2. another agent pushes an out-of-scope file and a (fake, generated) secret:
     refused with the reasons, the plan is stopped;
  3. an agent pushing to develop, and a force push to main: refused as
     STOP_UNAUTHORIZED_ACCESS security events;
  4. the stopped plan takes no pushes until an approver re-authorizes it (the
     agent itself cannot);
  5. develop is promoted (agent/... -> develop), then staging with its evidence
     (signed develop attestations, budget);
  6. main waits for approval; an agent identity's and a non-approver's approval
     are refused; an approver's is accepted; main is promoted;
  7. the audit log and every attestation are verified offline.

Everything is local: embedded SQLite, no network. Exit status 0 when every
step behaved as expected, 1 otherwise.`,
		Example: `  agentgate demo
  agentgate demo --example examples/payments-repo --keep`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := newDemo(cmd.OutOrStdout(), example, dir)
			if err != nil {
				return withCode(exitInvalid, fmt.Errorf("demo: %w", err))
			}
			if !keep {
				defer os.RemoveAll(d.root)
			}
			if ok := d.run(cmd.Context()); !ok {
				return withCode(exitFail, errors.New("demo: some steps did not behave as expected (see above)"))
			}
			if keep {
				fmt.Fprintf(d.out, "\nThe workspace is kept: %s\n", d.root)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&example, "example", filepath.Join("examples", "payments-repo"), "the example project to use")
	cmd.Flags().StringVar(&dir, "dir", "", "work in this (new or empty) directory instead of a temporary one")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the workspace (repository, database, attestations) afterwards")
	return cmd
}

type demo struct {
	out      io.Writer
	example  string
	root     string // workspace
	bare     string // origin.git
	work     string // the clone people and agents push from
	bin      string // this agentgate binary
	initial  string // the first commit (main, develop and staging at setup)
	step     int
	failures []string
}

func newDemo(out io.Writer, example, dir string) (*demo, error) {
	ex, err := filepath.Abs(example)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(filepath.Join(ex, ".agentgate", "policy.yaml")); err != nil || st.IsDir() {
		return nil, fmt.Errorf("%s does not hold the example project (no .agentgate/policy.yaml); run from the agentgate source tree or pass --example DIR", example)
	}
	bin, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this binary: %w", err)
	}
	if _, err := exec.LookPath("git"); err != nil {
		return nil, errors.New("the demo needs the git CLI on PATH")
	}
	root := dir
	if root == "" {
		if root, err = os.MkdirTemp("", "agentgate-demo-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	root, _ = filepath.Abs(root)
	return &demo{out: out, example: ex, root: root, bare: filepath.Join(root, "origin.git"), work: filepath.Join(root, "work"), bin: bin}, nil
}

func (d *demo) run(ctx context.Context) bool {
	start := time.Now()
	fmt.Fprintf(d.out, "agentgate demo: code written by agents climbs agent/* -> develop -> staging -> main\n")
	fmt.Fprintf(d.out, "workspace: %s\n", d.root)
	steps := []struct {
		title string
		fn    func(ctx context.Context) error
	}{
		{"Set up a git server: the example payments project on main, develop and staging, with agentgate's pre-receive hook", d.setup},
		{"Agent " + demoAgent + " pushes an in-scope change for plan " + demoPlan + " to " + demoBranch, d.agentPush},
		{"Agent " + demoAgent2 + " pushes a file outside its plan's scope and a secret to " + demoBranch2, d.badAgentPush},
		{"Agent " + demoAgent2 + " pushes straight to develop, and someone force-pushes main", d.unauthorizedPushes},
		{"The stopped plan stays stopped until a person re-authorizes it", d.stoppedPlan},
		{demoHuman + " promotes " + demoBranch + " -> develop", d.promoteDevelop},
		{demoHuman + " promotes develop -> staging (needs signed develop evidence and budget compliance)", d.promoteStaging},
		{demoHuman + " tries to promote staging -> main before anyone approved it", d.mainWaits},
		{"Approvals that must not count: the agent itself, and " + demoOutsider + " (not an approver of main)", d.badApprovals},
		{demoApprover + " (an approver of main) approves the staging head; main is promoted", d.goodApproval},
		{"An auditor verifies the audit log and every attestation offline", d.verify},
	}
	for _, s := range steps {
		d.step++
		fmt.Fprintf(d.out, "\n%d. %s\n", d.step, s.title)
		stepStart := time.Now()
		err := s.fn(ctx)
		fmt.Fprintf(d.out, "   (%.1fs)\n", time.Since(stepStart).Seconds())
		if err != nil {
			d.failures = append(d.failures, fmt.Sprintf("step %d: %v", d.step, err))
			fmt.Fprintf(d.out, "   UNEXPECTED: %v\n", err)
			if d.step == 1 {
				break // nothing else can run without the server
			}
		}
	}
	fmt.Fprintf(d.out, "\n")
	if len(d.failures) > 0 {
		fmt.Fprintf(d.out, "%d step(s) did not behave as expected:\n  %s\n", len(d.failures), strings.Join(d.failures, "\n  "))
		return false
	}
	fmt.Fprintf(d.out, "All %d steps behaved as expected in %.1fs. Every decision above is in the audit log and every promotion carries a signed attestation.\n", d.step, time.Since(start).Seconds())
	return true
}

// --- steps ------------------------------------------------------------------

func (d *demo) setup(ctx context.Context) (err error) {
	if _, err := d.git(ctx, d.root, nil, "init", "-q", "--bare", d.bare); err != nil {
		return err
	}
	if _, err := d.git(ctx, d.root, nil, "init", "-q", d.work); err != nil {
		return err
	}
	if err := copyTree(d.example, d.work); err != nil {
		return fmt.Errorf("copy the example project: %w", err)
	}
	if _, err := d.git(ctx, d.work, nil, "add", "-A"); err != nil {
		return err
	}
	if err := d.commit(ctx, demoHuman, "alice@example.com", "Payments project with its contracts\n\nPolicy, threads, requirements and plans for the agents."); err != nil {
		return err
	}
	if d.initial, err = d.git(ctx, d.work, nil, "rev-parse", "HEAD"); err != nil {
		return err
	}
	if _, err := d.git(ctx, d.work, nil, "remote", "add", "origin", d.bare); err != nil {
		return err
	}
	if _, err := d.git(ctx, d.work, nil, "push", "-q", "origin", "HEAD:refs/heads/main", "HEAD:refs/heads/develop", "HEAD:refs/heads/staging"); err != nil {
		return err
	}
	out, err := d.agentgate(ctx, "hooks", "install", "--repo", d.bare)
	if err != nil {
		return fmt.Errorf("hooks install: %v\n%s", err, out)
	}
	d.say("origin.git has main, develop and staging at the same commit; pushes now go through the gate.")
	d.show(out)
	return nil
}

func (d *demo) agentPush(ctx context.Context) error {
	if _, err := d.git(ctx, d.work, nil, "checkout", "-q", "-b", demoBranch); err != nil {
		return err
	}
	if err := appendFile(filepath.Join(d.work, "services/ledger/ledger.go"), demoLedgerCode); err != nil {
		return err
	}
	if err := appendFile(filepath.Join(d.work, "services/ledger/ledger_test.go"), demoLedgerTest); err != nil {
		return err
	}
	if err := d.commitAll(ctx, demoAgent, demoAgentMail, "ledger: count accepted postings", demoPlan, 1); err != nil {
		return err
	}
	return d.push(ctx, demoAgent, true, "HEAD:refs/heads/"+demoBranch,
		"The develop rung ran at push time: checks, plan, trailers; the pass was signed.")
}

func (d *demo) badAgentPush(ctx context.Context) error {
	if _, err := d.git(ctx, d.work, nil, "checkout", "-q", "-b", demoBranch2, d.initial); err != nil {
		return err
	}
	// Out of scope: the payments plan may touch services/payments/** only.
	if err := os.WriteFile(filepath.Join(d.work, "services/ledger/fees.go"), []byte("package ledger\n\n// FeeCents is the flat fee per posting.\nconst FeeCents = 30\n"), 0o644); err != nil {
		return err
	}
	// A fake credential, generated now so that no secret sits in agentgate's source.
	key := "AKIA" + randomString("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
	if err := appendFile(filepath.Join(d.work, "services/payments/payments.go"), fmt.Sprintf("\n// processorKey authenticates us to the card processor.\nconst processorKey = %q\n", key)); err != nil {
		return err
	}
	if err := d.commitAll(ctx, demoAgent2, demoAgent2Mail, "payments: call the processor directly", demoPlan2, 3); err != nil {
		return err
	}
	err := d.push(ctx, demoAgent2, false, "HEAD:refs/heads/"+demoBranch2,
		"The reasons are above; the plan's runs are stopped until an approver re-authorizes them (/resume-run).")
	if _, gerr := d.git(ctx, d.work, nil, "checkout", "-q", demoBranch); gerr != nil {
		return gerr
	}
	return err
}

func (d *demo) unauthorizedPushes(ctx context.Context) error {
	if err := d.push(ctx, demoAgent2, false, demoBranch2+":refs/heads/develop",
		"Agents may push only to agent/*: recorded as a security event (STOP_UNAUTHORIZED_ACCESS)."); err != nil {
		return err
	}
	if _, err := d.git(ctx, d.work, nil, "checkout", "-q", "-b", "rewrite", d.initial); err != nil {
		return err
	}
	if _, err := d.git(ctx, d.work, nil, "commit", "-q", "--amend", "-m", "rewritten history"); err != nil {
		return err
	}
	err := d.push(ctx, demoHuman, false, "+rewrite:refs/heads/main",
		"Ladder branches only move forward: a force push is refused and recorded as a security event.")
	if _, gerr := d.git(ctx, d.work, nil, "checkout", "-q", demoBranch); gerr != nil {
		return gerr
	}
	return err
}

func (d *demo) stoppedPlan(ctx context.Context) error {
	if _, err := d.git(ctx, d.work, nil, "checkout", "-q", demoBranch2); err != nil {
		return err
	}
	if _, err := d.git(ctx, d.work, nil, "reset", "-q", "--hard", d.initial); err != nil {
		return err
	}
	if err := appendFile(filepath.Join(d.work, "services/payments/payments.go"), "\n// Authorization IDs are opaque to callers.\n"); err != nil {
		return err
	}
	if err := d.commitAll(ctx, demoAgent2, demoAgent2Mail, "payments: document authorization IDs", demoPlan2, 4); err != nil {
		return err
	}
	err := d.push(ctx, demoAgent2, false, "HEAD:refs/heads/"+demoBranch2,
		"Even a clean change is refused while the plan is stopped: no checks run, nothing is accepted.")
	if _, gerr := d.git(ctx, d.work, nil, "checkout", "-q", demoBranch); gerr != nil {
		return gerr
	}
	if err != nil {
		return err
	}
	for _, c := range []struct {
		who string
		ok  bool
	}{{demoAgent2, false}, {demoHuman, true}} {
		out, err := d.agentgate(ctx, "hooks", "resume-run", "--repo", d.bare, "--plan", demoPlan2, "--as", c.who)
		d.cmdLine("agentgate hooks resume-run --plan " + demoPlan2 + " --as " + c.who)
		d.show(out)
		if (err == nil) != c.ok {
			return fmt.Errorf("resume-run as %s: accepted=%v, want %v", c.who, err == nil, c.ok)
		}
	}
	d.say("The agent cannot lift its own stop; " + demoHuman + ", an approver of main, re-authorizes the plan after reading the stop evidence.")
	return nil
}

func (d *demo) promoteDevelop(ctx context.Context) error {
	return d.push(ctx, demoHuman, true, demoBranch+":refs/heads/develop",
		"A fast-forward to the exact tip that passed at push time; the signed evaluation is reused.")
}

func (d *demo) promoteStaging(ctx context.Context) error {
	if _, err := d.git(ctx, d.work, nil, "fetch", "-q", "origin"); err != nil {
		return err
	}
	return d.push(ctx, demoHuman, true, "origin/develop:refs/heads/staging",
		"Every agent commit is covered by a verified develop attestation and no plan is over budget.")
}

func (d *demo) mainWaits(ctx context.Context) error {
	if _, err := d.git(ctx, d.work, nil, "fetch", "-q", "origin"); err != nil {
		return err
	}
	return d.push(ctx, demoHuman, false, "origin/staging:refs/heads/main",
		"Plan "+demoPlan+" is medium risk, so the policy's auto-approval (low risk only) does not apply: main waits for a person.")
}

func (d *demo) badApprovals(ctx context.Context) error {
	head, err := d.git(ctx, d.work, nil, "rev-parse", "origin/staging")
	if err != nil {
		return err
	}
	for _, who := range []string{demoAgent, demoOutsider} {
		out, err := d.agentgate(ctx, "approve", "--repo", d.bare, "--rung", "main", "--sha", head[:12], "--as", who)
		d.cmdLine("agentgate approve --rung main --sha " + head[:12] + " --as " + who)
		d.show(out)
		if err == nil {
			return fmt.Errorf("the approval by %s was accepted", who)
		}
	}
	d.say("Both refused, with the reason; the refusals are in the audit log.")
	return nil
}

func (d *demo) goodApproval(ctx context.Context) error {
	head, err := d.git(ctx, d.work, nil, "rev-parse", "origin/staging")
	if err != nil {
		return err
	}
	out, err := d.agentgate(ctx, "approve", "--repo", d.bare, "--rung", "main", "--sha", head[:12], "--as", demoApprover)
	d.cmdLine("agentgate approve --rung main --sha " + head[:12] + " --as " + demoApprover)
	d.show(out)
	if err != nil {
		return fmt.Errorf("the approval by %s was refused: %v", demoApprover, err)
	}
	return d.push(ctx, demoHuman, true, "origin/staging:refs/heads/main",
		"The approval is bound to this head, this target and this approver; a new push to staging would void it.")
}

func (d *demo) verify(ctx context.Context) error {
	state := filepath.Join(d.bare, "agentgate")
	pub := filepath.Join(state, "agentgate.pub")
	out, err := d.agentgate(ctx, "audit", "verify", "--db", filepath.Join(state, "agentgate.db"), "--key", pub)
	d.cmdLine("agentgate audit verify --key agentgate.pub")
	d.show(out)
	if err != nil {
		return fmt.Errorf("audit verify: %v", err)
	}
	bundles, _ := filepath.Glob(filepath.Join(state, "attestations", "*.sigstore.json"))
	sort.Strings(bundles)
	want := map[string]bool{"develop": false, "staging": false, "main": false}
	for _, b := range bundles {
		out, err := d.agentgate(ctx, "attest", "verify", "--bundle", b, "--key", pub, "--decision", "pass")
		d.cmdLine("agentgate attest verify --bundle " + filepath.Base(b) + " --key agentgate.pub")
		d.show(out)
		if err != nil {
			return fmt.Errorf("attest verify %s: %v", filepath.Base(b), err)
		}
		want[strings.SplitN(filepath.Base(b), "-", 2)[0]] = true
	}
	stops, _ := filepath.Glob(filepath.Join(state, "stops", "*", "attestation.sigstore.json"))
	for _, b := range stops {
		out, err := d.agentgate(ctx, "attest", "verify", "--bundle", b, "--key", pub, "--decision", "stop")
		d.cmdLine("agentgate attest verify --bundle stops/" + filepath.Base(filepath.Dir(b)) + "/attestation.sigstore.json --key agentgate.pub --decision stop")
		d.show(out)
		if err != nil {
			return fmt.Errorf("attest verify of the stop: %v", err)
		}
	}
	if len(stops) == 0 {
		return fmt.Errorf("no signed record of the step 3 stop")
	}
	for rung, seen := range want {
		if !seen {
			return fmt.Errorf("no attestation for the %s promotion", rung)
		}
	}
	d.say("The hash chain is intact, its signed checkpoints verify, and each promotion's attestation (and the stop's) verifies with the gate's public key.")
	return nil
}

// The agent's in-scope change: a small feature with its test.
const demoLedgerCode = `
// Postings returns how many postings the ledger has accepted.
func (l *Ledger) Postings() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.postings
}
`

const demoLedgerTest = `
func TestPostingsCountsAcceptedPostingsOnly(t *testing.T) {
	l := New()
	if err := l.Post(Entry{"cash", usd(500)}, Entry{"revenue", usd(-500)}); err != nil {
		t.Fatal(err)
	}
	_ = l.Post(Entry{"cash", usd(1)})
	if got := l.Postings(); got != 1 {
		t.Fatalf("Postings() = %d, want 1", got)
	}
}
`

// --- helpers ----------------------------------------------------------------

// push pushes refspec as pusher and checks the gate's answer.
func (d *demo) push(ctx context.Context, pusher string, wantAccepted bool, refspec, explain string) error {
	d.cmdLine("AGENTGATE_PUSHER=" + pusher + " git push origin " + refspec)
	out, err := d.git(ctx, d.work, []string{"AGENTGATE_PUSHER=" + pusher}, "push", "origin", refspec)
	d.show(remoteLines(out))
	switch {
	case wantAccepted && err != nil:
		return fmt.Errorf("the push was refused, but it should have been accepted")
	case !wantAccepted && err == nil:
		return fmt.Errorf("the push was accepted, but it should have been refused")
	}
	if wantAccepted {
		d.say("Accepted. " + explain)
	} else {
		d.say("Refused. " + explain)
	}
	return nil
}

func (d *demo) commitAll(ctx context.Context, name, email, subject, plan string, iteration int) error {
	if _, err := d.git(ctx, d.work, nil, "add", "-A"); err != nil {
		return err
	}
	return d.commit(ctx, name, email, fmt.Sprintf("%s\n\nPlan-Id: %s\nIteration: %d", subject, plan, iteration))
}

func (d *demo) commit(ctx context.Context, name, email, msg string) error {
	env := []string{"GIT_AUTHOR_NAME=" + name, "GIT_AUTHOR_EMAIL=" + email, "GIT_COMMITTER_NAME=" + name, "GIT_COMMITTER_EMAIL=" + email}
	_, err := d.git(ctx, d.work, env, "commit", "-q", "-m", msg)
	return err
}

// git runs the real git CLI with a clean configuration.
func (d *demo) git(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(demoEnv(), env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	out := strings.TrimSpace(buf.String())
	if err != nil && !(len(args) > 0 && args[0] == "push") {
		return out, fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out, err
}

func (d *demo) agentgate(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, d.bin, args...)
	cmd.Dir = d.root
	cmd.Env = demoEnv()
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return strings.TrimSpace(buf.String()), err
}

// demoEnv is the environment for git and agentgate: no user or system git
// configuration, a fixed committer, no pusher unless the step sets one.
func demoEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GIT_") || strings.HasPrefix(k, "AGENTGATE_PUSHER") || k == "GITHUB_USER_LOGIN" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME="+demoHuman, "GIT_AUTHOR_EMAIL=alice@example.com",
		"GIT_COMMITTER_NAME="+demoHuman, "GIT_COMMITTER_EMAIL=alice@example.com")
}

func (d *demo) say(s string) { fmt.Fprintf(d.out, "   %s\n", s) }

func (d *demo) cmdLine(s string) { fmt.Fprintf(d.out, "   $ %s\n", s) }

func (d *demo) show(out string) {
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if strings.TrimSpace(l) != "" {
			fmt.Fprintf(d.out, "   | %s\n", strings.TrimRight(l, " "))
		}
	}
}

// remoteLines keeps what the gate said (git's "remote:" lines) and git's
// verdict line.
func remoteLines(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "remote: "):
			keep = append(keep, strings.TrimRight(strings.TrimPrefix(l, "remote: "), " "))
		case strings.Contains(l, "->") && (strings.Contains(l, "[remote rejected]") || strings.HasPrefix(strings.TrimSpace(l), "*") || strings.Contains(l, "..")):
			keep = append(keep, "git: "+strings.TrimSpace(l))
		}
	}
	return strings.Join(keep, "\n")
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func randomString(alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(err) // crypto/rand never fails on Linux or macOS
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b)
}

// copyTree copies regular files and directories (no links) from src to dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case e.IsDir():
			return os.MkdirAll(target, 0o755)
		case e.Type().IsRegular():
			info, err := e.Info()
			if err != nil {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, info.Mode().Perm())
		}
		return nil // links and special files are not part of the example
	})
}
