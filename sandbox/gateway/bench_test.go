package gateway

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func reportLatency(b *testing.B, prefix string, direct, via []time.Duration) {
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	for _, p := range []struct {
		name string
		q    float64
	}{{"p50", 0.50}, {"p99", 0.99}} {
		d, g := percentile(direct, p.q), percentile(via, p.q)
		b.ReportMetric(us(d), prefix+"direct-"+p.name+"-us")
		b.ReportMetric(us(g), prefix+"gateway-"+p.name+"-us")
		b.ReportMetric(us(g-d), prefix+"added-"+p.name+"-us")
	}
}

// BenchmarkGatewayAddedLatency calls the Chat Completions double directly and
// through the gateway (real SQLite store: key check, reservation and
// settlement each a transaction), alternating, and reports the p50 and p99
// of both and their difference. The duration of one call is measured from
// sending the request to reading the last byte of the response.
func BenchmarkGatewayAddedLatency(b *testing.B) {
	r := newRig(b, rigOpts{})
	key := r.plan("p-bench", 1e6, nil)
	body := chatBody("gpt-4o-mini", 200, `,"max_tokens":256`)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	call := func(url, auth string) time.Duration {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+auth)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		return time.Since(start)
	}
	for i := 0; i < 20; i++ { // warm connections, tokenizer and statements
		call(r.up.srv.URL+"/v1/chat/completions", "x")
		call(r.srv.URL+"/openai/v1/chat/completions", key)
	}
	for _, think := range thinkTimes {
		b.Run(think.name, func(b *testing.B) {
			var direct, via []time.Duration
			for i := 0; i < b.N; i++ {
				direct = append(direct, call(r.up.srv.URL+"/v1/chat/completions", "x"))
				via = append(via, call(r.srv.URL+"/openai/v1/chat/completions", key))
				time.Sleep(think.d)
			}
			reportLatency(b, "", direct, via)
		})
	}
}

// thinkTimes are the pauses between an agent's calls: none (a tight loop,
// where each call also waits for its predecessor's settlement) and 2 ms
// (any real agent: settlement is then entirely off the call's path).
var thinkTimes = []struct {
	name string
	d    time.Duration
}{{"back-to-back", 0}, {"think-2ms", 2 * time.Millisecond}}

// BenchmarkGatewayStreamTTFB measures the time to the first byte of a
// Chat Completions stream, directly and through the gateway.
func BenchmarkGatewayStreamTTFB(b *testing.B) {
	r := newRig(b, rigOpts{})
	key := r.plan("p-ttfb", 1e6, nil)
	body := chatBody("gpt-4o-mini", 200, `,"max_tokens":256,"stream":true`)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	ttfb := func(url, auth string) time.Duration {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+auth)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		one := make([]byte, 1)
		if _, err := io.ReadFull(resp.Body, one); err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return d
	}
	for i := 0; i < 20; i++ {
		ttfb(r.up.srv.URL+"/v1/chat/completions", "x")
		ttfb(r.srv.URL+"/openai/v1/chat/completions", key)
	}
	for _, think := range thinkTimes {
		b.Run(think.name, func(b *testing.B) {
			var direct, via []time.Duration
			for i := 0; i < b.N; i++ {
				direct = append(direct, ttfb(r.up.srv.URL+"/v1/chat/completions", "x"))
				via = append(via, ttfb(r.srv.URL+"/openai/v1/chat/completions", key))
				time.Sleep(think.d)
			}
			reportLatency(b, "ttfb-", direct, via)
		})
	}
}

// BenchmarkMeterSSE is the meter's cost per streamed byte.
func BenchmarkMeterSSE(b *testing.B) {
	var sb strings.Builder
	for i := 0; i < 200; i++ {
		sb.WriteString("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"some words \"}}],\"usage\":null}\n\n")
	}
	sb.WriteString("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n")
	stream := []byte(sb.String())
	b.SetBytes(int64(len(stream)))
	for i := 0; i < b.N; i++ {
		m := newMeter(APIChat, true)
		for off := 0; off < len(stream); off += 512 {
			m.observe(stream[off:min(off+512, len(stream))])
		}
		m.finish()
	}
}
