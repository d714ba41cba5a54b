package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/checks/engine"
	"github.com/agentgate/agentgate/internal/gitcli/gittest"
)

const example = "../../examples/payments-repo"

const paymentsPlan = "services/payments/WORK_PLAN.json"

func payments(t *testing.T) (*gittest.Repo, string) {
	r, base := gittest.FromDir(t, example)
	r.Branch("agent/pay-idempotency")
	return r, base
}

func prepare(t *testing.T, r *gittest.Repo, plan string) (*engine.InputError, error) {
	t.Helper()
	_, _, err := engine.Prepare(context.Background(), engine.Input{Repo: r.Dir, Base: "main", Head: "HEAD", PlanPath: plan})
	var ie *engine.InputError
	errors.As(err, &ie)
	return ie, err
}

func TestPrepareResolvesTheRangeAndThePlan(t *testing.T) {
	r, base := payments(t)
	r.Append("services/payments/payments.go", "// change\n")
	head := r.Commit("change")
	s, meta, err := engine.Prepare(context.Background(), engine.Input{Repo: r.Dir, Base: "main", Head: "agent/pay-idempotency"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Base != base || s.Head != head || s.MergeBase != base {
		t.Fatalf("subject %+v", s)
	}
	// Discovered through git.branch and the single owning thread.
	if s.PlanPath != paymentsPlan || s.Plan == nil || s.Plan.PlanID != "pay-2026-11-idempotency" || meta.PlanID != s.Plan.PlanID {
		t.Fatalf("plan %q %+v", s.PlanPath, s.Plan)
	}
	if s.Tree == nil || len(s.Tree.Threads) != 3 {
		t.Fatalf("base tree %+v", s.Tree)
	}
}

func TestPrepareDiscoversTheChangedPlan(t *testing.T) {
	r, _ := gittest.FromDir(t, example)
	r.Branch("agent/other-name")
	r.Write("services/ledger/WORK_PLAN.json", strings.Replace(r.Read("services/ledger/WORK_PLAN.json"), `"expected_changes": "`, `"expected_changes": "Also: `, 1))
	r.Append("services/payments/payments.go", "// change\n")
	r.Commit("change")
	s, _, err := engine.Prepare(context.Background(), engine.Input{Repo: r.Dir, Base: "main", Head: "HEAD"})
	if err != nil {
		t.Fatal(err)
	}
	if s.PlanPath != "services/ledger/WORK_PLAN.json" {
		t.Fatalf("plan %q; want the plan the change modifies", s.PlanPath)
	}
}

func TestPrepareWithoutAnApplicablePlan(t *testing.T) {
	r, _ := gittest.FromDir(t, example)
	r.Branch("agent/unknown")
	r.Append("services/payments/payments.go", "// change\n")
	r.Append("services/ledger/ledger.go", "// change\n")
	r.Commit("two threads")
	s, _, err := engine.Prepare(context.Background(), engine.Input{Repo: r.Dir, Base: "main", Head: "HEAD"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Plan != nil {
		t.Fatalf("no plan applies, got %s", s.PlanPath)
	}
}

func TestPrepareRejectsInvalidInput(t *testing.T) {
	tests := []struct {
		name  string
		setup func(r *gittest.Repo)
		base  string
		plan  string
		want  string
	}{
		{"bad base ref", nil, "no-such-branch", "", "not a commit"},
		{"option-like ref", nil, "--output=/tmp/x", "", "not a commit"},
		{"plan missing on head", nil, "main", "services/nothing/WORK_PLAN.json", "does not exist on head"},
		{"plan path not a plan", nil, "main", "services/payments/payments.go", "WORK_PLAN.json"},
		{"plan above the thread's ceilings", func(r *gittest.Repo) {
			r.Write(paymentsPlan, strings.Replace(r.Read(paymentsPlan), `"max_files_changed": 4`, `"max_files_changed": 60`, 1))
		}, "main", "", "ceiling"},
		{"plan with an unknown FR", func(r *gittest.Repo) {
			r.Write(paymentsPlan, strings.Replace(r.Read(paymentsPlan), `"FR-PAY-002"`, `"FR-PAY-999"`, 1))
		}, "main", "", "FR-PAY-999"},
		{"malformed plan", func(r *gittest.Repo) { r.Write(paymentsPlan, "{") }, "main", "", "invalid"},
		{"plan in a directory that is no thread on base", func(r *gittest.Repo) {
			r.Write("services/new/WORK_PLAN.json", strings.Replace(r.Read(paymentsPlan), `"services/payments"`, `"services/new"`, 1))
		}, "main", "services/new/WORK_PLAN.json", "plan"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := payments(t)
			if tt.setup != nil {
				tt.setup(r)
			}
			r.Append("services/payments/payments.go", "// change\n")
			r.Commit("change")
			_, _, err := engine.Prepare(context.Background(), engine.Input{Repo: r.Dir, Base: tt.base, Head: "HEAD", PlanPath: tt.plan})
			var ie *engine.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("want an InputError, got %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestPrepareRejectsAnInvalidBasePolicy(t *testing.T) {
	r, _ := gittest.FromDir(t, example)
	r.Write(".agentgate/policy.yaml", "apiVersion: agentgate.dev/v1\nkind: Policy\nbogus: 1\n")
	r.Commit("break the policy on main")
	r.Branch("agent/pay-idempotency")
	r.Append("services/payments/payments.go", "// change\n")
	r.Commit("change")
	ie, err := prepare(t, r, "")
	if ie == nil || !strings.Contains(err.Error(), "policy on base") {
		t.Fatalf("want an invalid-base-policy InputError, got %v", err)
	}
}

func TestPrepareRejectsUnrelatedHistories(t *testing.T) {
	r, _ := payments(t)
	r.Git("checkout", "-q", "--orphan", "lonely")
	r.Write("x", "x")
	r.Commit("orphan")
	ie, err := prepare(t, r, "")
	if ie == nil {
		t.Fatalf("want an InputError, got %v", err)
	}
}

// The policy comes from base: an agent's edit to the policy on head
// changes nothing in what the checks see.
func TestPolicyIsReadFromBaseNotHead(t *testing.T) {
	r, _ := payments(t)
	r.Write(".agentgate/policy.yaml", strings.Replace(r.Read(".agentgate/policy.yaml"), "  - internal/money/**\n", "", 1)+"\n")
	r.Write(".agentgate/policy.yaml", strings.Replace(r.Read(".agentgate/policy.yaml"), "max_file_bytes: 262144", "max_file_bytes: 999999999\n  allow_binaries: true", 1))
	r.Commit("loosen the policy")
	s, _, err := engine.Prepare(context.Background(), engine.Input{Repo: r.Dir, Base: "main", Head: "HEAD", PlanPath: paymentsPlan})
	if err != nil {
		t.Fatal(err)
	}
	p := s.Tree.Policy
	if p.Anomaly.MaxFileBytes != 262144 || p.Anomaly.AllowBinaries || len(p.SecurityCritical) != 2 {
		t.Fatalf("the head's policy leaked into the evaluation: %+v", p)
	}
}
