// Package schemaval compiles agentgate's embedded JSON Schemas (draft
// 2020-12, formats asserted) once per process, for the packages that
// validate the documents they read and write against them.
package schemaval

import (
	"bytes"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Once returns a function that compiles doc, registered under id, on its
// first call and returns the same schema (or error) on every call.
func Once(id string, doc []byte) func() (*jsonschema.Schema, error) {
	return sync.OnceValues(func() (*jsonschema.Schema, error) {
		parsed, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
		if err != nil {
			return nil, err
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		c.AssertFormat()
		if err := c.AddResource(id, parsed); err != nil {
			return nil, err
		}
		return c.Compile(id)
	})
}
