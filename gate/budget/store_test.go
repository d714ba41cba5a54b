package budget

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/agentgate/agentgate/internal/store"
	"github.com/agentgate/agentgate/internal/store/storetest"
	"github.com/agentgate/agentgate/policies"
)

func TestMain(m *testing.M) { os.Exit(storetest.Run(m)) }

// recorder is a real Auditor that keeps the events in memory.
type recorder struct {
	mu     sync.Mutex
	events []Event
	fail   error
}

func (r *recorder) RecordBudgetEvent(_ context.Context, e Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.events = append(r.events, e)
	return nil
}

func (r *recorder) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var k []string
	for _, e := range r.events {
		k = append(k, e.Kind)
	}
	return k
}

func newLedger(t *testing.T, st *store.Store) (*StoreLedger, *recorder) {
	t.Helper()
	rec := &recorder{}
	l, err := NewStoreLedger(context.Background(), st, rec)
	if err != nil {
		t.Fatal(err)
	}
	return l, rec
}

func mustPlan(t *testing.T, l *StoreLedger, id string, limit int64) {
	t.Helper()
	if err := l.EnsurePlan(context.Background(), Plan{ID: id, Limit: limit, Ratios: DefaultRatios, Repo: "acme/app"}); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentReservationsNeverOvershoot(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		l, _ := newLedger(t, st)
		const limit = 1_000_000_000 // $1
		mustPlan(t, l, "p-conc", limit)
		if err := l.Approve(ctx, "p-conc", "alice"); err != nil {
			t.Fatal(err)
		}
		// Spend 80 % first, then 50 calls of 1 % each race for the last 20 %.
		first, err := l.Reserve(ctx, ReserveRequest{PlanID: "p-conc", RunID: "r1", Model: "m", Amount: 800_000_000})
		if err != nil || first.ID == "" {
			t.Fatalf("first reservation: %v %+v", err, first.Verdict)
		}
		if err := l.Settle(ctx, Settlement{ReservationID: first.ID, Outcome: OutcomeOK, Cost: 800_000_000}); err != nil {
			t.Fatal(err)
		}
		const n = 50
		caps := map[string]int64{"acme": 100_000_000_000}
		var wg sync.WaitGroup
		var mu sync.Mutex
		granted, refused := 0, 0
		var errs []error
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := l.Reserve(ctx, ReserveRequest{PlanID: "p-conc", RunID: "r1", Model: "m", Amount: 10_000_000, OrgCaps: caps})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					errs = append(errs, err)
				case res.ID != "":
					granted++
				default:
					refused++
				}
			}()
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("%d reservations failed, first: %v", len(errs), errs[0])
		}
		p, err := l.Status(ctx, "p-conc")
		if err != nil {
			t.Fatal(err)
		}
		if p.Spent+p.Reserved > limit {
			t.Fatalf("overshoot: spent %d + reserved %d > limit %d", p.Spent, p.Reserved, limit)
		}
		if granted != 20 || refused != 30 {
			t.Fatalf("granted %d refused %d, want exactly 20 granted (the rest of the budget) and 30 refused", granted, refused)
		}
		if !p.Stopped {
			t.Error("the plan should be latched stopped after a refusal at the stop ratio")
		}
	})
}

func TestThresholdTransitionsWithApproval(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		l, rec := newLedger(t, st)
		const limit = 100_000_000 // $0.10
		mustPlan(t, l, "p-th", limit)
		call := func(amount, cost int64) Reservation {
			t.Helper()
			res, err := l.Reserve(ctx, ReserveRequest{PlanID: "p-th", RunID: "r-th", Provider: "openai", Model: "gpt-4o", Amount: amount})
			if err != nil {
				t.Fatal(err)
			}
			if res.ID != "" {
				if err := l.Settle(ctx, Settlement{ReservationID: res.ID, Outcome: OutcomeOK, Cost: cost, Usage: Usage{InputTokens: 10, OutputTokens: 5}}); err != nil {
					t.Fatal(err)
				}
			}
			return res
		}
		steps := []struct {
			amount, cost int64
			want         Decision
		}{
			{30_000_000, 30_000_000, Allow},            // 30 %
			{30_000_000, 30_000_000, Allow},            // 60 %
			{15_000_000, 15_000_000, Warn},             // 75 %
			{20_000_000, 20_000_000, ApprovalRequired}, // would be 95 %
			{20_000_000, 20_000_000, ApprovalRequired}, // still
		}
		for i, s := range steps {
			if got := call(s.amount, s.cost).Verdict.Decision; got != s.want {
				t.Fatalf("step %d: %s, want %s", i, got, s.want)
			}
		}
		if err := l.Approve(ctx, "p-th", "alice"); err != nil {
			t.Fatal(err)
		}
		if got := call(20_000_000, 20_000_000).Verdict; got.Decision != Warn {
			t.Fatalf("after approval: %+v", got)
		}
		// 95 % spent: a call whose worst case crosses 100 % stops the plan ...
		if got := call(10_000_000, 0).Verdict; got.Decision != HardStop {
			t.Fatalf("crossing the limit: %+v", got)
		}
		// ... and then even a tiny call is refused until a human resumes it.
		if got := call(1, 1).Verdict; got.Decision != HardStop || !strings.Contains(got.Reason, "stopped") {
			t.Fatalf("after the stop: %+v", got)
		}
		if err := l.Approve(ctx, "p-th", "bob"); err == nil {
			t.Error("approving a stopped plan must be refused")
		}
		if err := l.Resume(ctx, "p-th", "carol"); err != nil {
			t.Fatal(err)
		}
		if got := call(1_000_000, 1_000_000).Verdict; got.Decision != Warn {
			t.Fatalf("after resume: %+v", got)
		}
		want := []string{EventWarn, EventEscalate, EventApprove, EventStop, EventResume}
		if got := rec.kinds(); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("audit events %v, want %v", got, want)
		}
		for _, e := range rec.events {
			if e.Kind == EventStop && e.StopReason != policies.StopBudgetExceeded {
				t.Errorf("stop event without %s: %+v", policies.StopBudgetExceeded, e)
			}
		}
		tot, err := l.RunTotals(ctx, "r-th")
		if err != nil {
			t.Fatal(err)
		}
		if tot.ExternalCalls != 5 || tot.Refused != 4 || tot.Cost != 96_000_000 || tot.Budget != limit || tot.ByModel["gpt-4o"].Calls != 5 || tot.Tokens.InputTokens != 50 {
			t.Fatalf("run totals %+v", tot)
		}
	})
}

func TestSettleIsExactlyOnceAndReleasesTheReservation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		l, _ := newLedger(t, st)
		mustPlan(t, l, "p-s", 1_000_000_000)
		caps := map[string]int64{"acme/app": 5_000_000_000}
		res, err := l.Reserve(ctx, ReserveRequest{PlanID: "p-s", RunID: "r", Model: "m", Amount: 400_000_000, RepoCaps: caps})
		if err != nil || res.ID == "" {
			t.Fatal(err, res.Verdict)
		}
		p, _ := l.Status(ctx, "p-s")
		if p.Reserved != 400_000_000 {
			t.Fatalf("reserved %d", p.Reserved)
		}
		if err := l.Settle(ctx, Settlement{ReservationID: res.ID, Outcome: OutcomeProviderError, Cost: 0}); err != nil {
			t.Fatal(err)
		}
		if err := l.Settle(ctx, Settlement{ReservationID: res.ID, Outcome: OutcomeOK, Cost: 5}); !errors.Is(err, ErrAlreadySettled) {
			t.Fatalf("second settle: %v", err)
		}
		if err := l.Settle(ctx, Settlement{ReservationID: "nope", Cost: 5}); !errors.Is(err, ErrNoReservation) {
			t.Fatalf("unknown settle: %v", err)
		}
		p, _ = l.Status(ctx, "p-s")
		if p.Reserved != 0 || p.Spent != 0 {
			t.Fatalf("after a provider error: spent %d reserved %d", p.Spent, p.Reserved)
		}
		var capReserved, capSpent int64
		if err := st.DB().QueryRowContext(ctx, st.Rebind(`SELECT reserved_nano, spent_nano FROM budget_caps WHERE scope LIKE 'repo:acme/app@%'`)).Scan(&capReserved, &capSpent); err != nil {
			t.Fatal(err)
		}
		if capReserved != 0 || capSpent != 0 {
			t.Fatalf("cap reserved %d spent %d", capReserved, capSpent)
		}
	})
}

func TestMonthlyCapRefusesWithoutStoppingThePlan(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		l, _ := newLedger(t, st)
		mustPlan(t, l, "p-cap", 10_000_000_000)
		caps := map[string]int64{"acme": 1_000_000, "other": 1}
		res, err := l.Reserve(ctx, ReserveRequest{PlanID: "p-cap", Model: "m", Amount: 2_000_000, OrgCaps: caps})
		if err != nil {
			t.Fatal(err)
		}
		if res.ID != "" || res.Verdict.Scope != ScopeOrg || res.Verdict.Decision != HardStop {
			t.Fatalf("verdict %+v", res.Verdict)
		}
		if p, _ := l.Status(ctx, "p-cap"); p.Stopped {
			t.Fatal("an org cap refusal must not latch the plan")
		}
		if res, _ := l.Reserve(ctx, ReserveRequest{PlanID: "p-cap", Model: "m", Amount: 500_000, OrgCaps: caps}); res.ID == "" {
			t.Fatalf("a call within the cap was refused: %+v", res.Verdict)
		}
	})
}

func TestUnknownPlanAndAuditFailureFailClosed(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	ctx := context.Background()
	l, rec := newLedger(t, st)
	if _, err := l.Reserve(ctx, ReserveRequest{PlanID: "ghost", Amount: 1}); !errors.Is(err, ErrUnknownPlan) {
		t.Fatalf("unknown plan: %v", err)
	}
	mustPlan(t, l, "p-a", 100)
	rec.fail = errors.New("disk full")
	if _, err := l.Reserve(ctx, ReserveRequest{PlanID: "p-a", Amount: 80}); err == nil {
		t.Fatal("a warning that cannot be audited must refuse the call")
	}
	if p, _ := l.Status(ctx, "p-a"); p.Reserved != 0 {
		t.Fatalf("the refused call still holds %d", p.Reserved)
	}
}

func TestLedgerEntriesAreAppendOnly(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		l, _ := newLedger(t, st)
		mustPlan(t, l, "p-ao", 100)
		if _, err := l.Reserve(ctx, ReserveRequest{PlanID: "p-ao", Amount: 1}); err != nil {
			t.Fatal(err)
		}
		stmts := []string{
			`UPDATE budget_entries SET amount_nano = 0`,
			`DELETE FROM budget_entries`,
		}
		if st.Dialect() == store.SQLite {
			stmts = append(stmts, `INSERT OR REPLACE INTO budget_entries (seq, reservation_id, kind, plan_id, run_id, provider, model, amount_nano, decision, at)
				SELECT seq, reservation_id, kind, plan_id, run_id, provider, model, 0, decision, at FROM budget_entries`)
		} else {
			stmts = append(stmts, `TRUNCATE budget_entries`)
		}
		for _, s := range stmts {
			if _, err := st.DB().ExecContext(ctx, s); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s: %v", s, err)
			}
		}
	})
}
