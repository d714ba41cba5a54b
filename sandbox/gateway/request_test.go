package gateway

import (
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"
)

func TestParseCallReadsBoundsAndInjects(t *testing.T) {
	c, err := parseCall(APIChat, []byte(`{"model":"gpt-4o","max_tokens":50,"max_completion_tokens":30,"n":2,"temperature":0,"stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"hello world"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}],"tools":[{"type":"function","function":{"name":"f"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Model != "gpt-4o" || c.MaxOutput != 30 || c.N != 2 || !c.Deterministic || !c.Stream || c.imageLikeCount != 1 {
		t.Fatalf("%+v", c)
	}
	if err := c.finalize(4096, "max_completion_tokens"); err != nil {
		t.Fatal(err)
	}
	var sent map[string]any
	_ = json.Unmarshal(c.Body, &sent)
	if sent["max_completion_tokens"] != float64(30) || sent["stream_options"].(map[string]any)["include_usage"] != true {
		t.Fatalf("forwarded %s", c.Body)
	}
	n, err := countTokens("o200k_base", 1, c.textForCount, c.imageLikeCount)
	if err != nil || n < imageTokens+2 || n > imageTokens+60 {
		t.Fatalf("count %d %v", n, err)
	}
}

func TestResponsesServerStateIsDetected(t *testing.T) {
	c, err := parseCall(APIResponses, []byte(`{"model":"gpt-5","input":"next","previous_response_id":"resp_1"}`))
	if err != nil || !c.ServerState {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestMarginAppliesOnlyWithoutAnOfflineTokenizer(t *testing.T) {
	text := []string{strings.Repeat("func main() { fmt.Println(\"hi\") }\n", 50)}
	exact, _ := countTokens("o200k_base", 1.3, text, 0)
	margin, _ := countTokens("", 1.3, text, 0)
	if margin < exact*13/10 || margin > exact*13/10+2 {
		t.Fatalf("exact %d, with margin %d", exact, margin)
	}
}

func FuzzParseCall(f *testing.F) {
	f.Add(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, uint8(0))
	f.Add(`{"model":"claude-sonnet-4-5","max_tokens":10,"system":[{"type":"text","text":"s"}],"messages":[]}`, uint8(2))
	f.Add(`{"model":"gpt-5","input":[{"role":"user","content":[{"type":"input_text","text":"x"}]}],"stream":true}`, uint8(1))
	f.Add(`{"model":"m","stream":true,"stream_options":null,"n":3}`, uint8(0))
	f.Fuzz(func(t *testing.T, body string, apiSel uint8) {
		api := []API{APIChat, APIResponses, APIMessages}[int(apiSel)%3]
		c, err := parseCall(api, []byte(body))
		if err != nil {
			return
		}
		if c.Model == "" || c.N < 1 || c.MaxOutput < 0 {
			t.Fatalf("accepted %+v", c)
		}
		if err := c.finalize(100, "max_completion_tokens"); err != nil {
			return
		}
		// The forwarded body is valid JSON, keeps the model and bounds the output.
		again, err := parseCall(api, c.Body)
		if err != nil {
			t.Fatalf("forwarded body does not parse: %v\n%s", err, c.Body)
		}
		if again.Model != c.Model || again.MaxOutput == 0 || again.MaxOutput > max(c.MaxOutput, 100) {
			t.Fatalf("forwarded %s", c.Body)
		}
		if api == APIChat && c.Stream && !strings.Contains(string(c.Body), `"include_usage":true`) {
			t.Fatalf("stream without include_usage: %s", c.Body)
		}
		if _, err := countTokens("", 1.3, c.textForCount, c.imageLikeCount); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTokenCountsOfResentTextsAreCachedExactly(t *testing.T) {
	long := strings.Repeat("Thé quick brown fox — jumps over the lazy dog; ", 40)
	o200, err := codec("o200k_base")
	if err != nil {
		t.Fatal(err)
	}
	cl100, err := codec("cl100k_base")
	if err != nil {
		t.Fatal(err)
	}
	wantO, _ := o200.Count(long)
	wantC, _ := cl100.Count(long)
	if wantO == wantC {
		t.Fatal("pick a text the two encodings count differently")
	}
	for i := 0; i < 2; i++ { // counted, then from the cache
		if n, err := countTokens("o200k_base", 1, []string{long}, 0); err != nil || n != int64(wantO)+3 {
			t.Fatalf("o200k round %d: %d %v, want %d", i, n, err, wantO+3)
		}
		if n, err := countTokens("cl100k_base", 1, []string{long}, 0); err != nil || n != int64(wantC)+3 {
			t.Fatalf("cl100k round %d: %d %v, want %d (cached apart from o200k)", i, n, err, wantC+3)
		}
	}
	tokenCounts.mu.Lock()
	_, cached := tokenCounts.m[countKey{enc: "o200k_base", sum: sha256.Sum256([]byte(long))}]
	tokenCounts.mu.Unlock()
	if !cached {
		t.Fatal("a long text was not cached")
	}
}
