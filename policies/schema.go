package policies

import (
	"bytes"
	"embed"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"go.yaml.in/yaml/v3"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

//go:embed schemas/*.schema.json
var schemaFS embed.FS

// Schema names, as printed by `agentgate schema NAME`.
const (
	SchemaWorkPlan     = "work-plan"
	SchemaThread       = "thread"
	SchemaRequirements = "requirements"
	SchemaPolicy       = "policy"
)

// SchemaNames lists the embedded JSON Schemas (draft 2020-12).
func SchemaNames() []string {
	return []string{SchemaPolicy, SchemaRequirements, SchemaThread, SchemaWorkPlan}
}

// Schema returns the JSON Schema document called name, or nil if there is
// none. The caller may keep the slice; it is a copy.
func Schema(name string) []byte {
	if !slices.Contains(SchemaNames(), name) {
		return nil
	}
	b, err := schemaFS.ReadFile("schemas/" + name + ".schema.json")
	if err != nil {
		return nil
	}
	return b
}

// SchemaID returns the $id of a schema, e.g.
// https://agentgate.dev/schemas/v1/work-plan.schema.json.
func SchemaID(name string) string {
	return "https://agentgate.dev/schemas/v1/" + name + ".schema.json"
}

var compiledSchemas = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	out := map[string]*jsonschema.Schema{}
	for _, name := range SchemaNames() {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema(name)))
		if err != nil {
			return nil, fmt.Errorf("embedded schema %s: %w", name, err)
		}
		if err := c.AddResource(SchemaID(name), doc); err != nil {
			return nil, fmt.Errorf("embedded schema %s: %w", name, err)
		}
	}
	for _, name := range SchemaNames() {
		s, err := c.Compile(SchemaID(name))
		if err != nil {
			return nil, fmt.Errorf("embedded schema %s: %w", name, err)
		}
		out[name] = s
	}
	return out, nil
})

var printer = message.NewPrinter(language.English)

// schemaProblems validates the document against the named schema and
// returns one problem per failing leaf, located in the file.
func schemaProblems(name, file string, root *yaml.Node) Problems {
	var probs Problems
	schemas, err := compiledSchemas()
	if err != nil {
		// A broken embedded schema is a build defect; fail closed.
		probs.add(file, 0, 0, "", "internal error: %v", err)
		return probs
	}
	err = schemas[name].Validate(toGeneric(root))
	if err == nil {
		return nil
	}
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		probs.add(file, 0, 0, "", "schema validation failed: %v", err)
		return probs
	}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		n, _ := nodeAt(root, e.InstanceLocation)
		switch k := e.ErrorKind.(type) {
		case *kind.Required:
			for _, m := range k.Missing {
				probs.add(file, n.Line, n.Column, fieldPath(append(slices.Clone(e.InstanceLocation), m)), "required field is missing")
			}
		case *kind.AdditionalProperties:
			for _, p := range k.Properties {
				kn := keyAt(n, p)
				probs.add(file, kn.Line, kn.Column, fieldPath(append(slices.Clone(e.InstanceLocation), p)), "unknown field %q", p)
			}
		case *kind.Not:
			probs.add(file, n.Line, n.Column, fieldPath(e.InstanceLocation), "path must be repo-relative and clean: no leading '/', no drive letter, no '..', no backslashes")
		default:
			msg := e.ErrorKind.LocalizedString(printer)
			probs.add(file, n.Line, n.Column, fieldPath(e.InstanceLocation), "%s", strings.TrimSpace(msg))
		}
	}
	walk(ve)
	return probs
}

// merge combines the decoder's and the semantic checks' problems with the
// schema's, keeping a schema problem only when nothing else already
// reported on that field (the decoder's messages are more precise).
func merge(primary Problems, schema Problems) Problems {
	seen := map[string]bool{}
	for _, p := range primary {
		seen[p.Field] = true
	}
	out := slices.Clone(primary)
	for _, p := range schema {
		if !seen[p.Field] {
			out = append(out, p)
		}
	}
	out = out.Sort()
	if len(out) > maxProblemsPerFile {
		more := len(out) - maxProblemsPerFile
		out = append(out[:maxProblemsPerFile:maxProblemsPerFile], Problem{File: out[0].File,
			Message: fmt.Sprintf("%d more problems not shown; fix the ones above first", more)})
	}
	return out
}

// maxProblemsPerFile bounds the report for one file (a hostile 1 MiB file
// can hold hundreds of thousands of unknown keys).
const maxProblemsPerFile = 200
