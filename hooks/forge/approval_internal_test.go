package forge

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/gate/approval"
	"github.com/agentgate/agentgate/gate/approval/sqlstore"
	"github.com/agentgate/agentgate/gate/ladder"
	"github.com/agentgate/agentgate/internal/pgtest"
	"github.com/agentgate/agentgate/internal/store"
	"github.com/agentgate/agentgate/policies"
)

func TestMainRungApprovalAndAutoApproval(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "f.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	aps, err := sqlstore.Open(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	evals, err := OpenEvaluations(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	f := &Forge{Repo: "/srv/r.git", Approvals: aps, Evals: evals}
	rung, _ := ladder.MustSeed().Into("main")
	old, head, other := strings.Repeat("a", 40), strings.Repeat("b", 40), strings.Repeat("c", 40)
	u := Update{Old: old, New: head, Ref: "refs/heads/main"}
	on := &policies.Policy{AutoApprove: policies.AutoApprove{Enabled: true, MaxRisk: policies.RiskLow}}
	off := &policies.Policy{}
	low := []Evaluation{{Risk: "low", TestsPassed: true, Commits: []string{head}}}

	tests := []struct {
		name   string
		pol    *policies.Policy
		evs    []Evaluation
		shas   []string
		ok     bool
		auto   bool
		detail string
	}{
		{"low risk, tests passed, no findings: auto-approved", on, low, []string{head}, true, true, "automatically approved"},
		{"auto-approval disabled", off, low, []string{head}, false, false, "not enabled"},
		{"medium risk", on, []Evaluation{{Risk: "medium", TestsPassed: true, Commits: []string{head}}}, []string{head}, false, false, "plan risk medium is above low"},
		{"a high finding", on, []Evaluation{{Risk: "low", TestsPassed: true, CriticalOrHigh: 1, Commits: []string{head}}}, []string{head}, false, false, "1 critical or high"},
		{"no passing test run", on, []Evaluation{{Risk: "low", Commits: []string{head}}}, []string{head}, false, false, "no passing full test run"},
		{"a commit no evaluation covers", on, low, []string{head, other}, false, false, "checks were not evaluated"},
		{"unknown risk is the most restrictive", on, []Evaluation{{Risk: "", TestsPassed: true, Commits: []string{head}}}, []string{head}, false, false, "is not a risk level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, counted, auto, err := f.humanApproval(ctx, tt.pol, rung, "staging", u, tt.shas, tt.evs)
			if err != nil {
				t.Fatal(err)
			}
			if o.Satisfied != tt.ok || (auto != nil) != tt.auto || !strings.Contains(o.Detail, tt.detail) {
				t.Fatalf("outcome %+v auto %v", o, auto)
			}
			if tt.auto && (len(counted) != 1 || !counted[0].Auto || counted[0].HeadSHA != head || counted[0].Target != "main") {
				t.Fatalf("auto approval not bound to the promotion: %+v", counted)
			}
		})
	}

	// A recorded human approval of this head counts even without auto-approval;
	// one of another head does not.
	if err := aps.SaveApproval(ctx, approval.Approval{Repo: f.Repo, Target: "main", Source: "staging", HeadSHA: other, Approver: approval.User{Login: "bob-sre"}}); err != nil {
		t.Fatal(err)
	}
	o, _, _, err := f.humanApproval(ctx, off, rung, "staging", u, []string{head}, nil)
	if err != nil || o.Satisfied || !strings.Contains(o.Detail, "voided_by_new_push") {
		t.Fatalf("stale approval: %+v %v", o, err)
	}
	if err := aps.SaveApproval(ctx, approval.Approval{Repo: f.Repo, Target: "main", Source: "staging", HeadSHA: head, Approver: approval.User{Login: "bob-sre"}}); err != nil {
		t.Fatal(err)
	}
	o, counted, auto, err := f.humanApproval(ctx, off, rung, "staging", u, []string{head}, nil)
	if err != nil || !o.Satisfied || auto != nil || len(counted) != 1 || counted[0].Approver.Login != "bob-sre" {
		t.Fatalf("human approval: %+v %+v %v", o, counted, err)
	}
}

func TestEvaluationsOnBothBackends(t *testing.T) {
	for _, b := range []string{"sqlite", "postgres"} {
		t.Run(b, func(t *testing.T) {
			ctx := context.Background()
			dsn := filepath.Join(t.TempDir(), "e.db")
			if b == "postgres" {
				dsn = pgtest.DSN(t)
			}
			st, err := store.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ev, err := OpenEvaluations(ctx, st)
			if err != nil {
				t.Fatal(err)
			}
			a, b2 := strings.Repeat("a", 40), strings.Repeat("b", 40)
			for _, e := range []Evaluation{
				{Repo: "r", Target: "develop", Source: "agent/x", Head: b2, Base: a, PlanID: "p", Risk: "low", Passed: true, TestsPassed: true, Commits: []string{b2}, Attestation: "/att"},
				{Repo: "r", Target: "develop", Source: "agent/y", Head: a, Base: a, Passed: false},
				{Repo: "other", Target: "develop", Head: a, Base: a, Passed: true},
			} {
				if err := ev.Save(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ev.Passing(ctx, "r", "develop")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Head != b2 || !got[0].TestsPassed || got[0].Commits[0] != b2 || got[0].Attestation != "/att" || got[0].Risk != "low" {
				t.Fatalf("passing = %+v", got)
			}
		})
	}
}
