package ladder

import (
	"strings"
	"testing"

	"github.com/agentgate/agentgate/policies"
)

func TestResolveEveryLadderPair(t *testing.T) {
	l := MustSeed()
	tests := []struct {
		source, target string
		rung           string // rung name when on the ladder
		wantMsg        string // substring of the refusal otherwise
	}{
		{"agent/x", "develop", "develop", ""},
		{"refs/heads/agent/fix-42", "refs/heads/develop", "develop", ""},
		{"develop", "staging", "staging", ""},
		{"staging", "main", "main", ""},
		{"agent/x", "main", "", "agent/x -> main is not on the ladder; next rung: develop"},
		{"agent/x", "staging", "", "next rung: develop"},
		{"develop", "main", "", "develop -> main is not on the ladder; next rung: staging"},
		{"staging", "develop", "", "next rung: main"},
		{"main", "staging", "", "main -> staging is not on the ladder"},
		{"feature", "staging", "", "feature is not a ladder branch: changes enter the ladder from agent/*"},
		{"feature", "staging", "", "staging is promoted only from develop"},
		{"feature/x", "develop", "", "develop is promoted only from agent/*"},
		{"agent/a/b", "develop", "", "agent/a/b is not a ladder branch"}, // path.Match: * does not cross /
		{"develop", "develop", "", "not on the ladder"},
		{"agent/x", "agent/y", "", "next rung: develop"},
		{"", "main", "", "not on the ladder"},
	}
	for _, tt := range tests {
		t.Run(tt.source+"->"+tt.target, func(t *testing.T) {
			r, err := l.Resolve(tt.source, tt.target)
			if tt.rung != "" {
				if err != nil {
					t.Fatalf("Resolve: %v", err)
				}
				if r.Name != tt.rung {
					t.Fatalf("rung = %q, want %q", r.Name, tt.rung)
				}
				return
			}
			if err == nil {
				t.Fatalf("Resolve(%q, %q) = %+v, want not on the ladder", tt.source, tt.target, r)
			}
			if _, ok := err.(*NotOnLadderError); !ok {
				t.Fatalf("error type %T, want *NotOnLadderError", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error %q does not contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestPolicyMayTightenButNotLoosen(t *testing.T) {
	l, err := New([]policies.Rung{
		{Source: "staging", Target: "main", Requires: []string{policies.RequireChecks}},
		{Source: "agent/*", Target: "develop"}, // lists nothing: seed requirements stay
	})
	if err != nil {
		t.Fatal(err)
	}
	rs := l.Rungs()
	if len(rs) != 2 || rs[0].Target != "develop" || rs[1].Target != "main" {
		t.Fatalf("rungs = %+v, want develop then main", rs)
	}
	if got := strings.Join(rs[0].Requires, ","); got != "checks,plan_valid,trailers" {
		t.Fatalf("develop requires %s; seed requirements must stay", got)
	}
	if got := strings.Join(rs[1].Requires, ","); got != "human_approval,checks" {
		t.Fatalf("main requires %s", got)
	}
	// The removed rung is gone: develop -> staging is no longer a rung.
	if _, err := l.Resolve("develop", "staging"); err == nil {
		t.Fatal("develop -> staging resolved although the policy removed it")
	}
	// ...but staging stays protected.
	if !l.Protected("staging") {
		t.Fatal("staging must stay protected")
	}

	bad := []struct {
		name  string
		rungs []policies.Rung
		want  string
	}{
		{"agent straight to main", []policies.Rung{{Source: "agent/*", Target: "main", Requires: []string{"checks"}}}, "opens another way into main"},
		{"feature entry", []policies.Rung{{Source: "feature/*", Target: "develop", Requires: []string{"checks"}}}, "opens another way into develop"},
		{"hotfix into main", []policies.Rung{{Source: "hotfix/*", Target: "main", Requires: []string{"human_approval"}}}, "opens another way into main"},
		{"extension without requirements", []policies.Rung{{Source: "main", Target: "production"}}, "requires nothing"},
		{"pattern target", []policies.Rung{{Source: "main", Target: "prod/*", Requires: []string{"human_approval"}}}, "not a pattern"},
		{"bad pattern", []policies.Rung{{Source: "agent/[", Target: "develop"}}, "not a valid branch pattern"},
		{"empty target", []policies.Rung{{Source: "main"}}, "empty source or target"},
		{"duplicate", []policies.Rung{{Source: "develop", Target: "staging"}, {Source: "develop", Target: "staging"}}, "listed twice"},
		{"unknown requirement", []policies.Rung{{Source: "develop", Target: "staging", Requires: []string{"vibes"}}}, `unknown "vibes"`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.rungs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %v, want %q", err, tt.want)
			}
		})
	}
}

const (
	shaA = "1111111111111111111111111111111111111111"
	shaB = "2222222222222222222222222222222222222222"
)

func TestEvaluatePush(t *testing.T) {
	l := MustSeed()
	agents := []policies.AgentIdentity{{Login: "agent-bot", Email: "agent@example.com"}}
	human := Pusher{Login: "alice"}
	agentLogin := Pusher{Login: "Agent-Bot"}
	agentMail := Pusher{Email: "AGENT@example.com"}
	tests := []struct {
		name     string
		u        RefUpdate
		action   Action
		security bool
		reason   string
	}{
		{"agent pushes its branch", RefUpdate{Ref: "refs/heads/agent/x", Old: ZeroSHA, New: shaA, Pusher: agentLogin}, RunChecks, false, "running the checks"},
		{"agent force-pushes its own branch", RefUpdate{Ref: "refs/heads/agent/x", Old: shaA, New: shaB, Pusher: agentLogin}, RunChecks, false, ""},
		{"agent deletes its branch", RefUpdate{Ref: "refs/heads/agent/x", Old: shaA, New: ZeroSHA, Pusher: agentLogin}, Accept, false, ""},
		{"agent pushes develop", RefUpdate{Ref: "refs/heads/develop", Old: shaA, New: shaB, FastForward: true, Pusher: agentLogin}, Refuse, true, "may push only to agent/*"},
		{"agent by e-mail pushes main", RefUpdate{Ref: "refs/heads/main", Old: shaA, New: shaB, FastForward: true, Pusher: agentMail}, Refuse, true, "STOP_UNAUTHORIZED_ACCESS"},
		{"agent pushes a feature branch", RefUpdate{Ref: "refs/heads/feature", Old: ZeroSHA, New: shaA, Pusher: agentLogin}, Refuse, true, "may push only to agent/*"},
		{"agent pushes a tag", RefUpdate{Ref: "refs/tags/v1", Old: ZeroSHA, New: shaA, Pusher: agentLogin}, Refuse, true, "may push only to agent/*"},
		{"agent pushes nested agent branch", RefUpdate{Ref: "refs/heads/agent/a/b", Old: ZeroSHA, New: shaA, Pusher: agentLogin}, Refuse, true, "may push only"},
		{"human force-pushes main", RefUpdate{Ref: "refs/heads/main", Old: shaA, New: shaB, FastForward: false, Pusher: human}, Refuse, true, "force push refused"},
		{"human force-pushes develop", RefUpdate{Ref: "refs/heads/develop", Old: shaA, New: shaB, Pusher: human}, Refuse, true, "STOP_UNAUTHORIZED_ACCESS"},
		{"human deletes staging", RefUpdate{Ref: "refs/heads/staging", Old: shaA, New: ZeroSHA, Pusher: human}, Refuse, true, "deleting a ladder branch"},
		{"human creates main", RefUpdate{Ref: "refs/heads/main", Old: ZeroSHA, New: shaA, Pusher: human}, Refuse, false, "cannot be created"},
		{"human fast-forwards staging", RefUpdate{Ref: "refs/heads/staging", Old: shaA, New: shaB, FastForward: true, Pusher: human}, Promote, false, "develop -> staging"},
		{"human fast-forwards main", RefUpdate{Ref: "refs/heads/main", Old: shaA, New: shaB, FastForward: true, Pusher: human}, Promote, false, "human_approval"},
		{"human pushes feature", RefUpdate{Ref: "refs/heads/feature", Old: ZeroSHA, New: shaA, Pusher: human}, Accept, false, "not a ladder branch"},
		{"human pushes tag", RefUpdate{Ref: "refs/tags/v1", Old: ZeroSHA, New: shaA, Pusher: human}, Accept, false, ""},
		{"unidentified pusher on agent branch", RefUpdate{Ref: "refs/heads/agent/y", Old: ZeroSHA, New: shaA}, RunChecks, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := l.EvaluatePush(tt.u, agents)
			if d.Action != tt.action {
				t.Fatalf("action = %s (%s), want %s", d.Action, d.Reason, tt.action)
			}
			if d.SecurityEvent() != tt.security {
				t.Fatalf("security event = %v, want %v (%s)", d.SecurityEvent(), tt.security, d.Reason)
			}
			if tt.security && d.Stop != policies.StopUnauthorizedAccess {
				t.Fatalf("stop = %q", d.Stop)
			}
			if !strings.Contains(d.Reason, tt.reason) {
				t.Fatalf("reason %q does not contain %q", d.Reason, tt.reason)
			}
		})
	}
}

func TestPolicyMayExtendTheLadderUpward(t *testing.T) {
	rungs := append(Seed(), policies.Rung{Source: "main", Target: "production", Requires: []string{policies.RequireHumanApproval}})
	l, err := New(rungs)
	if err != nil {
		t.Fatal(err)
	}
	if l.Top() != "production" || !l.Protected("production") {
		t.Fatalf("top %q, production protected %v", l.Top(), l.Protected("production"))
	}
	if r, err := l.Resolve("main", "production"); err != nil || r.Name != "production" {
		t.Fatalf("Resolve(main, production) = %+v, %v", r, err)
	}
	if _, err := l.Resolve("staging", "production"); err == nil || !strings.Contains(err.Error(), "next rung: main") {
		t.Fatalf("staging -> production: %v", err)
	}
	d := l.EvaluatePush(RefUpdate{Ref: "refs/heads/production", Old: shaA, New: shaB, FastForward: false}, nil)
	if d.Action != Refuse || !d.SecurityEvent() {
		t.Fatalf("force push to an extension target: %+v", d)
	}
}

func TestEvaluateRungFailsClosedOnMissingFacts(t *testing.T) {
	l := MustSeed()
	r, _ := l.Resolve("agent/x", "develop")
	facts := Facts{}
	facts.Set(Outcome{Requirement: policies.RequireChecks, Satisfied: true, Detail: "5 checks passed"})
	facts.Set(Outcome{Requirement: policies.RequireTrailers, Satisfied: true, Detail: "ok"})
	d := EvaluateRung(r, "agent/x", "develop", shaA, facts)
	if d.Passed {
		t.Fatal("rung passed with plan_valid never evaluated")
	}
	if f := d.Failed(); len(f) != 1 || f[0].Requirement != policies.RequirePlanValid || !strings.Contains(f[0].Detail, "fails closed") {
		t.Fatalf("failed = %+v", f)
	}
	if !strings.Contains(d.Summary(), "plan_valid not satisfied") {
		t.Fatalf("summary %q", d.Summary())
	}
	facts.Set(Outcome{Requirement: policies.RequirePlanValid, Satisfied: true, Detail: "valid"})
	d = EvaluateRung(r, "agent/x", "develop", shaA, facts)
	if !d.Passed || !strings.Contains(d.Explain(), "[ok] plan_valid: valid") {
		t.Fatalf("decision %s", d.Explain())
	}
}

func TestTrailers(t *testing.T) {
	ok := "Add refund endpoint\n\nLonger body.\n\nPlan-Id: pay-7\nIteration: 2\n"
	tests := []struct {
		name    string
		msgs    []string
		planID  string
		pass    bool
		problem string
	}{
		{"valid", []string{ok}, "pay-7", true, ""},
		{"valid, key case differs", []string{"x\n\nplan-id: pay-7\niteration: 1"}, "pay-7", true, ""},
		{"valid with Signed-off-by", []string{"x\n\nPlan-Id: pay-7\nIteration: 3\nSigned-off-by: A <a@b>"}, "", true, ""},
		{"missing both", []string{"Add refund endpoint"}, "pay-7", false, "missing Plan-Id: trailer"},
		{"missing iteration", []string{"x\n\nPlan-Id: pay-7"}, "pay-7", false, "missing Iteration: trailer"},
		{"trailers not in last paragraph", []string{"x\n\nPlan-Id: pay-7\nIteration: 1\n\nmore prose"}, "pay-7", false, "missing Plan-Id"},
		{"wrong plan id", []string{"x\n\nPlan-Id: other\nIteration: 1"}, "pay-7", false, `does not match the plan's plan_id "pay-7"`},
		{"iteration zero", []string{"x\n\nPlan-Id: pay-7\nIteration: 0"}, "pay-7", false, "not a positive integer"},
		{"iteration words", []string{"x\n\nPlan-Id: pay-7\nIteration: two"}, "pay-7", false, "not a positive integer"},
		{"duplicate plan id", []string{"x\n\nPlan-Id: pay-7\nPlan-Id: pay-8\nIteration: 1"}, "", false, "exactly one"},
		{"one of two commits bad", []string{ok, "fixup"}, "pay-7", false, "1 of 2 commits"},
		{"no commits", nil, "pay-7", false, "no commits"},
		{"prose with colon is not a trailer block", []string{"x\n\nNote: this\nis prose"}, "", false, "missing Plan-Id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cs []Commit
			for i, m := range tt.msgs {
				cs = append(cs, Commit{SHA: strings.Repeat(string(rune('a'+i)), 40), Message: m})
			}
			o := CheckTrailers(cs, tt.planID)
			if o.Satisfied != tt.pass {
				t.Fatalf("satisfied = %v (%s), want %v", o.Satisfied, o.Detail, tt.pass)
			}
			if !strings.Contains(o.Detail, tt.problem) {
				t.Fatalf("detail %q does not contain %q", o.Detail, tt.problem)
			}
		})
	}
}

func TestAutoApprove(t *testing.T) {
	good := AutoApprovalInput{PlanRisk: policies.RiskLow, TestsPassed: true, ChecksEvaluated: true}
	on := policies.AutoApprove{Enabled: true}
	tests := []struct {
		name string
		p    policies.AutoApprove
		in   func(AutoApprovalInput) AutoApprovalInput
		ok   bool
		want string
	}{
		{"low risk, clean", on, func(i AutoApprovalInput) AutoApprovalInput { return i }, true, "automatically approved"},
		{"disabled", policies.AutoApprove{}, func(i AutoApprovalInput) AutoApprovalInput { return i }, false, "not enabled"},
		{"medium risk", on, func(i AutoApprovalInput) AutoApprovalInput { i.PlanRisk = policies.RiskMedium; return i }, false, "above low"},
		{"medium allowed by policy", policies.AutoApprove{Enabled: true, MaxRisk: policies.RiskMedium}, func(i AutoApprovalInput) AutoApprovalInput { i.PlanRisk = policies.RiskMedium; return i }, true, ""},
		{"high finding", on, func(i AutoApprovalInput) AutoApprovalInput { i.CriticalOrHigh = 1; return i }, false, "1 critical or high"},
		{"tests failed", on, func(i AutoApprovalInput) AutoApprovalInput { i.TestsPassed = false; return i }, false, "no passing full test run"},
		{"checks not run", on, func(i AutoApprovalInput) AutoApprovalInput { i.ChecksEvaluated = false; return i }, false, "not evaluated"},
		{"policy artifact", on, func(i AutoApprovalInput) AutoApprovalInput { i.PolicyArtifacts = true; return i }, false, "policy artifact"},
		{"unknown risk", on, func(i AutoApprovalInput) AutoApprovalInput { i.PlanRisk = "tiny"; return i }, false, "not a risk level"},
		{"bad max risk", policies.AutoApprove{Enabled: true, MaxRisk: "any"}, func(i AutoApprovalInput) AutoApprovalInput { return i }, false, "fail closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, ok := AutoApprove(tt.p, tt.in(good))
			if ok != tt.ok || o.Satisfied != tt.ok {
				t.Fatalf("ok = %v (%s), want %v", ok, o.Detail, tt.ok)
			}
			if !strings.Contains(o.Detail, tt.want) {
				t.Fatalf("detail %q does not contain %q", o.Detail, tt.want)
			}
		})
	}
}

func TestGateEvidenceAndBudget(t *testing.T) {
	o := CheckGateEvidence([]string{shaA, shaB}, map[string]bool{shaA: true})
	if o.Satisfied || !strings.Contains(o.Detail, "1 of 2 agent commits") || !strings.Contains(o.Detail, shaB[:12]) {
		t.Fatalf("evidence: %+v", o)
	}
	if o := CheckGateEvidence([]string{shaA}, map[string]bool{shaA: true}); !o.Satisfied {
		t.Fatalf("evidence: %+v", o)
	}
	if o := CheckBudget([]RunBudget{{PlanID: "p", RunID: "r1", SpentUSD: 3, LimitUSD: 2}}, nil); o.Satisfied {
		t.Fatal("over-budget run passed")
	}
	if o := CheckBudget([]RunBudget{{PlanID: "p", RunID: "r1", Stopped: policies.StopBudgetExceeded}}, nil); o.Satisfied {
		t.Fatal("budget-stopped run passed")
	}
	if o := CheckBudget(nil, []string{"p"}); o.Satisfied || !strings.Contains(o.Detail, "fails closed") {
		t.Fatalf("unknown ledger: %+v", o)
	}
	if o := CheckBudget([]RunBudget{{PlanID: "p", RunID: "r1", SpentUSD: 1, LimitUSD: 2}}, nil); !o.Satisfied {
		t.Fatalf("within budget: %+v", o)
	}
}

func FuzzTrailers(f *testing.F) {
	f.Add("x\n\nPlan-Id: a\nIteration: 1")
	f.Add("\n\n:\n \n")
	f.Add("x\r\n\r\nPlan-Id: a\r\n")
	f.Fuzz(func(t *testing.T, msg string) {
		o := CheckTrailers([]Commit{{SHA: "abc", Message: msg}}, "")
		if o.Satisfied {
			tr := Trailers(msg)
			if len(TrailerValues(tr, TrailerPlanID)) != 1 || len(TrailerValues(tr, TrailerIteration)) != 1 {
				t.Fatalf("satisfied without exactly one of each trailer: %q", msg)
			}
		}
	})
}

func BenchmarkEvaluatePush(b *testing.B) {
	l := MustSeed()
	agents := []policies.AgentIdentity{{Login: "agent-bot"}, {Email: "a@b"}}
	u := RefUpdate{Ref: "refs/heads/main", Old: shaA, New: shaB, FastForward: true, Pusher: Pusher{Login: "alice"}}
	for b.Loop() {
		if d := l.EvaluatePush(u, agents); d.Action != Promote {
			b.Fatal(d.Reason)
		}
	}
}

func BenchmarkCheckTrailers(b *testing.B) {
	var cs []Commit
	for i := range 100 {
		cs = append(cs, Commit{SHA: strings.Repeat("a", 40), Message: "subject\n\nbody line\n\nPlan-Id: p-1\nIteration: " + string(rune('1'+i%9))})
	}
	for b.Loop() {
		if o := CheckTrailers(cs, "p-1"); !o.Satisfied {
			b.Fatal(o.Detail)
		}
	}
}
