package budget

import (
	"context"
	"testing"

	"github.com/agentgate/agentgate/internal/store"
	"github.com/agentgate/agentgate/internal/store/storetest"
)

// BenchmarkReserveSettle is one call's ledger work: a reservation and its
// settlement, each one transaction.
func BenchmarkReserveSettle(b *testing.B) {
	for _, d := range storetest.Backends {
		b.Run(string(d), func(b *testing.B) {
			ctx := context.Background()
			st := storetest.Open(b, d)
			l, err := NewStoreLedger(ctx, st, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := l.EnsurePlan(ctx, Plan{ID: "p", Limit: 1 << 60, Ratios: DefaultRatios, Repo: "acme/app"}); err != nil {
				b.Fatal(err)
			}
			caps := map[string]int64{"acme": 1 << 60}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res, err := l.Reserve(ctx, ReserveRequest{PlanID: "p", RunID: "r", Model: "m", Amount: 1000, OrgCaps: caps})
				if err != nil || res.ID == "" {
					b.Fatal(err)
				}
				if err := l.Settle(ctx, Settlement{ReservationID: res.ID, Outcome: OutcomeOK, Cost: 900}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLeasedReserveSettle is one call's ledger work through a Leaser:
// admission in memory against a lease, then the settlement written by group
// commit and waited for. "serial" is one call at a time (every settlement
// its own transaction); "parallel" runs calls from several goroutines, whose
// settlements share transactions.
func BenchmarkLeasedReserveSettle(b *testing.B) {
	for _, d := range storetest.Backends {
		for _, mode := range []string{"serial", "parallel"} {
			b.Run(string(d)+"/"+mode, func(b *testing.B) {
				ctx := context.Background()
				st := storetest.Open(b, d)
				l, err := NewStoreLedger(ctx, st, nil)
				if err != nil {
					b.Fatal(err)
				}
				if err := l.EnsurePlan(ctx, Plan{ID: "p", Limit: 1 << 60, Ratios: DefaultRatios, Repo: "acme/app"}); err != nil {
					b.Fatal(err)
				}
				x, err := NewLeaser(ctx, l, LeaseOptions{})
				if err != nil {
					b.Fatal(err)
				}
				defer x.Close(ctx)
				caps := map[string]int64{"acme": 1 << 60}
				call := func() {
					res, err := x.Reserve(ctx, ReserveRequest{PlanID: "p", RunID: "r", Model: "m", Amount: 1000, OrgCaps: caps})
					if err != nil || res.ID == "" {
						b.Fatal(err)
					}
					if err := x.Settle(ctx, Settlement{ReservationID: res.ID, Outcome: OutcomeOK, Cost: 900}); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				if mode == "serial" {
					for i := 0; i < b.N; i++ {
						call()
					}
				} else {
					b.SetParallelism(8)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							call()
						}
					})
				}
				b.StopTimer()
				s := x.Stats()
				b.ReportMetric(float64(s.CommittedWrites)/float64(max(1, s.Commits)), "writes/commit")
			})
		}
	}
}

var _ = store.SQLite
