package tests

import (
	"testing"

	"github.com/agentgate/agentgate/policies"
)

func TestCoverageRegressionNeedsADeclaredTolerance(t *testing.T) {
	base := record{Run: &Run{Packages: map[string]*PackageResult{}}, Profile: &Profile{Mode: "set", Files: map[string]Counts{"m/a/a.go": {10, 10}}}}
	head := record{Run: &Run{Packages: map[string]*PackageResult{"m/a": {Outcome: OutcomePass}}}, Profile: &Profile{Mode: "set", Files: map[string]Counts{"m/a/a.go": {5, 10}}}}
	for _, tc := range []struct {
		name     string
		plan     plan
		wantStop bool
	}{
		{"no plan: reported only", plan{}, false},
		{"plan, tolerance 0", plan{hasPlan: true}, true},
		{"plan, tolerance 60", plan{hasPlan: true, tests: policies.PlanTests{CoverageRegressionTolerance: 60}}, false},
	} {
		out := evaluate(evalInput{plan: tc.plan, head: head, base: base, selection: "command"})
		stopped := false
		for _, f := range out.findings {
			if f.Stop == policies.StopCoverageRegression {
				stopped = true
			}
		}
		if stopped != tc.wantStop {
			t.Errorf("%s: stop = %v, want %v (%v)", tc.name, stopped, tc.wantStop, out.findings)
		}
		if out.details["coverage_total_head"] != 50.0 || out.details["coverage_total_base"] != 100.0 {
			t.Errorf("%s: details %v", tc.name, out.details)
		}
	}
}
