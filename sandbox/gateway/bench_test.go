package gateway

import (
	"fmt"
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

// benchCases are the gateway set-ups the latency benchmarks compare, in one
// run: the ledger with budget leases (the default: calls admitted in memory,
// settlements by group commit) and the plain store ledger (one durable
// reservation per call before forwarding, as before leases), each with
// calls back to back (each call also overlaps its predecessor's
// settlement) and with 2 ms of agent think time between calls. newTurn
// sends a conversation whose last user turn is new at every call (its
// history is the same), so that the tokenizer counts fresh text each time;
// the other cases re-send one identical prompt.
var benchCases = []struct {
	name    string
	perCall bool
	think   time.Duration
	newTurn bool
}{
	{"leases/back-to-back", false, 0, false},
	{"leases/think-2ms", false, 2 * time.Millisecond, false},
	{"leases/think-2ms/new-turn", false, 2 * time.Millisecond, true},
	{"per-call/back-to-back", true, 0, false},
	{"per-call/think-2ms", true, 2 * time.Millisecond, false},
}

// benchBody is the request of call i.
func benchBody(newTurn bool, i int, extra string) string {
	if !newTurn {
		return chatBody("gpt-4o-mini", 200, extra)
	}
	var turn strings.Builder
	fmt.Fprintf(&turn, "turn %d:", i)
	for j := 0; j < 100; j++ {
		fmt.Fprintf(&turn, " w%d", (i*131+j*17)%10007)
	}
	return fmt.Sprintf(`{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":%q},{"role":"assistant","content":"ok"},{"role":"user","content":%q}]%s}`,
		strings.Repeat("token ", 200), turn.String(), extra)
}

// BenchmarkGatewayAddedLatency calls the Chat Completions double directly and
// through the gateway (real SQLite store: key check, admission and
// settlement), alternating, and reports the p50 and p99 of both and their
// difference. The duration of one call is measured from sending the request
// to reading the last byte of the response.
func BenchmarkGatewayAddedLatency(b *testing.B) {
	for _, c := range benchCases {
		b.Run(c.name, func(b *testing.B) {
			r := newRig(b, rigOpts{perCall: c.perCall})
			key := r.plan("p-bench", 1e6, nil)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			call := func(url, auth, body string) time.Duration {
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
				body := benchBody(c.newTurn, -i-1, `,"max_tokens":256`)
				call(r.up.srv.URL+"/v1/chat/completions", "x", body)
				call(r.srv.URL+"/openai/v1/chat/completions", key, body)
			}
			b.ResetTimer()
			var direct, via []time.Duration
			for i := 0; i < b.N; i++ {
				body := benchBody(c.newTurn, i, `,"max_tokens":256`)
				direct = append(direct, call(r.up.srv.URL+"/v1/chat/completions", "x", body))
				via = append(via, call(r.srv.URL+"/openai/v1/chat/completions", key, body))
				time.Sleep(c.think)
			}
			reportLatency(b, "", direct, via)
		})
	}
}

// BenchmarkGatewayStreamTTFB measures the time to the first byte of a
// Chat Completions stream, directly and through the gateway.
func BenchmarkGatewayStreamTTFB(b *testing.B) {
	for _, c := range benchCases {
		b.Run(c.name, func(b *testing.B) {
			r := newRig(b, rigOpts{perCall: c.perCall})
			key := r.plan("p-ttfb", 1e6, nil)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			ttfb := func(url, auth, body string) time.Duration {
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
				body := benchBody(c.newTurn, -i-1, `,"max_tokens":256,"stream":true`)
				ttfb(r.up.srv.URL+"/v1/chat/completions", "x", body)
				ttfb(r.srv.URL+"/openai/v1/chat/completions", key, body)
			}
			b.ResetTimer()
			var direct, via []time.Duration
			for i := 0; i < b.N; i++ {
				body := benchBody(c.newTurn, i, `,"max_tokens":256,"stream":true`)
				direct = append(direct, ttfb(r.up.srv.URL+"/v1/chat/completions", "x", body))
				via = append(via, ttfb(r.srv.URL+"/openai/v1/chat/completions", key, body))
				time.Sleep(c.think)
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
