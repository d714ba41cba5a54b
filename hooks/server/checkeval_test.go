package server

import (
	"strings"
	"testing"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/report"
	"github.com/agentgate/agentgate/policies"
)

func TestReportResultConclusions(t *testing.T) {
	finding := checks.Finding{Rule: "aws-access-token", Severity: checks.SeverityCritical, Path: "a.go", Line: 3, Message: "a secret | <b>x</b>"}
	cases := []struct {
		name string
		rep  report.Report
		want string
		anns int
	}{
		{"pass", report.Report{Decision: report.Pass, Checks: []checks.Result{{Name: "scope", Status: checks.StatusPass}}}, "success", 0},
		{"fail", report.Report{Decision: report.Fail, Reasons: []string{"scope failed"}, Checks: []checks.Result{{Name: "scope", Status: checks.StatusFail, Findings: []checks.Finding{{Rule: "no-plan", Message: "no plan"}}}}}, "failure", 0},
		{"stop", report.Report{Decision: report.Stop, StopReason: policies.StopSecretExposure, StopReasons: []policies.StopReason{policies.StopSecretExposure},
			Checks: []checks.Result{{Name: "secrets", Status: checks.StatusFail, Findings: []checks.Finding{finding}}}}, "failure", 1},
		{"needs approval", report.Report{Decision: report.Fail, ApprovalRequired: true, Checks: []checks.Result{{Name: "scope", Status: checks.StatusFail,
			Findings: []checks.Finding{{Rule: "policy-artifact", Path: ".agentgate/policy.yaml", NeedsApproval: true, Message: "policy changed"}}}}}, "action_required", 1},
	}
	for _, tc := range cases {
		r := ReportResult(&tc.rep)
		if r.Conclusion != tc.want || len(r.Annotations) != tc.anns {
			t.Errorf("%s: conclusion %s annotations %d, want %s %d", tc.name, r.Conclusion, len(r.Annotations), tc.want, tc.anns)
		}
		if !strings.Contains(r.Summary, "| check | status |") {
			t.Errorf("%s: summary lacks the checks table:\n%s", tc.name, r.Summary)
		}
	}
	stop := ReportResult(&cases[2].rep)
	if !strings.Contains(stop.Title, "STOP_SECRET_EXPOSURE") || !strings.Contains(stop.Summary, "STOP_SECRET_EXPOSURE") {
		t.Errorf("stop code missing: %q", stop.Title)
	}
	if strings.Contains(stop.Text, "<b>") || strings.Contains(stop.Text, "secret | <") {
		t.Errorf("finding text not escaped: %q", stop.Text)
	}
}
