package policies

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

func compileRaw(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema(name)))
	if err != nil {
		t.Fatalf("schema %s is not JSON: %v", name, err)
	}
	if err := c.AddResource(SchemaID(name), doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(SchemaID(name))
	if err != nil {
		t.Fatalf("schema %s does not compile: %v", name, err)
	}
	return s
}

// rawInstance decodes a file the way any third-party tool would (plain
// yaml.v3 or encoding/json), independent of the strict loader.
func rawInstance(t *testing.T, file string, data []byte) any {
	t.Helper()
	if strings.HasSuffix(file, ".json") {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return v
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return v
}

func TestSchemasArePublished(t *testing.T) {
	for _, name := range SchemaNames() {
		doc := Schema(name)
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m["$schema"] != "https://json-schema.org/draft/2020-12/schema" || m["$id"] != SchemaID(name) {
			t.Errorf("%s: $schema %v, $id %v", name, m["$schema"], m["$id"])
		}
		if m["title"] == nil || m["description"] == nil {
			t.Errorf("%s: needs a title and description for editors", name)
		}
		compileRaw(t, name)
	}
	if Schema("nope") != nil || Schema("../load.go") != nil {
		t.Error("Schema returned a document for an unknown name")
	}
}

func TestExamplesValidateAgainstSchemas(t *testing.T) {
	for file, name := range map[string]string{
		".agentgate/policy.yaml":              SchemaPolicy,
		"config.yaml":                         SchemaThread,
		"requirements.yaml":                   SchemaRequirements,
		"services/payments/config.yaml":       SchemaThread,
		"services/payments/requirements.yaml": SchemaRequirements,
		"services/payments/WORK_PLAN.json":    SchemaWorkPlan,
		"services/ledger/config.yaml":         SchemaThread,
		"services/ledger/requirements.yaml":   SchemaRequirements,
		"services/ledger/WORK_PLAN.json":      SchemaWorkPlan,
	} {
		s := compileRaw(t, name)
		if err := s.Validate(rawInstance(t, file, readExample(t, file))); err != nil {
			t.Errorf("%s does not validate against schema %s: %v", file, name, err)
		}
	}
}

// TestSchemaRejectsWhatTheLoaderRejects feeds common mistakes to both the
// strict loader and a plain JSON Schema validator: both must refuse.
func TestSchemaRejectsWhatTheLoaderRejects(t *testing.T) {
	plan := string(readExample(t, "services/payments/WORK_PLAN.json"))
	thread := string(readExample(t, "services/payments/config.yaml"))
	reqs := string(readExample(t, "services/payments/requirements.yaml"))
	pol := string(readExample(t, ".agentgate/policy.yaml"))
	rep := func(s, old, new string) string {
		if !strings.Contains(s, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(s, old, new, 1)
	}
	cases := []struct {
		name, file, schema, doc string
	}{
		{"plan unknown field", "WORK_PLAN.json", SchemaWorkPlan, rep(plan, `"risk": "low",`, `"risk": "low", "colour": 1,`)},
		{"plan nested unknown field", "WORK_PLAN.json", SchemaWorkPlan, rep(plan, `"max_iterations": 6`, `"max_iter": 6`)},
		{"plan wrong type", "WORK_PLAN.json", SchemaWorkPlan, rep(plan, `"max_iterations": 6`, `"max_iterations": "6"`)},
		{"plan null", "WORK_PLAN.json", SchemaWorkPlan, rep(plan, `"risk": "low"`, `"risk": null`)},
		{"plan missing required", "WORK_PLAN.json", SchemaWorkPlan, rep(plan, `"risk": "low",`, ``)},
		{"plan bad risk", "WORK_PLAN.json", SchemaWorkPlan, rep(plan, `"risk": "low"`, `"risk": "none"`)},
		{"plan odd id", "WORK_PLAN.json", SchemaWorkPlan, rep(plan, `"pay-2026-11-idempotency"`, `"pay 2026"`)},
		{"plan absolute path", "WORK_PLAN.json", SchemaWorkPlan, rep(plan, `"services/payments/**/*.go"`, `"/etc/passwd"`)},
		{"plan dotdot path", "WORK_PLAN.json", SchemaWorkPlan, rep(plan, `"services/payments/**/*.go"`, `"services/../../x"`)},
		{"plan branch", "WORK_PLAN.json", SchemaWorkPlan, rep(plan, `"agent/pay-idempotency"`, `"feature/x"`)},
		{"plan ratio above one", "WORK_PLAN.json", SchemaWorkPlan, rep(plan, `"stop_ratio": 1.0`, `"stop_ratio": 1.2`)},
		{"plan duration", "WORK_PLAN.json", SchemaWorkPlan, rep(plan, `"30m"`, `"half an hour"`)},
		{"plan stop code", "WORK_PLAN.json", SchemaWorkPlan, rep(plan, `"STOP_NO_PROGRESS"`, `"STOP_SOMETIMES"`)},
		{"plan fr id", "WORK_PLAN.json", SchemaWorkPlan, rep(plan, `"FR-PAY-001"`, `"fr-pay-1"`)},
		{"thread unknown field", "config.yaml", SchemaThread, thread + "colour: red\n"},
		{"thread wrong type", "config.yaml", SchemaThread, rep(thread, "cpu: 1", "cpu: one")},
		{"thread wrong kind", "config.yaml", SchemaThread, rep(thread, "kind: Thread", "kind: Threads")},
		{"thread absolute shared", "config.yaml", SchemaThread, rep(thread, "internal/money/money.go", "/internal/money.go")},
		{"thread string for list", "config.yaml", SchemaThread, rep(thread, "tools: [run_tests.sh]", "tools: run_tests.sh")},
		{"requirements test name", "requirements.yaml", SchemaRequirements, rep(reqs, "TestAuthorizeIsIdempotentPerKey", "authorizeIsIdempotent")},
		{"requirements missing acceptance test", "requirements.yaml", SchemaRequirements, rep(reqs, "        test: {package: ./services/payments, name: TestAuthorizeRejectsNonPositiveAmounts}\n", "")},
		{"requirements unknown field", "requirements.yaml", SchemaRequirements, rep(reqs, "    non_goals:", "    nongoals:")},
		{"policy maturity", "policy.yaml", SchemaPolicy, rep(pol, "maturity_level: 1", "maturity_level: 7")},
		{"policy requirement name", "policy.yaml", SchemaPolicy, rep(pol, "requires: [human_approval]", "requires: [vibes]")},
		{"policy unknown field", "policy.yaml", SchemaPolicy, pol + "maturity: 2\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var lerr error
			switch tc.schema {
			case SchemaWorkPlan:
				_, lerr = LoadWorkPlan(tc.file, []byte(tc.doc))
			case SchemaThread:
				_, lerr = LoadThread(tc.file, []byte(tc.doc))
			case SchemaRequirements:
				_, lerr = LoadRequirements(tc.file, []byte(tc.doc))
			case SchemaPolicy:
				_, lerr = LoadPolicy(tc.file, []byte(tc.doc))
			}
			if lerr == nil {
				t.Error("loader accepted it")
			}
			if err := compileRaw(t, tc.schema).Validate(rawInstance(t, tc.file, []byte(tc.doc))); err == nil {
				t.Error("schema accepted it")
			}
		})
	}
}

// TestSchemasMatchGoTypes walks each Go contract type and its schema
// together: every field is a property of the matching JSON type and every
// property is a field, objects are closed (additionalProperties false).
// This is what keeps the loader and the schema from drifting apart.
func TestSchemasMatchGoTypes(t *testing.T) {
	for name, c := range map[string]struct {
		typ reflect.Type
		tag string
	}{
		SchemaWorkPlan:     {reflect.TypeFor[WorkPlan](), "json"},
		SchemaThread:       {reflect.TypeFor[Thread](), "yaml"},
		SchemaRequirements: {reflect.TypeFor[Requirements](), "yaml"},
		SchemaPolicy:       {reflect.TypeFor[Policy](), "yaml"},
	} {
		var root map[string]any
		if err := json.Unmarshal(Schema(name), &root); err != nil {
			t.Fatal(err)
		}
		compareSchema(t, name, root, root, c.typ, c.tag)
	}
}

func compareSchema(t *testing.T, where string, root, s map[string]any, typ reflect.Type, tag string) {
	t.Helper()
	if ref, ok := s["$ref"].(string); ok {
		def, _ := strings.CutPrefix(ref, "#/$defs/")
		s = root["$defs"].(map[string]any)[def].(map[string]any)
	}
	jsonType, _ := s["type"].(string)
	switch typ.Kind() {
	case reflect.Struct:
		if jsonType != "object" || s["additionalProperties"] != false {
			t.Errorf("%s: want a closed object, got type %q additionalProperties %v", where, jsonType, s["additionalProperties"])
			return
		}
		props, _ := s["properties"].(map[string]any)
		fields := fieldsOf(typ, tag)
		var propNames []string
		for p := range props {
			propNames = append(propNames, p)
		}
		sort.Strings(propNames)
		if !slices.Equal(propNames, fields.names) {
			t.Errorf("%s: schema properties %v, Go fields %v", where, propNames, fields.names)
		}
		for _, f := range fields.names {
			if ps, ok := props[f].(map[string]any); ok {
				compareSchema(t, where+"."+f, root, ps, typ.Field(fields.index[f]).Type, tag)
			}
		}
		if req, ok := s["required"].([]any); ok {
			for _, r := range req {
				if _, ok := fields.index[r.(string)]; !ok {
					t.Errorf("%s: required %v is not a Go field", where, r)
				}
			}
		}
	case reflect.Slice:
		if jsonType != "array" {
			t.Errorf("%s: Go slice, schema type %q", where, jsonType)
			return
		}
		items, _ := s["items"].(map[string]any)
		compareSchema(t, where+"[]", root, items, typ.Elem(), tag)
	case reflect.String:
		if jsonType != "string" && s["const"] == nil && s["enum"] == nil {
			t.Errorf("%s: Go string, schema type %q", where, jsonType)
		}
		if enum, ok := s["enum"].([]any); ok {
			for _, e := range enum {
				if _, isString := e.(string); !isString {
					t.Errorf("%s: enum value %v is not a string", where, e)
				}
			}
		}
	case reflect.Int, reflect.Int64:
		if jsonType != "integer" {
			t.Errorf("%s: Go integer, schema type %q", where, jsonType)
		}
	case reflect.Float64:
		if jsonType != "number" {
			t.Errorf("%s: Go float, schema type %q", where, jsonType)
		}
	case reflect.Bool:
		if jsonType != "boolean" {
			t.Errorf("%s: Go bool, schema type %q", where, jsonType)
		}
	default:
		t.Errorf("%s: unexpected Go kind %s", where, typ.Kind())
	}
}

// The stop codes in the schema are exactly the Go constants.
func TestSchemaStopCodesMatchGo(t *testing.T) {
	var root map[string]any
	if err := json.Unmarshal(Schema(SchemaWorkPlan), &root); err != nil {
		t.Fatal(err)
	}
	enum := root["properties"].(map[string]any)["stop_conditions"].(map[string]any)["items"].(map[string]any)["enum"].([]any)
	var got []string
	for _, e := range enum {
		got = append(got, e.(string))
	}
	var want []string
	for _, s := range StopReasons {
		want = append(want, string(s))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("schema stop codes %v, Go %v", got, want)
	}
}
