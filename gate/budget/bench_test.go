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

var _ = store.SQLite
