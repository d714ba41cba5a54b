package gateway

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
)

//go:embed prices/prices.json
var builtinPrices []byte

// Provider API families.
const (
	ProviderOpenAI    = "openai"
	ProviderAnthropic = "anthropic"
	ProviderLocal     = "local"
)

// longContextThreshold is where providers switch to their long-context tier.
const longContextThreshold = 200_000

// Rates are integer nano-USD per token.
type Rates struct {
	Input        int64 `json:"input"`
	CachedInput  int64 `json:"cached_input"`
	CacheWrite5m int64 `json:"cache_write_5m,omitempty"`
	CacheWrite1h int64 `json:"cache_write_1h,omitempty"`
	Output       int64 `json:"output"`
}

// Price is one model's entry of the price table.
type Price struct {
	Provider  string `json:"provider"`
	Tokenizer string `json:"tokenizer,omitempty"` // offline tokenizer encoding; empty: estimate with a margin
	Rates
	MaxInputTokens  int64  `json:"max_input_tokens"`
	MaxOutputTokens int64  `json:"max_output_tokens"`
	Above200k       *Rates `json:"above_200k,omitempty"`
}

// PriceTable is the versioned price data file.
type PriceTable struct {
	Version string            `json:"version"`
	Unit    string            `json:"unit"`
	Source  string            `json:"source"`
	Models  map[string]Price  `json:"models"`
	Aliases map[string]string `json:"aliases,omitempty"`
}

// BuiltinPrices returns the price table compiled into this binary.
func BuiltinPrices() *PriceTable {
	t, err := ParsePrices(builtinPrices)
	if err != nil {
		panic("gateway: the embedded price table is invalid: " + err.Error())
	}
	return t
}

// ParsePrices decodes and validates a price table. Prices must be
// non-negative whole nano-dollars; a model must carry every rate its
// provider's cost formula needs.
func ParsePrices(data []byte) (*PriceTable, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var t PriceTable
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("price table: %w (prices are whole nano-USD per token: USD per 1M tokens x 1000)", err)
	}
	if t.Version == "" {
		return nil, errors.New("price table: missing version")
	}
	if len(t.Models) == 0 {
		return nil, errors.New("price table: no models")
	}
	for name, p := range t.Models {
		if err := p.validate(); err != nil {
			return nil, fmt.Errorf("price table: model %q: %w", name, err)
		}
	}
	for alias, target := range t.Aliases {
		if _, ok := t.Models[target]; !ok {
			return nil, fmt.Errorf("price table: alias %q points to unknown model %q", alias, target)
		}
		if _, ok := t.Models[alias]; ok {
			return nil, fmt.Errorf("price table: %q is both a model and an alias", alias)
		}
	}
	return &t, nil
}

func (r Rates) validate(provider string) error {
	for _, v := range []int64{r.Input, r.CachedInput, r.CacheWrite5m, r.CacheWrite1h, r.Output} {
		if v < 0 {
			return errors.New("negative price")
		}
	}
	if r.Input == 0 || r.Output == 0 {
		return errors.New("input and output prices are required (a paid model is never priced at zero)")
	}
	if r.CachedInput == 0 {
		return errors.New("cached_input price is required")
	}
	if provider == ProviderAnthropic && (r.CacheWrite5m == 0 || r.CacheWrite1h == 0) {
		return errors.New("anthropic models need cache_write_5m and cache_write_1h prices")
	}
	return nil
}

func (p Price) validate() error {
	switch p.Provider {
	case ProviderOpenAI, ProviderAnthropic:
	default:
		return fmt.Errorf("unknown provider %q (openai or anthropic)", p.Provider)
	}
	if err := p.Rates.validate(p.Provider); err != nil {
		return err
	}
	if p.Above200k != nil {
		if err := p.Above200k.validate(p.Provider); err != nil {
			return fmt.Errorf("above_200k: %w", err)
		}
	}
	if p.MaxOutputTokens <= 0 || p.MaxInputTokens <= 0 {
		return errors.New("max_input_tokens and max_output_tokens are required")
	}
	return nil
}

// Lookup finds a model by name or alias.
func (t *PriceTable) Lookup(model string) (Price, bool) {
	if p, ok := t.Models[model]; ok {
		return p, true
	}
	if target, ok := t.Aliases[model]; ok {
		p, ok := t.Models[target]
		return p, ok
	}
	return Price{}, false
}

// Names lists the models in order.
func (t *PriceTable) Names() []string {
	names := make([]string, 0, len(t.Models))
	for n := range t.Models {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ratesFor picks the tier for a prompt of inputTokens tokens. A prompt past
// 200k tokens on a model without a long-context price is refused rather
// than priced at the short-context rate.
func (p Price) ratesFor(inputTokens int64) (Rates, error) {
	if inputTokens > p.MaxInputTokens {
		return Rates{}, fmt.Errorf("the prompt (%d tokens) exceeds the model's %d-token context", inputTokens, p.MaxInputTokens)
	}
	if inputTokens > longContextThreshold && p.Provider == ProviderAnthropic {
		if p.Above200k == nil {
			return Rates{}, fmt.Errorf("the prompt (%d tokens) needs the long-context price, which the price table lacks", inputTokens)
		}
		return *p.Above200k, nil
	}
	return p.Rates, nil
}

// TokenUsage is a call's usage as the provider split it.
type TokenUsage struct {
	Input        int64 // every prompt token, including cached reads and cache writes
	CachedInput  int64 // cache reads
	CacheWrite5m int64
	CacheWrite1h int64
	Output       int64 // including reasoning
	Reasoning    int64
}

// Cost prices a usage. Each term is bounded before multiplying so that no
// hostile usage report can overflow int64.
func (p Price) Cost(u TokenUsage) (int64, error) {
	const maxTokens = 1 << 32
	for _, v := range []int64{u.Input, u.CachedInput, u.CacheWrite5m, u.CacheWrite1h, u.Output} {
		if v < 0 || v > maxTokens {
			return 0, fmt.Errorf("implausible token count %d in the usage report", v)
		}
	}
	r, err := p.ratesFor(u.Input)
	if err != nil && u.Input <= p.MaxInputTokens {
		return 0, err
	}
	if err != nil {
		r = p.Rates // the provider accepted it anyway: price what it reports
		if p.Above200k != nil {
			r = *p.Above200k
		}
	}
	plain := u.Input - u.CachedInput - u.CacheWrite5m - u.CacheWrite1h
	if plain < 0 {
		plain = 0
	}
	return plain*r.Input + u.CachedInput*r.CachedInput + u.CacheWrite5m*r.CacheWrite5m + u.CacheWrite1h*r.CacheWrite1h + u.Output*r.Output, nil
}

// WorstCase is the most a call can cost: every prompt token at the dearest
// input-side rate (a cache write costs more than plain input), plus
// maxOutput tokens of output for each of n choices.
func (p Price) WorstCase(inputTokens, maxOutput, n int64) (int64, error) {
	if n < 1 {
		n = 1
	}
	r, err := p.ratesFor(inputTokens)
	if err != nil {
		return 0, err
	}
	in := max(r.Input, r.CachedInput, r.CacheWrite5m, r.CacheWrite1h)
	out := float64(maxOutput) * float64(n) * float64(r.Output)
	total := float64(inputTokens)*float64(in) + out
	if total > math.MaxInt64/4 {
		return 0, errors.New("the worst-case cost overflows; lower max_tokens or n")
	}
	return inputTokens*in + maxOutput*n*r.Output, nil
}
