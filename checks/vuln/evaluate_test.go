package vuln

import (
	"testing"
	"time"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/policies"
)

func TestEvaluate(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	called := Vuln{ID: "GO-1", Module: "example.com/dep", Level: LevelCalled, Package: "example.com/dep/p", Symbol: "F"}
	imported := Vuln{ID: "GO-2", Module: "example.com/dep", Level: LevelImported, Package: "example.com/dep/p"}
	required := Vuln{ID: "GO-3", Module: "example.com/dep", Level: LevelRequired}
	stdCalled := Vuln{ID: "GO-4", Module: "stdlib", Level: LevelCalled, Package: "net/http", Symbol: "Serve"}
	calledAsImported := called
	calledAsImported.Level = LevelImported

	cases := []struct {
		name       string
		head, base []Vuln
		policy     Policy
		wantFail   bool
		wantRules  []string
		wantNew    int
	}{
		{"new called fails", []Vuln{called}, nil, Policy{FailOn: LevelCalled}, true, []string{"vuln.called"}, 1},
		{"new imported is reported but passes", []Vuln{imported}, nil, Policy{FailOn: LevelCalled}, false, []string{"vuln.imported"}, 1},
		{"new required is quiet", []Vuln{required}, nil, Policy{FailOn: LevelCalled}, false, nil, 1},
		{"fail_on imported", []Vuln{imported}, nil, Policy{FailOn: LevelImported}, true, []string{"vuln.imported"}, 1},
		{"fail_on required", []Vuln{required}, nil, Policy{FailOn: LevelRequired}, true, []string{"vuln.required"}, 1},
		{"same on base is preexisting", []Vuln{called}, []Vuln{called}, Policy{FailOn: LevelCalled}, false, nil, 0},
		{"promoted from imported to called is new", []Vuln{called}, []Vuln{calledAsImported}, Policy{FailOn: LevelCalled}, true, []string{"vuln.called"}, 1},
		{"stdlib warns by default", []Vuln{stdCalled}, nil, Policy{FailOn: LevelCalled}, false, []string{"vuln.stdlib"}, 1},
		{"stdlib policy fail", []Vuln{stdCalled}, nil, Policy{FailOn: LevelCalled, StdlibFail: true}, true, []string{"vuln.stdlib"}, 1},
		{"allowed", []Vuln{called}, nil, Policy{FailOn: LevelCalled, Allow: []policies.VulnAllow{{ID: "GO-1", Expires: "2026-11-26"}}}, false, nil, 1},
		{"allow expired", []Vuln{called}, nil, Policy{FailOn: LevelCalled, Allow: []policies.VulnAllow{{ID: "GO-1", Expires: "2026-11-25"}}}, true, []string{"vuln.called"}, 1},
		{"allow with bad date does not allow", []Vuln{called}, nil, Policy{FailOn: LevelCalled, Allow: []policies.VulnAllow{{ID: "GO-1", Expires: "soon"}}}, true, []string{"vuln.called"}, 1},
		{"duplicate head entries collapse to highest", []Vuln{imported, {ID: "GO-2", Module: "example.com/dep", Level: LevelCalled}}, nil, Policy{FailOn: LevelCalled}, true, []string{"vuln.called"}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := Evaluate(c.head, c.base, c.policy, now)
			if ev.Failed != c.wantFail {
				t.Errorf("failed = %v, want %v (%+v)", ev.Failed, c.wantFail, ev.Findings)
			}
			var rules []string
			for _, f := range ev.Findings {
				rules = append(rules, f.Rule)
				if f.Message == "" || f.Fingerprint == "" || f.Severity == "" {
					t.Errorf("incomplete finding %+v", f)
				}
				if !ev.Failed && f.Severity != checks.SeverityLow {
					t.Errorf("a non-failing finding must be low severity: %+v", f)
				}
			}
			if len(rules) != len(c.wantRules) {
				t.Fatalf("rules %v want %v", rules, c.wantRules)
			}
			for i := range rules {
				if rules[i] != c.wantRules[i] {
					t.Fatalf("rules %v want %v", rules, c.wantRules)
				}
			}
			if len(ev.New) != c.wantNew {
				t.Errorf("new = %d want %d", len(ev.New), c.wantNew)
			}
		})
	}
}

func TestParsePolicy(t *testing.T) {
	if p, err := ParsePolicy(policies.VulnPolicy{}); err != nil || p.FailOn != LevelCalled || p.StdlibFail {
		t.Fatalf("defaults: %+v %v", p, err)
	}
	for _, bad := range []policies.VulnPolicy{{FailOn: "everything"}, {Stdlib: "ignore"}} {
		if _, err := ParsePolicy(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
