package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/agentgate/agentgate/gate/budget"
	"github.com/agentgate/agentgate/internal/store"
	"github.com/agentgate/agentgate/sandbox/gateway"
)

func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.Execute()
	code := exitOK
	if err != nil {
		code = exitInvalid
		if ee, ok := err.(*exitError); ok {
			code = ee.code
		}
		errb.WriteString(err.Error())
	}
	return out.String() + errb.String(), code
}

func TestGatewayKeysAndBudgetCommands(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "gw.db")
	cfg := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(cfg, []byte("store: "+db+"\nupstreams:\n  - {name: openai, api: openai, base_url: https://api.openai.com, key_env: OPENAI_API_KEY}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wp := filepath.Join(dir, "WORK_PLAN.json")
	if err := os.WriteFile(wp, []byte(`{"plan_id":"PLAN-1","budget":{"limit_usd":2.5,"warn_ratio":0.5,"degrade_to_local":true}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runCLI(t, "gateway", "keys", "issue", "--plan", "PLAN-2", "--run", "r", "--work-plan", wp, "--config", cfg); code != exitInvalid || !strings.Contains(out, `plan "PLAN-1"`) {
		t.Fatalf("a WORK_PLAN of another plan: %d %s", code, out)
	}
	if out, code := runCLI(t, "gateway", "keys", "issue", "--plan", "PLAN-9", "--run", "r", "--config", cfg); code != exitInvalid || !strings.Contains(out, "unknown plan") {
		t.Fatalf("a plan without a budget: %d %s", code, out)
	}
	out, code := runCLI(t, "gateway", "keys", "issue", "--plan", "PLAN-1", "--run", "run-1", "--work-plan", wp, "--repo", "acme/app", "--config", cfg, "--json")
	if code != exitOK {
		t.Fatalf("issue: %d %s", code, out)
	}
	var issued map[string]string
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &issued); err != nil || !strings.HasPrefix(issued["key"], gateway.KeyPrefix) {
		t.Fatalf("issue output %q", out)
	}
	out, code = runCLI(t, "budget", "show", "PLAN-1", "--db", db)
	if code != exitOK || !strings.Contains(out, "$2.500000") || !strings.Contains(out, "warn 50%, escalate 90%, stop 100%") || !strings.Contains(out, "degrade") {
		t.Fatalf("show: %d %s", code, out)
	}
	if out, code := runCLI(t, "budget", "approve", "PLAN-1", "--config", cfg); code != exitInvalid {
		t.Fatalf("approve without --as: %d %s", code, out)
	}
	if out, code := runCLI(t, "budget", "approve", "PLAN-1", "--as", "alice", "--config", cfg); code != exitOK {
		t.Fatalf("approve: %d %s", code, out)
	}
	out, _ = runCLI(t, "budget", "show", "PLAN-1", "--config", cfg, "--json")
	if !strings.Contains(out, `"approved_by": "alice"`) {
		t.Fatalf("show --json after approval: %s", out)
	}
	if out, code := runCLI(t, "budget", "show", "NOPE", "--config", cfg); code != exitInvalid {
		t.Fatalf("unknown plan: %d %s", code, out)
	}
	if out, code := runCLI(t, "gateway", "keys", "revoke", issued["key_id"], "--config", cfg); code != exitOK || !strings.Contains(out, "revoked 1") {
		t.Fatalf("revoke: %d %s", code, out)
	}
	if out, code := runCLI(t, "gateway", "keys", "revoke", issued["key_id"], "--config", cfg); code != exitFail {
		t.Fatalf("second revoke: %d %s", code, out)
	}
	// A call that would cross the stop ratio stops the plan: show exits 3,
	// approve is refused, resume lifts the stop.
	func() {
		st, err := store.Open(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		l, err := budget.NewStoreLedger(context.Background(), st, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := l.Reserve(context.Background(), budget.ReserveRequest{PlanID: "PLAN-1", Amount: budget.USDToNano(3)}); err != nil || res.Verdict.Decision != budget.HardStop {
			t.Fatalf("reserve: %v %+v", err, res.Verdict)
		}
	}()
	if out, code := runCLI(t, "budget", "show", "PLAN-1", "--db", db); code != exitStop || !strings.Contains(out, "STOPPED") {
		t.Fatalf("show a stopped plan: %d %s", code, out)
	}
	if out, code := runCLI(t, "budget", "approve", "PLAN-1", "--as", "bob", "--db", db); code != exitFail || !strings.Contains(out, "budget resume") {
		t.Fatalf("approve a stopped plan: %d %s", code, out)
	}
	if out, code := runCLI(t, "budget", "resume", "PLAN-1", "--as", "carol", "--db", db); code != exitOK {
		t.Fatalf("resume: %d %s", code, out)
	}
	if out, code := runCLI(t, "budget", "show", "PLAN-1", "--db", db); code != exitOK {
		t.Fatalf("show after resume: %d %s", code, out)
	}
	out, code = runCLI(t, "audit", "tail", "--db", db)
	if code != exitOK || !strings.Contains(out, "budget.approve") || !strings.Contains(out, "alice") {
		t.Fatalf("audit tail: %d %s", code, out)
	}
}

func TestGatewayPricesListsTheTable(t *testing.T) {
	out, code := runCLI(t, "gateway", "prices")
	if code != exitOK || !strings.Contains(out, "gpt-4o") || !strings.Contains(out, "claude-sonnet-4-5") || !strings.Contains(out, gateway.BuiltinPrices().Version) {
		t.Fatalf("prices: %d %s", code, out)
	}
	out, _ = runCLI(t, "gateway", "prices", "--json")
	var tbl gateway.PriceTable
	if err := json.Unmarshal([]byte(out), &tbl); err != nil || tbl.Models["gpt-4o"].Output != 10000 {
		t.Fatalf("prices --json: %v", err)
	}
}

func TestGatewayRefusesABadConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gateway.yaml")
	os.WriteFile(cfg, []byte("upstreams:\n  - {name: openai, api: openai, base_url: https://api.openai.com, key_env: AGENTGATE_TEST_UNSET_KEY}\n"), 0o600)
	if out, code := runCLI(t, "gateway", "--config", cfg); code != exitInvalid || !strings.Contains(out, "AGENTGATE_TEST_UNSET_KEY") {
		t.Fatalf("%d %s", code, out)
	}
	if _, code := runCLI(t, "gateway"); code != exitInvalid {
		t.Fatal("no --config accepted")
	}
}

// The published schema and the loader agree on what a gateway.yaml is.
func TestGatewayConfigSchemaAgreesWithTheLoader(t *testing.T) {
	c := jsonschema.NewCompiler()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(gateway.ConfigSchema()))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddResource("gateway.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("gateway.json")
	if err != nil {
		t.Fatal(err)
	}
	env := func(string) string { return "sk-x" }
	docs := map[string]bool{
		"upstreams:\n  - {name: openai, api: openai, base_url: https://api.openai.com, key_env: K}\n": true,
		`listen: 127.0.0.1:9000
max_request_bytes: 65536
estimate_margin: 1.2
request_ceiling_usd: 1.5
monthly_caps: {orgs: {acme: 100}, repos: {acme/app: 20}}
upstreams:
  - {name: anthropic, api: anthropic, base_url: https://api.anthropic.com, key_env: K}
  - {name: local, api: openai-compatible, base_url: http://127.0.0.1:11434, local: true, models: [m]}
cache: {enabled: true, ttl: 5m, max_entries: 10}
degrade: {upstream: local, model: m}
`: true,
		"upstreams: []\n": false,
		"upstreams:\n  - {name: openai, api: gemini, base_url: https://x, key_env: K}\n":                                    false,
		"upstreams:\n  - {name: openai, api: openai, base_url: https://api.openai.com, key_env: K}\nbudget: 1\n":            false,
		"upstreams:\n  - {name: openai, api: openai, base_url: https://api.openai.com, key_env: K}\nestimate_margin: 0.5\n": false,
	}
	for text, valid := range docs {
		var y any
		if err := yaml.Unmarshal([]byte(text), &y); err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(y)
		inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(j))
		schemaErr := sch.Validate(inst)
		_, loadErr := gateway.ParseConfig([]byte(text), env)
		if (schemaErr == nil) != valid || (loadErr == nil) != valid {
			t.Errorf("%q: schema %v, loader %v, want valid=%v", text, schemaErr, loadErr, valid)
		}
	}
}
