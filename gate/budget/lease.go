package budget

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentgate/agentgate/internal/store"
)

// Budget leases
//
// A Leaser is the Ledger a gateway process uses on its hot path. Instead of
// one durable transaction per call before forwarding it, the Leaser reserves
// a lease — a block of a plan's budget — for a plan and run in one durable
// transaction (the same guarded, all-scopes reservation as a single call:
// plan, organisation and repository caps), then admits the run's next calls
// against the lease's remainder in memory, without touching the disk. The
// database therefore always holds, as reserved, at least the worst case of
// every call in flight, whichever process admitted it.
//
// After each call its settlement (the append-only ledger entry with the real
// usage) is queued and written by group commit: settlements, lease grants
// and releases that arrive while a transaction is committing share the next
// one, and so one fsync. Until its settlement is written, a call is covered
// by its lease. A settled call moves its cost to spent and takes the smaller
// of its cost and its worst case out of the lease; what its worst case did
// not use returns to the lease.
//
// Thresholds stay exact. A lease never spans a threshold: it is at most the
// room left on every scope before the next one (the warning ratio, the
// escalation ratio while unapproved, the stop ratio; the caps' 70 % and
// 100 %), so every call it admits is judged in the band the lease was
// granted in (allow, or warn with the header once the warning was recorded).
// A call whose worst case does not fit the lease retires it (its unused
// remainder is released in the same transaction) and asks for a new one; a
// call that cannot get one goes through the durable single-call path, which
// records warnings, escalations and stops in the audit log and refuses as
// before. The per-request ceiling is judged per call.
//
// Stops, approvals, resumptions and budget changes take effect on the next
// call in every process: each in-memory admission first reads the plan's
// version (one indexed read on a read-only handle, no write), and a lease
// granted at another version is retired. Run keys are checked per call by
// the gateway the same way, so a revoked key is refused at once.
//
// A lease admits calls for LeaseOptions.Window, then is retired; once its
// calls have settled, its remainder is released and it closes. If its
// process dies (kill -9), its calls' settlements are lost: the lease stays
// open and keeps its whole outstanding amount reserved, so nothing it may
// have admitted is ever uncovered. At its expiry (Window + MaxCall + Grace
// after it was granted, when every call it admitted has ended) the next
// recovery — any gateway process's sweeper, or `agentgate budget recover` —
// charges that outstanding amount in full as spent (kind "orphan" in the
// ledger): fail closed, the run pays for what it may have used.

// LeaseOptions configure a Leaser.
type LeaseOptions struct {
	// Fraction of a plan's limit that one lease asks for at most (default
	// 0.05); a lease is also never larger than the room before the next
	// threshold, and never smaller than the call that asks for it.
	Fraction float64
	// Window is how long a lease admits calls (default 30s).
	Window time.Duration
	// MaxCall bounds how long an admitted call may run until it settles
	// (the gateway's upstream_timeout; default 10m).
	MaxCall time.Duration
	// Grace is added to a lease's expiry (default 1m).
	Grace time.Duration
	// RecoverEvery is how often expired leases are looked for (default 30s).
	RecoverEvery time.Duration
	// Holder names this process in the lease rows (default host:pid:random).
	Holder string
	// CommitDelay is how long a batch of settlements waits for more before
	// it commits (default 5ms; negative: never waits). Grants and durable
	// judgements never wait.
	CommitDelay time.Duration
}

func (o *LeaseOptions) defaults() error {
	if o.Fraction == 0 {
		o.Fraction = 0.05
	}
	if o.Window == 0 {
		o.Window = 30 * time.Second
	}
	if o.MaxCall == 0 {
		o.MaxCall = 10 * time.Minute
	}
	if o.Grace == 0 {
		o.Grace = time.Minute
	}
	if o.RecoverEvery == 0 {
		o.RecoverEvery = 30 * time.Second
	}
	if o.CommitDelay == 0 {
		o.CommitDelay = 5 * time.Millisecond
	}
	if math.IsNaN(o.Fraction) || o.Fraction <= 0 || o.Fraction > 1 || o.Window <= 0 || o.MaxCall <= 0 || o.Grace < 0 || o.RecoverEvery <= 0 {
		return fmt.Errorf("budget: lease options out of range: fraction %v (0, 1], durations positive", o.Fraction)
	}
	if o.Holder == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		o.Holder = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	return nil
}

// leaseTime is the fixed-width timestamp of lease rows, so that they
// compare as strings.
const leaseTime = "2006-01-02T15:04:05.000000000Z"

func leaseStamp(t time.Time) string { return t.UTC().Format(leaseTime) }

// Leaser is the Ledger with budget leases and group commit; see above.
type Leaser struct {
	l    *StoreLedger
	o    LeaseOptions
	read *sql.DB
	// closeRead closes read when the Leaser opened it.
	closeRead func() error
	version   *sql.Stmt
	w         *writer

	mu    sync.Mutex
	keys  map[leaseKey]*keyState
	calls map[string]*leasedCall
	live  map[*lease]struct{}

	grants, memAdmits, durableAdmits atomic.Int64

	stopSweep chan struct{}
	sweepDone chan struct{}
	closeOnce sync.Once
}

var _ Ledger = (*Leaser)(nil)

type leaseKey struct{ plan, run string }

type keyState struct {
	slow  sync.Mutex // serializes the durable path of one plan and run
	cur   *lease     // the lease admitting calls, or nil
	users int        // Reserve calls using this state (guarded by Leaser.mu)
}

// lease is a lease as its holder sees it. Amounts in nano-USD; guarded by
// Leaser.mu.
type lease struct {
	id, plan, run string
	caps          string // cap scopes reserved on, comma-separated
	month         string // the caps' month
	version       int64  // the plan's version when granted
	band          Decision
	admitUntil    time.Time
	granted       int64
	// held is what the database holds for the lease once every queued
	// write has committed: granted - consumed - released.
	held int64
	// inflight is the worst cases of the admitted calls not yet finished.
	inflight int64
	calls    int
	retired  bool // admits no more calls
	closed   bool // its final release is queued
	tainted  bool // a settlement failed: never released, left to expire and be charged

	// For the verdicts of the calls it admits: each scope's spent+reserved
	// before the lease, its limit and ratios.
	scopes []leaseScope
}

type leaseScope struct {
	scope, key string
	state      State // Spent is spent+reserved before the lease, Reserved 0
}

// free is what the lease can still admit.
func (l *lease) free() int64 { return l.held - l.inflight }

// used is what the lease has given out (consumed, or held for calls).
func (l *lease) used() int64 { return l.granted - l.free() }

type leasedCall struct {
	id     string
	r      ReserveRequest
	lease  *lease // nil: a single-call durable reservation
	amount int64  // worst case reserved
	caps   string
}

// NewLeaser returns a Leaser over l and starts its group-commit writer and
// its sweeper. Close it at shutdown, after the calls it admitted settled.
func NewLeaser(ctx context.Context, l *StoreLedger, o LeaseOptions) (*Leaser, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	read, closeRead, err := OpenReader(l.st)
	if err != nil {
		return nil, err
	}
	ver, err := read.PrepareContext(ctx, l.st.Rebind(`SELECT version, stopped FROM budget_plans WHERE plan_id = ?`))
	if err != nil {
		closeRead()
		return nil, fmt.Errorf("budget: prepare the plan version read: %w", err)
	}
	x := &Leaser{l: l, o: o, read: read, closeRead: closeRead, version: ver,
		keys: map[leaseKey]*keyState{}, calls: map[string]*leasedCall{}, live: map[*lease]struct{}{},
		stopSweep: make(chan struct{}), sweepDone: make(chan struct{})}
	x.w = newWriter(x)
	if _, err := x.Recover(ctx); err != nil {
		x.Close(ctx)
		return nil, err
	}
	go x.sweeper()
	return x, nil
}

// OpenReader returns a handle for reads on the hot path that must not queue
// behind a write: on SQLite a second, read-only handle on the same file
// (WAL lets it read while the writer commits); on PostgreSQL the store's own
// pool. The returned func closes what was opened.
func OpenReader(st *store.Store) (*sql.DB, func() error, error) {
	if st.Dialect() != store.SQLite || st.Path() == "" || st.Path() == ":memory:" {
		return st.DB(), func() error { return nil }, nil
	}
	db, err := sql.Open("sqlite", st.Path()+fmt.Sprintf("?_pragma=busy_timeout(%d)&_pragma=query_only(1)", store.BusyTimeout.Milliseconds()))
	if err != nil {
		return nil, nil, fmt.Errorf("budget: open a read handle on %s: %w", st.Path(), err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	return db, db.Close, nil
}

// Ledger returns the store ledger under the leases.
func (x *Leaser) Ledger() *StoreLedger { return x.l }

// Holder returns the name this process gives its lease rows.
func (x *Leaser) Holder() string { return x.o.Holder }

func (x *Leaser) planVersion(ctx context.Context, planID string) (int64, bool, error) {
	var v int64
	var stopped int
	err := x.version.QueryRowContext(ctx, planID).Scan(&v, &stopped)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, fmt.Errorf("budget: plan %q: %w (issue a run key for it with `agentgate gateway keys issue --plan`)", planID, ErrUnknownPlan)
	}
	if err != nil {
		return 0, false, fmt.Errorf("budget: read plan %s: %w", planID, err)
	}
	return v, stopped != 0, nil
}

func (x *Leaser) key(k leaseKey) *keyState {
	ks := x.keys[k]
	if ks == nil {
		ks = &keyState{}
		x.keys[k] = ks
	}
	return ks
}

// Reserve implements Ledger: in memory against the run's lease when the
// call fits it, otherwise through one durable transaction that grants a new
// lease or, at a threshold, reserves (or refuses) the call alone.
func (x *Leaser) Reserve(ctx context.Context, r ReserveRequest) (Reservation, error) {
	if r.Amount < 0 {
		return Reservation{}, fmt.Errorf("budget: negative reservation %d", r.Amount)
	}
	var ver int64
	var stopped bool
	if pr := r.PlanRead; pr != nil {
		ver, stopped = pr.Version, pr.Stopped
	} else {
		var err error
		if ver, stopped, err = x.planVersion(ctx, r.PlanID); err != nil {
			return Reservation{}, err
		}
	}
	k := leaseKey{r.PlanID, r.RunID}
	x.mu.Lock()
	ks := x.key(k)
	ks.users++
	defer func() {
		x.mu.Lock()
		ks.users--
		x.mu.Unlock()
	}()
	if !stopped {
		if res, ok := x.admitLocked(ks, r, ver); ok {
			x.mu.Unlock()
			return res, nil
		}
	}
	x.mu.Unlock()

	ks.slow.Lock()
	defer ks.slow.Unlock()
	x.mu.Lock()
	if !stopped {
		// Another call may have renewed the lease while this one waited.
		if res, ok := x.admitLocked(ks, r, ver); ok {
			x.mu.Unlock()
			return res, nil
		}
	}
	rel := x.retireLocked(ks, "renewed")
	var ownFree int64
	for l := range x.live {
		if l.plan == r.PlanID && !l.retired {
			ownFree += max(0, l.free())
		}
	}
	x.mu.Unlock()

	op := &wop{kind: opAdmit, r: r, release: rel, ownFree: ownFree}
	if err := x.w.do(ctx, op); err != nil {
		x.undoRelease(rel)
		return Reservation{}, err
	}
	if op.err != nil {
		x.undoRelease(rel)
		return Reservation{}, op.err
	}
	if g := op.grant; g != nil {
		x.grants.Add(1)
		x.mu.Lock()
		x.live[g] = struct{}{}
		ks.cur = g
		res, ok := x.admitLocked(ks, r, g.version)
		x.mu.Unlock()
		if !ok { // cannot happen: the lease was sized for this call
			return Reservation{}, errors.New("budget: a new lease does not fit the call it was granted for")
		}
		return res, nil
	}
	res := op.res
	x.durableAdmits.Add(1)
	if res.Verdict.Decision == Busy {
		// Leases of this process's other runs of the plan may be what is in
		// the way: give their unused parts back now, so that a retry passes.
		x.retirePlan(r.PlanID)
	}
	if res.ID != "" {
		x.mu.Lock()
		x.calls[res.ID] = &leasedCall{id: res.ID, r: r, amount: res.amount, caps: res.caps}
		x.mu.Unlock()
	}
	return x.l.recordReservation(ctx, res, func(ctx context.Context) error {
		return x.Settle(ctx, Settlement{ReservationID: res.ID, Outcome: OutcomeUnreached, Detail: "audit log unavailable"})
	})
}

// admitLocked admits r against the key's current lease when it fits; x.mu
// is held.
func (x *Leaser) admitLocked(ks *keyState, r ReserveRequest, version int64) (Reservation, bool) {
	l := ks.cur
	now := x.l.now()
	if l == nil || l.retired || l.version != version || !now.Before(l.admitUntil) || r.Amount > l.free() ||
		now.UTC().Format("2006-01") != l.month {
		return Reservation{}, false
	}
	ceiling := Ceiling(r.Ceiling, r.Amount)
	if ceiling.Decision.Refused() {
		return Reservation{}, false // refused (and recorded) on the durable path
	}
	verdicts := make([]Verdict, 0, len(l.scopes)+1)
	used := l.used()
	for _, s := range l.scopes {
		st := s.state
		st.Reserved = used
		verdicts = append(verdicts, Evaluate(s.scope, s.key, st, r.Amount))
	}
	verdicts = append(verdicts, ceiling)
	worst := Worst(verdicts...)
	if worst.Decision != l.band && !(l.band == Warn && worst.Decision == Allow) {
		return Reservation{}, false // cannot happen while leases never span a threshold
	}
	id := newID()
	l.inflight += r.Amount
	l.calls++
	x.calls[id] = &leasedCall{id: id, r: r, lease: l, amount: r.Amount, caps: l.caps}
	x.memAdmits.Add(1)
	return Reservation{ID: id, Verdict: worst, Verdicts: verdicts, Leased: true, caps: l.caps, amount: r.Amount}, true
}

// retireLocked stops the key's current lease from admitting and returns the
// write that releases its unused part (and closes it when no call of it is
// in flight), or nil. x.mu is held.
func (x *Leaser) retireLocked(ks *keyState, reason string) *wop {
	l := ks.cur
	if l == nil {
		return nil
	}
	ks.cur = nil
	l.retired = true
	return x.releaseLocked(l, reason)
}

func (x *Leaser) releaseLocked(l *lease, reason string) *wop {
	if l.closed || l.tainted {
		return nil
	}
	if l.calls == 0 {
		l.closed = true
		delete(x.live, l)
		op := &wop{kind: opRelease, lease: l, amount: l.held, close: true, reason: reason}
		l.held = 0
		return op
	}
	free := l.free()
	if free <= 0 {
		return nil
	}
	l.held -= free
	return &wop{kind: opRelease, lease: l, amount: free, reason: reason}
}

// undoRelease puts back what a failed release did not release.
func (x *Leaser) undoRelease(op *wop) {
	if op == nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	op.lease.held += op.amount
	if op.close {
		op.lease.closed = false
		x.live[op.lease] = struct{}{}
	}
}

// Settle implements Ledger: the settlement is queued for the next group
// commit and Settle returns once it is written.
func (x *Leaser) Settle(ctx context.Context, s Settlement) error {
	return x.SettleAsync(ctx, s)()
}

// SettleAsync accounts the settlement in memory at once — the call's lease
// counts its real cost from now on, so the next admission is judged on it —
// and queues its write; the returned func waits for the write.
func (x *Leaser) SettleAsync(ctx context.Context, s Settlement) (wait func() error) {
	if s.Cost < 0 {
		return func() error {
			return fmt.Errorf("budget: negative cost %d for reservation %s", s.Cost, s.ReservationID)
		}
	}
	x.mu.Lock()
	c := x.calls[s.ReservationID]
	if c == nil {
		x.mu.Unlock()
		// Not admitted here: the single-call path answers (already settled, unknown).
		return func() error { return x.l.Settle(ctx, s) }
	}
	delete(x.calls, s.ReservationID)
	op := &wop{kind: opSettle, s: s, call: c}
	var closeOp *wop
	if l := c.lease; l != nil {
		op.part = min(s.Cost, c.amount)
		l.inflight -= c.amount
		l.calls--
		l.held -= op.part
		if s.Cost > c.amount {
			// The call cost more than its worst case: the excess is spent
			// outside the lease's book, which no longer bounds the plan.
			// Admit nothing more from memory; the next call is judged by
			// the durable path on the real spent (warn, approval, stop).
			l.retired = true
		}
		if l.retired && l.calls == 0 {
			closeOp = x.releaseLocked(l, "retired")
		}
	}
	x.mu.Unlock()
	x.w.enqueue(op)
	if closeOp != nil {
		x.w.enqueue(closeOp)
	}
	return func() error {
		<-op.done
		if op.err != nil && c.lease != nil {
			// The call's cost is not written: its lease must never release
			// that money. It stays open until it expires and is charged in full.
			x.mu.Lock()
			c.lease.tainted = true
			x.mu.Unlock()
		}
		return op.err
	}
}

// Flush waits until every write queued before it is committed.
func (x *Leaser) Flush(ctx context.Context) error {
	return x.w.do(ctx, &wop{kind: opBarrier})
}

// EnsurePlan implements Ledger.
func (x *Leaser) EnsurePlan(ctx context.Context, p Plan) error { return x.l.EnsurePlan(ctx, p) }

// Status implements Ledger.
func (x *Leaser) Status(ctx context.Context, planID string) (PlanStatus, error) {
	return x.l.Status(ctx, planID)
}

// Approve implements Ledger.
func (x *Leaser) Approve(ctx context.Context, planID, approver string) error {
	return x.l.Approve(ctx, planID, approver)
}

// Resume implements Ledger.
func (x *Leaser) Resume(ctx context.Context, planID, by string) error {
	return x.l.Resume(ctx, planID, by)
}

// RunTotals implements Ledger.
func (x *Leaser) RunTotals(ctx context.Context, runID string) (RunTotals, error) {
	return x.l.RunTotals(ctx, runID)
}

// LeaseStats is what /metrics shows of a Leaser.
type LeaseStats struct {
	OpenLeases      int   // leases of this process not yet closed
	Outstanding     int64 // nano-USD they hold in the database (reserved)
	InFlight        int   // calls admitted and not yet settled
	InFlightAmount  int64 // their worst cases, nano-USD
	QueuedWrites    int64 // settlements, grants and releases not yet committed
	Grants          int64 // leases granted
	MemoryAdmits    int64 // calls admitted in memory against a lease
	DurableAdmits   int64 // calls judged one by one in a durable transaction
	Commits         int64 // group-commit transactions
	CommittedWrites int64 // writes in them
	Orphans         int64 // expired leases charged by this process
}

// Stats returns a snapshot of the Leaser's state.
func (x *Leaser) Stats() LeaseStats {
	x.mu.Lock()
	s := LeaseStats{OpenLeases: len(x.live), InFlight: len(x.calls)}
	for l := range x.live {
		s.Outstanding += l.held
	}
	for _, c := range x.calls {
		s.InFlightAmount += c.amount
		if c.lease == nil {
			s.Outstanding += c.amount
		}
	}
	x.mu.Unlock()
	s.QueuedWrites = x.w.queued.Load()
	s.Grants, s.MemoryAdmits, s.DurableAdmits = x.grants.Load(), x.memAdmits.Load(), x.durableAdmits.Load()
	s.Commits, s.CommittedWrites, s.Orphans = x.w.commits.Load(), x.w.ops.Load(), x.w.orphans.Load()
	return s
}

func (x *Leaser) sweeper() {
	defer close(x.sweepDone)
	every := min(max(x.o.Window/4, 50*time.Millisecond), 5*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	lastRecover := time.Now()
	for {
		select {
		case <-x.stopSweep:
			return
		case <-t.C:
		}
		x.retireDue()
		if time.Since(lastRecover) >= x.o.RecoverEvery {
			lastRecover = time.Now()
			_, _ = x.Recover(context.Background())
		}
	}
}

// ReleasePlan retires this process's leases on a plan and waits until what
// they do not hold for calls in flight is released.
func (x *Leaser) ReleasePlan(ctx context.Context, planID string) error {
	x.retirePlan(planID)
	return x.Flush(ctx)
}

// retirePlan retires every lease of this process on a plan.
func (x *Leaser) retirePlan(planID string) {
	var ops []*wop
	x.mu.Lock()
	for k, ks := range x.keys {
		if k.plan == planID {
			if op := x.retireLocked(ks, "plan busy"); op != nil {
				ops = append(ops, op)
			}
		}
	}
	x.mu.Unlock()
	for _, op := range ops {
		x.w.enqueue(op)
	}
}

// retireDue retires the leases whose admission window is over.
func (x *Leaser) retireDue() {
	now := x.l.now()
	var ops []*wop
	x.mu.Lock()
	for k, ks := range x.keys {
		if l := ks.cur; l != nil && (!now.Before(l.admitUntil) || now.UTC().Format("2006-01") != l.month) {
			if op := x.retireLocked(ks, "admission window over"); op != nil {
				ops = append(ops, op)
			}
		}
		if ks.cur == nil && ks.users == 0 {
			delete(x.keys, k)
		}
	}
	x.mu.Unlock()
	for _, op := range ops {
		x.w.enqueue(op)
	}
}

// Close retires every lease, releases the unused parts, waits for the
// writes to commit and stops the Leaser. Calls still in flight keep their
// lease open: it is charged when it expires.
func (x *Leaser) Close(ctx context.Context) error {
	var err error
	x.closeOnce.Do(func() {
		select {
		case <-x.sweepDone:
		default:
			close(x.stopSweep)
			select {
			case <-x.sweepDone:
			case <-time.After(time.Second): // not started
			}
		}
		var ops []*wop
		x.mu.Lock()
		for _, ks := range x.keys {
			if op := x.retireLocked(ks, "gateway shutdown"); op != nil {
				ops = append(ops, op)
			}
		}
		x.mu.Unlock()
		for _, op := range ops {
			x.w.enqueue(op)
		}
		err = x.Flush(ctx)
		x.w.stop()
		x.version.Close()
		if cerr := x.closeRead(); err == nil {
			err = cerr
		}
	})
	return err
}

// Recover charges, in full, the outstanding amount of every open lease whose
// expiry has passed (its holder died with calls it may have admitted
// unsettled): the amount moves from reserved to spent, the lease closes and
// an "orphan" entry is appended. It returns how many leases it charged.
func (x *Leaser) Recover(ctx context.Context) (int, error) {
	return x.l.RecoverLeases(ctx, "")
}

// RecoverLeases is Leaser.Recover for a store ledger (the `agentgate budget
// recover` command); planID limits it to one plan when set.
func (l *StoreLedger) RecoverLeases(ctx context.Context, planID string) (int, error) {
	now := l.now()
	q := `SELECT lease_id, plan_id, caps FROM budget_leases WHERE open = 1 AND expires_at < ?`
	args := []any{leaseStamp(now)}
	if planID != "" {
		q += ` AND plan_id = ?`
		args = append(args, planID)
	}
	rows, err := l.st.DB().QueryContext(ctx, l.q(q), args...)
	if err != nil {
		return 0, fmt.Errorf("budget: look for expired leases: %w", err)
	}
	var ids, plans, caps []string
	for rows.Next() {
		var id, plan, c string
		if err := rows.Scan(&id, &plan, &c); err != nil {
			rows.Close()
			return 0, err
		}
		ids, plans = append(ids, id), append(plans, plan)
		if c != "" {
			caps = append(caps, strings.Split(c, ",")...)
		}
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return 0, err
	}
	rows.Close()
	if len(ids) == 0 {
		return 0, nil
	}
	n := 0
	err = l.inTx(ctx, func(tx *sql.Tx) error {
		n = 0
		if err := l.lockRows(ctx, tx, plans, caps); err != nil {
			return err
		}
		for _, id := range ids {
			ok, err := l.chargeLeaseTx(ctx, tx, id, now)
			if err != nil {
				return err
			}
			if ok {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("budget: charge expired leases: %w", err)
	}
	return n, nil
}

// chargeLeaseTx charges an expired open lease's outstanding amount as
// spent and closes it.
func (l *StoreLedger) chargeLeaseTx(ctx context.Context, tx *sql.Tx, id string, now time.Time) (bool, error) {
	ls, err := l.readLease(ctx, tx, id)
	if err != nil || !ls.open {
		return false, err
	}
	o := ls.outstanding()
	if err := l.moveTx(ctx, tx, ls.plan, ls.caps, o, o); err != nil {
		return false, err
	}
	if _, err := l.txExec(ctx, tx, `UPDATE budget_leases SET charged_nano = ?, open = 0, closed_at = ?, close_reason = ? WHERE lease_id = ?`,
		o, leaseStamp(now), "orphaned: charged in full", id); err != nil {
		return false, err
	}
	return true, l.insertEntry(ctx, tx, entry{id: newID(), kind: "orphan", lease: id, r: ReserveRequest{PlanID: ls.plan, RunID: ls.run},
		caps: ls.caps, amount: o, decision: "charged",
		reason: fmt.Sprintf("lease of %s expired at %s open: its holder stopped without settling; the outstanding %s is charged in full (fail closed)", ls.holder, ls.expires, FormatUSD(o))})
}

type leaseRow struct {
	plan, run, holder, caps, expires     string
	granted, consumed, released, charged int64
	open                                 bool
}

func (r leaseRow) outstanding() int64 { return r.granted - r.consumed - r.released - r.charged }

func (l *StoreLedger) readLease(ctx context.Context, tx *sql.Tx, id string) (leaseRow, error) {
	var r leaseRow
	var open int
	err := l.txRow(ctx, tx, `SELECT plan_id, run_id, holder, caps, expires_at, granted_nano, consumed_nano, released_nano, charged_nano, open
		FROM budget_leases WHERE lease_id = ?`+l.forUpdate(), id).
		Scan(&r.plan, &r.run, &r.holder, &r.caps, &r.expires, &r.granted, &r.consumed, &r.released, &r.charged, &open)
	if err != nil {
		return r, fmt.Errorf("budget: read lease %s: %w", id, err)
	}
	r.open = open != 0
	return r, nil
}

// moveTx moves money on a plan and its caps: reserved -= release,
// spent += spend.
func (l *StoreLedger) moveTx(ctx context.Context, tx *sql.Tx, plan, caps string, release, spend int64) error {
	if release == 0 && spend == 0 {
		return nil
	}
	if _, err := l.txExec(ctx, tx, `UPDATE budget_plans SET reserved_nano = reserved_nano - ?, spent_nano = spent_nano + ?, updated_at = ? WHERE plan_id = ?`,
		release, spend, l.stamp(), plan); err != nil {
		return fmt.Errorf("budget: plan %s: %w", plan, err)
	}
	if caps == "" {
		return nil
	}
	for _, scope := range strings.Split(caps, ",") {
		if _, err := l.txExec(ctx, tx, `UPDATE budget_caps SET reserved_nano = reserved_nano - ?, spent_nano = spent_nano + ? WHERE scope = ?`,
			release, spend, scope); err != nil {
			return fmt.Errorf("budget: cap %s: %w", scope, err)
		}
	}
	return nil
}

// lockRows locks, on PostgreSQL, the rows of the plans and then of the caps
// a transaction will write, each sorted, before any write: every writer
// locks in that order, so concurrent group commits of several gateway
// processes cannot deadlock. SQLite's BEGIN IMMEDIATE already holds the
// database.
func (l *StoreLedger) lockRows(ctx context.Context, tx *sql.Tx, plans, caps []string) error {
	if l.st.Dialect() != store.Postgres {
		return nil
	}
	slices.Sort(plans)
	for _, p := range slices.Compact(plans) {
		if _, err := tx.ExecContext(ctx, l.q(`SELECT 1 FROM budget_plans WHERE plan_id = ? FOR UPDATE`), p); err != nil {
			return fmt.Errorf("budget: lock plan %s: %w", p, err)
		}
	}
	slices.Sort(caps)
	for _, c := range slices.Compact(caps) {
		if _, err := tx.ExecContext(ctx, l.q(`SELECT 1 FROM budget_caps WHERE scope = ? FOR UPDATE`), c); err != nil {
			return fmt.Errorf("budget: lock cap %s: %w", c, err)
		}
	}
	return nil
}
