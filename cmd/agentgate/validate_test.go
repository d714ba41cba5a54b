package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const exampleRepo = "../../examples/payments-repo"

// execValidate runs the root command with args, returning its stdout and
// the exit code run() would return.
func execValidate(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	code := exitOK
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		} else {
			code = exitInvalid
		}
	}
	return out.String(), code
}

func copyExampleRepo(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(exampleRepo)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestValidateExampleExitsZero(t *testing.T) {
	if code := run([]string{"validate", exampleRepo}); code != exitOK {
		t.Fatalf("run(validate example) = %d, want 0", code)
	}
	if code := run([]string{"validate", "--check-tests", exampleRepo}); code != exitOK {
		t.Fatalf("run(validate --check-tests example) = %d, want 0", code)
	}
	out, code := execValidate(t, "validate", exampleRepo)
	if code != exitOK || !strings.Contains(out, "ok: 9 contract files valid") || !strings.Contains(out, "3 threads") {
		t.Fatalf("code %d, output:\n%s", code, out)
	}
}

func TestValidateBrokenCopyExitsTwoNamingFileLineAndField(t *testing.T) {
	repo := copyExampleRepo(t)
	plan := filepath.Join(repo, "services/payments/WORK_PLAN.json")
	b, err := os.ReadFile(plan)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(b), `"max_iterations": 6,`, `"max_iterations": 6, "max_iteratons": 7,`, 1)
	broken = strings.Replace(broken, `"max_diff_lines": 250`, `"max_diff_lines": 9999`, 1)
	if err := os.WriteFile(plan, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(repo, "services/ledger/config.yaml")
	c, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, append(c, []byte("colour: red\n")...), 0o644); err != nil {
		t.Fatal(err)
	}

	if code := run([]string{"validate", repo}); code != exitInvalid {
		t.Fatalf("run(validate broken) = %d, want 2", code)
	}
	out, code := execValidate(t, "validate", repo)
	if code != exitInvalid {
		t.Fatalf("code = %d, want 2", code)
	}
	for _, want := range []string{
		filepath.Join(repo, "services/payments/WORK_PLAN.json") + ":17:26: limits.max_iteratons: unknown field \"max_iteratons\"",
		filepath.Join(repo, "services/payments/WORK_PLAN.json") + ":22:23: limits.max_diff_lines: 9999 exceeds the thread's ceiling of 300",
		filepath.Join(repo, "services/ledger/config.yaml") + ":16:1: colour: unknown field \"colour\"",
		"invalid: 3 problems",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// JSON output carries the same problems, with repo-relative files.
	out, code = execValidate(t, "validate", repo, "--output", "json")
	if code != exitInvalid {
		t.Fatalf("json: code = %d", code)
	}
	var res struct {
		Valid    bool `json:"valid"`
		Problems []struct {
			File  string `json:"file"`
			Line  int    `json:"line"`
			Col   int    `json:"col"`
			Field string `json:"field"`
		} `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if res.Valid || len(res.Problems) != 3 || res.Problems[0].File != "services/ledger/config.yaml" || res.Problems[0].Line != 16 || res.Problems[0].Field != "colour" {
		t.Errorf("json result = %+v", res)
	}
}

func TestValidateCheckTestsReportsMissingAcceptanceTest(t *testing.T) {
	repo := copyExampleRepo(t)
	reqs := filepath.Join(repo, "services/ledger/requirements.yaml")
	b, _ := os.ReadFile(reqs)
	if err := os.WriteFile(reqs, []byte(strings.Replace(string(b), "TestBalanceSumsAcceptedPostings", "TestBalanceIsNeverNegative", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"validate", repo}); code != exitOK {
		t.Fatalf("without --check-tests: code %d, want 0", code)
	}
	out, code := execValidate(t, "validate", "--check-tests", repo)
	if code != exitInvalid || !strings.Contains(out, "services/ledger/requirements.yaml:") || !strings.Contains(out, "no func TestBalanceIsNeverNegative") {
		t.Fatalf("code %d output:\n%s", code, out)
	}
}

func TestValidateSingleFile(t *testing.T) {
	if code := run([]string{"validate", filepath.Join(exampleRepo, "services/ledger/WORK_PLAN.json")}); code != exitOK {
		t.Fatalf("valid file: code %d", code)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "requirements.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: agentgate.dev/v1\nkind: Requirements\nrequirements: []\nextra: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := execValidate(t, "validate", bad)
	if code != exitInvalid || !strings.Contains(out, bad+":4:1: extra: unknown field") || !strings.Contains(out, "requirements:") {
		t.Fatalf("code %d output:\n%s", code, out)
	}
	empty := filepath.Join(dir, "WORK_PLAN.json")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := execValidate(t, "validate", empty); code != exitInvalid || !strings.Contains(out, "file is empty") {
		t.Fatalf("empty file: code %d output:\n%s", code, out)
	}
}

func TestValidateUsageErrors(t *testing.T) {
	for name, args := range map[string][]string{
		"missing dir":   {"validate", filepath.Join(t.TempDir(), "nope")},
		"bad output":    {"validate", exampleRepo, "--output", "xml"},
		"too many args": {"validate", "a", "b"},
		"unknown file":  {"validate", filepath.Join(exampleRepo, "go.mod")},
	} {
		if code := run(args); code != exitInvalid {
			t.Errorf("%s: code %d, want 2", name, code)
		}
	}
}

func TestSchemaCommandPrintsContractSchemas(t *testing.T) {
	for _, name := range []string{"work-plan", "thread", "requirements", "policy"} {
		out, code := execValidate(t, "schema", name)
		if code != exitOK {
			t.Fatalf("schema %s: code %d", name, code)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("schema %s is not JSON: %v", name, err)
		}
		if m["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("schema %s: $schema = %v", name, m["$schema"])
		}
	}
}
