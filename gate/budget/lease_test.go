package budget

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentgate/agentgate/internal/store"
	"github.com/agentgate/agentgate/internal/store/storetest"
)

func newLeaser(t *testing.T, l *StoreLedger, o LeaseOptions) *Leaser {
	t.Helper()
	x, err := NewLeaser(context.Background(), l, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close(context.Background()) })
	return x
}

func entryKinds(t *testing.T, st *store.Store, plan string) map[string]int {
	t.Helper()
	rows, err := st.DB().QueryContext(context.Background(), st.Rebind(`SELECT kind FROM budget_entries WHERE plan_id = ?`), plan)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]int{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		m[k]++
	}
	return m
}

func TestLeaseAdmitsCallsInMemoryAndGroupCommitsTheirSettlements(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		l, _ := newLedger(t, st)
		const limit = 1_000_000_000 // $1: a lease is 5 %, $0.05
		mustPlan(t, l, "p-lease", limit)
		x := newLeaser(t, l, LeaseOptions{})
		caps := map[string]int64{"acme": 100 * limit}
		const n = 50
		ids := make([]string, n)
		for i := range ids {
			res, err := x.Reserve(ctx, ReserveRequest{PlanID: "p-lease", RunID: "r", Model: "m", Amount: 1_000_000, OrgCaps: caps})
			if err != nil || res.ID == "" || res.Verdict.Decision != Allow {
				t.Fatalf("call %d: %v %+v", i, err, res.Verdict)
			}
			ids[i] = res.ID
		}
		s := x.Stats()
		if s.Grants != 1 || s.MemoryAdmits != n || s.DurableAdmits != 0 {
			t.Fatalf("one lease should admit all %d calls in memory: %+v", n, s)
		}
		p, err := x.Status(ctx, "p-lease")
		if err != nil {
			t.Fatal(err)
		}
		if p.Reserved != 50_000_000 || p.Leased != 50_000_000 || p.OpenLeases != 1 || p.Spent != 0 {
			t.Fatalf("the database must hold the whole lease: %+v", p)
		}
		// Settle concurrently: the settlements share transactions.
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := x.Settle(ctx, Settlement{ReservationID: id, Outcome: OutcomeOK, Cost: 400_000, Usage: Usage{InputTokens: 10, OutputTokens: 2}}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if err := x.Settle(ctx, Settlement{ReservationID: ids[0], Outcome: OutcomeOK, Cost: 1}); !errors.Is(err, ErrAlreadySettled) && !errors.Is(err, ErrNoReservation) {
			t.Fatalf("a second settlement: %v", err)
		}
		s = x.Stats()
		if s.Commits >= s.CommittedWrites {
			t.Fatalf("no group commit: %d writes in %d transactions", s.CommittedWrites, s.Commits)
		}
		p, _ = x.Status(ctx, "p-lease")
		if p.Spent != n*400_000 || p.Reserved != 50_000_000-n*400_000 {
			t.Fatalf("after settling: spent %d reserved %d", p.Spent, p.Reserved)
		}
		tot, err := x.RunTotals(ctx, "r")
		if err != nil || tot.ExternalCalls != n || tot.Cost != n*400_000 || tot.Tokens.InputTokens != 10*n {
			t.Fatalf("run totals %+v %v", tot, err)
		}
		var capReserved, capSpent int64
		if err := st.DB().QueryRowContext(ctx, st.Rebind(`SELECT reserved_nano, spent_nano FROM budget_caps WHERE scope LIKE 'org:acme@%'`)).Scan(&capReserved, &capSpent); err != nil {
			t.Fatal(err)
		}
		if capReserved != p.Reserved || capSpent != p.Spent {
			t.Fatalf("the org cap moved with the plan: reserved %d spent %d", capReserved, capSpent)
		}
		// Closing releases what the lease did not use.
		if err := x.Close(ctx); err != nil {
			t.Fatal(err)
		}
		p, _ = l.Status(ctx, "p-lease")
		if p.Reserved != 0 || p.OpenLeases != 0 || p.Spent != n*400_000 {
			t.Fatalf("after close: %+v", p)
		}
		if k := entryKinds(t, st, "p-lease"); k["lease"] != 1 || k["settle"] != n || k["release"] != 1 || k["reserve"] != 0 {
			t.Fatalf("ledger entries %v", k)
		}
	})
}

func TestLeasesNeverSpanAThreshold(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		l, rec := newLedger(t, st)
		const limit = 100_000
		mustPlan(t, l, "p-band", limit)
		x := newLeaser(t, l, LeaseOptions{Fraction: 1}) // as large as the thresholds allow
		call := func() Decision {
			t.Helper()
			res, err := x.Reserve(ctx, ReserveRequest{PlanID: "p-band", RunID: "r", Model: "m", Amount: 10_000})
			if err != nil {
				t.Fatal(err)
			}
			if res.ID != "" {
				if err := x.Settle(ctx, Settlement{ReservationID: res.ID, Outcome: OutcomeOK, Cost: 10_000}); err != nil {
					t.Fatal(err)
				}
			}
			return res.Verdict.Decision
		}
		var got []string
		for i := 0; i < 9; i++ {
			got = append(got, string(call()))
		}
		if err := x.Approve(ctx, "p-band", "alice"); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			got = append(got, string(call()))
		}
		// 6 calls fit below 70 %; the 7th reaches it (warning recorded); the
		// 8th runs in a lease of the warning band; the 9th reaches 90 %; after
		// the approval two more fit, the third would cross 100 %.
		want := "allow,allow,allow,allow,allow,allow,warn,warn,approval_required,warn,warn,hard_stop"
		if strings.Join(got, ",") != want {
			t.Fatalf("decisions\n got %s\nwant %s", strings.Join(got, ","), want)
		}
		if k := strings.Join(rec.kinds(), ","); k != "budget.warn,budget.escalate,budget.approve,gate.stop" {
			t.Fatalf("audit events %s", k)
		}
		s := x.Stats()
		if s.Grants != 3 || s.MemoryAdmits != 9 || s.DurableAdmits != 3 {
			t.Fatalf("three leases (allow, warn, approved warn), three durable judgements: %+v", s)
		}
		p, _ := x.Status(ctx, "p-band")
		if p.Spent != limit || !p.Stopped || p.Reserved != 0 {
			t.Fatalf("plan %+v", p)
		}
	})
}

func TestConcurrentLeasedCallsNeverOvershoot(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		l, _ := newLedger(t, st)
		const limit = 1_000_000_000
		mustPlan(t, l, "p-conc", limit)
		x := newLeaser(t, l, LeaseOptions{})
		if err := x.Approve(ctx, "p-conc", "alice"); err != nil {
			t.Fatal(err)
		}
		first, err := x.Reserve(ctx, ReserveRequest{PlanID: "p-conc", RunID: "r1", Model: "m", Amount: 800_000_000})
		if err != nil || first.ID == "" {
			t.Fatalf("first reservation: %v %+v", err, first.Verdict)
		}
		if err := x.Settle(ctx, Settlement{ReservationID: first.ID, Outcome: OutcomeOK, Cost: 800_000_000}); err != nil {
			t.Fatal(err)
		}
		granted, refused := race(t, 50, func(i int) (Reservation, error) {
			return x.Reserve(ctx, ReserveRequest{PlanID: "p-conc", RunID: "r1", Model: "m", Amount: 10_000_000, OrgCaps: map[string]int64{"acme": 100 * limit}})
		})
		p, _ := x.Status(ctx, "p-conc")
		if p.Spent+p.Reserved > limit {
			t.Fatalf("overshoot: spent %d + reserved %d > limit %d", p.Spent, p.Reserved, limit)
		}
		if granted != 20 || refused != 30 || !p.Stopped {
			t.Fatalf("granted %d refused %d stopped %v: the last 20 %% fit exactly 20 calls", granted, refused, p.Stopped)
		}
	})
}

// race runs n calls at once and counts the granted and refused ones.
func race(t *testing.T, n int, call func(i int) (Reservation, error)) (granted, refused int) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := call(i)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case res.ID != "":
				granted++
			default:
				if d := res.Verdict.Decision; d != HardStop && d != Busy {
					errs = append(errs, fmt.Errorf("refused with %s", d))
				}
				refused++
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d calls failed, first: %v", len(errs), errs[0])
	}
	return granted, refused
}

// Two gateway processes (two stores, two ledgers, two Leasers) share a plan
// on one PostgreSQL database.
func TestTwoGatewayProcessesSharingAPlanNeverOvershootTogether(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t, store.Postgres)
	var xs [2]*Leaser
	var ls [2]*StoreLedger
	for i := range xs {
		st, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		ls[i], _ = newLedger(t, st)
		xs[i] = newLeaser(t, ls[i], LeaseOptions{Holder: fmt.Sprintf("gw-%d", i)})
	}
	const limit = 1_000_000_000
	mustPlan(t, ls[0], "p-two", limit)
	if err := xs[0].Approve(ctx, "p-two", "alice"); err != nil {
		t.Fatal(err)
	}
	first, err := xs[0].Reserve(ctx, ReserveRequest{PlanID: "p-two", RunID: "r", Model: "m", Amount: 800_000_000})
	if err != nil || first.ID == "" {
		t.Fatal(err, first.Verdict)
	}
	if err := xs[0].Settle(ctx, Settlement{ReservationID: first.ID, Outcome: OutcomeOK, Cost: 800_000_000}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var admitted []struct {
		x  *Leaser
		id string
	}
	granted, _ := race(t, 50, func(i int) (Reservation, error) {
		x := xs[i%2]
		res, err := x.Reserve(ctx, ReserveRequest{PlanID: "p-two", RunID: "r", Model: "m", Amount: 10_000_000})
		if err == nil && res.ID != "" {
			mu.Lock()
			admitted = append(admitted, struct {
				x  *Leaser
				id string
			}{x, res.ID})
			mu.Unlock()
		}
		return res, err
	})
	p, _ := xs[1].Status(ctx, "p-two")
	if p.Spent+p.Reserved > limit || granted > 20 || granted == 0 {
		t.Fatalf("granted %d: spent %d + reserved %d, limit %d", granted, p.Spent, p.Reserved, limit)
	}
	// Every admitted call really costs its worst case: still no overshoot.
	for _, a := range admitted {
		if err := a.x.Settle(ctx, Settlement{ReservationID: a.id, Outcome: OutcomeOK, Cost: 10_000_000}); err != nil {
			t.Fatal(err)
		}
	}
	for _, x := range xs {
		if err := x.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p, _ = ls[0].Status(ctx, "p-two")
	if p.Spent > limit || p.Reserved != 0 || p.Spent != 800_000_000+int64(granted)*10_000_000 {
		t.Fatalf("after settling: %+v (granted %d)", p, granted)
	}
}

// A stop latched by one process, an approval or a lowered budget written by
// another, and a stop latched by the same process all reach in-memory
// admission on the very next call.
func TestStopsApprovalsAndBudgetChangesReachInMemoryAdmissionAtTheNextCall(t *testing.T) {
	storetest.EachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		open := func() *StoreLedger {
			st, err := store.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			l, _ := newLedger(t, st)
			return l
		}
		gw, other := open(), open()
		const limit = 1_000_000_000
		mustPlan(t, other, "p-ver", limit)
		x := newLeaser(t, gw, LeaseOptions{})
		call := func(amount int64) Reservation {
			t.Helper()
			res, err := x.Reserve(ctx, ReserveRequest{PlanID: "p-ver", RunID: "r", Model: "m", Amount: amount})
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		if res := call(1_000_000); !res.Leased {
			t.Fatalf("first call not admitted against a lease: %+v", res)
		}
		if res := call(1_000_000); !res.Leased {
			t.Fatal("second call not in memory")
		}
		// Registering the same budget again changes nothing: the lease stays.
		if err := other.EnsurePlan(ctx, Plan{ID: "p-ver", Limit: limit, Ratios: DefaultRatios, Repo: "acme/app"}); err != nil {
			t.Fatal(err)
		}
		if res := call(1_000_000); !res.Leased {
			t.Fatal("re-registering an unchanged budget retired the lease")
		}
		// Another process lowers the budget below what the calls in flight
		// hold: the next call is judged durably against the new budget.
		if err := other.EnsurePlan(ctx, Plan{ID: "p-ver", Limit: 2_500_000, Ratios: DefaultRatios, Repo: "acme/app"}); err != nil {
			t.Fatal(err)
		}
		if res := call(1_000_000); res.Leased || res.Verdict.Decision != HardStop {
			t.Fatalf("after the budget was lowered: %+v", res.Verdict)
		}
		if err := other.EnsurePlan(ctx, Plan{ID: "p-ver", Limit: limit, Ratios: DefaultRatios, Repo: "acme/app"}); err != nil {
			t.Fatal(err)
		}
		if err := other.Resume(ctx, "p-ver", "carol"); err != nil {
			t.Fatal(err)
		}
		if res := call(1_000_000); res.ID == "" {
			t.Fatalf("after the budget was raised again and resumed: %+v", res.Verdict)
		}
		// Another process latches the plan's stop: refused at once, although
		// this process's lease still has room.
		if res, err := other.Reserve(ctx, ReserveRequest{PlanID: "p-ver", RunID: "r2", Model: "m", Amount: 2 * limit}); err != nil || res.Verdict.Decision != HardStop {
			t.Fatalf("other: %v %+v", err, res.Verdict)
		}
		if res := call(1); res.ID != "" || res.Verdict.Decision != HardStop || !strings.Contains(res.Verdict.Reason, "stopped") {
			t.Fatalf("after another process stopped the plan: %+v", res.Verdict)
		}
		// Resumed by a human elsewhere: admitted again.
		if err := other.Resume(ctx, "p-ver", "carol"); err != nil {
			t.Fatal(err)
		}
		if res := call(1_000_000); res.ID == "" {
			t.Fatalf("after resume: %+v", res.Verdict)
		}
	})
}

func TestBusyInsteadOfAStopWhenOnlyLeasesStandInTheWay(t *testing.T) {
	storetest.EachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		var xs [2]*Leaser
		var l0 *StoreLedger
		for i := range xs {
			st, err := store.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			l, _ := newLedger(t, st)
			if i == 0 {
				l0 = l
				mustPlan(t, l, "p-busy", 1_000_000)
			}
			xs[i] = newLeaser(t, l, LeaseOptions{Fraction: 0.6})
		}
		// Process 0 leases 60 % (below the 70 % warning) for one small call.
		a, err := xs[0].Reserve(ctx, ReserveRequest{PlanID: "p-busy", RunID: "r", Amount: 1000})
		if err != nil || !a.Leased {
			t.Fatal(err, a.Verdict)
		}
		// Process 1's call fits the budget, but not next to that lease.
		b, err := xs[1].Reserve(ctx, ReserveRequest{PlanID: "p-busy", RunID: "r", Amount: 500_000})
		if err != nil || b.ID != "" || b.Verdict.Decision != Busy {
			t.Fatalf("want budget_busy: %v %+v", err, b.Verdict)
		}
		if p, _ := l0.Status(ctx, "p-busy"); p.Stopped || p.Escalated {
			t.Fatalf("a busy refusal latched the plan: %+v", p)
		}
		// Process 0's call settles and its lease closes: the retry passes.
		if err := xs[0].Settle(ctx, Settlement{ReservationID: a.ID, Outcome: OutcomeOK, Cost: 1000}); err != nil {
			t.Fatal(err)
		}
		if err := xs[0].Close(ctx); err != nil {
			t.Fatal(err)
		}
		b, err = xs[1].Reserve(ctx, ReserveRequest{PlanID: "p-busy", RunID: "r", Amount: 500_000})
		if err != nil || b.ID == "" {
			t.Fatalf("retry: %v %+v", err, b.Verdict)
		}
	})
}

// The helper process of the kill -9 test: it takes a lease, admits calls
// against it, reports, and waits to be killed.
func TestHelperHoldALeaseUntilKilled(t *testing.T) {
	dsn := os.Getenv("AGENTGATE_TEST_LEASE_DSN")
	if dsn == "" {
		t.Skip("helper process of TestOrphanedLeaseIsCoveredAfterKill9ThenChargedInFull")
	}
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewStoreLedger(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	x, err := NewLeaser(ctx, l, LeaseOptions{Holder: "doomed", Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		res, err := x.Reserve(ctx, ReserveRequest{PlanID: "p-kill", RunID: "r-kill", Model: "m", Amount: 1_000_000})
		if err != nil || !res.Leased {
			t.Fatal(err, res.Verdict)
		}
	}
	fmt.Println("ADMITTED")
	time.Sleep(time.Minute)
}

func TestOrphanedLeaseIsCoveredAfterKill9ThenChargedInFull(t *testing.T) {
	storetest.EachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		l, _ := newLedger(t, st)
		const limit = 1_000_000_000
		mustPlan(t, l, "p-kill", limit)

		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldALeaseUntilKilled$", "-test.count=1")
		cmd.Env = append(os.Environ(), "AGENTGATE_TEST_LEASE_DSN="+dsn)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		ready := false
		for sc.Scan() {
			if sc.Text() == "ADMITTED" {
				ready = true
				break
			}
		}
		if !ready {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the helper did not admit its calls")
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()

		// Three calls of $0.001 were admitted in memory and never settled:
		// the lease ($0.05) still covers them.
		p, err := l.Status(ctx, "p-kill")
		if err != nil {
			t.Fatal(err)
		}
		if p.Reserved != 50_000_000 || p.Leased != 50_000_000 || p.OpenLeases != 1 || p.ExpiredLeases != 0 || p.Spent != 0 {
			t.Fatalf("after kill -9: %+v", p)
		}
		// Before it expires nobody touches it.
		if n, err := l.RecoverLeases(ctx, ""); err != nil || n != 0 {
			t.Fatalf("recovered %d before expiry: %v", n, err)
		}
		// After its expiry (window + max call + grace) it is charged in full.
		later := time.Now().Add(time.Hour + 12*time.Minute)
		l.now = func() time.Time { return later }
		if p, _ := l.Status(ctx, "p-kill"); p.ExpiredLeases != 1 {
			t.Fatalf("the lease is not shown expired: %+v", p)
		}
		if n, err := l.RecoverLeases(ctx, ""); err != nil || n != 1 {
			t.Fatalf("recovered %d: %v", n, err)
		}
		if n, _ := l.RecoverLeases(ctx, ""); n != 0 {
			t.Fatal("a lease was charged twice")
		}
		p, _ = l.Status(ctx, "p-kill")
		if p.Spent != 50_000_000 || p.Reserved != 0 || p.OpenLeases != 0 {
			t.Fatalf("after recovery: %+v", p)
		}
		tot, _ := l.RunTotals(ctx, "r-kill")
		if tot.Cost != 50_000_000 || tot.ExternalCalls != 0 {
			t.Fatalf("run totals %+v", tot)
		}
		if k := entryKinds(t, st, "p-kill"); k["lease"] != 1 || k["orphan"] != 1 {
			t.Fatalf("entries %v", k)
		}
	})
}

// A call that costs more than its reservation (a provider that bills more
// than the estimate) spends outside the lease's book: the lease must stop
// admitting from memory, so the real spent meets the thresholds — the
// overshoot is bounded by the overruns of calls already in flight, and the
// warning and the approval step still happen.
func TestAnOverrunRetiresTheLeaseSoThresholdsStillHold(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		l, _ := newLedger(t, st)
		const limit = 1_000_000_000 // $1
		mustPlan(t, l, "p-overrun", limit)
		x := newLeaser(t, l, LeaseOptions{Fraction: 0.5})
		const reserve, cost = 10_000_000, 40_000_000 // $0.01 reserved, $0.04 billed
		refused := false
		for i := 0; i < 200 && !refused; i++ {
			res, err := x.Reserve(ctx, ReserveRequest{PlanID: "p-overrun", RunID: "r", Model: "m", Amount: reserve})
			if err != nil {
				t.Fatal(err)
			}
			if res.Verdict.Decision.Refused() {
				refused = true
				break
			}
			if err := x.Settle(ctx, Settlement{ReservationID: res.ID, Outcome: OutcomeOK, Cost: cost}); err != nil {
				t.Fatal(err)
			}
		}
		p, err := x.Status(ctx, "p-overrun")
		if err != nil {
			t.Fatal(err)
		}
		if !refused {
			t.Fatalf("200 overrunning calls and none refused: %+v", p)
		}
		// Each call is judged on the real spent; one call's overrun is the
		// most it can pass the stop by.
		if p.Spent > limit+cost {
			t.Fatalf("spent %s of a %s budget: overruns inside a lease went unseen", FormatUSD(p.Spent), FormatUSD(limit))
		}
		if !p.Warned || !p.Escalated {
			t.Fatalf("the warning and the approval step were skipped: %+v", p)
		}
	})
}

// A settlement that arrives after its lease expired and was charged in
// full is covered by the charge up to the call's worst case; what the call
// cost beyond that is spent, not dropped.
func TestALateSettlementStillSpendsItsOverrun(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		l, _ := newLedger(t, st)
		const limit = 1_000_000_000
		mustPlan(t, l, "p-late", limit)
		x := newLeaser(t, l, LeaseOptions{Fraction: 0.1})
		res, err := x.Reserve(ctx, ReserveRequest{PlanID: "p-late", RunID: "r", Model: "m", Amount: 10_000_000})
		if err != nil || res.Verdict.Decision.Refused() {
			t.Fatalf("%v %+v", err, res.Verdict)
		}
		before, _ := l.Status(ctx, "p-late")
		// A day later the lease has expired: recovery charges it in full.
		l.now = func() time.Time { return time.Now().Add(24 * time.Hour) }
		if n, err := l.RecoverLeases(ctx, ""); err != nil || n != 1 {
			t.Fatalf("recover: %d %v", n, err)
		}
		charged, _ := l.Status(ctx, "p-late")
		if charged.Spent != before.Reserved || charged.Reserved != 0 {
			t.Fatalf("the expired lease was not charged in full: before %+v after %+v", before, charged)
		}
		// The call finally settles, costing $0.03 against its $0.01 worst case.
		if err := x.Settle(ctx, Settlement{ReservationID: res.ID, Outcome: OutcomeOK, Cost: 30_000_000}); err != nil {
			t.Fatal(err)
		}
		after, _ := l.Status(ctx, "p-late")
		if got, want := after.Spent, charged.Spent+20_000_000; got != want {
			t.Fatalf("spent %d after the late settlement, want %d (the lease's charge plus the $0.02 overrun)", got, want)
		}
	})
}
