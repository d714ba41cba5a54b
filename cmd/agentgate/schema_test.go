package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestSchemaListNamesEveryContractSchema(t *testing.T) {
	var out bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetArgs([]string{"schema", "--list"})
	if err := root.Execute(); err != nil {
		t.Fatalf("schema --list: %v", err)
	}
	for _, want := range []string{"work-plan", "thread", "requirements", "policy", "report"} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("schema --list lacks %q; got:\n%s", want, out.String())
		}
	}
}

func TestEverySchemaIsDraft2020JSON(t *testing.T) {
	for _, name := range schemaNames() {
		var doc map[string]any
		if err := json.Unmarshal(schemas[name], &doc); err != nil {
			t.Errorf("schema %s is not JSON: %v", name, err)
			continue
		}
		if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("schema %s: $schema = %v, want draft 2020-12", name, doc["$schema"])
		}
	}
}

func TestSchemaUnknownNameExitsInvalid(t *testing.T) {
	if code := run([]string{"schema", "no-such-schema"}); code != exitInvalid {
		t.Fatalf("exit code = %d, want %d", code, exitInvalid)
	}
}
