package report

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/agentgate/agentgate/internal/schemaval"
)

// Schema is the JSON Schema (draft 2020-12) of report.json.
//
//go:embed report.schema.json
var Schema []byte

// SchemaID is the $id of Schema.
const SchemaID = "https://agentgate.dev/schemas/v1/report.schema.json"

var compiled = schemaval.Once(SchemaID, Schema)

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
