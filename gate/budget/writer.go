package budget

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// writer is the Leaser's group commit. Every write of the hot path — a
// call's settlement, a lease grant (or, at a threshold, a single call's
// reservation or refusal), a lease release — is queued to one goroutine,
// which writes whatever queued while the previous transaction committed in
// the next transaction: one fsync for all of them on SQLite, one round of
// commits on PostgreSQL. Nothing waits for a batch to fill (a lone write
// commits at once), writes are applied in the order they were queued, and
// each caller is answered only after the transaction holding its write has
// committed. A batch of settlements and releases only — writes no call is
// waiting for, covered by their leases meanwhile — waits up to
// LeaseOptions.CommitDelay for more before committing (fewer fsyncs under
// load); a lease grant or a durable judgement commits at once. If a batch fails, its writes are retried one by one so that a
// bad one does not fail its neighbours (like hooks/webhook's intake).
type writer struct {
	x    *Leaser
	reqs chan *wop
	quit chan struct{}
	done chan struct{}
	once sync.Once

	queued, commits, ops, orphans atomic.Int64
}

type opKind int

const (
	opSettle opKind = iota
	opRelease
	opAdmit
	opBarrier
)

// wop is one queued write.
type wop struct {
	kind opKind

	// opSettle
	s    Settlement
	call *leasedCall
	part int64 // taken out of the lease: min(cost, worst case)

	// opRelease
	lease  *lease
	amount int64
	close  bool
	reason string

	// opAdmit: release first (the retired lease's unused part), then judge r.
	r       ReserveRequest
	release *wop
	ownFree int64       // the unused parts of this process's other leases on the plan
	grant   *lease      // a new lease sized for r
	res     Reservation // or r judged alone

	err  error
	done chan struct{}
}

const maxBatch = 128

var errLeaserClosed = errors.New("budget: the ledger's writer is closed")

func newWriter(x *Leaser) *writer {
	w := &writer{x: x, reqs: make(chan *wop), quit: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w
}

func (w *writer) enqueue(op *wop) {
	op.done = make(chan struct{})
	w.queued.Add(1)
	select {
	case w.reqs <- op:
	case <-w.quit:
		w.queued.Add(-1)
		op.err = errLeaserClosed
		close(op.done)
	}
}

// do queues op and waits until it is written. It waits even if ctx ends
// meanwhile: the write may commit, and the caller must not answer as if it
// had not.
func (w *writer) do(_ context.Context, op *wop) error {
	w.enqueue(op)
	<-op.done
	if errors.Is(op.err, errLeaserClosed) {
		return op.err
	}
	return nil
}

func (w *writer) stop() {
	w.once.Do(func() { close(w.quit) })
	<-w.done
}

func (w *writer) loop() {
	defer close(w.done)
	for {
		var first *wop
		select {
		case first = <-w.reqs:
		case <-w.quit:
			return
		}
		batch := []*wop{first}
		urgent := first.kind == opAdmit || first.kind == opBarrier
	fill:
		for len(batch) < maxBatch {
			select {
			case op := <-w.reqs:
				batch = append(batch, op)
				urgent = urgent || op.kind == opAdmit || op.kind == opBarrier
			default:
				break fill
			}
		}
		if !urgent && w.x.o.CommitDelay > 0 {
			timer := time.NewTimer(w.x.o.CommitDelay)
		wait:
			for len(batch) < maxBatch {
				select {
				case op := <-w.reqs:
					batch = append(batch, op)
					if op.kind == opAdmit || op.kind == opBarrier {
						break wait
					}
				case <-timer.C:
					break wait
				case <-w.quit:
					break wait
				}
			}
			timer.Stop()
		}
		if err := w.write(batch); err != nil {
			if len(batch) == 1 {
				batch[0].err = err
			} else {
				for _, op := range batch {
					if err := w.write([]*wop{op}); err != nil {
						op.err = err
					}
				}
			}
		}
		for _, op := range batch {
			w.queued.Add(-1)
			close(op.done)
		}
	}
}

// write applies a batch in one transaction.
func (w *writer) write(batch []*wop) error {
	l := w.x.l
	n := 0
	for _, op := range batch {
		op.err, op.grant, op.res = nil, nil, Reservation{}
		if op.kind != opBarrier {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	ctx := context.Background()
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		if err := w.lock(ctx, tx, batch); err != nil {
			return err
		}
		for _, op := range batch {
			var err error
			switch op.kind {
			case opSettle:
				err = w.settleTx(ctx, tx, op)
			case opRelease:
				err = w.releaseTx(ctx, tx, op)
			case opAdmit:
				err = w.admitTx(ctx, tx, op)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		for _, op := range batch {
			op.grant, op.res = nil, Reservation{}
		}
		return err
	}
	w.commits.Add(1)
	w.ops.Add(int64(n))
	return nil
}

// lock takes, on PostgreSQL, the row locks of every plan and then every cap
// the batch writes, each sorted (see lockRows).
func (w *writer) lock(ctx context.Context, tx *sql.Tx, batch []*wop) error {
	l := w.x.l
	if !l.isPostgres() {
		return nil
	}
	var plans, caps []string
	add := func(plan, c string) {
		plans = append(plans, plan)
		if c != "" {
			caps = append(caps, strings.Split(c, ",")...)
		}
	}
	var admits []ReserveRequest
	for _, op := range batch {
		switch op.kind {
		case opSettle:
			add(op.call.r.PlanID, op.call.caps)
		case opRelease:
			add(op.lease.plan, op.lease.caps)
		case opAdmit:
			add(op.r.PlanID, "")
			if op.release != nil {
				add(op.release.lease.plan, op.release.lease.caps)
			}
			admits = append(admits, op.r)
		}
	}
	if err := l.lockRows(ctx, tx, plans, nil); err != nil {
		return err
	}
	now := l.now()
	for _, r := range admits {
		var repo string
		if err := l.txRow(ctx, tx, `SELECT repo FROM budget_plans WHERE plan_id = ?`, r.PlanID).Scan(&repo); err != nil {
			continue // an unknown plan is answered by admitTx
		}
		for _, c := range r.CapsFor(repo) {
			caps = append(caps, capScope(c, now))
		}
	}
	return l.lockRows(ctx, tx, nil, caps)
}

func (w *writer) settleTx(ctx context.Context, tx *sql.Tx, op *wop) error {
	l := w.x.l
	c, s := op.call, op.s
	e := entry{id: c.id, kind: "settle", r: c.r, caps: c.caps, amount: s.Cost, decision: string(s.Outcome), reason: s.Detail, usage: s.Usage}
	if c.lease == nil {
		if err := l.moveTx(ctx, tx, c.r.PlanID, c.caps, c.amount, s.Cost); err != nil {
			return fmt.Errorf("budget: settle %s: %w", c.id, err)
		}
		return l.insertEntry(ctx, tx, e)
	}
	e.lease = c.lease.id
	res, err := l.txExec(ctx, tx, `UPDATE budget_leases SET consumed_nano = consumed_nano + ? WHERE lease_id = ? AND open = 1`, op.part, c.lease.id)
	if err != nil {
		return fmt.Errorf("budget: settle %s on lease %s: %w", c.id, c.lease.id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		// The lease was charged in full when it expired: the cost is in it,
		// up to the call's worst case; what the call cost beyond that is
		// spent now.
		over := s.Cost - op.part
		e.amount = over
		e.reason = strings.TrimSpace(fmt.Sprintf("late: %s of the cost %s already charged with its expired lease. %s", FormatUSD(op.part), FormatUSD(s.Cost), s.Detail))
		if over > 0 {
			if err := l.moveTx(ctx, tx, c.r.PlanID, c.caps, 0, over); err != nil {
				return fmt.Errorf("budget: settle %s: %w", c.id, err)
			}
		}
		return l.insertEntry(ctx, tx, e)
	}
	if err := l.moveTx(ctx, tx, c.r.PlanID, c.caps, op.part, s.Cost); err != nil {
		return fmt.Errorf("budget: settle %s: %w", c.id, err)
	}
	return l.insertEntry(ctx, tx, e)
}

func (w *writer) releaseTx(ctx context.Context, tx *sql.Tx, op *wop) error {
	l := w.x.l
	ls, err := l.readLease(ctx, tx, op.lease.id)
	if err != nil {
		return err
	}
	if !ls.open {
		return nil // already charged when it expired
	}
	out := ls.outstanding()
	amt := min(op.amount, out)
	if err := l.moveTx(ctx, tx, ls.plan, ls.caps, amt, 0); err != nil {
		return fmt.Errorf("budget: release lease %s: %w", op.lease.id, err)
	}
	closeNow := op.close && out-amt == 0
	decision, closedAt, reason := "release", "", ""
	open := 1
	if closeNow {
		decision, closedAt, reason, open = "close", leaseStamp(l.now()), op.reason, 0
	}
	if _, err := l.txExec(ctx, tx, `UPDATE budget_leases SET released_nano = released_nano + ?, open = ?, closed_at = ?, close_reason = ? WHERE lease_id = ?`,
		amt, open, closedAt, reason, op.lease.id); err != nil {
		return fmt.Errorf("budget: release lease %s: %w", op.lease.id, err)
	}
	return l.insertEntry(ctx, tx, entry{id: newID(), kind: "release", lease: op.lease.id, r: ReserveRequest{PlanID: ls.plan, RunID: ls.run},
		caps: ls.caps, amount: amt, decision: decision, reason: op.reason})
}

func (w *writer) admitTx(ctx context.Context, tx *sql.Tx, op *wop) error {
	l := w.x.l
	if op.release != nil {
		if err := w.releaseTx(ctx, tx, op.release); err != nil {
			return err
		}
	}
	now := l.now()
	p, err := l.lockPlan(ctx, tx, op.r.PlanID)
	if errors.Is(err, ErrUnknownPlan) {
		op.err = err // nothing written for this call; the batch goes on
		return nil
	}
	if err != nil {
		return err
	}
	rows, err := l.lockCaps(ctx, tx, op.r, p.Repo, now)
	if err != nil {
		return err
	}
	g, err := w.grantTx(ctx, tx, op.r, p, rows, now)
	if err != nil {
		return err
	}
	if g != nil {
		op.grant = g
		return nil
	}
	op.res, err = l.reserveTx(ctx, tx, op.r, now, leaseView{holder: w.x.o.Holder, ownFree: op.ownFree})
	return err
}

// leaseRoom is how much more a scope can reserve while its projection stays
// in the band it is in now (allow: below the warning ratio; warn: up to the
// escalation ratio while unapproved, else up to the stop ratio), and that
// band. ok is false when the scope is past where any call is admitted.
func leaseRoom(s State) (room int64, band Decision, ok bool) {
	if s.Stopped || s.Limit <= 0 {
		return 0, HardStop, false
	}
	p := s.Spent + s.Reserved
	warnT := threshold(s.Limit, s.Ratios.Warn)
	top := threshold(s.Limit, s.Ratios.Stop)
	if s.Ratios.Escalate > 0 && !s.Approved {
		top = min(top, threshold(s.Limit, s.Ratios.Escalate)-1)
	}
	if p < warnT {
		return min(warnT-1, top) - p, Allow, true
	}
	if p > top {
		return 0, ApprovalRequired, false
	}
	return top - p, Warn, true
}

// grantTx grants a lease for r when one fits: at least r's worst case, at
// most the configured fraction of the plan's limit, and never past the
// next threshold of any scope. A scope in its warning band gets a lease only
// once its warning was recorded (by the durable path). nil: no lease.
func (w *writer) grantTx(ctx context.Context, tx *sql.Tx, r ReserveRequest, p PlanStatus, rows []capRow, now time.Time) (*lease, error) {
	l, o := w.x.l, w.x.o
	if p.Stopped || Ceiling(r.Ceiling, r.Amount).Decision.Refused() {
		return nil, nil
	}
	size := max(r.Amount, int64(float64(p.Limit)*o.Fraction))
	ps := p.State()
	room, band, ok := leaseRoom(ps)
	if !ok || (band == Warn && !p.Warned) {
		return nil, nil
	}
	size = min(size, room)
	scopes := []leaseScope{{scope: ScopePlan, key: p.ID, state: State{Limit: p.Limit, Spent: p.Spent + p.Reserved, Ratios: p.Ratios, Approved: ps.Approved}}}
	bands := []Decision{band}
	for _, cr := range rows {
		st := State{Limit: cr.limit, Spent: cr.spent, Reserved: cr.reserve, Ratios: CapRatios}
		room, b, ok := leaseRoom(st)
		if !ok || (b == Warn && !cr.warned) {
			return nil, nil
		}
		size = min(size, room)
		scopes = append(scopes, leaseScope{scope: cr.cap.Scope, key: cr.cap.Key, state: State{Limit: cr.limit, Spent: cr.spent + cr.reserve, Ratios: CapRatios}})
		bands = append(bands, b)
	}
	if size <= 0 || size < r.Amount {
		return nil, nil
	}
	var verdicts []Verdict
	for i, s := range scopes {
		v := Evaluate(s.scope, s.key, s.state, size)
		if v.Decision != bands[i] { // defensive: the lease must sit in each scope's band
			return nil, nil
		}
		verdicts = append(verdicts, v)
	}
	worst := Worst(verdicts...)

	stopAt := threshold(p.Limit, p.Ratios.Stop)
	if err := l.guardedAdd(ctx, tx, `UPDATE budget_plans SET reserved_nano = reserved_nano + ?, updated_at = ?
		WHERE plan_id = ? AND spent_nano + reserved_nano + ? <= ?`, size, l.stamp(), p.ID, size, stopAt); err != nil {
		return nil, fmt.Errorf("budget: lease on plan %s: %w", p.ID, err)
	}
	scopeIDs := make([]string, 0, len(rows))
	for _, cr := range rows {
		if err := l.guardedAdd(ctx, tx, `UPDATE budget_caps SET reserved_nano = reserved_nano + ?
			WHERE scope = ? AND spent_nano + reserved_nano + ? <= limit_nano`, size, cr.scope, size); err != nil {
			return nil, fmt.Errorf("budget: lease on cap %s: %w", cr.scope, err)
		}
		scopeIDs = append(scopeIDs, cr.scope)
	}
	caps := strings.Join(scopeIDs, ",")
	id := newID()
	admitUntil := now.Add(o.Window)
	expires := admitUntil.Add(o.MaxCall + o.Grace)
	if _, err := l.txExec(ctx, tx, `INSERT INTO budget_leases (lease_id, plan_id, run_id, holder, caps, granted_nano, admit_until, expires_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, p.ID, r.RunID, o.Holder, caps, size, leaseStamp(admitUntil), leaseStamp(expires), leaseStamp(now)); err != nil {
		return nil, fmt.Errorf("budget: record lease on plan %s: %w", p.ID, err)
	}
	if err := l.insertEntry(ctx, tx, entry{id: id, kind: "lease", lease: id, r: r, caps: caps, amount: size, decision: string(worst.Decision),
		reason: fmt.Sprintf("lease of %s to %s, admitting until %s, expiring %s; %s", FormatUSD(size), o.Holder,
			leaseStamp(admitUntil), leaseStamp(expires), worst.Reason)}); err != nil {
		return nil, err
	}
	return &lease{id: id, plan: p.ID, run: r.RunID, caps: caps, month: now.UTC().Format("2006-01"), version: p.Version, band: worst.Decision,
		admitUntil: admitUntil, granted: size, held: size, scopes: scopes}, nil
}
