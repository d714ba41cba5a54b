package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// upstream is an httptest double of the OpenAI and Anthropic APIs. It
// answers like the providers do, including SSE streams with usage where
// each provider puts it, and records what it received.
type upstream struct {
	srv *httptest.Server

	mu       sync.Mutex
	bodies   []map[string]any
	headers  []http.Header
	calls    int
	status   int           // non-zero: answer every call with this error status
	cutAfter int           // >0: a stream stops (connection closed) after this many content events
	pace     time.Duration // pause between stream events
	hold     chan struct{} // non-nil: the stream waits for it before its last events

	// Usage reported: prompt and completion tokens, cached reads, cache writes.
	in, out, cached, cacheWrite int64
}

func newUpstream(t testing.TB) *upstream {
	u := &upstream{in: 1000, out: 200}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) received() (map[string]any, http.Header) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.bodies) == 0 {
		return nil, nil
	}
	return u.bodies[len(u.bodies)-1], u.headers[len(u.headers)-1]
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.calls
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	raw, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(raw, &body)
	u.mu.Lock()
	u.calls++
	u.bodies = append(u.bodies, body)
	u.headers = append(u.headers, r.Header.Clone())
	status, cut, pace, hold := u.status, u.cutAfter, u.pace, u.hold
	in, out, cached, cw := u.in, u.out, u.cached, u.cacheWrite
	u.mu.Unlock()
	if r.Method == http.MethodGet && r.URL.Path == "/v1/models" {
		io.WriteString(w, `{"object":"list","data":[{"id":"gpt-4o"}]}`)
		return
	}
	if status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"message":"double error %d","type":"server_error"}}`, status)
		return
	}
	stream, _ := body["stream"].(bool)
	model, _ := body["model"].(string)
	w.Header().Set("Openai-Organization", "org-secret-name")
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/chat/completions":
			fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":%d},"completion_tokens_details":{"reasoning_tokens":0}}}`,
				model, in, out, in+out, cached)
		case "/v1/responses":
			fmt.Fprintf(w, `{"id":"r1","object":"response","status":"completed","model":%q,"output":[],"usage":{"input_tokens":%d,"input_tokens_details":{"cached_tokens":%d},"output_tokens":%d,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":%d}}`,
				model, in, cached, out, in+out)
		case "/v1/messages":
			fmt.Fprintf(w, `{"id":"m1","type":"message","role":"assistant","model":%q,"content":[{"type":"text","text":"hello"}],"stop_reason":"end_turn","usage":{"input_tokens":%d,"cache_creation_input_tokens":%d,"cache_read_input_tokens":%d,"output_tokens":%d}}`,
				model, in-cached-cw, cw, cached, out)
		default:
			http.NotFound(w, r)
		}
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	fl := w.(http.Flusher)
	send := func(s string) {
		io.WriteString(w, s)
		fl.Flush()
		if pace > 0 {
			time.Sleep(pace)
		}
	}
	const chunks = 5
	cutNow := func(i int) bool {
		if cut > 0 && i >= cut {
			// Abort the connection mid-stream, as a provider outage would.
			panic(http.ErrAbortHandler)
		}
		return false
	}
	switch r.URL.Path {
	case "/v1/chat/completions":
		for i := 0; i < chunks; i++ {
			cutNow(i)
			send(fmt.Sprintf("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"word%d and more words \"}}],\"usage\":null}\n\n", i))
		}
		if hold != nil {
			<-hold
		}
		opts, _ := body["stream_options"].(map[string]any)
		if inc, _ := opts["include_usage"].(bool); inc {
			send(fmt.Sprintf("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d,\"prompt_tokens_details\":{\"cached_tokens\":%d}}}\n\n", in, out, in+out, cached))
		}
		send("data: [DONE]\n\n")
	case "/v1/responses":
		send("event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r1\",\"status\":\"in_progress\",\"usage\":null}}\n\n")
		for i := 0; i < chunks; i++ {
			cutNow(i)
			send(fmt.Sprintf("event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"word%d and more words \"}\n\n", i))
		}
		if hold != nil {
			<-hold
		}
		send(fmt.Sprintf("event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r1\",\"status\":\"completed\",\"usage\":{\"input_tokens\":%d,\"input_tokens_details\":{\"cached_tokens\":%d},\"output_tokens\":%d,\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":%d}}}\n\n", in, cached, out, in+out))
	case "/v1/messages":
		send(fmt.Sprintf("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":%q,\"content\":[],\"usage\":{\"input_tokens\":%d,\"cache_creation_input_tokens\":%d,\"cache_read_input_tokens\":%d,\"output_tokens\":1}}}\n\n", model, in-cached-cw, cw, cached))
		send("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
		for i := 0; i < chunks; i++ {
			cutNow(i)
			send(fmt.Sprintf("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"word%d and more words \"}}\n\n", i))
			if i == 2 {
				// A server tool's intermediate cumulative count: must be replaced, not added.
				send(fmt.Sprintf("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":%d}}\n\n", out/2))
			}
		}
		if hold != nil {
			<-hold
		}
		send("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n")
		send(fmt.Sprintf("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":%d}}\n\n", out))
		send("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	default:
		http.NotFound(w, r)
	}
}

// chatBody is a Chat Completions request with a prompt of about n words.
func chatBody(model string, words int, extra string) string {
	return fmt.Sprintf(`{"model":%q,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":%q}]%s}`,
		model, strings.Repeat("token ", words), extra)
}
