package webhook_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentgate/agentgate/hooks/webhook"
	"github.com/agentgate/agentgate/internal/store"
	"github.com/agentgate/agentgate/internal/store/storetest"
)

// nopRecorder makes the bare handler: verify, parse, answer 202.
type nopRecorder struct{}

func (nopRecorder) Record(context.Context, *webhook.Delivery, bool) (bool, error) { return false, nil }

var bareRate float64 // deliveries/s of the bare handler, for the ratio

// BenchmarkIntake sends signed push deliveries over HTTP from 8 concurrent
// senders, to a bare handler (verify + 202: the limit) and to the real
// intake on SQLite (verify, insert delivery + River job in one fsynced
// transaction, 202). It reports deliveries/s, p50/p99 ack latency and, for
// SQLite, the throughput ratio to the bare handler.
func BenchmarkIntake(b *testing.B) {
	body := payload(b, "push/payload.json")
	sig := webhook.Sign(secret, body)
	run := func(b *testing.B, h http.Handler) float64 {
		srv := httptest.NewServer(h)
		defer srv.Close()
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		const senders = 8
		var next atomic.Int64
		lat := make([]time.Duration, b.N)
		var wg sync.WaitGroup
		b.ResetTimer()
		start := time.Now()
		for s := 0; s < senders; s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= int64(b.N) {
						return
					}
					req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
					req.Header.Set("X-GitHub-Event", "push")
					req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("bench-%d-%d", b.N, i))
					req.Header.Set("X-Hub-Signature-256", sig)
					req.Header.Set("Content-Type", "application/json")
					t0 := time.Now()
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					lat[i] = time.Since(t0)
					if resp.StatusCode != http.StatusAccepted {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		rate := float64(b.N) / elapsed.Seconds()
		b.ReportMetric(rate, "deliveries/s")
		b.ReportMetric(float64(lat[b.N/2].Microseconds())/1000, "p50_ms")
		b.ReportMetric(float64(lat[(b.N*99)/100].Microseconds())/1000, "p99_ms")
		return rate
	}
	b.Run("bare", func(b *testing.B) {
		h, err := webhook.NewHandler(webhook.Config{Secrets: []string{secret}, Recorder: nopRecorder{}})
		if err != nil {
			b.Fatal(err)
		}
		bareRate = run(b, h)
	})
	b.Run("sqlite", func(b *testing.B) {
		st := storetest.Open(b, store.SQLite)
		h, _ := newIntake(b, st)
		rate := run(b, h)
		if bareRate > 0 {
			b.ReportMetric(rate/bareRate, "ratio_vs_bare")
		}
	})
}
