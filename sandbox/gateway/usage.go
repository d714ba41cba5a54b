package gateway

import (
	"bytes"
	"encoding/json"
	"strings"
)

// API is the wire format of an endpoint.
type API string

// Supported endpoint formats.
const (
	APIChat      API = "chat"      // POST /v1/chat/completions (OpenAI and compatibles)
	APIResponses API = "responses" // POST /v1/responses (OpenAI)
	APIMessages  API = "messages"  // POST /v1/messages (Anthropic)
)

// Bounds on what the meter keeps from a response while it flows through.
const (
	maxSSELine      = 4 << 20 // one SSE line; longer lines are skipped, not buffered
	maxCapturedJSON = 8 << 20 // a non-streamed body parsed for its usage
	maxCapturedText = 1 << 20 // output text kept to price a cut stream
)

// meter watches a response's bytes as they are forwarded and extracts the
// provider's usage report. It never changes or delays the bytes.
type meter struct {
	api    API
	stream bool

	usage     TokenUsage
	haveUsage bool // the provider's final usage arrived
	sawInput  bool // the input side is known (Anthropic message_start)
	terminal  bool // the stream's terminal event arrived
	errEvent  bool // the stream carried an error event

	text      strings.Builder // output text so far, for a cut stream
	textBytes int64           // output text bytes seen, including what was not kept
	kept      [][]byte        // content events, decoded only if the stream is cut
	keptBytes int
	decoded   bool

	line     []byte // partial SSE line
	skipLine bool   // the current line is over maxSSELine
	data     []byte // data lines of the current SSE event
	body     bytes.Buffer
	overflow bool
}

func newMeter(api API, stream bool) *meter { return &meter{api: api, stream: stream} }

// observe is called with each chunk of the response body, in order.
func (m *meter) observe(p []byte) {
	if !m.stream {
		if m.body.Len()+len(p) > maxCapturedJSON {
			m.overflow = true
			return
		}
		m.body.Write(p)
		return
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			m.appendLine(p)
			return
		}
		m.appendLine(p[:i])
		if !m.skipLine {
			m.sseLine(bytes.TrimSuffix(m.line, []byte{'\r'}))
		}
		m.line, m.skipLine = m.line[:0], false
		p = p[i+1:]
	}
}

func (m *meter) appendLine(p []byte) {
	if m.skipLine {
		return
	}
	if len(m.line)+len(p) > maxSSELine {
		m.skipLine, m.line = true, m.line[:0]
		return
	}
	m.line = append(m.line, p...)
}

// sseLine handles one line of an event stream (text/event-stream framing:
// data lines accumulate, a blank line dispatches the event).
func (m *meter) sseLine(line []byte) {
	if len(line) == 0 {
		m.dispatch()
		return
	}
	if v, ok := bytes.CutPrefix(line, []byte("data:")); ok {
		v = bytes.TrimPrefix(v, []byte{' '})
		if len(m.data) > 0 {
			m.data = append(m.data, '\n')
		}
		if len(m.data)+len(v) <= maxSSELine {
			m.data = append(m.data, v...)
		}
	}
	// event:, id:, retry: and comments carry nothing we need: every payload
	// we parse names its own type.
}

func (m *meter) dispatch() {
	if len(m.data) == 0 {
		return
	}
	d := m.data
	m.data = m.data[:0]
	if bytes.Equal(d, []byte("[DONE]")) {
		m.terminal = true
		return
	}
	// Fast path: most events are content deltas that carry no usage. They
	// are kept raw and decoded only if the stream ends without usage.
	switch m.api {
	case APIChat:
		if hasUsageObject(d) || bytes.Contains(d, []byte(`"error"`)) {
			m.chatChunk(d)
			return
		}
	case APIResponses:
		if !bytes.Contains(d, []byte(`.delta"`)) {
			m.responsesEvent(d)
			return
		}
	case APIMessages:
		if !bytes.Contains(d, []byte(`"content_block_delta"`)) {
			m.messagesEvent(d)
			return
		}
	}
	m.keep(d)
}

// hasUsageObject reports whether a chunk may carry a usage object (not the
// "usage":null every OpenAI chunk has). Inside JSON strings quotes are
// escaped, so text cannot fake the key.
func hasUsageObject(d []byte) bool {
	i := bytes.Index(d, []byte(`"usage"`))
	if i < 0 {
		return false
	}
	rest := bytes.TrimLeft(d[i+len(`"usage"`):], " \t\r\n:")
	return !bytes.HasPrefix(rest, []byte("null"))
}

func (m *meter) keep(d []byte) {
	if m.keptBytes+len(d) > maxCapturedText {
		m.textBytes += int64(len(d)) // counted, not kept: one token per byte at most
		return
	}
	m.kept = append(m.kept, bytes.Clone(d))
	m.keptBytes += len(d)
}

// decodeKept extracts the output text of the kept content events.
func (m *meter) decodeKept() {
	if m.decoded {
		return
	}
	m.decoded = true
	for _, d := range m.kept {
		switch m.api {
		case APIChat:
			m.chatChunk(d)
		case APIResponses:
			m.responsesEvent(d)
		case APIMessages:
			m.messagesEvent(d)
		}
	}
	m.kept = nil
}

// finish flushes a last event that was not followed by a blank line and, for
// a non-streamed body, parses the usage.
func (m *meter) finish() {
	if m.stream {
		if len(m.line) > 0 && !m.skipLine {
			m.sseLine(bytes.TrimSuffix(m.line, []byte{'\r'}))
			m.line = m.line[:0]
		}
		m.dispatch()
		return
	}
	if m.overflow {
		return
	}
	b := m.body.Bytes()
	switch m.api {
	case APIChat:
		var r struct {
			Usage   *chatUsage `json:"usage"`
			Choices []struct {
				Message struct {
					Content string `json:"content"`
				} `json:"message"`
			} `json:"choices"`
		}
		if json.Unmarshal(b, &r) == nil {
			if r.Usage != nil {
				m.usage, m.haveUsage = r.Usage.tokens(), true
			}
			for _, c := range r.Choices {
				m.addText(c.Message.Content)
			}
		}
	case APIResponses:
		var r struct {
			Usage *responsesUsage `json:"usage"`
		}
		if json.Unmarshal(b, &r) == nil && r.Usage != nil {
			m.usage, m.haveUsage = r.Usage.tokens(), true
		}
	case APIMessages:
		var r struct {
			Usage *anthropicUsage `json:"usage"`
		}
		if json.Unmarshal(b, &r) == nil && r.Usage != nil {
			m.usage, m.haveUsage = r.Usage.tokens(), true
		}
	}
}

func (m *meter) addText(s string) {
	m.textBytes += int64(len(s))
	if m.text.Len()+len(s) <= maxCapturedText {
		m.text.WriteString(s)
	}
}

type chatUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	PromptTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

func (u chatUsage) tokens() TokenUsage {
	return TokenUsage{Input: u.PromptTokens, CachedInput: u.PromptTokensDetails.CachedTokens,
		Output: u.CompletionTokens, Reasoning: u.CompletionTokensDetails.ReasoningTokens}
}

func (m *meter) chatChunk(d []byte) {
	var c struct {
		Choices []struct {
			Delta struct {
				Content   string `json:"content"`
				Reasoning string `json:"reasoning_content"`
				ToolCalls []struct {
					Function struct {
						Arguments string `json:"arguments"`
						Name      string `json:"name"`
					} `json:"function"`
				} `json:"tool_calls"`
			} `json:"delta"`
		} `json:"choices"`
		Usage *chatUsage      `json:"usage"`
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(d, &c) != nil {
		return
	}
	for _, ch := range c.Choices {
		m.addText(ch.Delta.Content)
		m.addText(ch.Delta.Reasoning)
		for _, tc := range ch.Delta.ToolCalls {
			m.addText(tc.Function.Name)
			m.addText(tc.Function.Arguments)
		}
	}
	if c.Usage != nil {
		m.usage, m.haveUsage = c.Usage.tokens(), true
	}
	if len(c.Error) > 0 && string(c.Error) != "null" {
		m.errEvent = true
	}
}

type responsesUsage struct {
	InputTokens        int64 `json:"input_tokens"`
	OutputTokens       int64 `json:"output_tokens"`
	InputTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
}

func (u responsesUsage) tokens() TokenUsage {
	return TokenUsage{Input: u.InputTokens, CachedInput: u.InputTokensDetails.CachedTokens,
		Output: u.OutputTokens, Reasoning: u.OutputTokensDetails.ReasoningTokens}
}

func (m *meter) responsesEvent(d []byte) {
	var e struct {
		Type     string `json:"type"`
		Delta    string `json:"delta"`
		Response struct {
			Usage *responsesUsage `json:"usage"`
		} `json:"response"`
	}
	if json.Unmarshal(d, &e) != nil {
		return
	}
	switch e.Type {
	case "response.completed", "response.incomplete", "response.failed":
		m.terminal = true
		if e.Response.Usage != nil {
			m.usage, m.haveUsage = e.Response.Usage.tokens(), true
		}
		if e.Type == "response.failed" {
			m.errEvent = true
		}
	case "error":
		m.errEvent = true
	default:
		if strings.HasSuffix(e.Type, ".delta") {
			m.addText(e.Delta)
		}
	}
}

type anthropicUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	CacheCreation            *struct {
		Ephemeral5m int64 `json:"ephemeral_5m_input_tokens"`
		Ephemeral1h int64 `json:"ephemeral_1h_input_tokens"`
	} `json:"cache_creation"`
}

// tokens normalises Anthropic's usage: its input_tokens excludes cache reads
// and writes, ours includes them.
func (u anthropicUsage) tokens() TokenUsage {
	t := TokenUsage{CachedInput: u.CacheReadInputTokens, Output: u.OutputTokens}
	if u.CacheCreation != nil && u.CacheCreation.Ephemeral5m+u.CacheCreation.Ephemeral1h == u.CacheCreationInputTokens {
		t.CacheWrite5m, t.CacheWrite1h = u.CacheCreation.Ephemeral5m, u.CacheCreation.Ephemeral1h
	} else {
		t.CacheWrite5m = u.CacheCreationInputTokens
	}
	t.Input = u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
	return t
}

func (m *meter) messagesEvent(d []byte) {
	var e struct {
		Type    string `json:"type"`
		Message struct {
			Usage *anthropicUsage `json:"usage"`
		} `json:"message"`
		Delta struct {
			Text        string `json:"text"`
			PartialJSON string `json:"partial_json"`
			Thinking    string `json:"thinking"`
		} `json:"delta"`
		Usage *anthropicUsage `json:"usage"`
	}
	if json.Unmarshal(d, &e) != nil {
		return
	}
	switch e.Type {
	case "message_start":
		if e.Message.Usage != nil {
			m.usage = e.Message.Usage.tokens()
			m.sawInput = true
		}
	case "content_block_delta":
		m.addText(e.Delta.Text)
		m.addText(e.Delta.PartialJSON)
		m.addText(e.Delta.Thinking)
	case "message_delta":
		if e.Usage != nil {
			// Output tokens are cumulative: keep the last, never add.
			m.usage.Output = e.Usage.OutputTokens
			// Newer API versions repeat the (cumulative) input side here.
			if e.Usage.InputTokens+e.Usage.CacheCreationInputTokens+e.Usage.CacheReadInputTokens > 0 {
				in := e.Usage.tokens()
				m.usage.Input, m.usage.CachedInput, m.usage.CacheWrite5m, m.usage.CacheWrite1h = in.Input, in.CachedInput, in.CacheWrite5m, in.CacheWrite1h
				m.sawInput = true
			}
			m.haveUsage = m.sawInput
		}
	case "message_stop":
		m.terminal = true
	case "error":
		m.errEvent = true
	}
}
