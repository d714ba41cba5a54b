package schemaval

import (
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

const id = "https://agentgate.dev/schemas/test.schema.json"

func TestOnceCompilesAndValidates(t *testing.T) {
	get := Once(id, []byte(`{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["a"],"properties":{"a":{"type":"string","format":"date"}}}`))
	s, err := get()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := get()
	if s != again {
		t.Fatal("the schema was compiled twice")
	}
	for doc, ok := range map[string]bool{`{"a":"2026-11-26"}`: true, `{}`: false, `{"a":"yesterday"}`: false} {
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(v); (err == nil) != ok {
			t.Errorf("%s: valid=%v, want %v (%v)", doc, err == nil, ok, err)
		}
	}
}

func TestOnceReportsABrokenSchema(t *testing.T) {
	if _, err := Once(id, []byte(`{"type": 7}`))(); err == nil {
		t.Fatal("a schema with type 7 compiled")
	}
	if _, err := Once(id, []byte(`not json`))(); err == nil {
		t.Fatal("a non-JSON schema compiled")
	}
}
