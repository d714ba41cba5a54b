package gateway

import (
	"strings"
	"testing"
)

func TestBuiltinPricesAreValidAndVersioned(t *testing.T) {
	p := BuiltinPrices()
	if p.Version == "" || len(p.Models) < 10 {
		t.Fatalf("table %s with %d models", p.Version, len(p.Models))
	}
	s, ok := p.Lookup("claude-sonnet-4-5-20250929")
	if !ok || s.Input != 3000 || s.CachedInput != 300 || s.CacheWrite5m != 3750 || s.Output != 15000 {
		t.Fatalf("sonnet via alias: %+v", s)
	}
	if _, ok := p.Lookup("gpt-4o-2099-01-01"); ok {
		t.Fatal("an unknown snapshot resolved")
	}
}

func TestParsePricesRejectsWhatCannotBePricedExactly(t *testing.T) {
	base := `{"version":"v1","models":{"m":{"provider":"openai","input":100,"cached_input":50,"output":400,"max_input_tokens":1000,"max_output_tokens":100}}%s}`
	bad := map[string]string{
		"fractional nano-dollars":  strings.Replace(base, `"input":100`, `"input":2.5`, 1),
		"negative price":           strings.Replace(base, `"output":400`, `"output":-1`, 1),
		"zero output price":        strings.Replace(base, `"output":400`, `"output":0`, 1),
		"missing cached price":     strings.Replace(base, `"cached_input":50,`, ``, 1),
		"unknown provider":         strings.Replace(base, `"openai"`, `"acme"`, 1),
		"unknown field (typo)":     strings.Replace(base, `"input":100`, `"imput":100`, 1),
		"no version":               strings.Replace(base, `"version":"v1",`, ``, 1),
		"anthropic without writes": strings.Replace(base, `"openai"`, `"anthropic"`, 1),
		"dangling alias":           strings.Replace(base, "%s", `,"aliases":{"x":"nope"}`, 1),
		"not JSON":                 `{`,
	}
	for name, doc := range bad {
		doc = strings.Replace(doc, "%s", "", 1)
		if _, err := ParsePrices([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParsePrices([]byte(strings.Replace(base, "%s", "", 1))); err != nil {
		t.Fatal(err)
	}
}

func TestCostAndWorstCase(t *testing.T) {
	sonnet, _ := BuiltinPrices().Lookup("claude-sonnet-4-5")
	// Worst case prices every prompt token at the dearest input-side rate.
	w, err := sonnet.WorstCase(1000, 100, 1)
	if err != nil || w != 1000*6000+100*15000 {
		t.Fatalf("worst %d %v", w, err)
	}
	// Long context switches tier, and is refused past the window.
	c, err := sonnet.Cost(TokenUsage{Input: 300_000, Output: 10})
	if err != nil || c != 300_000*6000+10*22500 {
		t.Fatalf("long-context cost %d %v", c, err)
	}
	haiku, _ := BuiltinPrices().Lookup("claude-haiku-4-5")
	if _, err := haiku.WorstCase(250_000, 10, 1); err == nil {
		t.Fatal("a prompt beyond the context window was priced")
	}
	gpt, _ := BuiltinPrices().Lookup("gpt-4o")
	if _, err := gpt.Cost(TokenUsage{Input: -5}); err == nil {
		t.Fatal("negative usage priced")
	}
	if c, _ := gpt.Cost(TokenUsage{Input: 100, CachedInput: 150}); c != 150*gpt.CachedInput {
		t.Fatalf("cached above input: %d", c)
	}
	if w, _ := gpt.WorstCase(10, 100, 3); w != 10*gpt.Input+300*gpt.Output {
		t.Fatalf("n=3 worst case %d", w)
	}
}
