package gateway

import (
	"strings"
	"testing"
)

// feed sends a body to a meter split at every boundary in turn: usage must
// not depend on how the network chunks the stream.
func feedAllSplits(t *testing.T, api API, body string, check func(*meter)) {
	t.Helper()
	for cut := 0; cut <= len(body); cut++ {
		m := newMeter(api, true)
		m.observe([]byte(body[:cut]))
		m.observe([]byte(body[cut:]))
		m.finish()
		check(m)
		if t.Failed() {
			t.Fatalf("split at %d", cut)
		}
	}
	// Byte by byte.
	m := newMeter(api, true)
	for i := 0; i < len(body); i++ {
		m.observe([]byte{body[i]})
	}
	m.finish()
	check(m)
}

func TestSSEUsageWhereEachProviderPutsIt(t *testing.T) {
	cases := []struct {
		name string
		api  API
		body string
		want TokenUsage
		term bool
	}{
		{"chat include_usage chunk before [DONE], CRLF framing", APIChat,
			"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\r\n\r\n" +
				"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":120,\"completion_tokens\":30,\"prompt_tokens_details\":{\"cached_tokens\":100},\"completion_tokens_details\":{\"reasoning_tokens\":12}}}\r\n\r\n" +
				"data: [DONE]\r\n\r\n",
			TokenUsage{Input: 120, CachedInput: 100, Output: 30, Reasoning: 12}, true},
		{"responses usage in response.completed, no [DONE]", APIResponses,
			"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"x\"}\n\n" +
				": keep-alive comment\n\n" +
				"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":50,\"input_tokens_details\":{\"cached_tokens\":10},\"output_tokens\":7,\"output_tokens_details\":{\"reasoning_tokens\":3}}}}\n\n",
			TokenUsage{Input: 50, CachedInput: 10, Output: 7, Reasoning: 3}, true},
		{"responses incomplete still carries usage", APIResponses,
			"data: {\"type\":\"response.incomplete\",\"response\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":9}}}\n\n",
			TokenUsage{Input: 5, Output: 9}, true},
		{"anthropic: input from message_start, last cumulative output, 1h cache writes", APIMessages,
			"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":300,\"cache_read_input_tokens\":2000,\"cache_creation\":{\"ephemeral_5m_input_tokens\":100,\"ephemeral_1h_input_tokens\":200},\"output_tokens\":1}}}\n\n" +
				"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":40}}\n\n" +
				"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":90}}\n\n" +
				"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
			TokenUsage{Input: 2310, CachedInput: 2000, CacheWrite5m: 100, CacheWrite1h: 200, Output: 90}, true},
		{"multi-line data joined", APIChat,
			"data: {\"choices\":[],\ndata: \"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\ndata: [DONE]\n",
			TokenUsage{Input: 3, Output: 4}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			feedAllSplits(t, c.api, c.body, func(m *meter) {
				if !m.haveUsage || m.usage != c.want || m.terminal != c.term {
					t.Errorf("usage %+v have %v terminal %v, want %+v", m.usage, m.haveUsage, m.terminal, c.want)
				}
			})
		})
	}
}

func TestSSEHostileInputIsBounded(t *testing.T) {
	m := newMeter(APIChat, true)
	huge := "data: " + strings.Repeat("x", maxSSELine+10)
	m.observe([]byte(huge))
	m.observe([]byte("\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n"))
	m.finish()
	if !m.haveUsage || m.usage.Output != 2 || len(m.line) != 0 {
		t.Fatalf("after an oversized line: %+v", m.usage)
	}
	m = newMeter(APIChat, false)
	m.observe(make([]byte, maxCapturedJSON+1))
	m.finish()
	if m.haveUsage || m.body.Len() != 0 || !m.overflow {
		t.Fatal("an oversized body must be dropped, not buffered")
	}
	for _, junk := range []string{"data: {\n\n", "data: [1,2]\n\n", "data: {\"usage\":{\"prompt_tokens\":\"x\"}}\n\n", "\x00\xff\n\n"} {
		m := newMeter(APIMessages, true)
		m.observe([]byte(junk))
		m.finish()
		if m.haveUsage {
			t.Errorf("%q produced usage", junk)
		}
	}
}

func FuzzMeterSSE(f *testing.F) {
	f.Add("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n", uint8(0), 7)
	f.Add("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}}\n\n", uint8(2), 3)
	f.Add("data: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":9}}}\r\n\r\n", uint8(1), 1)
	f.Fuzz(func(t *testing.T, body string, apiSel uint8, split int) {
		api := []API{APIChat, APIResponses, APIMessages}[int(apiSel)%3]
		whole := newMeter(api, true)
		whole.observe([]byte(body))
		whole.finish()
		if split < 0 {
			split = -split
		}
		split %= len(body) + 1
		parts := newMeter(api, true)
		parts.observe([]byte(body[:split]))
		parts.observe([]byte(body[split:]))
		parts.finish()
		if whole.usage != parts.usage || whole.haveUsage != parts.haveUsage || whole.terminal != parts.terminal {
			t.Fatalf("chunking changed the result: %+v vs %+v", whole.usage, parts.usage)
		}
		if whole.usage.Input < 0 && whole.haveUsage {
			// Negative counts are priced as an error, never as a credit.
			if _, err := (Price{Provider: ProviderOpenAI, Rates: Rates{Input: 1, CachedInput: 1, Output: 1}, MaxInputTokens: 10, MaxOutputTokens: 10}).Cost(whole.usage); err == nil {
				t.Fatal("negative usage priced")
			}
		}
	})
}
