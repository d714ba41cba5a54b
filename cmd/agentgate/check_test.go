package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/report"
	"github.com/agentgate/agentgate/internal/gitcli/gittest"
	"github.com/agentgate/agentgate/policies"
)

// checkRepo is the example repository on main with an agent branch.
func checkRepo(t *testing.T) *gittest.Repo {
	t.Helper()
	r, _ := gittest.FromDir(t, exampleRepo)
	r.Branch("agent/pay-idempotency")
	return r
}

func commitAll(r *gittest.Repo, msg string) {
	r.Git("add", "-A")
	r.Git("commit", "-q", "--allow-empty", "-m", msg)
}

func execCheck(t *testing.T, r *gittest.Repo, extra ...string) (string, int) {
	t.Helper()
	args := append([]string{"check", "--repo", r.Dir, "--base", "main", "--head", "agent/pay-idempotency", "--checks", "scope,secrets"}, extra...)
	return execValidate(t, args...)
}

func loadReport(t *testing.T, dir string) *report.Report {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := report.Load(f)
	if err != nil {
		t.Fatalf("report.json does not load: %v", err)
	}
	return rep
}

func validateSARIF(t *testing.T, data []byte) {
	t.Helper()
	f, err := os.Open("../../checks/report/testdata/sarif-schema-2.1.0.json")
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
	if err := c.AddResource("sarif.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("sarif.json")
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("SARIF is not JSON: %v", err)
	}
	if err := s.Validate(inst); err != nil {
		t.Fatalf("SARIF does not validate against SARIF 2.1.0: %v", err)
	}
}

func TestCheckCleanChangePasses(t *testing.T) {
	r := checkRepo(t)
	r.Append("services/payments/payments.go", "\n// Keys are per merchant.\n")
	commitAll(r, "in scope")
	out := filepath.Join(t.TempDir(), "out")
	stdout, code := execCheck(t, r, "--out", out)
	if code != exitOK || !strings.Contains(stdout, "PASS") {
		t.Fatalf("exit %d:\n%s", code, stdout)
	}
	rep := loadReport(t, out)
	if rep.Decision != report.Pass || rep.PlanID != "pay-2026-11-idempotency" || len(rep.Checks) != 2 {
		t.Fatalf("report %+v", rep)
	}
	sarif, err := os.ReadFile(filepath.Join(out, "report.sarif"))
	if err != nil {
		t.Fatal(err)
	}
	validateSARIF(t, sarif)
	for _, log := range []string{"scope.log", "secrets.log"} {
		if _, err := os.Stat(filepath.Join(out, log)); err != nil {
			t.Errorf("missing %s: %v", log, err)
		}
	}
}

func TestCheckOutcomes(t *testing.T) {
	tests := []struct {
		name   string
		change func(r *gittest.Repo)
		code   int
		stop   policies.StopReason
		rule   string
	}{
		{"out-of-scope file fails", func(r *gittest.Repo) { r.Write("services/payments/NOTES.md", "n\n") }, exitFail, "", "out-of-scope"},
		{"another thread's file stops", func(r *gittest.Repo) { r.Append("services/ledger/ledger.go", "// x\n") }, exitStop, policies.StopUnauthorizedAccess, "unauthorized-access"},
		{"policy edit on head is a finding and changes nothing", func(r *gittest.Repo) {
			r.Write(".agentgate/policy.yaml", strings.Replace(r.Read(".agentgate/policy.yaml"), "max_file_bytes: 262144", "max_file_bytes: 262144\n  allow_binaries: true", 1))
			r.WriteBytes("services/payments/blob.go", []byte("package payments\x00\x01"), 0o644)
		}, exitFail, "", "binary-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := checkRepo(t)
			tt.change(r)
			commitAll(r, "agent change")
			stdout, code := execCheck(t, r, "--output", "json")
			if code != tt.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tt.code, stdout)
			}
			rep, err := report.Load(strings.NewReader(stdout))
			if err != nil {
				t.Fatalf("--output json is not a valid report: %v\n%s", err, stdout)
			}
			if rep.StopReason != tt.stop {
				t.Errorf("stop_reason %q, want %q", rep.StopReason, tt.stop)
			}
			found := false
			for _, f := range rep.Findings() {
				found = found || f.Rule == tt.rule
			}
			if !found {
				t.Errorf("no %s finding in %+v", tt.rule, rep.Findings())
			}
		})
	}
}

// A planted key stops the run and appears nowhere: not on stdout in any
// format, not in any file under --out.
func TestCheckPlantedKeyStopsAndNeverLeaks(t *testing.T) {
	key := strings.Join([]string{"AK", "IA", "QYLPMN5HHHFPZAM2"}, "")
	r := checkRepo(t)
	r.Write("services/payments/keys.go", "package payments\n\nconst awsKey = \""+key+"\"\n")
	r.Write(".gitleaksignore", "services/payments/keys.go:aws-access-token:3\n") // added on head: must not count
	commitAll(r, "add keys")
	outs := t.TempDir()
	out := filepath.Join(outs, "json")
	var all strings.Builder
	for _, format := range []string{"text", "json", "sarif"} {
		// Evidence is never overwritten: one --out directory per run.
		stdout, code := execCheck(t, r, "--output", format, "--out", filepath.Join(outs, format), "--db", filepath.Join(outs, format+".db"))
		if code != exitStop {
			t.Fatalf("%s: exit %d, want %d:\n%s", format, code, exitStop, stdout)
		}
		all.WriteString(stdout)
		if format == "sarif" {
			validateSARIF(t, []byte(stdout))
		}
	}
	rep := loadReport(t, out)
	if rep.StopReason != policies.StopSecretExposure {
		t.Fatalf("stop_reason %q", rep.StopReason)
	}
	err := filepath.WalkDir(outs, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// Every file is checked, the stop evidence included: its plaintext
		// patch is omitted on a secret stop. Only the git bundle (the exact,
		// zlib-compressed objects kept for forensics) holds the change.
		if d.IsDir() || strings.HasSuffix(p, ".bundle") {
			return nil
		}
		data, err := os.ReadFile(p)
		all.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	omitted, _ := filepath.Glob(filepath.Join(out, "evidence", "*", "diff.patch.omitted"))
	if len(omitted) != 1 {
		t.Fatalf("want the stop evidence to say its plaintext patch was omitted, found %v", omitted)
	}
	if strings.Contains(all.String(), key) || strings.Contains(all.String(), "QYLPMN5HHHFPZAM2") {
		t.Fatal("the planted key appears in the output")
	}
	if !strings.Contains(all.String(), "aws-access-token") {
		t.Fatal("the finding itself is missing from the output")
	}
}

func TestCheckInvalidInputExitsTwo(t *testing.T) {
	r := checkRepo(t)
	r.Append("services/payments/payments.go", "// x\n")
	commitAll(r, "x")
	for name, args := range map[string][]string{
		"bad base ref":    {"check", "--repo", r.Dir, "--base", "nope", "--head", "HEAD"},
		"bad head ref":    {"check", "--repo", r.Dir, "--base", "main", "--head", "deadbeef"},
		"not a repo":      {"check", "--repo", t.TempDir(), "--base", "main", "--head", "HEAD"},
		"missing --base":  {"check", "--repo", r.Dir, "--head", "HEAD"},
		"unknown check":   {"check", "--repo", r.Dir, "--base", "main", "--head", "HEAD", "--checks", "scope,astrology"},
		"bad output":      {"check", "--repo", r.Dir, "--base", "main", "--head", "HEAD", "--output", "xml"},
		"plan not a plan": {"check", "--repo", r.Dir, "--base", "main", "--head", "HEAD", "--plan", "go.mod"},
	} {
		if out, code := execValidate(t, args...); code != exitInvalid {
			t.Errorf("%s: exit %d, want %d:\n%s", name, code, exitInvalid, out)
		}
	}
}

type sleepyCheck struct{}

func (sleepyCheck) Name() string { return "sleepy" }
func (sleepyCheck) Run(ctx context.Context, _ *checks.Subject) checks.Result {
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
	}
	return checks.Result{Status: checks.StatusPass} // lies after its deadline
}

func TestCheckThatTimesOutFailsClosed(t *testing.T) {
	checkRegistry["sleepy"] = func(*checkOptions) (checks.Check, error) { return sleepyCheck{}, nil }
	defer delete(checkRegistry, "sleepy")
	r := checkRepo(t)
	r.Append("services/payments/payments.go", "// x\n")
	commitAll(r, "x")
	stdout, code := execValidate(t, "check", "--repo", r.Dir, "--base", "main", "--head", "HEAD",
		"--plan", "services/payments/WORK_PLAN.json", "--checks", "scope,sleepy", "--timeout", "200ms", "--output", "json")
	if code != exitFail {
		t.Fatalf("exit %d, want %d:\n%s", code, exitFail, stdout)
	}
	var rep report.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Checks {
		if c.Name == "sleepy" && (c.Status != checks.StatusError || !strings.Contains(c.Reason, "timed out")) {
			t.Fatalf("sleepy: %+v", c)
		}
	}
}

func TestReportSchemaIsPublished(t *testing.T) {
	out, code := execValidate(t, "schema", "report")
	if code != exitOK || !strings.Contains(out, `"report_version"`) {
		t.Fatalf("exit %d: %s", code, out)
	}
}

// With --seal-test-binaries the thread's Go test binaries run through the
// agentgate binary itself (go test -exec) in a narrower Landlock domain;
// the example thread's tests, acceptance tests included, still pass.
func TestCheckSealedTestBinariesStillPassTheExampleThread(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	bin := filepath.Join(t.TempDir(), "agentgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	r := checkRepo(t)
	r.Append("services/payments/payments.go", "\n// Keys are per merchant.\n")
	r.Append("services/payments/payments_test.go", "\n// Keys are per merchant.\n")
	commitAll(r, "in scope, with its test")
	out := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(bin, "check", "--repo", r.Dir, "--base", "main", "--head", "agent/pay-idempotency",
		"--checks", "tests", "--seal-test-binaries", "--cache-dir", t.TempDir(), "--out", out)
	stdout, err := cmd.CombinedOutput()
	rep := loadReport(t, out)
	iso, _ := rep.Checks[0].Details["isolation"].(string)
	if !strings.Contains(iso, "landlock") {
		t.Skipf("this machine cannot confine with Landlock (isolation %q)", iso)
	}
	if err != nil || rep.Decision != report.Pass {
		t.Fatalf("exit %v, decision %s:\n%s", err, rep.Decision, stdout)
	}
	if !strings.Contains(iso, "+test-binary-domain") {
		t.Errorf("tests isolation %q does not name the test-binary domain", iso)
	}
}
