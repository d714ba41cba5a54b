package report_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/report"
	"github.com/agentgate/agentgate/policies"
)

var (
	sha1 = strings.Repeat("a", 40)
	sha2 = strings.Repeat("b", 40)
	sha3 = strings.Repeat("c", 40)
)

func sample(results ...checks.Result) *report.Report {
	r := &report.Report{
		Version: report.Version, Repo: "/tmp/repo", Base: sha1, Head: sha2, MergeBase: sha3,
		BaseRef: "main", HeadRef: "agent/x", PlanID: "plan-1", PlanPath: "svc/WORK_PLAN.json",
		StartedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Duration: checks.Duration(1500 * time.Millisecond),
		Tool: report.Tool{Name: "agentgate", Version: "test"}, Checks: results,
	}
	r.Decide()
	return r
}

func pass(name string) checks.Result {
	return checks.Result{Name: name, Status: checks.StatusPass, Findings: []checks.Finding{}}
}

func finding(rule string, sev checks.Severity, stop policies.StopReason, approval bool) checks.Finding {
	return checks.Finding{Rule: rule, Severity: sev, Path: "svc/a b.go", Line: 3, Message: "m " + rule, Fingerprint: "fp-" + rule, Stop: stop, NeedsApproval: approval}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name     string
		results  []checks.Result
		decision report.Decision
		stop     policies.StopReason
		exit     int
		approval bool
	}{
		{"all pass", []checks.Result{pass("scope"), pass("secrets")}, report.Pass, "", 0, false},
		{"skipped counts as pass", []checks.Result{pass("scope"), {Name: "vuln", Status: checks.StatusSkipped, Reason: "no go.mod"}}, report.Pass, "", 0, false},
		{"a failure fails", []checks.Result{pass("scope"), {Name: "tests", Status: checks.StatusFail, Findings: []checks.Finding{finding("t", checks.SeverityHigh, "", false)}}}, report.Fail, "", 1, false},
		{"an error fails closed", []checks.Result{pass("scope"), {Name: "vuln", Status: checks.StatusError, Reason: "db missing"}}, report.Fail, "", 1, false},
		{"an unknown status fails closed", []checks.Result{{Name: "x", Status: "great"}}, report.Fail, "", 1, false},
		{"no checks fails closed", nil, report.Fail, "", 1, false},
		{"approvable only", []checks.Result{{Name: "scope", Status: checks.StatusFail, Findings: []checks.Finding{finding("policy", checks.SeverityHigh, "", true)}}}, report.Fail, "", 1, true},
		{"approvable plus a hard failure", []checks.Result{{Name: "scope", Status: checks.StatusFail, Findings: []checks.Finding{finding("policy", checks.SeverityHigh, "", true), finding("out", checks.SeverityHigh, "", false)}}}, report.Fail, "", 1, false},
		{"a stop stops", []checks.Result{pass("scope"), {Name: "secrets", Status: checks.StatusFail, Findings: []checks.Finding{finding("aws", checks.SeverityCritical, policies.StopSecretExposure, false)}}}, report.Stop, policies.StopSecretExposure, 3, false},
		{"a stop under a pass status still stops", []checks.Result{{Name: "tests", Status: checks.StatusPass, Findings: []checks.Finding{finding("cov", checks.SeverityHigh, policies.StopCoverageRegression, false)}}}, report.Stop, policies.StopCoverageRegression, 3, false},
		{"the most severe stop leads", []checks.Result{
			{Name: "scope", Status: checks.StatusFail, Findings: []checks.Finding{finding("u", checks.SeverityCritical, policies.StopUnauthorizedAccess, false)}},
			{Name: "secrets", Status: checks.StatusFail, Findings: []checks.Finding{finding("s", checks.SeverityCritical, policies.StopSecretExposure, false)}},
		}, report.Stop, policies.StopSecretExposure, 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sample(tt.results...)
			if r.Decision != tt.decision || r.StopReason != tt.stop || r.ExitCode() != tt.exit || r.ApprovalRequired != tt.approval {
				t.Fatalf("got %s/%q exit %d approval %v; want %s/%q exit %d approval %v (reasons %v)",
					r.Decision, r.StopReason, r.ExitCode(), r.ApprovalRequired, tt.decision, tt.stop, tt.exit, tt.approval, r.Reasons)
			}
			if r.Decision != report.Pass && len(r.Reasons) == 0 {
				t.Error("a non-pass decision must say why")
			}
		})
	}
}

func TestReportRoundTripsThroughSchemaAndLoad(t *testing.T) {
	r := sample(pass("scope"), checks.Result{Name: "secrets", Status: checks.StatusFail, Duration: checks.Duration(42 * time.Millisecond),
		Findings: []checks.Finding{finding("aws", checks.SeverityCritical, policies.StopSecretExposure, false)},
		Details:  map[string]any{"rules": 222}})
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := report.Validate(b); err != nil {
		t.Fatalf("a report we write does not match our schema: %v\n%s", err, b)
	}
	got, err := report.Load(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got.Decision != report.Stop || got.StopReason != policies.StopSecretExposure || got.Checks[1].Duration != checks.Duration(42*time.Millisecond) {
		t.Fatalf("round trip lost data: %+v", got)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"decision", "stop_reason", "repo", "base", "head", "merge_base", "plan_id", "checks"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report.json lacks %q", k)
		}
	}
}

func TestLoadRejectsBadReports(t *testing.T) {
	good, _ := sample(pass("scope")).Marshal()
	mutate := func(f func(map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	tests := map[string][]byte{
		"empty":            nil,
		"not json":         []byte("{"),
		"trailing data":    append(append([]byte{}, good...), []byte("{}")...),
		"unknown field":    mutate(func(m map[string]any) { m["extra"] = 1 }),
		"missing decision": mutate(func(m map[string]any) { delete(m, "decision") }),
		"bad decision":     mutate(func(m map[string]any) { m["decision"] = "maybe" }),
		"bad sha":          mutate(func(m map[string]any) { m["head"] = "HEAD" }),
		"bad stop reason":  mutate(func(m map[string]any) { m["stop_reason"] = "STOP_BECAUSE" }),
		"inconsistent":     mutate(func(m map[string]any) { m["decision"] = "fail" }),
		"forged pass": mutate(func(m map[string]any) {
			m["checks"] = []any{map[string]any{"name": "x", "status": "error", "duration_ms": 1, "findings": []any{}}}
		}),
		"negative duration": mutate(func(m map[string]any) { m["duration_ms"] = -1 }),
		"wrong version":     mutate(func(m map[string]any) { m["report_version"] = "v0" }),
		"bad finding severity": mutate(func(m map[string]any) {
			m["checks"] = []any{map[string]any{"name": "x", "status": "pass", "duration_ms": 1, "findings": []any{map[string]any{"rule": "r", "severity": "huge", "message": "", "fingerprint": ""}}}}
		}),
		"oversized": bytes.Repeat([]byte(" "), report.MaxReportSize+1),
	}
	for name, in := range tests {
		if _, err := report.Load(bytes.NewReader(in)); err == nil {
			t.Errorf("%s: Load accepted it", name)
		}
	}
}

// sarifSchema compiles the official SARIF 2.1.0 schema from testdata.
func sarifSchema(t testing.TB) *jsonschema.Schema {
	f, err := os.Open("testdata/sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	const id = "https://raw.githubusercontent.com/oasis-tcs/sarif-spec/master/Schemata/sarif-schema-2.1.0.json"
	if err := c.AddResource(id, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSARIFValidatesAgainstTheOfficialSchema(t *testing.T) {
	schema := sarifSchema(t)
	cases := map[string]*report.Report{
		"pass, no findings": sample(pass("scope"), pass("secrets")),
		"stop with findings and an errored check": sample(
			checks.Result{Name: "scope", Status: checks.StatusFail, Findings: []checks.Finding{
				finding("out-of-scope", checks.SeverityHigh, "", false),
				{Rule: "max-files-changed", Severity: checks.SeverityMedium, Message: "too many", Fingerprint: "f2"},
				{Rule: "low", Severity: checks.SeverityLow, Path: "weird/ä #?.txt", Message: "x", Fingerprint: "f3"},
			}},
			checks.Result{Name: "secrets", Status: checks.StatusFail, Findings: []checks.Finding{finding("aws-access-token", checks.SeverityCritical, policies.StopSecretExposure, false)}},
			checks.Result{Name: "vuln", Status: checks.StatusError, Reason: "timed out"},
		),
	}
	for name, r := range cases {
		var buf bytes.Buffer
		if err := r.WriteSARIF(&buf); err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("%s: not JSON: %v", name, err)
		}
		if err := schema.Validate(doc); err != nil {
			t.Errorf("%s: SARIF does not validate against SARIF 2.1.0: %v\n%s", name, err, buf.String())
		}
		log := r.SARIF()
		if log.Version != "2.1.0" || len(log.Runs) != 1 || len(log.Runs[0].Results) != len(r.Findings()) {
			t.Errorf("%s: want one run with every finding, got %+v", name, log)
		}
		for _, res := range log.Runs[0].Results {
			if log.Runs[0].Tool.Driver.Rules[res.RuleIndex].ID != res.RuleID {
				t.Errorf("%s: ruleIndex %d does not point at %s", name, res.RuleIndex, res.RuleID)
			}
		}
	}
	// The official schema really is strict: a broken log fails.
	bad, _ := jsonschema.UnmarshalJSON(strings.NewReader(`{"version":"2.1.0","runs":[{"tool":{"driver":{}}}]}`))
	if err := schema.Validate(bad); err == nil {
		t.Fatal("the SARIF schema accepted a driver without a name; is the schema loaded?")
	}
}

func TestTextNamesDecisionFindingsAndReasons(t *testing.T) {
	r := sample(checks.Result{Name: "scope", Status: checks.StatusFail, Findings: []checks.Finding{finding("out-of-scope", checks.SeverityHigh, "", false)}})
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FAIL (exit 1)", "out-of-scope", "svc/a b.go:3", "why:"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, b.String())
		}
	}
}

func FuzzLoad(f *testing.F) {
	good, _ := sample(pass("scope")).Marshal()
	f.Add(good)
	f.Add([]byte(`{"report_version":"agentgate.dev/report/v1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := report.Load(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Whatever loads must be consistent and re-marshal to a valid report.
		b, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := report.Validate(b); err != nil {
			t.Fatalf("a loaded report re-marshals invalid: %v", err)
		}
	})
}

func TestReasonNamesTheMostSevereFindingNotTheFirstByPath(t *testing.T) {
	low := finding("scope.filetype", checks.SeverityLow, "", true)
	low.Path = "a/first.txt"
	high := finding("scope.out-of-plan", checks.SeverityHigh, "", false)
	high.Path = "z/last.go"
	approvableHigh := finding("scope.policy-artifact", checks.SeverityHigh, "", true)
	approvableHigh.Path = "b/policy.yaml"
	r := sample(checks.Result{Name: "scope", Status: checks.StatusFail, Findings: []checks.Finding{low, approvableHigh, high}})
	if len(r.Reasons) != 1 || !strings.HasPrefix(r.Reasons[0], "scope failed: z/last.go: m scope.out-of-plan (and 2 more findings)") {
		t.Fatalf("reasons = %q", r.Reasons)
	}
	stop := finding("scope.owner", checks.SeverityMedium, policies.StopUnauthorizedAccess, false)
	stop.Path = "y/other.go"
	crit := finding("scope.critical", checks.SeverityCritical, "", false)
	r = sample(checks.Result{Name: "scope", Status: checks.StatusFail, Findings: []checks.Finding{crit, stop}})
	if !strings.Contains(r.Reasons[0], "y/other.go: m scope.owner") {
		t.Fatalf("a stop finding should lead the summary: %q", r.Reasons)
	}
}
