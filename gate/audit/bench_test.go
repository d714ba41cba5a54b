package audit_test

import (
	"context"
	"testing"

	"github.com/agentgate/agentgate/gate/audit"
	"github.com/agentgate/agentgate/internal/store"
	"github.com/agentgate/agentgate/internal/store/storetest"
)

// BenchmarkAppend measures audit appends per second: one event per
// transaction ("single") and 100 events per transaction ("batch100"). The
// SQLite file runs with synchronous=FULL (one fsync per commit); the test
// PostgreSQL runs with fsync=off, so its numbers are CPU and round-trip
// bound, not disk bound.
func BenchmarkAppend(b *testing.B) {
	ev := audit.Event{Actor: "gate", Kind: "gate.decision", Repo: "acme/payments", SHA: "0123456789abcdef0123456789abcdef01234567",
		PlanID: "plan-1", RunID: "run-1", Payload: map[string]any{"decision": "pass", "checks": map[string]string{"scope": "pass", "secrets": "pass"}}}
	for _, d := range storetest.Backends {
		for _, batch := range []int{1, 100} {
			name := string(d) + "/single"
			if batch > 1 {
				name = string(d) + "/batch100"
			}
			b.Run(name, func(b *testing.B) {
				st := storetest.Open(b, d)
				l, err := audit.Open(context.Background(), st, audit.Options{})
				if err != nil {
					b.Fatal(err)
				}
				events := make([]audit.Event, batch)
				for i := range events {
					events[i] = ev
				}
				ctx := context.Background()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := l.AppendBatch(ctx, events); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "appends/s")
			})
		}
	}
}

// BenchmarkVerify measures chain verification speed (records per second).
func BenchmarkVerify(b *testing.B) {
	st := storetest.Open(b, store.SQLite)
	ctx := context.Background()
	l, err := audit.Open(ctx, st, audit.Options{})
	if err != nil {
		b.Fatal(err)
	}
	events := make([]audit.Event, 1000)
	for i := range events {
		events[i] = audit.Event{Actor: "gate", Kind: "k", Payload: map[string]int{"i": i}}
	}
	for i := 0; i < 5; i++ {
		if _, err := l.AppendBatch(ctx, events); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := l.Verify(ctx, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*5000)/b.Elapsed().Seconds(), "records/s")
}
