package budget

import (
	"strings"
	"testing"

	"github.com/agentgate/agentgate/policies"
)

func TestEvaluateThresholdsOnProjectedSpend(t *testing.T) {
	const limit = 50_000_000 // $0.05
	r := DefaultRatios
	cases := []struct {
		name     string
		s        State
		amount   int64
		want     Decision
		contains string
	}{
		{"well under the warning ratio", State{Limit: limit, Spent: 10_000_000, Ratios: r}, 1_000_000, Allow, "22.0%"},
		{"reservations of calls in flight count", State{Limit: limit, Spent: 20_000_000, Reserved: 14_000_000, Ratios: r}, 1_000_000, Warn, "70.0%"},
		{"just below the escalation ratio warns", State{Limit: limit, Spent: 44_000_000, Ratios: r}, 999_999, Warn, "warning at 70%"},
		{"reaching the escalation ratio needs approval", State{Limit: limit, Spent: 44_000_000, Ratios: r}, 1_000_000, ApprovalRequired, "budget approve"},
		{"approved plans pass the escalation ratio with a warning", State{Limit: limit, Spent: 44_000_000, Ratios: r, Approved: true}, 1_000_000, Warn, ""},
		{"exactly the limit is allowed", State{Limit: limit, Spent: 49_000_000, Ratios: r, Approved: true}, 1_000_000, Warn, ""},
		{"one nano-dollar over the limit stops", State{Limit: limit, Spent: 49_000_000, Ratios: r, Approved: true}, 1_000_001, HardStop, "stop at 100%"},
		{"a latched stop refuses even free calls", State{Limit: limit, Ratios: r, Stopped: true}, 0, HardStop, string(policies.StopBudgetExceeded)},
		{"no budget refuses", State{Limit: 0, Ratios: r}, 1, HardStop, "no budget"},
		{"negative amounts refuse", State{Limit: limit, Ratios: r}, -5, HardStop, "invalid amount"},
		{"caps without an approval band stop at the limit", State{Limit: limit, Spent: 46_000_000, Ratios: CapRatios}, 1_000_000, Warn, ""},
		{"a lower stop ratio stops earlier", State{Limit: limit, Spent: 39_000_000, Ratios: Ratios{Warn: 0.5, Escalate: 0.7, Stop: 0.8}, Approved: true}, 2_000_000, HardStop, "stop at 80%"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Evaluate(ScopePlan, "p1", c.s, c.amount)
			if v.Decision != c.want {
				t.Fatalf("decision = %s, want %s (%s)", v.Decision, c.want, v.Reason)
			}
			if !strings.Contains(v.Reason, c.contains) {
				t.Errorf("reason %q does not mention %q", v.Reason, c.contains)
			}
		})
	}
}

func TestCeilingRefusesOnlyTheOversizedCall(t *testing.T) {
	if v := Ceiling(1000, 1001); v.Decision != HardStop || !strings.Contains(v.Reason, "per-request ceiling") {
		t.Fatalf("over the ceiling: %+v", v)
	}
	if v := Ceiling(1000, 1000); v.Decision != Allow {
		t.Fatalf("at the ceiling: %+v", v)
	}
	if v := Ceiling(0, 1<<60); v.Decision != Allow {
		t.Fatalf("no ceiling: %+v", v)
	}
}

func TestWorstPicksTheMostSevereVerdict(t *testing.T) {
	w := Worst(Verdict{Decision: Warn, Scope: "plan"}, Verdict{Decision: HardStop, Scope: "org"}, Verdict{Decision: ApprovalRequired})
	if w.Scope != "org" {
		t.Fatalf("worst = %+v", w)
	}
	if Worst().Decision != HardStop {
		t.Fatal("no verdicts must refuse")
	}
}

func TestRatiosValidate(t *testing.T) {
	for _, r := range []Ratios{{0, 0.9, 1}, {0.7, 0.9, 1.1}, {0.9, 0.8, 1}, {0.7, 0.9, 0.8}, {0.95, 0, 0.9}} {
		if err := r.Validate(); err == nil {
			t.Errorf("%+v accepted", r)
		}
	}
	for _, r := range []Ratios{DefaultRatios, CapRatios, {0.5, 0.5, 0.5}} {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v refused: %v", r, err)
		}
	}
	got := RatiosFor(policies.PlanBudget{LimitUSD: 1, WarnRatio: 0.5})
	if got != (Ratios{0.5, 0.9, 1}) {
		t.Errorf("RatiosFor = %+v", got)
	}
}

func TestUSDNanoConversion(t *testing.T) {
	if USDToNano(50) != 50_000_000_000 || USDToNano(0.000000001) != 1 {
		t.Fatal("USDToNano")
	}
	if FormatUSD(12_345_678) != "$0.012345" || FormatUSD(-1_500_000_000) != "-$1.500000" {
		t.Fatalf("FormatUSD: %s %s", FormatUSD(12_345_678), FormatUSD(-1_500_000_000))
	}
}
