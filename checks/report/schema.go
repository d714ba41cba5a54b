package report

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Schema is the JSON Schema (draft 2020-12) of report.json.
//
//go:embed report.schema.json
var Schema []byte

// SchemaID is the $id of Schema.
const SchemaID = "https://agentgate.dev/schemas/v1/report.schema.json"

var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(SchemaID, doc); err != nil {
		return nil, err
	}
	return c.Compile(SchemaID)
})

// Validate checks a report.json document against Schema.
func Validate(data []byte) error {
	s, err := compiled()
	if err != nil {
		return fmt.Errorf("embedded report schema: %w", err)
	}
	if !json.Valid(data) {
		return fmt.Errorf("report is not valid JSON")
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("report is not valid JSON: %w", err)
	}
	if err := s.Validate(doc); err != nil {
		return fmt.Errorf("report does not match its schema: %w", err)
	}
	return nil
}
