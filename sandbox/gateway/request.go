package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/tiktoken-go/tokenizer"
)

// callRequest is what the gateway learned from a request body, and the body
// it will forward (with the output bound and, for Chat Completions streams,
// include_usage added).
type callRequest struct {
	API            API
	Model          string
	Stream         bool
	MaxOutput      int64 // as requested, or injected
	Injected       bool  // the gateway injected the output bound
	N              int64
	Deterministic  bool // temperature is explicitly 0
	ServerState    bool // Responses previous_response_id / conversation: prompt held by the provider
	InputTokens    int64
	Body           []byte
	fields         map[string]json.RawMessage
	textForCount   []string
	imageLikeCount int64
}

// errBadRequest wraps errors that are the client's fault (400).
type errBadRequest struct{ msg string }

func (e errBadRequest) Error() string { return e.msg }

func badRequest(format string, a ...any) error { return errBadRequest{fmt.Sprintf(format, a...)} }

// parseCall decodes a request body of the given API. It fails on anything a
// provider would also reject before charging: malformed JSON, a body that is
// not an object, a missing or non-string model.
func parseCall(api API, body []byte) (*callRequest, error) {
	c := &callRequest{API: api, N: 1}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&c.fields); err != nil {
		return nil, badRequest("the request body is not a JSON object: %v", err)
	}
	if dec.More() {
		return nil, badRequest("the request body has trailing data after the JSON object")
	}
	if c.fields == nil {
		return nil, badRequest("the request body is not a JSON object")
	}
	raw, ok := c.fields["model"]
	if !ok {
		return nil, badRequest("the request has no model")
	}
	if err := json.Unmarshal(raw, &c.Model); err != nil || strings.TrimSpace(c.Model) == "" {
		return nil, badRequest("the request's model must be a non-empty string")
	}
	if v, ok := c.fields["stream"]; ok {
		if err := json.Unmarshal(v, &c.Stream); err != nil {
			return nil, badRequest("stream must be a boolean")
		}
	}
	maxField := map[API][]string{
		APIChat:      {"max_completion_tokens", "max_tokens"},
		APIResponses: {"max_output_tokens"},
		APIMessages:  {"max_tokens"},
	}[api]
	for _, f := range maxField {
		if v, ok := c.fields[f]; ok && string(v) != "null" {
			var n int64
			if err := json.Unmarshal(v, &n); err != nil || n <= 0 {
				return nil, badRequest("%s must be a positive integer", f)
			}
			if c.MaxOutput == 0 || n < c.MaxOutput {
				c.MaxOutput = n
			}
		}
	}
	if v, ok := c.fields["n"]; ok && api == APIChat && string(v) != "null" {
		if err := json.Unmarshal(v, &c.N); err != nil || c.N < 1 || c.N > 128 {
			return nil, badRequest("n must be an integer between 1 and 128")
		}
	}
	if v, ok := c.fields["temperature"]; ok {
		var t float64
		if err := json.Unmarshal(v, &t); err != nil || math.IsNaN(t) {
			return nil, badRequest("temperature must be a number")
		}
		c.Deterministic = t == 0
	}
	if api == APIResponses {
		for _, f := range []string{"previous_response_id", "conversation"} {
			if v, ok := c.fields[f]; ok && string(v) != "null" && string(v) != `""` {
				c.ServerState = true
			}
		}
	}
	for _, f := range []string{"messages", "input", "instructions", "system", "prompt"} {
		if v, ok := c.fields[f]; ok {
			var x any
			if err := json.Unmarshal(v, &x); err != nil {
				return nil, badRequest("%s is not valid JSON", f)
			}
			c.collect("", x)
		}
	}
	// Tool and output schemas are counted as their raw JSON: an upper bound
	// of how the provider renders them into the prompt.
	for _, f := range []string{"tools", "functions", "tool_choice", "response_format", "text"} {
		if v, ok := c.fields[f]; ok {
			c.textForCount = append(c.textForCount, string(v))
		}
	}
	return c, nil
}

// imageTokens is what one inline image (a data: URL or base64 source) is
// counted as, instead of tokenizing its base64 text: above what OpenAI's
// high-detail tiling and Anthropic's 1.15-megapixel limit produce.
const imageTokens = 2000

// collect gathers the strings of a prompt for counting. Inline images are
// counted as imageTokens each.
func (c *callRequest) collect(key string, x any) {
	switch v := x.(type) {
	case string:
		if (key == "data" && len(v) > 256) || strings.HasPrefix(v, "data:image/") {
			c.imageLikeCount++
			return
		}
		c.textForCount = append(c.textForCount, v)
	case []any:
		for _, e := range v {
			c.collect(key, e)
		}
	case map[string]any:
		c.textForCount = append(c.textForCount, "\n") // per-message framing overhead, counted below
		for k, e := range v {
			if k == "type" || k == "role" || k == "cache_control" {
				continue
			}
			c.collect(k, e)
		}
	}
}

// setField replaces a top-level field of the body.
func (c *callRequest) setField(name string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called with plain values
	}
	c.fields[name] = b
}

// finalize applies the gateway's changes and renders the body to forward.
// defaultMax bounds the output when the client did not; openAIMaxField
// names the field an OpenAI-format upstream understands.
func (c *callRequest) finalize(defaultMax int64, maxField string) error {
	if c.MaxOutput == 0 {
		c.MaxOutput, c.Injected = defaultMax, true
		switch c.API {
		case APIChat:
			c.setField(maxField, defaultMax)
		case APIResponses:
			c.setField("max_output_tokens", defaultMax)
		case APIMessages:
			c.setField("max_tokens", defaultMax)
		}
	}
	if c.API == APIChat && c.Stream {
		opts := map[string]json.RawMessage{}
		if v, ok := c.fields["stream_options"]; ok && string(v) != "null" {
			if err := json.Unmarshal(v, &opts); err != nil {
				return badRequest("stream_options must be an object")
			}
		}
		opts["include_usage"] = json.RawMessage("true")
		c.setField("stream_options", opts)
	}
	b, err := json.Marshal(c.fields)
	if err != nil {
		return badRequest("the request body cannot be re-encoded: %v", err)
	}
	c.Body = b
	return nil
}

// setModel replaces the model (degrade to local).
func (c *callRequest) setModel(m string) {
	c.Model = m
	c.setField("model", m)
}

var (
	codecOnce sync.Once
	codecs    map[string]tokenizer.Codec
	codecErr  error
)

func codec(name string) (tokenizer.Codec, error) {
	codecOnce.Do(func() {
		codecs = map[string]tokenizer.Codec{}
		for _, enc := range []tokenizer.Encoding{tokenizer.O200kBase, tokenizer.Cl100kBase} {
			cd, err := tokenizer.Get(enc)
			if err != nil {
				codecErr = err
				return
			}
			codecs[string(enc)] = cd
		}
	})
	if codecErr != nil {
		return nil, codecErr
	}
	cd, ok := codecs[name]
	if !ok {
		return nil, fmt.Errorf("no offline tokenizer %q", name)
	}
	return cd, nil
}

// countTokens counts text with the named encoding; with an empty name it
// uses o200k_base and multiplies by margin (providers without an offline
// tokenizer). Each framing marker counts 4 tokens, as OpenAI's chat format
// spends per message.
func countTokens(encoding string, margin float64, texts []string, images int64) (int64, error) {
	name := encoding
	if name == "" {
		name = string(tokenizer.O200kBase)
	}
	cd, err := codec(name)
	if err != nil {
		return 0, err
	}
	var n int64 = 3
	for _, s := range texts {
		if s == "\n" {
			n += 4
			continue
		}
		k, err := tokenCounts.count(name, cd, s)
		if err != nil {
			return 0, err
		}
		n += int64(k)
	}
	if encoding == "" {
		if margin < 1 {
			margin = 1
		}
		n = int64(math.Ceil(float64(n) * margin))
	}
	return n + images*imageTokens, nil
}

// outputTokensOf counts the output text a cut stream delivered.
func outputTokensOf(encoding string, margin float64, m *meter) int64 {
	m.decodeKept()
	n, err := countTokens(encoding, margin, []string{m.text.String()}, 0)
	if err != nil {
		n = m.textBytes // one token per byte is a hard upper bound for byte-level BPE
	}
	n -= 3
	// Text beyond what was kept is counted at one token per byte.
	if extra := m.textBytes - int64(m.text.Len()); extra > 0 {
		n += extra
	}
	return max(n, 0)
}

// tokenCounts remembers the token counts of texts seen before. An agent
// re-sends its whole conversation (system prompt, tool definitions, earlier
// turns) with every call, so after the first call only the new turns are
// tokenized. Texts are keyed by their SHA-256 (no text is kept), short ones
// are not cached (counting them is cheaper than hashing), and the cache is
// bounded: when full it is emptied.
var tokenCounts = &countCache{m: map[countKey]int{}}

const (
	countCacheMin     = 256  // bytes: shorter texts are counted every time
	countCacheEntries = 8192 // entries kept at most
)

type countKey struct {
	enc string
	sum [sha256.Size]byte
}

type countCache struct {
	mu sync.Mutex
	m  map[countKey]int
}

func (c *countCache) count(enc string, cd tokenizer.Codec, s string) (int, error) {
	if len(s) < countCacheMin {
		return cd.Count(s)
	}
	k := countKey{enc: enc, sum: sha256.Sum256([]byte(s))}
	c.mu.Lock()
	n, ok := c.m[k]
	c.mu.Unlock()
	if ok {
		return n, nil
	}
	n, err := cd.Count(s)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	if len(c.m) >= countCacheEntries {
		clear(c.m)
	}
	c.m[k] = n
	c.mu.Unlock()
	return n, nil
}
