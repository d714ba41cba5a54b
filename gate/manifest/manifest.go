package manifest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/agentgate/agentgate/internal/schemaval"
)

// Version is written as manifest_version.
const Version = "agentgate.dev/manifest/v1"

// FileName is the conventional file name.
const FileName = "manifest.json"

// SchemaID is the $id of Schema.
const SchemaID = "https://agentgate.dev/schemas/v1/manifest.schema.json"

// MaxSize caps Load.
const MaxSize = 16 << 20

// Schema is the JSON Schema (draft 2020-12) of manifest.json.
//
//go:embed manifest.schema.json
var Schema []byte

// Field is a value that is either known or unknown with a reason. The zero
// Field is unknown ("not recorded").
type Field[T any] struct {
	value  T
	known  bool
	reason string
}

// Known returns a known field.
func Known[T any](v T) Field[T] { return Field[T]{value: v, known: true} }

// Unknown returns an unknown field with a reason.
func Unknown[T any](reason string) Field[T] { return Field[T]{reason: reason} }

// Get returns the value and whether it is known.
func (f Field[T]) Get() (T, bool) { return f.value, f.known }

// Reason is why the field is unknown ("" when known).
func (f Field[T]) Reason() string {
	if f.known {
		return ""
	}
	if f.reason == "" {
		return "not recorded"
	}
	return f.reason
}

type unknownJSON struct {
	Unknown string `json:"unknown"`
}

// MarshalJSON writes the value, or {"unknown": reason}.
func (f Field[T]) MarshalJSON() ([]byte, error) {
	if !f.known {
		return json.Marshal(unknownJSON{Unknown: f.Reason()})
	}
	b, err := json.Marshal(f.value)
	if err == nil && string(b) == "null" && reflect.ValueOf(&f.value).Elem().Kind() == reflect.Slice {
		return []byte("[]"), nil // a known empty list, not an absent one
	}
	return b, err
}

// UnmarshalJSON reads either form.
func (f *Field[T]) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var u unknownJSON
		if err := dec.Decode(&u); err == nil && u.Unknown != "" {
			*f = Unknown[T](u.Unknown)
			return nil
		}
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = Known(v)
	return nil
}

// Agent identifies the agent that ran.
type Agent struct {
	ID      string `json:"id"`                // e.g. the agent's git identity or bot login
	Name    string `json:"name,omitempty"`    // product, e.g. "claude-code"
	Model   string `json:"model,omitempty"`   // model id used
	Version string `json:"version,omitempty"` // agent software version
}

// Plan identifies the WORK_PLAN.json the run was bound to.
type Plan struct {
	ID     string `json:"id"`
	Path   string `json:"path,omitempty"`
	SHA256 string `json:"sha256"`
}

// DiffSummary summarises the change from merge base to head.
type DiffSummary struct {
	Base         string `json:"base"`
	Head         string `json:"head"`
	FilesChanged int    `json:"files_changed"`
	Insertions   int    `json:"insertions"`
	Deletions    int    `json:"deletions"`
	Binary       int    `json:"binary_files,omitempty"`
}

// ExternalCall is one call that left the sandbox (an LLM API through the
// gateway, an allowed host).
type ExternalCall struct {
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`   // "llm", "http"
	Target   string    `json:"target"` // provider/model or host
	Outcome  string    `json:"outcome,omitempty"`
	CostNano int64     `json:"cost_nano_usd,omitempty"`
}

// Tokens counts LLM tokens.
type Tokens struct {
	Input      int64 `json:"input"`
	Output     int64 `json:"output"`
	CacheRead  int64 `json:"cache_read,omitempty"`
	CacheWrite int64 `json:"cache_write,omitempty"`
}

// Cost is cumulative spend against the budget.
type Cost struct {
	SpentUSD  float64 `json:"spent_usd"`
	BudgetUSD float64 `json:"budget_usd"`
	Ratio     float64 `json:"ratio"`
}

// Iteration is one agent iteration's progress.
type Iteration struct {
	N        int       `json:"n"`
	At       time.Time `json:"at,omitzero"`
	Progress float64   `json:"progress_score"`
	Note     string    `json:"note,omitempty"`
}

// Producer names what wrote the manifest.
type Producer struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Manifest is manifest.json.
type Manifest struct {
	Version       string                `json:"manifest_version"`
	Producer      Producer              `json:"producer"`
	RunID         Field[string]         `json:"run_id"`
	Agent         Field[Agent]          `json:"agent"`
	FRIDs         Field[[]string]       `json:"fr_ids"`
	Plan          Field[Plan]           `json:"work_plan"`
	StartedAt     Field[time.Time]      `json:"started_at"`
	EndedAt       Field[time.Time]      `json:"ended_at"`
	FilesRead     Field[[]string]       `json:"files_read"`
	FilesWritten  Field[[]string]       `json:"files_written"`
	Diff          Field[DiffSummary]    `json:"diff"`
	ExternalCalls Field[[]ExternalCall] `json:"external_calls"`
	TokenUsage    Field[Tokens]         `json:"token_usage"`
	Cost          Field[Cost]           `json:"cost"`
	Iterations    Field[[]Iteration]    `json:"iterations"`
	ExitCondition Field[string]         `json:"exit_condition"`
	StopReason    Field[string]         `json:"stop_reason"` // "" when the run did not stop
}

// New returns a manifest with every field unknown, each with the reason
// "not recorded by <producer>".
func New(p Producer) *Manifest {
	r := "not recorded by " + p.Name
	return &Manifest{
		Version: Version, Producer: p,
		RunID: Unknown[string](r), Agent: Unknown[Agent](r), FRIDs: Unknown[[]string](r), Plan: Unknown[Plan](r),
		StartedAt: Unknown[time.Time](r), EndedAt: Unknown[time.Time](r),
		FilesRead: Unknown[[]string](r), FilesWritten: Unknown[[]string](r), Diff: Unknown[DiffSummary](r),
		ExternalCalls: Unknown[[]ExternalCall](r), TokenUsage: Unknown[Tokens](r), Cost: Unknown[Cost](r),
		Iterations: Unknown[[]Iteration](r), ExitCondition: Unknown[string](r), StopReason: Unknown[string](r),
	}
}

// Marshal writes the manifest as indented JSON with a trailing newline,
// after checking it against Schema.
func (m *Manifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("manifest: encode: %w", err)
	}
	if err := Validate(b); err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Load reads and validates a manifest.
func Load(r io.Reader) (*Manifest, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("manifest: read: %w", err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("manifest: larger than %d bytes", MaxSize)
	}
	if err := Validate(data); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: decode: %w", err)
	}
	if dec.More() {
		return nil, errors.New("manifest: trailing data after the JSON object")
	}
	return &m, nil
}

var compiled = schemaval.Once(SchemaID, Schema)

// Validate checks a manifest document against Schema.
func Validate(data []byte) error {
	s, err := compiled()
	if err != nil {
		return fmt.Errorf("manifest: embedded schema: %w", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("manifest: not valid JSON: %w", err)
	}
	if err := s.Validate(doc); err != nil {
		return fmt.Errorf("manifest: does not match its schema: %w", err)
	}
	return nil
}
