package manifest_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentgate/agentgate/gate/manifest"
)

func TestNewManifestIsAllUnknownAndValid(t *testing.T) {
	m := manifest.New(manifest.Producer{Name: "agentgate check", Version: "v1"})
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for k, v := range doc {
		if k == "manifest_version" || k == "producer" {
			continue
		}
		u, ok := v.(map[string]any)
		if !ok || u["unknown"] != "not recorded by agentgate check" {
			t.Errorf("%s = %v; want unknown", k, v)
		}
	}
}

func TestKnownFieldsRoundTrip(t *testing.T) {
	m := manifest.New(manifest.Producer{Name: "sandbox", Version: "v1"})
	start := time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC)
	m.Agent = manifest.Known(manifest.Agent{ID: "agent-7", Model: "m"})
	m.FRIDs = manifest.Known([]string{"FR-1", "FR-2"})
	m.FilesRead = manifest.Known([]string(nil)) // known to be none
	m.StartedAt = manifest.Known(start)
	m.StopReason = manifest.Known("")
	m.Diff = manifest.Known(manifest.DiffSummary{Base: strings.Repeat("a", 40), Head: strings.Repeat("b", 40), FilesChanged: 2, Insertions: 10})
	m.Cost = manifest.Unknown[manifest.Cost]("the gateway was not used")
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"files_read": []`)) {
		t.Fatalf("known empty list not written as []:\n%s", b)
	}
	got, err := manifest.Load(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := got.Agent.Get(); !ok || a.ID != "agent-7" {
		t.Errorf("agent %+v %v", a, ok)
	}
	if s, ok := got.StartedAt.Get(); !ok || !s.Equal(start) {
		t.Errorf("started_at %v %v", s, ok)
	}
	if _, ok := got.Cost.Get(); ok || got.Cost.Reason() != "the gateway was not used" {
		t.Errorf("cost reason %q", got.Cost.Reason())
	}
	if s, ok := got.StopReason.Get(); !ok || s != "" {
		t.Errorf("stop reason %q %v", s, ok)
	}
}

func TestLoadRejectsBadManifests(t *testing.T) {
	good, _ := manifest.New(manifest.Producer{Name: "p", Version: "v"}).Marshal()
	var base map[string]any
	_ = json.Unmarshal(good, &base)
	mut := func(f func(m map[string]any)) []byte {
		c := map[string]any{}
		for k, v := range base {
			c[k] = v
		}
		f(c)
		b, _ := json.Marshal(c)
		return b
	}
	cases := map[string][]byte{
		"not json":          []byte("{"),
		"missing field":     mut(func(m map[string]any) { delete(m, "agent") }),
		"empty reason":      mut(func(m map[string]any) { m["agent"] = map[string]any{"unknown": ""} }),
		"extra field":       mut(func(m map[string]any) { m["invented"] = 1 }),
		"bad stop code":     mut(func(m map[string]any) { m["stop_reason"] = "halt" }),
		"negative tokens":   mut(func(m map[string]any) { m["token_usage"] = map[string]any{"input": -1, "output": 0} }),
		"unknown plus data": mut(func(m map[string]any) { m["cost"] = map[string]any{"unknown": "x", "spent_usd": 1} }),
		"wrong version":     mut(func(m map[string]any) { m["manifest_version"] = "v0" }),
		"trailing data":     append(append([]byte{}, good...), []byte(" {}")...),
		"huge":              bytes.Repeat([]byte(" "), manifest.MaxSize+2),
	}
	for name, data := range cases {
		if _, err := manifest.Load(bytes.NewReader(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzLoad(f *testing.F) {
	good, _ := manifest.New(manifest.Producer{Name: "p", Version: "v"}).Marshal()
	f.Add(good)
	f.Add([]byte(`{"agent":{"unknown":"x"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := manifest.Load(bytes.NewReader(data))
		if err != nil {
			return
		}
		if _, err := m.Marshal(); err != nil {
			t.Fatalf("loaded manifest does not re-marshal: %v", err)
		}
	})
}
