package forge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/gate/approval"
	"github.com/agentgate/agentgate/gate/audit"
	"github.com/agentgate/agentgate/gate/budget"
	"github.com/agentgate/agentgate/gate/ladder"
	"github.com/agentgate/agentgate/internal/gitcli"
	"github.com/agentgate/agentgate/policies"
)

// CheckOutcome is what the forge needs of a check report (the wiring
// converts checks/report.Report into it).
type CheckOutcome struct {
	Decision    string // "pass", "fail" or "stop"
	StopReason  policies.StopReason
	StopReasons []policies.StopReason
	Reasons     []string
	PlanID      string
	PlanPath    string
	Plan        []byte // the WORK_PLAN.json bytes (attested by digest)
	MergeBase   string
	Checks      []checks.Result
	// StopEvidence is where the checker persisted a stop's evidence, or
	// why it could not.
	StopEvidence string
}

// Decision values of CheckOutcome.
const (
	DecisionPass = "pass"
	DecisionFail = "fail"
	DecisionStop = "stop"
)

// CheckRequest names one evaluation of the check gate.
type CheckRequest struct {
	Repo     string // a repository path that sees every object of the push
	RepoID   string // the forge repository's identity (for records)
	Base     string // the target branch tip (full SHA)
	Head     string // the pushed agent branch tip (full SHA)
	PlanPath string // the plan to evaluate against ("" lets the engine discover it)
	Source   string // the agent branch
	Target   string // the rung's target (develop)
	Pusher   string
}

// Checker runs the check gate. An error wrapping an input problem (an
// invalid plan) is reported by PlanError. On a stop, the checker persists
// the stop evidence (manifest, logs, diff snapshot) before returning.
type Checker interface {
	Check(ctx context.Context, req CheckRequest) (*CheckOutcome, error)
	// PlanError reports whether err means the plan or policy input is
	// invalid (rather than the gate failing to run).
	PlanError(err error) bool
}

// Attestation is what the forge asks the attester to sign.
type Attestation struct {
	Repo      string
	Source    string
	Target    string
	Base      string // the target's tip the decision was made against
	SHA       string
	Decision  ladder.Decision
	Report    *CheckOutcome       // the check report, for agent pushes
	Approvals []approval.Approval // counted approvals, for main
	Commits   []string            // commits covered (base..head)
	PlanIDs   []string            // plans of the promoted commits (Plan-Id: trailers)
}

// Attester signs and verifies gate attestations.
type Attester interface {
	// Attest signs a statement of a passing decision and returns a reference
	// (a digest or a path) that Verify accepts.
	Attest(ctx context.Context, a Attestation) (string, error)
	// Verify checks the signature of a recorded attestation offline.
	Verify(ctx context.Context, ref string) error
}

// Auditor appends to the audit log (*audit.Log satisfies it).
type Auditor interface {
	Append(ctx context.Context, e audit.Event) (audit.Record, error)
}

// ApprovalStore keeps approvals (gate/approval/sqlstore satisfies it).
type ApprovalStore interface {
	Approvals(ctx context.Context, repo string, number int) ([]approval.Approval, error)
	SaveApproval(ctx context.Context, a approval.Approval) error
}

// BudgetLedger is the part of the budget ledger the forge reads
// (*budget.StoreLedger satisfies it).
type BudgetLedger interface {
	EnsurePlan(ctx context.Context, p budget.Plan) error
	Status(ctx context.Context, planID string) (budget.PlanStatus, error)
}

// Forge evaluates pushes to one bare repository.
type Forge struct {
	Repo      string // absolute path of the bare repository (its identity in the store)
	Checker   Checker
	Attester  Attester
	Audit     Auditor
	Approvals ApprovalStore
	Evals     *Evaluations
	Budget    BudgetLedger
	// Quarantine is $GIT_QUARANTINE_PATH of the running pre-receive hook:
	// where git keeps the pushed objects until the hook accepts them.
	Quarantine string
	Now        func() time.Time
}

// Update is one line of pre-receive input.
type Update struct {
	Old, New, Ref string
}

// MaxUpdates bounds one push.
const MaxUpdates = 1000

var updateLine = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64}) ([0-9a-f]{40}|[0-9a-f]{64}) (refs/[^\x00-\x20\x7f~^:?*\[\\]+)$`)

// ParseUpdates reads pre-receive input: "<old> <new> <ref>" per line.
func ParseUpdates(r io.Reader) ([]Update, error) {
	var out []Update
	sc := bufio.NewScanner(io.LimitReader(r, 1<<20))
	sc.Buffer(make([]byte, 4096), 4096)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		m := updateLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("malformed pre-receive input line %q: want \"<old-sha> <new-sha> <ref>\"", truncate(line, 120))
		}
		out = append(out, Update{Old: m[1], New: m[2], Ref: m[3]})
		if len(out) > MaxUpdates {
			return nil, fmt.Errorf("more than %d ref updates in one push; push fewer refs at a time", MaxUpdates)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read pre-receive input: %w", err)
	}
	return out, nil
}

// RefusedError is a refused push; its message lists every reason.
type RefusedError struct{ Reasons []string }

func (e *RefusedError) Error() string {
	return "push refused:\n  " + strings.Join(e.Reasons, "\n  ")
}

// PreReceive evaluates a push. It writes what it decided to out (the
// pusher's terminal) and returns a *RefusedError when any update is refused
// (git then rejects the whole push). Every decision is audited first.
func (f *Forge) PreReceive(ctx context.Context, updates []Update, pusher ladder.Pusher, out io.Writer) error {
	if f.Audit == nil {
		return errors.New("no audit log configured; the gate refuses to decide without one")
	}
	view, cleanup, err := f.view()
	if err != nil {
		return err
	}
	defer cleanup()
	heads, err := f.branches(ctx)
	if err != nil {
		return err
	}
	var refused []string
	var accepted []func() error
	for _, u := range updates {
		res, err := f.evaluate(ctx, view, heads, u, pusher, out)
		if err != nil {
			// Fail closed: an error deciding is a refusal with its reason.
			res = result{refused: fmt.Sprintf("%s: the gate could not evaluate this update (%v); refused (fail closed)", ladder.Branch(u.Ref), err)}
		}
		if res.refused != "" {
			refused = append(refused, res.refused)
			fmt.Fprintf(out, "agentgate: REFUSED %s\n", res.refused)
			continue
		}
		fmt.Fprintf(out, "agentgate: accepted %s\n", res.accepted)
		if res.after != nil {
			accepted = append(accepted, res.after)
		}
	}
	if len(refused) > 0 {
		return &RefusedError{Reasons: refused}
	}
	for _, fn := range accepted {
		if err := fn(); err != nil {
			return fmt.Errorf("record the accepted update: %w; push refused so that the record and the repository agree", err)
		}
	}
	return nil
}

type result struct {
	accepted string
	refused  string
	after    func() error // records to write once the whole push is accepted
}

func (f *Forge) evaluate(ctx context.Context, view string, heads map[string]string, u Update, pusher ladder.Pusher, out io.Writer) (result, error) {
	pol, err := f.policyAt(ctx, view, heads, u.Ref)
	if err != nil {
		return result{}, err
	}
	l, err := ladder.New(pol.Ladder)
	if err != nil {
		return result{}, fmt.Errorf("the policy's ladder is invalid: %w", err)
	}
	ru := ladder.RefUpdate{Ref: u.Ref, Old: u.Old, New: u.New, Pusher: pusher}
	if !ru.Created() && !ru.Deleted() {
		ru.FastForward, err = isAncestor(ctx, view, u.Old, u.New)
		if err != nil {
			return result{}, err
		}
	}
	d := l.EvaluatePush(ru, pol.AgentIdentities)
	branch := d.Branch
	switch d.Action {
	case ladder.Accept:
		return result{accepted: d.Reason}, f.audit(ctx, pusher, "gate.push.accepted", u.New, "", map[string]any{"ref": u.Ref, "old": u.Old, "reason": d.Reason})
	case ladder.Refuse:
		kind := "gate.push.refused"
		if d.SecurityEvent() {
			kind = "gate.security_event"
		}
		plans := f.planIDs(ctx, view, heads, u)
		payload := map[string]any{"ref": u.Ref, "old": u.Old, "new": u.New, "reason": d.Reason, "stop_reason": d.Stop, "pusher": pusher.String(), "plans": plans}
		if err := f.audit(ctx, pusher, kind, u.New, strings.Join(plans, ","), payload); err != nil {
			return result{}, err
		}
		if d.SecurityEvent() {
			for _, p := range plans {
				if err := f.audit(ctx, pusher, "gate.stop", u.New, p, map[string]any{"stop_reason": d.Stop, "reason": "security event on " + u.Ref + ": the plan's runs are halted until /resume-run " + p}); err != nil {
					return result{}, err
				}
			}
		}
		return result{refused: d.Reason}, nil
	case ladder.RunChecks:
		develop, ok := heads["develop"]
		if !ok {
			return result{refused: branch + ": there is no develop branch to evaluate against; create develop before agents push"}, nil
		}
		rung, ok := l.Into("develop")
		if !ok {
			return result{refused: branch + ": this policy has no rung into develop"}, nil
		}
		// A stopped plan stays stopped: its branches take no pushes until an
		// approver of the highest rung re-authorizes it.
		plans := f.planIDs(ctx, view, heads, u)
		if pp := f.planForBranch(ctx, view, develop, branch); pp != "" {
			if wp := f.plan(ctx, view, develop, pp); wp != nil && !slices.Contains(plans, wp.PlanID) {
				plans = append(plans, wp.PlanID)
			}
		}
		for _, p := range plans {
			st, err := f.PlanStopped(ctx, p)
			if err != nil {
				return result{}, err
			}
			if st.Stopped {
				reason := fmt.Sprintf("%s: plan %s is stopped (%s, audit record %d); it takes no pushes until an approver of %s re-authorizes it (/resume-run %s, or agentgate hooks resume-run --repo %s --plan %s --as NAME)",
					branch, p, st.Reason, st.Seq, l.Top(), p, f.Repo, p)
				return result{refused: reason}, f.audit(ctx, pusher, "gate.push.refused", u.New, p, map[string]any{"ref": u.Ref, "reason": reason})
			}
		}
		fmt.Fprintf(out, "agentgate: %s: running the develop rung (%s) against develop %s...\n", branch, strings.Join(rung.Requires, ", "), short(develop))
		return f.developRung(ctx, view, pol, rung, branch, develop, u.New, pusher)
	case ladder.Promote:
		return f.promote(ctx, view, heads, pol, l, d.Rung, u, pusher)
	}
	return result{}, fmt.Errorf("unknown ladder action %q", d.Action)
}

// developRung evaluates head (an agent branch tip) for promotion into develop.
func (f *Forge) developRung(ctx context.Context, view string, pol *policies.Policy, rung policies.Rung, source, base, head string, pusher ladder.Pusher) (result, error) {
	facts := ladder.Facts{}
	var rep *CheckOutcome
	planID, risk := "", ""
	if f.Checker == nil {
		facts.Set(ladder.Outcome{Requirement: policies.RequireChecks, Detail: "the checks engine is not available in this build; fails closed"})
		facts.Set(ladder.Outcome{Requirement: policies.RequirePlanValid, Detail: "the plan could not be validated (no checks engine); fails closed"})
	} else {
		r, err := f.Checker.Check(ctx, CheckRequest{Repo: view, RepoID: f.Repo, Base: base, Head: head,
			PlanPath: f.planForBranch(ctx, view, base, source), Source: source, Target: "develop", Pusher: pusher.String()})
		switch {
		case err != nil && f.Checker.PlanError(err):
			facts.Set(ladder.Outcome{Requirement: policies.RequirePlanValid, Detail: err.Error()})
			facts.Set(ladder.Outcome{Requirement: policies.RequireChecks, Detail: "not run: the plan or policy input is invalid"})
		case err != nil:
			facts.Set(ladder.Outcome{Requirement: policies.RequirePlanValid, Detail: "not evaluated: " + err.Error()})
			facts.Set(ladder.Outcome{Requirement: policies.RequireChecks, Detail: "the check gate could not run (" + err.Error() + "); fails closed"})
		default:
			rep = r
			planID = r.PlanID
			if r.PlanID == "" {
				facts.Set(ladder.Outcome{Requirement: policies.RequirePlanValid, Detail: "no WORK_PLAN.json applies to this change; every agent change needs a plan"})
			} else {
				facts.Set(ladder.Outcome{Requirement: policies.RequirePlanValid, Satisfied: true, Detail: "plan " + r.PlanID + " (" + r.PlanPath + ") validates against the base policy"})
			}
			facts.Set(checksOutcome(r))
		}
	}
	commits, err := gitcli.Log(ctx, view, base, head)
	if err != nil {
		return result{}, fmt.Errorf("list the commits develop..%s: %w", source, err)
	}
	var lc []ladder.Commit
	var shas []string
	for _, c := range commits {
		lc = append(lc, ladder.Commit{SHA: c.SHA, Message: c.Message})
		shas = append(shas, c.SHA)
	}
	facts.Set(ladder.CheckTrailers(lc, planID))
	if planID == "" {
		for _, c := range commits {
			if id, ok := c.Trailer(ladder.TrailerPlanID); ok {
				planID = id // for the record and the stop; the plan itself was not valid
				break
			}
		}
	}
	facts.Set(f.policyValid(ctx, view, head))
	d := ladder.EvaluateRung(rung, source, "develop", head, facts)

	if rep != nil {
		// The agent writes its plan, so its declared risk never lowers what
		// the protected branch's version of the plan says: the higher wins.
		risk = f.planRisk(ctx, view, head, rep.PlanPath)
		if baseRisk := f.planRisk(ctx, view, base, rep.PlanPath); baseRisk != "" && rankRisk(policies.Risk(baseRisk)) > rankRisk(policies.Risk(risk)) {
			risk = baseRisk
		}
	}
	ev := Evaluation{Repo: f.Repo, Target: "develop", Source: source, Head: head, Base: base, PlanID: planID, Risk: risk,
		Passed: d.Passed, Commits: shas, Summary: d.Summary(), At: f.now()}
	if rep != nil {
		ev.CriticalOrHigh, ev.TestsPassed = severe(rep), testsPassed(rep)
	}
	payload := map[string]any{"source": source, "target": "develop", "base": base, "decision": d}
	if rep != nil {
		payload["report"] = map[string]any{"decision": rep.Decision, "stop_reason": rep.StopReason, "reasons": rep.Reasons, "stop_evidence": rep.StopEvidence}
	}
	if !d.Passed {
		if err := f.audit(ctx, pusher, "gate.decision", head, planID, payload); err != nil {
			return result{}, err
		}
		if rep != nil && rep.StopReason != "" {
			if err := f.audit(ctx, pusher, "gate.stop", head, planID, map[string]any{"stop_reason": rep.StopReason, "stop_reasons": rep.StopReasons, "reason": "the check gate stopped plan " + planID + "; its runs are halted until /resume-run " + planID}); err != nil {
				return result{}, err
			}
		}
		if err := f.Evals.Save(ctx, ev); err != nil {
			return result{}, err
		}
		msg := d.Explain()
		if rep != nil && rep.StopReason != "" {
			msg += fmt.Sprintf("\n  stop: %s (plan %s halted until an approver comments /resume-run %s)", rep.StopReason, planID, planID)
			if rep.StopEvidence != "" {
				msg += "\n  " + rep.StopEvidence
			}
		}
		return result{refused: indent(msg)}, nil
	}
	if err := f.audit(ctx, pusher, "gate.decision", head, planID, payload); err != nil {
		return result{}, err
	}
	return result{accepted: indent(d.Explain()), after: func() error {
		if f.Attester == nil {
			ev.Attestation = ""
		} else {
			ref, err := f.Attester.Attest(ctx, Attestation{Repo: f.Repo, Source: source, Target: "develop", Base: base, SHA: head, Decision: d, Report: rep, Commits: shas})
			if err != nil {
				return fmt.Errorf("sign the develop attestation: %w", err)
			}
			ev.Attestation = ref
		}
		if f.Budget != nil && rep != nil && rep.PlanPath != "" {
			if wp := f.plan(ctx, view, head, rep.PlanPath); wp != nil {
				if err := f.Budget.EnsurePlan(ctx, budget.PlanFromWorkPlan(*wp, f.Repo)); err != nil {
					return fmt.Errorf("register plan %s with the budget ledger: %w", planID, err)
				}
			}
		}
		if err := f.audit(ctx, pusher, "gate.attested", head, planID, map[string]any{"target": "develop", "attestation": ev.Attestation}); err != nil {
			return err
		}
		return f.Evals.Save(ctx, ev)
	}}, nil
}

func checksOutcome(r *CheckOutcome) ladder.Outcome {
	o := ladder.Outcome{Requirement: policies.RequireChecks}
	var names []string
	for _, c := range r.Checks {
		names = append(names, c.Name+"="+string(c.Status))
	}
	if r.Decision == DecisionPass {
		o.Satisfied = true
		o.Detail = "all checks passed (" + strings.Join(names, ", ") + ")"
		return o
	}
	var lines []string
	for _, c := range r.Checks {
		if c.Status == checks.StatusPass || c.Status == checks.StatusSkipped {
			continue
		}
		var msgs []string
		for i, f := range c.Findings {
			if i == 3 {
				msgs = append(msgs, fmt.Sprintf("and %d more", len(c.Findings)-3))
				break
			}
			if f.Path != "" {
				msgs = append(msgs, f.Path+": "+f.Message)
			} else {
				msgs = append(msgs, f.Message)
			}
		}
		if len(msgs) == 0 {
			msgs = append(msgs, c.Reason)
		}
		lines = append(lines, fmt.Sprintf("%s %s: %s", c.Name, c.Status, strings.Join(msgs, "; ")))
	}
	if len(lines) == 0 {
		lines = r.Reasons
	}
	o.Detail = fmt.Sprintf("gate decision %s (%s)\n    - %s", r.Decision, strings.Join(names, ", "), strings.Join(lines, "\n    - "))
	if r.StopReason != "" {
		o.Detail = fmt.Sprintf("gate decision %s, %s (%s)\n    - %s", r.Decision, r.StopReason, strings.Join(names, ", "), strings.Join(lines, "\n    - "))
	}
	return o
}

func severe(r *CheckOutcome) int {
	n := 0
	for _, c := range r.Checks {
		for _, f := range c.Findings {
			if f.Severity == checks.SeverityCritical || f.Severity == checks.SeverityHigh {
				n++
			}
		}
	}
	return n
}

func testsPassed(r *CheckOutcome) bool {
	for _, c := range r.Checks {
		if c.Name == "tests" {
			return c.Status == checks.StatusPass
		}
	}
	return false // no test run is not a full test pass
}

// promote evaluates a fast-forward of a protected branch.
func (f *Forge) promote(ctx context.Context, view string, heads map[string]string, pol *policies.Policy, l *ladder.Ladder, rung policies.Rung, u Update, pusher ladder.Pusher) (result, error) {
	target := ladder.Branch(u.Ref)
	source, err := sourceBranch(heads, rung, u.New)
	if err != nil {
		return result{refused: target + ": " + err.Error()}, nil
	}
	var d ladder.Decision
	var counted []approval.Approval
	var autoAp *approval.Approval
	commits, err := gitcli.Log(ctx, view, u.Old, u.New)
	if err != nil {
		return result{}, fmt.Errorf("list the commits being promoted: %w", err)
	}
	var shas []string
	for _, c := range commits {
		shas = append(shas, c.SHA)
	}
	switch target {
	case "develop":
		return f.developPromotion(ctx, view, pol, rung, source, u, pusher)
	default:
		facts := ladder.Facts{}
		facts.Set(f.policyValid(ctx, view, u.New))
		evs, err := f.Evals.Passing(ctx, f.Repo, "develop")
		if err != nil {
			return result{}, err
		}
		facts.Set(f.gateEvidence(ctx, shas, evs))
		facts.Set(f.budgetCompliant(ctx, commits))
		if slices.Contains(rung.Requires, policies.RequireHumanApproval) {
			o, c, auto, err := f.humanApproval(ctx, pol, rung, source, u, shas, evs)
			if err != nil {
				return result{}, err
			}
			facts.Set(o)
			counted, autoAp = c, auto
		}
		d = ladder.EvaluateRung(rung, source, target, u.New, facts)
	}
	payload := map[string]any{"source": source, "target": target, "old": u.Old, "decision": d, "approvals": counted}
	if err := f.audit(ctx, pusher, "gate.decision", u.New, "", payload); err != nil {
		return result{}, err
	}
	if !d.Passed {
		return result{refused: indent(d.Explain())}, nil
	}
	return result{accepted: indent(d.Explain()), after: func() error {
		if autoAp != nil {
			if err := f.Approvals.SaveApproval(ctx, *autoAp); err != nil {
				return err
			}
		}
		ref := ""
		if f.Attester != nil {
			var err error
			ref, err = f.Attester.Attest(ctx, Attestation{Repo: f.Repo, Source: source, Target: target, Base: u.Old, SHA: u.New, Decision: d, Approvals: counted, Commits: shas, PlanIDs: f.planIDsIn(ctx, view, u.Old, u.New)})
			if err != nil {
				return fmt.Errorf("sign the %s attestation: %w", target, err)
			}
		}
		if err := f.Evals.Save(ctx, Evaluation{Repo: f.Repo, Target: target, Source: source, Head: u.New, Base: u.Old, Passed: true, Commits: shas, Attestation: ref, Summary: d.Summary(), At: f.now()}); err != nil {
			return err
		}
		return f.audit(ctx, pusher, "gate.promoted", u.New, "", map[string]any{"source": source, "target": target, "old": u.Old, "attestation": ref})
	}}, nil
}

// developPromotion accepts develop <- agent/x when the agent branch tip
// passed the develop rung (recorded at its push), re-evaluating otherwise.
func (f *Forge) developPromotion(ctx context.Context, view string, pol *policies.Policy, rung policies.Rung, source string, u Update, pusher ladder.Pusher) (result, error) {
	evs, err := f.Evals.Passing(ctx, f.Repo, "develop")
	if err != nil {
		return result{}, err
	}
	for _, ev := range evs {
		if ev.Head == u.New && ev.Source == source {
			if ok, _ := isAncestor(ctx, view, ev.Base, u.Old); ok || ev.Base == u.Old {
				if f.Attester != nil && ev.Attestation != "" {
					if err := f.Attester.Verify(ctx, ev.Attestation); err != nil {
						return result{refused: fmt.Sprintf("develop: the attestation of %s does not verify (%v); push the agent branch again to re-evaluate", short(u.New), err)}, nil
					}
				}
				why := ev.Summary
				if _, after, ok := strings.Cut(why, ": "); ok {
					why = after
				}
				msg := fmt.Sprintf("promotion %s -> develop at %s: the develop rung passed when it was pushed (%s)", source, short(u.New), why)
				return result{accepted: msg, after: func() error {
					return f.audit(ctx, pusher, "gate.promoted", u.New, ev.PlanID, map[string]any{"source": source, "target": "develop", "old": u.Old, "attestation": ev.Attestation})
				}}, f.audit(ctx, pusher, "gate.decision", u.New, ev.PlanID, map[string]any{"source": source, "target": "develop", "old": u.Old, "reused_evaluation": ev.Summary})
			}
		}
	}
	return f.developRung(ctx, view, pol, rung, source, u.Old, u.New, pusher)
}

func (f *Forge) gateEvidence(ctx context.Context, commits []string, evs []Evaluation) ladder.Outcome {
	covered := map[string]bool{}
	var bad []string
	for _, ev := range evs {
		if f.Attester == nil || ev.Attestation == "" {
			continue // unsigned evaluations are not evidence
		}
		if err := f.Attester.Verify(ctx, ev.Attestation); err != nil {
			bad = append(bad, short(ev.Head)+": "+err.Error())
			continue
		}
		for _, c := range ev.Commits {
			covered[c] = true
		}
	}
	o := ladder.CheckGateEvidence(commits, covered)
	if f.Attester == nil {
		o.Detail += " (attestations are not available in this build; evidence fails closed)"
	}
	if len(bad) > 0 {
		o.Detail += "; attestations that failed verification: " + strings.Join(bad, "; ")
	}
	return o
}

func (f *Forge) budgetCompliant(ctx context.Context, commits []gitcli.Commit) ladder.Outcome {
	plans := map[string]bool{}
	for _, c := range commits {
		if id, ok := c.Trailer(ladder.TrailerPlanID); ok {
			plans[id] = true
		}
	}
	var runs []ladder.RunBudget
	var unknown []string
	for id := range plans {
		if f.Budget == nil {
			unknown = append(unknown, id)
			continue
		}
		st, err := f.Budget.Status(ctx, id)
		if err != nil {
			unknown = append(unknown, id)
			continue
		}
		rb := ladder.RunBudget{PlanID: id, RunID: "all", SpentUSD: budget.NanoToUSD(st.Spent), LimitUSD: budget.NanoToUSD(st.Limit)}
		if st.Stopped {
			rb.Stopped = policies.StopReason(st.StopReason)
			if rb.Stopped == "" {
				rb.Stopped = policies.StopBudgetExceeded
			}
		}
		runs = append(runs, rb)
	}
	slices.Sort(unknown)
	return ladder.CheckBudget(runs, unknown)
}

// humanApproval is the main rung's approval requirement: a recorded approval
// bound to this head and target, or the policy's auto-approval.
func (f *Forge) humanApproval(ctx context.Context, pol *policies.Policy, rung policies.Rung, source string, u Update, shas []string, evs []Evaluation) (ladder.Outcome, []approval.Approval, *approval.Approval, error) {
	o := ladder.Outcome{Requirement: policies.RequireHumanApproval}
	pr := approval.PullRequest{Repo: f.Repo, Source: source, Target: rung.Target, Head: u.New}
	if f.Approvals == nil {
		o.Detail = "no approval store configured; fails closed"
		return o, nil, nil, nil
	}
	all, err := f.Approvals.Approvals(ctx, f.Repo, 0)
	if err != nil {
		return o, nil, nil, err
	}
	res := approval.Evaluate(pr, all)
	if res.Approved {
		o.Satisfied = true
		o.Detail = res.Explanation()
		return o, res.Counted, nil, nil
	}
	// Automatic approval: every promoted commit covered by a passing
	// evaluation whose plan risk, findings and tests qualify.
	in := ladder.AutoApprovalInput{ChecksEvaluated: true, TestsPassed: true}
	cov := map[string]*Evaluation{}
	for i := range evs {
		for _, c := range evs[i].Commits {
			cov[c] = &evs[i]
		}
	}
	in.PlanRisk = policies.RiskLow
	for _, c := range shas {
		ev := cov[c]
		if ev == nil {
			in.ChecksEvaluated = false
			continue
		}
		if rankRisk(policies.Risk(ev.Risk)) > rankRisk(in.PlanRisk) {
			in.PlanRisk = policies.Risk(ev.Risk)
		}
		in.CriticalOrHigh += ev.CriticalOrHigh
		in.TestsPassed = in.TestsPassed && ev.TestsPassed
	}
	if len(shas) == 0 {
		in.ChecksEvaluated = false
	}
	auto, ok := ladder.AutoApprove(pol.AutoApprove, in)
	if ok {
		a := approval.AutoApproval(pr, rung.Name, auto.Detail)
		a.At = f.now()
		return auto, []approval.Approval{a}, &a, nil
	}
	o.Detail = res.Explanation() + "; " + auto.Detail + fmt.Sprintf(" (e.g. agentgate approve --repo %s --rung %s --sha %s --as NAME)", f.Repo, rung.Target, short(u.New))
	return o, nil, nil, nil
}

func rankRisk(r policies.Risk) int {
	switch r {
	case policies.RiskLow:
		return 0
	case policies.RiskMedium:
		return 1
	case policies.RiskHigh:
		return 2
	}
	return 3 // critical or unknown: the most restrictive
}

// sourceBranch finds the branch a protected branch is promoted from: a
// branch matching the rung's source whose tip is exactly sha.
func sourceBranch(heads map[string]string, rung policies.Rung, sha string) (string, error) {
	var names []string
	for name, tip := range heads {
		if ok, _ := filepath.Match(rung.Source, name); ok && tip == sha {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "", fmt.Errorf("%s is not the tip of any %s branch; promote %s -> %s by pushing the source branch's exact tip (e.g. git push origin %s:%s)",
			short(sha), rung.Source, rung.Source, rung.Target, strings.ReplaceAll(rung.Source, "*", "NAME"), rung.Target)
	}
	return names[0], nil
}

// Approve is `agentgate approve`: records an approval of promoting the rung's
// source tip into target, as person as, when the rules allow it.
func (f *Forge) Approve(ctx context.Context, target, sha string, as approval.User) (approval.Approval, *approval.Refusal, error) {
	heads, err := f.branches(ctx)
	if err != nil {
		return approval.Approval{}, nil, err
	}
	tip, ok := heads[target]
	if !ok {
		return approval.Approval{}, nil, fmt.Errorf("branch %s does not exist in %s", target, f.Repo)
	}
	pol, err := f.policyAtRev(ctx, f.Repo, tip)
	if err != nil {
		return approval.Approval{}, nil, err
	}
	rules, err := approval.RulesFromPolicy(pol)
	if err != nil {
		return approval.Approval{}, nil, err
	}
	rung, ok := rules.Ladder.Into(target)
	if !ok {
		return approval.Approval{}, &approval.Refusal{Reason: approval.ReasonNotOnLadder, Message: target + " is not a rung target of the ladder"}, nil
	}
	source := ""
	if !strings.ContainsAny(rung.Source, "*?[") {
		source = rung.Source
	}
	head := heads[source]
	if source == "" || head == "" {
		return approval.Approval{}, &approval.Refusal{Reason: approval.ReasonNotOnLadder, Message: fmt.Sprintf("%s is promoted from %s, which has no single tip to approve", target, rung.Source)}, nil
	}
	if head == tip {
		return approval.Approval{}, &approval.Refusal{Reason: approval.ReasonNotRequired, Message: fmt.Sprintf("%s and %s are both at %s: there is nothing to promote yet", source, target, short(tip))}, nil
	}
	commits, err := gitcli.Log(ctx, f.Repo, tip, head)
	if err != nil {
		return approval.Approval{}, nil, err
	}
	pr := approval.PullRequest{Repo: f.Repo, Source: source, Target: target, Head: head}
	for _, c := range commits {
		pr.Contributors = append(pr.Contributors, approval.User{Login: c.Author.Name, Email: c.Author.Email}, approval.User{Login: c.Committer.Name, Email: c.Committer.Email})
		pr.Contributors = append(pr.Contributors, approval.CoAuthors(c.Message)...)
	}
	prior, err := f.Approvals.Approvals(ctx, f.Repo, 0)
	if err != nil {
		return approval.Approval{}, nil, err
	}
	now := f.now()
	cmd := approval.Command{SHA: sha, Approver: as, DeliveryID: fmt.Sprintf("forge-approve-%d", now.UnixNano()), Action: "created", At: now}
	a, ref := rules.Approve(ctx, pr, cmd, prior, localDirectory{})
	pusher := ladder.Pusher{Login: as.Login, Email: as.Email}
	if ref != nil {
		if err := f.audit(ctx, pusher, "approval.refused", head, "", map[string]any{"target": target, "sha": sha, "reason": ref.Reason, "message": ref.Message}); err != nil {
			return approval.Approval{}, nil, err
		}
		return approval.Approval{}, ref, nil
	}
	if err := f.audit(ctx, pusher, "approval.accepted", head, "", map[string]any{"target": target, "approval": a}); err != nil {
		return approval.Approval{}, nil, err
	}
	if err := f.Approvals.SaveApproval(ctx, a); err != nil {
		return approval.Approval{}, nil, err
	}
	return a, nil, nil
}

// localDirectory is the local forge's answer to "who may write": anyone who
// can run agentgate against the repository has write access to it; teams
// cannot be resolved locally, so only users listed by name approve.
type localDirectory struct{}

func (localDirectory) Permission(_ context.Context, login string) (approval.Permission, error) {
	if login == "" {
		return approval.PermNone, nil
	}
	return approval.PermWrite, nil
}

func (localDirectory) IsTeamMember(context.Context, string, string) (bool, error) { return false, nil }

// --- git plumbing -----------------------------------------------------------

// view returns a repository path that sees the pushed (quarantined) objects
// as well as the repository's own: a temporary bare repository whose
// alternates are both object directories. gitcli clears GIT_* variables,
// so the quarantine must be visible this way.
func (f *Forge) view() (string, func(), error) {
	if f.Quarantine == "" {
		return f.Repo, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "agentgate-view-")
	if err != nil {
		return "", nil, fmt.Errorf("create a view of the pushed objects: %w", err)
	}
	cleanup := func() { os.RemoveAll(dir) }
	objects := filepath.Join(f.Repo, "objects")
	for _, p := range []string{"objects/info", "refs/heads", "refs/tags"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			cleanup()
			return "", nil, err
		}
	}
	files := map[string]string{
		"HEAD":                    "ref: refs/heads/main\n",
		"config":                  "[core]\n\trepositoryformatversion = 0\n\tbare = true\n",
		"objects/info/alternates": objects + "\n" + f.Quarantine + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			cleanup()
			return "", nil, err
		}
	}
	return dir, cleanup, nil
}

// branches returns the repository's branch tips (before this push).
func (f *Forge) branches(ctx context.Context) (map[string]string, error) {
	out, err := gitcli.Run(ctx, f.Repo, "for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/")
	if err != nil {
		return nil, fmt.Errorf("list branches: %w", err)
	}
	heads := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		sha, ref, ok := strings.Cut(line, " ")
		if ok {
			heads[ladder.Branch(ref)] = sha
		}
	}
	return heads, nil
}

// policyAt loads the policy that governs an update of ref: from the
// protected branch the update targets (or develop for agent branches), never
// from the pushed commits.
func (f *Forge) policyAt(ctx context.Context, view string, heads map[string]string, ref string) (*policies.Policy, error) {
	b := ladder.Branch(ref)
	base := heads[b]
	if !slices.Contains([]string{"develop", "staging", "main"}, b) || base == "" {
		base = heads["develop"]
	}
	if base == "" {
		base = heads["main"]
	}
	if base == "" {
		p := policies.DefaultPolicy()
		return &p, nil
	}
	return f.policyAtRev(ctx, view, base)
}

func (f *Forge) policyAtRev(ctx context.Context, repo, rev string) (*policies.Policy, error) {
	data, err := gitcli.ReadFile(ctx, repo, rev, policies.PolicyFile, policies.MaxFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		p := policies.DefaultPolicy()
		return &p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s at %s: %w", policies.PolicyFile, short(rev), err)
	}
	p, err := policies.LoadPolicy(policies.PolicyFile, data)
	if err != nil {
		return nil, fmt.Errorf("the policy on the protected branch (%s) is invalid; fix it there first: %w", short(rev), err)
	}
	return p, nil
}

// policyValid is the "policy_valid" requirement: the whole tree at sha
// loads and cross-validates.
func (f *Forge) policyValid(ctx context.Context, repo, sha string) ladder.Outcome {
	o := ladder.Outcome{Requirement: policies.RequirePolicyValid}
	fsys, err := gitcli.CommitFS(ctx, repo, sha)
	if err != nil {
		o.Detail = "cannot read the tree: " + err.Error()
		return o
	}
	defer fsys.Close()
	fsys.MaxFileSize = policies.MaxFileSize
	tree, probs := policies.LoadTree(fsys)
	if len(probs) > 0 {
		o.Detail = fmt.Sprintf("%d policy problem(s): %s", len(probs), truncate(probs.Sort().Error(), 600))
		return o
	}
	o.Satisfied = true
	o.Detail = fmt.Sprintf("the whole tree validates (%d threads)", len(tree.Threads))
	return o
}

func (f *Forge) plan(ctx context.Context, repo, sha, planPath string) *policies.WorkPlan {
	data, err := gitcli.ReadFile(ctx, repo, sha, planPath, policies.MaxFileSize)
	if err != nil {
		return nil
	}
	wp, err := policies.LoadWorkPlan(planPath, data)
	if err != nil {
		return nil
	}
	return wp
}

// planForBranch finds, in the base tree, the plan whose git.branch is the
// agent branch being pushed ("" when none or several match).
func (f *Forge) planForBranch(ctx context.Context, repo, base, branch string) string {
	fsys, err := gitcli.CommitFS(ctx, repo, base)
	if err != nil {
		return ""
	}
	defer fsys.Close()
	fsys.MaxFileSize = policies.MaxFileSize
	tree, _ := policies.LoadTree(fsys)
	if tree == nil {
		return ""
	}
	found := ""
	for _, td := range tree.Threads {
		if td.Plan != nil && td.Plan.Git.Branch == branch {
			if found != "" {
				return "" // ambiguous: let the engine decide from the change
			}
			found = path.Join(td.Dir, policies.WorkPlanFile)
		}
	}
	return found
}

func (f *Forge) planRisk(ctx context.Context, repo, sha, planPath string) string {
	if wp := f.plan(ctx, repo, sha, planPath); wp != nil {
		return string(wp.Risk)
	}
	return ""
}

// planIDs lists the Plan-Id trailers of the commits an update would add to
// its ref: old..new for an update (a force push included), and for a new
// ref the commits no existing branch has (a branch created from develop
// does not drag in develop's plans).
func (f *Forge) planIDs(ctx context.Context, view string, heads map[string]string, u Update) []string {
	ru := ladder.RefUpdate{Old: u.Old, New: u.New}
	if ru.Deleted() {
		return nil
	}
	if !ru.Created() {
		return f.planIDsIn(ctx, view, u.Old, u.New)
	}
	args := []string{"rev-list", "--max-count=200", u.New, "--not"}
	for _, tip := range heads {
		args = append(args, tip)
	}
	out, err := gitcli.Run(ctx, view, args...)
	if err != nil {
		return nil
	}
	return f.trailerPlans(ctx, view, strings.Fields(string(out)))
}

// planIDsIn lists the Plan-Id trailers of the commits from..to.
func (f *Forge) planIDsIn(ctx context.Context, view, from, to string) []string {
	cs, err := gitcli.Log(ctx, view, from, to)
	if err != nil {
		return nil
	}
	var shas []string
	for _, c := range cs {
		shas = append(shas, c.SHA)
	}
	return f.trailerPlans(ctx, view, shas)
}

func (f *Forge) trailerPlans(ctx context.Context, view string, shas []string) []string {
	if len(shas) > 200 {
		shas = shas[:200]
	}
	for _, sha := range shas {
		if !gitcli.IsSHA(sha) {
			return nil
		}
	}
	if len(shas) == 0 {
		return nil
	}
	args := append([]string{"show", "-s", "--format=%(trailers:key=" + ladder.TrailerPlanID + ",valueonly,separator=%x0A)"}, shas...)
	out, err := gitcli.Run(ctx, view, args...)
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var ids []string
	for _, id := range strings.Fields(string(out)) {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func isAncestor(ctx context.Context, repo, a, b string) (bool, error) {
	_, err := gitcli.Run(ctx, repo, "merge-base", "--is-ancestor", a, b)
	if err == nil {
		return true, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return false, nil
	}
	return false, fmt.Errorf("compare %s and %s: %w", short(a), short(b), err)
}

func (f *Forge) audit(ctx context.Context, pusher ladder.Pusher, kind, sha, planID string, payload any) error {
	actor := pusher.Login
	if actor == "" && pusher.Email != "" {
		actor = "<" + pusher.Email + ">"
	}
	if actor == "" {
		actor = "unidentified-pusher"
	}
	if _, err := f.Audit.Append(ctx, audit.Event{Actor: actor, Kind: kind, Repo: f.Repo, SHA: sha, PlanID: planID, Payload: payload}); err != nil {
		return fmt.Errorf("write the audit log: %w (the gate refuses to act without it)", err)
	}
	return nil
}

func (f *Forge) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n    ") }
