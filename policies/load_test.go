package policies

import (
	"fmt"
	"strings"
	"testing"
)

const threadYAML = `apiVersion: agentgate.dev/v1
kind: Thread
name: payments
owner: alice
tools: [run_tests.sh]
`

const reqYAML = `apiVersion: agentgate.dev/v1
kind: Requirements
requirements:
  - id: FR-PAY-001
    owner: alice
    objective: refuse negative amounts
    acceptance:
      - id: AC-1
        description: negative amounts are refused
        test: {package: ./services/payments, name: TestRejectsNegative}
`

const policyYAML = `apiVersion: agentgate.dev/v1
kind: Policy
maturity_level: 1
`

const planJSON = `{
  "apiVersion": "agentgate.dev/v1",
  "plan_id": "pay-1",
  "fr_ids": ["FR-PAY-001"],
  "thread": "services/payments",
  "target_files": ["services/payments/**"],
  "risk": "low",
  "limits": {"max_iterations": 3, "max_runtime": "10m", "max_files_changed": 2, "max_diff_lines": 50},
  "budget": {"limit_usd": 1},
  "git": {"branch": "agent/pay-1"}
}`

type loaderFunc func(name string, data []byte) error

var (
	loadThread = func(n string, d []byte) error { _, err := LoadThread(n, d); return err }
	loadReqs   = func(n string, d []byte) error { _, err := LoadRequirements(n, d); return err }
	loadPolicy = func(n string, d []byte) error { _, err := LoadPolicy(n, d); return err }
	loadPlan   = func(n string, d []byte) error { _, err := LoadWorkPlan(n, d); return err }
)

func TestExamplesLoad(t *testing.T) {
	for _, tc := range []struct {
		file string
		load loaderFunc
	}{
		{".agentgate/policy.yaml", loadPolicy},
		{"config.yaml", loadThread},
		{"requirements.yaml", loadReqs},
		{"services/payments/config.yaml", loadThread},
		{"services/payments/requirements.yaml", loadReqs},
		{"services/payments/WORK_PLAN.json", loadPlan},
		{"services/ledger/config.yaml", loadThread},
		{"services/ledger/requirements.yaml", loadReqs},
		{"services/ledger/WORK_PLAN.json", loadPlan},
	} {
		if err := tc.load(tc.file, readExample(t, tc.file)); err != nil {
			t.Errorf("%s: %v", tc.file, err)
		}
	}
	for name, data := range map[string]string{"thread": threadYAML, "req": reqYAML, "policy": policyYAML, "plan": planJSON} {
		var err error
		switch name {
		case "thread":
			err = loadThread("config.yaml", []byte(data))
		case "req":
			err = loadReqs("requirements.yaml", []byte(data))
		case "policy":
			err = loadPolicy("policy.yaml", []byte(data))
		case "plan":
			err = loadPlan("WORK_PLAN.json", []byte(data))
		}
		if err != nil {
			t.Errorf("fixture %s: %v", name, err)
		}
	}
}

// aliasBomb is the "billion laughs" document: nine levels of nine aliases.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString(threadYAML)
	b.WriteString("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "l%d: &l%d [*l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	return b.String()
}

func TestBadInputIsReportedWithLocation(t *testing.T) {
	big := threadYAML + "# " + strings.Repeat("x", MaxFileSize) + "\n"
	tests := []struct {
		name       string
		load       loaderFunc
		input      string
		field      string
		msg        string
		line, col  int // 0: not checked
		wantNoMore bool
	}{
		// Shared file rules.
		{name: "empty yaml", load: loadThread, input: "", msg: "file is empty"},
		{name: "blank yaml", load: loadThread, input: "\n  \r\n\t\n", msg: "file is empty"},
		{name: "comments only", load: loadThread, input: "# nothing here\n", msg: "no YAML content"},
		{name: "empty json", load: loadPlan, input: "", msg: "file is empty"},
		{name: "oversized yaml", load: loadThread, input: big, msg: "limit is 1048576 bytes"},
		{name: "oversized json", load: loadPlan, input: `{"x":"` + strings.Repeat("a", MaxFileSize) + `"}`, msg: "limit is 1048576 bytes"},
		{name: "utf-16", load: loadThread, input: "\xff\xfea\x00p\x00", msg: "UTF-16"},
		{name: "invalid utf-8", load: loadThread, input: threadYAML + "policy_refs: [\"\xc3\x28\"]\n", msg: "not valid UTF-8", line: 6},
		{name: "alias bomb", load: loadThread, input: aliasBomb(), msg: "alias *l0 is not allowed", line: 7},
		{name: "anchor", load: loadThread, input: threadYAML + "runtime: &r {cpu: 1}\n", msg: "anchor &r is not allowed", line: 6},
		{name: "explicit tag", load: loadThread, input: threadYAML + "policy_refs: [!!binary aGVsbG8=]\n", msg: "explicit YAML tag", line: 6},
		{name: "two documents", load: loadThread, input: threadYAML + "---\nname: other\n", msg: "more than one YAML document", line: 6},
		{name: "yaml syntax", load: loadThread, input: "apiVersion: agentgate.dev/v1\nkind: [Thread\n", msg: "YAML syntax error"},
		{name: "not a mapping", load: loadThread, input: "- a\n- b\n", msg: "expected a mapping, got a list", line: 1, col: 1},

		// Strict decoding.
		{name: "duplicate key", load: loadThread, input: threadYAML + "owner: mallory\n", field: "owner", msg: `duplicate key "owner" (first defined at line 4)`, line: 6, col: 1},
		{name: "unknown field", load: loadThread, input: threadYAML + "colour: red\n", field: "colour", msg: `unknown field "colour"; allowed here:`, line: 6, col: 1},
		{name: "unknown nested field", load: loadThread, input: threadYAML + "runtime:\n  cpus: 2\n", field: "runtime.cpus", msg: `unknown field "cpus"`, line: 7, col: 3},
		{name: "wrong type number", load: loadThread, input: threadYAML + "runtime: {cpu: one}\n", field: "runtime.cpu", msg: `expected a number, got the string "one"`, line: 6},
		{name: "wrong type list", load: loadThread, input: strings.Replace(threadYAML, "tools: [run_tests.sh]", "tools: run_tests.sh", 1), field: "tools", msg: "expected a list, got the string", line: 5},
		{name: "wrong type string", load: loadThread, input: strings.Replace(threadYAML, "owner: alice", "owner: 42", 1), field: "owner", msg: "expected a string, got the integer 42 (quote it)", line: 4, col: 8},
		{name: "null value", load: loadThread, input: strings.Replace(threadYAML, "owner: alice", "owner:", 1), field: "owner", msg: "null", line: 4},
		{name: "infinite number", load: loadThread, input: threadYAML + "runtime: {cpu: .inf}\n", field: "runtime.cpu", msg: "not a finite number"},
		{name: "json duplicate key", load: loadPlan, input: strings.Replace(planJSON, `"risk": "low",`, `"risk": "low", "risk": "high",`, 1), field: "risk", msg: "duplicate key", line: 7, col: 18},
		{name: "json unknown nested field", load: loadPlan, input: strings.Replace(planJSON, `"max_iterations": 3`, `"max_iteratons": 3`, 1), field: "limits.max_iteratons", msg: `unknown field "max_iteratons"`, line: 8, col: 14},
		{name: "json wrong type", load: loadPlan, input: strings.Replace(planJSON, `"max_iterations": 3`, `"max_iterations": "3"`, 1), field: "limits.max_iterations", msg: `expected an integer, got the string "3"`, line: 8},
		{name: "json float for integer", load: loadPlan, input: strings.Replace(planJSON, `"max_iterations": 3`, `"max_iterations": 3.5`, 1), field: "limits.max_iterations", msg: "expected an integer, got the number 3.5"},
		{name: "json object for array", load: loadPlan, input: strings.Replace(planJSON, `["FR-PAY-001"]`, `{"a": 1}`, 1), field: "fr_ids", msg: "expected an array, got an object", line: 4, col: 13},
		{name: "json null", load: loadPlan, input: strings.Replace(planJSON, `"risk": "low"`, `"risk": null`, 1), field: "risk", msg: "null", line: 7},
		{name: "json syntax", load: loadPlan, input: "{\n  \"plan_id\": \"x\",\n  \"risk\" \"low\"\n}", msg: "JSON syntax error", line: 3},
		{name: "json unclosed", load: loadPlan, input: `{"plan_id": "x"`, msg: "unexpected end of file"},
		{name: "json trailing data", load: loadPlan, input: planJSON + "\n{}", msg: "unexpected content after the top-level JSON value", line: 12, col: 1},
		{name: "json too deep", load: loadPlan, input: `{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "}", msg: "nested deeper than"},
		{name: "json top-level array", load: loadPlan, input: "[1]", msg: "expected an object, got an array", line: 1, col: 1},

		// Schema and per-file semantics.
		{name: "missing required", load: loadPlan, input: strings.Replace(planJSON, `"risk": "low",`, ``, 1), field: "risk", msg: "required field is missing"},
		{name: "bad enum", load: loadPlan, input: strings.Replace(planJSON, `"risk": "low"`, `"risk": "extreme"`, 1), field: "risk", msg: "low"},
		{name: "plan id with space", load: loadPlan, input: strings.Replace(planJSON, `"pay-1"`, `"pay 1"`, 1), field: "plan_id", msg: "may use only letters", line: 3},
		{name: "plan id traversal", load: loadPlan, input: strings.Replace(planJSON, `"pay-1"`, `"../etc"`, 1), field: "plan_id", msg: "may use only letters"},
		{name: "plan id slash", load: loadPlan, input: strings.Replace(planJSON, `"pay-1"`, `"a/b"`, 1), field: "plan_id", msg: "may use only letters"},
		{name: "plan id dot first", load: loadPlan, input: strings.Replace(planJSON, `"pay-1"`, `".hidden"`, 1), field: "plan_id", msg: "may use only letters"},
		{name: "plan id unicode", load: loadPlan, input: strings.Replace(planJSON, `"pay-1"`, `"plän"`, 1), field: "plan_id", msg: "may use only letters"},
		{name: "plan id newline", load: loadPlan, input: strings.Replace(planJSON, `"pay-1"`, `"a\nb"`, 1), field: "plan_id", msg: "may use only letters"},
		{name: "plan id too long", load: loadPlan, input: strings.Replace(planJSON, `"pay-1"`, `"`+strings.Repeat("a", 129)+`"`, 1), field: "plan_id", msg: "at most 128"},
		{name: "absolute target", load: loadPlan, input: strings.Replace(planJSON, `"services/payments/**"`, `"/etc/passwd"`, 1), field: "target_files[0]", msg: "absolute", line: 6},
		{name: "dotdot target", load: loadPlan, input: strings.Replace(planJSON, `"services/payments/**"`, `"services/payments/../../x"`, 1), field: "target_files[0]", msg: "'..'"},
		{name: "unclean target", load: loadPlan, input: strings.Replace(planJSON, `"services/payments/**"`, `"./services/payments/**"`, 1), field: "target_files[0]", msg: "not clean"},
		{name: "drive letter target", load: loadPlan, input: strings.Replace(planJSON, `"services/payments/**"`, `"C:/x"`, 1), field: "target_files[0]", msg: "drive letter"},
		{name: "malformed glob", load: loadPlan, input: strings.Replace(planJSON, `"services/payments/**"`, `"services/[ab"`, 1), field: "target_files[0]", msg: "malformed glob"},
		{name: "dotdot thread", load: loadPlan, input: strings.Replace(planJSON, `"thread": "services/payments"`, `"thread": "../other"`, 1), field: "thread", msg: "'..'"},
		{name: "branch not agent", load: loadPlan, input: strings.Replace(planJSON, `"agent/pay-1"`, `"main"`, 1), field: "git.branch", msg: "must match agent/*"},
		{name: "branch nested", load: loadPlan, input: strings.Replace(planJSON, `"agent/pay-1"`, `"agent/a/b"`, 1), field: "git.branch", msg: "must match agent/*"},
		{name: "branch dotdot", load: loadPlan, input: strings.Replace(planJSON, `"agent/pay-1"`, `"agent/a..b"`, 1), field: "git.branch", msg: "no '..'"},
		{name: "ratios not ascending", load: loadPlan, input: strings.Replace(planJSON, `"limit_usd": 1`, `"limit_usd": 1, "warn_ratio": 0.95`, 1), field: "budget", msg: "strictly ascending"},
		{name: "ratio above one", load: loadPlan, input: strings.Replace(planJSON, `"limit_usd": 1`, `"limit_usd": 1, "stop_ratio": 1.5`, 1), field: "budget.stop_ratio", msg: "at most 1"},
		{name: "budget zero", load: loadPlan, input: strings.Replace(planJSON, `"limit_usd": 1`, `"limit_usd": 0`, 1), field: "budget.limit_usd", msg: "0"},
		{name: "bad duration", load: loadPlan, input: strings.Replace(planJSON, `"10m"`, `"ten minutes"`, 1), field: "limits.max_runtime", msg: "not a duration"},
		{name: "no progress above max", load: loadPlan, input: strings.Replace(planJSON, `"max_iterations": 3`, `"max_iterations": 3, "no_progress_iterations": 4`, 1), field: "limits.no_progress_iterations", msg: "exceeds max_iterations"},
		{name: "unknown stop code", load: loadPlan, input: strings.Replace(planJSON, `"risk": "low"`, `"risk": "low", "stop_conditions": ["STOP_BORED"]`, 1), field: "stop_conditions[0]", msg: "STOP_"},
		{name: "bad fr id", load: loadPlan, input: strings.Replace(planJSON, `"FR-PAY-001"`, `"pay-1"`, 1), field: "fr_ids[0]", msg: "not an FR id"},
		{name: "wrong api version", load: loadPlan, input: strings.Replace(planJSON, `"agentgate.dev/v1"`, `"agentgate.dev/v2"`, 1), field: "apiVersion", msg: "unsupported apiVersion"},
		{name: "thread wrong kind", load: loadThread, input: strings.Replace(threadYAML, "kind: Thread", "kind: Policy", 1), field: "kind", msg: "must say kind: Thread", line: 2},
		{name: "thread absolute shared", load: loadThread, input: threadYAML + "shared_interfaces: [/etc]\n", field: "shared_interfaces[0]", msg: "absolute", line: 6},
		{name: "thread dotdot shared", load: loadThread, input: threadYAML + "shared_interfaces: [\"../../x/**\"]\n", field: "shared_interfaces[0]", msg: "'..'", line: 6},
		{name: "thread bad runtime", load: loadThread, input: threadYAML + "runtime: {max_runtime: forever}\n", field: "runtime.max_runtime", msg: "not a duration"},
		{name: "thread bad memory", load: loadThread, input: threadYAML + "runtime: {memory: lots}\n", field: "runtime.memory", msg: "does not match pattern"},
		{name: "thread missing owner", load: loadThread, input: strings.Replace(threadYAML, "owner: alice\n", "", 1), field: "owner", msg: "required field is missing"},
		{name: "requirements duplicate fr", load: loadReqs, input: reqYAML + strings.TrimPrefix(reqYAML[strings.Index(reqYAML, "  - id"):], ""), field: "requirements[1].id", msg: "duplicate FR id"},
		{name: "requirements bad test name", load: loadReqs, input: strings.Replace(reqYAML, "TestRejectsNegative", "testRejects", 1), field: "requirements[0].acceptance[0].test.name", msg: "not a Go test name", line: 10},
		{name: "requirements lower after Test", load: loadReqs, input: strings.Replace(reqYAML, "TestRejectsNegative", "Testrejects", 1), field: "requirements[0].acceptance[0].test.name", msg: "not a Go test name"},
		{name: "requirements bad package", load: loadReqs, input: strings.Replace(reqYAML, "./services/payments", "./../x", 1), field: "requirements[0].acceptance[0].test.package", msg: "'..'"},
		{name: "requirements no acceptance", load: loadReqs, input: reqYAML[:strings.Index(reqYAML, "    acceptance:")], field: "requirements[0].acceptance", msg: "required field is missing"},
		{name: "requirements wrong kind", load: loadReqs, input: strings.Replace(reqYAML, "kind: Requirements", "kind: Thread", 1), field: "kind", msg: "kind: Requirements"},
		{name: "policy maturity", load: loadPolicy, input: strings.Replace(policyYAML, "maturity_level: 1", "maturity_level: 5", 1), field: "maturity_level", msg: "3"},
		{name: "policy loosens seed ladder", load: loadPolicy, input: policyYAML + "ladder:\n  - {name: develop, source: agent/*, target: develop, requires: [checks]}\n  - {name: staging, source: develop, target: staging, requires: [policy_valid, gate_evidence, budget_compliant]}\n  - {name: main, source: staging, target: main, requires: [human_approval]}\n", field: "ladder", msg: `must require "plan_valid"`},
		{name: "policy drops seed rung", load: loadPolicy, input: policyYAML + "ladder:\n  - {name: develop, source: agent/*, target: develop, requires: [checks, plan_valid, trailers]}\n", field: "ladder", msg: "seed rung develop -> staging is missing"},
		{name: "policy approvers unknown rung", load: loadPolicy, input: policyYAML + "approvers: [{rung: prod, users: [alice]}]\n", field: "approvers[0].rung", msg: "not the target of any ladder rung", line: 4},
		{name: "policy bad expiry", load: loadPolicy, input: policyYAML + "vuln:\n  allow: [{id: GO-2024-1, reason: r, expires: 2024-13-45}]\n", field: "vuln.allow[0].expires", msg: "not a date"},
		{name: "policy absolute critical path", load: loadPolicy, input: policyYAML + "security_critical_paths: [/etc/**]\n", field: "security_critical_paths[0]", msg: "absolute"},
		{name: "policy dotdot integration thread", load: loadPolicy, input: policyYAML + "integration_thread: ../x\n", field: "integration_thread", msg: "'..'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const file = "some/dir/file"
			ps := asProblems(t, tc.load(file, []byte(tc.input)))
			if len(ps) == 0 {
				t.Fatal("accepted; want a problem")
			}
			p := mustFind(t, ps, tc.field, tc.msg)
			if p.File != file {
				t.Errorf("file = %q, want %q", p.File, file)
			}
			if tc.line != 0 && p.Line != tc.line {
				t.Errorf("line = %d, want %d (%s)", p.Line, tc.line, p)
			}
			if tc.col != 0 && p.Col != tc.col {
				t.Errorf("col = %d, want %d (%s)", p.Col, tc.col, p)
			}
			// The formatted problem names the file, position and field.
			s := p.String()
			if !strings.HasPrefix(s, file+":") || (tc.field != "" && !strings.Contains(s, ": "+tc.field+": ")) {
				t.Errorf("String() = %q", s)
			}
		})
	}
}

func TestAllProblemsAreReportedAtOnce(t *testing.T) {
	in := threadYAML + "colour: red\nowner: bob\nruntime: {cpu: one, max_runtime: soon}\nshared_interfaces: [/abs]\n"
	ps := asProblems(t, loadThread("config.yaml", []byte(in)))
	for _, want := range []struct{ field, msg string }{
		{"colour", "unknown field"},
		{"owner", "duplicate key"},
		{"runtime.cpu", "expected a number"},
		{"runtime.max_runtime", "not a duration"},
		{"shared_interfaces[0]", "absolute"},
	} {
		mustFind(t, ps, want.field, want.msg)
	}
	// Sorted by position.
	for i := 1; i < len(ps); i++ {
		if ps[i].Line < ps[i-1].Line {
			t.Fatalf("problems not sorted by line:\n%v", ps)
		}
	}
}

func TestBOMAndCRLFAreTolerated(t *testing.T) {
	bom := "\xEF\xBB\xBF"
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	for name, tc := range map[string]struct {
		load loaderFunc
		in   string
	}{
		"thread bom":       {loadThread, bom + threadYAML},
		"thread crlf":      {loadThread, crlf(threadYAML)},
		"thread bom crlf":  {loadThread, bom + crlf(threadYAML)},
		"reqs crlf":        {loadReqs, crlf(reqYAML)},
		"policy bom crlf":  {loadPolicy, bom + crlf(policyYAML)},
		"plan bom":         {loadPlan, bom + planJSON},
		"plan crlf":        {loadPlan, crlf(planJSON)},
		"plan bom crlf":    {loadPlan, bom + crlf(planJSON)},
		"example bom plan": {loadPlan, bom + string(readExample(t, "services/payments/WORK_PLAN.json"))},
	} {
		if err := tc.load("f", []byte(tc.in)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Positions stay right with CRLF line ends.
	ps := asProblems(t, loadThread("f", []byte(crlf(threadYAML+"colour: red\n"))))
	if p := mustFind(t, ps, "colour", "unknown field"); p.Line != 6 || p.Col != 1 {
		t.Errorf("CRLF position = %d:%d, want 6:1", p.Line, p.Col)
	}
	ps = asProblems(t, loadPlan("f", []byte(crlf(strings.Replace(planJSON, `"risk"`, `"rsk"`, 1)))))
	if p := mustFind(t, ps, "rsk", "unknown field"); p.Line != 7 || p.Col != 3 {
		t.Errorf("CRLF JSON position = %d:%d, want 7:3", p.Line, p.Col)
	}
}

func TestDefaultsAreApplied(t *testing.T) {
	wp, err := LoadWorkPlan("WORK_PLAN.json", []byte(planJSON))
	if err != nil {
		t.Fatal(err)
	}
	if wp.Budget.WarnRatio != 0.7 || wp.Budget.EscalateRatio != 0.9 || wp.Budget.StopRatio != 1.0 {
		t.Errorf("budget ratios = %+v, want 0.7/0.9/1.0", wp.Budget)
	}
	if wp.Git.Target != "develop" || wp.Security.FailOn != RiskLow {
		t.Errorf("git target %q, fail_on %q", wp.Git.Target, wp.Security.FailOn)
	}

	p, err := LoadPolicy("policy.yaml", []byte(policyYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Ladder) != 3 || p.Ladder[0].Source != "agent/*" || p.Ladder[2].Target != "main" {
		t.Errorf("default ladder = %+v", p.Ladder)
	}
	if p.IntegrationThread != "." || p.MaturityLevel != 1 || p.AutoApprove.MaxRisk != RiskLow || p.Vuln.FailOn != "called" {
		t.Errorf("defaults not applied: %+v", p)
	}
	if !MatchGlobAny(p.SharedDependencyFiles, "go.mod") || !MatchGlobAny(p.SharedDependencyFiles, "web/package.json") {
		t.Errorf("shared dependency defaults = %v", p.SharedDependencyFiles)
	}

	// An explicitly empty list turns the default off.
	p, err = LoadPolicy("policy.yaml", []byte(policyYAML+"shared_dependency_files: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.SharedDependencyFiles == nil || len(p.SharedDependencyFiles) != 0 {
		t.Errorf("explicit empty list became %v", p.SharedDependencyFiles)
	}

	d := DefaultPolicy()
	if d.RungFor("agent/x", "develop") == nil || d.RungFor("agent/x", "main") != nil || d.RungFor("develop", "staging") == nil {
		t.Error("default ladder pairs wrong")
	}
	if got := d.NextRungs("agent/x"); len(got) != 1 || got[0].Target != "develop" {
		t.Errorf("NextRungs(agent/x) = %+v", got)
	}
}

func MatchGlobAny(globs []string, p string) bool {
	for _, g := range globs {
		if MatchGlob(g, p) {
			return true
		}
	}
	return false
}

func TestIsThreadConfig(t *testing.T) {
	for in, want := range map[string]bool{
		threadYAML:                true,
		"kind: Thread\nname: x\n": true, // ours, missing apiVersion: reported, not ignored
		"apiVersion: agentgate.dev/v2\nkind: Thread\n":      true, // ours, unsupported version
		"apiVersion: agentgate.dev/v1\nkind: Policy\n":      true, // ours, wrong kind
		"apiVersion: apps/v1\nkind: Deployment\n":           false,
		"apiVersion: example.com/v1\nkind: Thread\n":        false, // someone else's Thread
		"server:\n  port: 8080\n":                           false,
		"":                                                  false,
		"apiVersion: agentgate.dev/v1\nkind: [Thread\n":     true, // broken but ours
		"a: b: c\n":                                         false,
		"apiVersion: agentgate.dev/v1\nx: &a 1\ny: *a\n":    true,
		"# comment only\n":                                  false,
		"- a list\n":                                        false,
		"kind: Thread\napiVersion: agentgate.dev/v1\n---\n": true,
	} {
		if got := IsThreadConfig([]byte(in)); got != want {
			t.Errorf("IsThreadConfig(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestProblemString(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "a/WORK_PLAN.json", Line: 3, Col: 7, Field: "limits.max_runtime", Message: "bad"}, "a/WORK_PLAN.json:3:7: limits.max_runtime: bad"},
		{Problem{File: "f", Line: 3, Message: "bad"}, "f:3: bad"},
		{Problem{File: "f", Message: "file is empty"}, "f: file is empty"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
	if (Problems{}).Err() != nil {
		t.Error("empty Problems.Err() != nil")
	}
}

// Hostile shapes within the size cap: each is refused (or reported) with a
// bounded report, never a crash.
func TestHostileShapesAreBounded(t *testing.T) {
	for _, tc := range []struct {
		name, field, msg string
		load             loaderFunc
		in               string
		maxProblems      int
	}{
		{name: "deep yaml", load: loadThread, in: threadYAML + "x: " + strings.Repeat("[", 200000) + "\n", msg: "max depth", maxProblems: 1},
		{name: "deep json", load: loadPlan, in: strings.Repeat("[", 200000), msg: "nested deeper than", maxProblems: 1},
		{name: "many unknown keys", load: loadThread, in: threadYAML + "runtime:\n" + strings.Repeat("  k: 1\n", 20000), field: "runtime.k", msg: "unknown field", maxProblems: maxProblemsPerFile + 1},
		{name: "wide json", load: loadPlan, in: strings.Replace(planJSON, `"services/payments/**"`, strings.Repeat(`"/abs",`, 20000)+`"x"`, 1), field: "target_files[0]", msg: "absolute", maxProblems: maxProblemsPerFile + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := asProblems(t, tc.load("f", []byte(tc.in)))
			mustFind(t, ps, tc.field, tc.msg)
			if len(ps) > tc.maxProblems {
				t.Errorf("%d problems, want at most %d", len(ps), tc.maxProblems)
			}
			if tc.maxProblems > 1 && !strings.Contains(ps[len(ps)-1].Message, "more problems not shown") {
				t.Errorf("truncation not reported: %s", ps[len(ps)-1])
			}
		})
	}
}
