package budget

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentgate/agentgate/internal/store"
	"github.com/agentgate/agentgate/policies"
)

// StoreLedger is the Ledger kept in agentgate's store (SQLite or
// PostgreSQL). Admission is one transaction per call: on SQLite the
// transaction begins IMMEDIATE and so holds the database's single write lock;
// on PostgreSQL the plan's and caps' rows are locked with SELECT ... FOR
// UPDATE (always in the same order: plan, then caps sorted by scope).
// Either way the read-judge-reserve sequence of two calls never interleaves,
// and every UPDATE repeats the limit as a guard.
type StoreLedger struct {
	st    *store.Store
	audit Auditor
	now   func() time.Time

	// Prepared statements (SQLite only: pgx caches statements itself).
	// modernc re-parses unprepared SQL on every call, a fifth of a call's
	// CPU; statements are prepared outside a transaction, after first use,
	// because SQLite's single connection is busy inside one.
	mu     sync.Mutex
	stmts  map[string]*sql.Stmt
	wanted map[string]bool
}

// NewStoreLedger migrates the ledger's tables and returns the ledger.
// audit may be nil only in tests of the ledger itself.
func NewStoreLedger(ctx context.Context, st *store.Store, audit Auditor) (*StoreLedger, error) {
	if err := st.Migrate(ctx, Component, migrations); err != nil {
		return nil, fmt.Errorf("budget: migrate the ledger tables: %w", err)
	}
	return &StoreLedger{st: st, audit: audit, now: time.Now, stmts: map[string]*sql.Stmt{}, wanted: map[string]bool{}}, nil
}

func (l *StoreLedger) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	err := l.st.InTx(ctx, fn)
	l.prepareWanted(ctx)
	return err
}

func (l *StoreLedger) stmt(q string) *sql.Stmt {
	if l.st.Dialect() != store.SQLite {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stmts[q]
	if s == nil {
		l.wanted[q] = true
	}
	return s
}

func (l *StoreLedger) prepareWanted(ctx context.Context) {
	l.mu.Lock()
	var qs []string
	for q := range l.wanted {
		qs = append(qs, q)
	}
	clear(l.wanted)
	l.mu.Unlock()
	for _, q := range qs {
		s, err := l.st.DB().PrepareContext(context.WithoutCancel(ctx), q)
		if err != nil {
			continue // stays unprepared; the next use tries again
		}
		l.mu.Lock()
		if l.stmts[q] == nil {
			l.stmts[q] = s
		} else {
			s.Close()
		}
		l.mu.Unlock()
	}
}

func (l *StoreLedger) txExec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	if s := l.stmt(q); s != nil {
		return tx.StmtContext(ctx, s).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, l.q(q), args...)
}

func (l *StoreLedger) txRow(ctx context.Context, tx *sql.Tx, q string, args ...any) *sql.Row {
	if s := l.stmt(q); s != nil {
		return tx.StmtContext(ctx, s).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, l.q(q), args...)
}

var _ Ledger = (*StoreLedger)(nil)

func (l *StoreLedger) q(s string) string { return l.st.Rebind(s) }

func (l *StoreLedger) isPostgres() bool { return l.st.Dialect() == store.Postgres }

func (l *StoreLedger) forUpdate() string {
	if l.st.Dialect() == store.Postgres {
		return " FOR UPDATE"
	}
	return "" // BEGIN IMMEDIATE already holds the write lock
}

func (l *StoreLedger) stamp() string { return l.now().UTC().Format(time.RFC3339Nano) }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// EnsurePlan implements Ledger.
func (l *StoreLedger) EnsurePlan(ctx context.Context, p Plan) error {
	if err := p.Validate(); err != nil {
		return err
	}
	return l.inTx(ctx, func(tx *sql.Tx) error {
		_, err := l.txExec(ctx, tx, (`INSERT INTO budget_plans
			(plan_id, limit_nano, warn_ratio, escalate_ratio, stop_ratio, repo, degrade_to_local, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (plan_id) DO UPDATE SET limit_nano = excluded.limit_nano,
				warn_ratio = excluded.warn_ratio, escalate_ratio = excluded.escalate_ratio,
				stop_ratio = excluded.stop_ratio, repo = excluded.repo,
				degrade_to_local = excluded.degrade_to_local, updated_at = excluded.updated_at,
				version = budget_plans.version + CASE WHEN budget_plans.limit_nano <> excluded.limit_nano
					OR budget_plans.warn_ratio <> excluded.warn_ratio OR budget_plans.escalate_ratio <> excluded.escalate_ratio
					OR budget_plans.stop_ratio <> excluded.stop_ratio OR budget_plans.repo <> excluded.repo
					OR budget_plans.degrade_to_local <> excluded.degrade_to_local THEN 1 ELSE 0 END`),
			p.ID, p.Limit, p.Ratios.Warn, p.Ratios.Escalate, p.Ratios.Stop, p.Repo, b2i(p.DegradeToLocal), l.stamp())
		if err != nil {
			return fmt.Errorf("budget: register plan %s: %w", p.ID, err)
		}
		return nil
	})
}

const planColumns = `plan_id, limit_nano, warn_ratio, escalate_ratio, stop_ratio, repo, degrade_to_local,
	spent_nano, reserved_nano, warned, escalated, approved_by, approved_at, stopped, stop_reason, version`

type rowScanner interface{ Scan(dest ...any) error }

func scanPlan(r rowScanner) (PlanStatus, error) {
	var p PlanStatus
	var degrade, warned, escalated, stopped int
	var approvedAt string
	err := r.Scan(&p.ID, &p.Limit, &p.Ratios.Warn, &p.Ratios.Escalate, &p.Ratios.Stop, &p.Repo, &degrade,
		&p.Spent, &p.Reserved, &warned, &escalated, &p.ApprovedBy, &approvedAt, &stopped, &p.StopReason, &p.Version)
	if err != nil {
		return p, err
	}
	p.DegradeToLocal, p.Warned, p.Escalated, p.Stopped = degrade != 0, warned != 0, escalated != 0, stopped != 0
	if approvedAt != "" {
		p.ApprovedAt, _ = time.Parse(time.RFC3339Nano, approvedAt)
	}
	if p.Limit > 0 {
		p.Ratio = float64(p.Spent+p.Reserved) / float64(p.Limit)
	}
	return p, nil
}

func (l *StoreLedger) lockPlan(ctx context.Context, tx *sql.Tx, planID string) (PlanStatus, error) {
	p, err := scanPlan(l.txRow(ctx, tx, (`SELECT ` + planColumns + ` FROM budget_plans WHERE plan_id = ?` + l.forUpdate()), planID))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("budget: plan %q: %w (issue a run key for it with `agentgate gateway keys issue --plan`)", planID, ErrUnknownPlan)
	}
	if err != nil {
		return p, fmt.Errorf("budget: read plan %s: %w", planID, err)
	}
	return p, nil
}

// capScope is a cap's row key: kind, key and the calendar month.
func capScope(c Cap, now time.Time) string {
	return c.Scope + ":" + c.Key + "@" + now.UTC().Format("2006-01")
}

type capRow struct {
	scope                 string
	cap                   Cap
	limit, spent, reserve int64
	warned                bool
}

// onlyPlanRefuses reports whether the plan's verdict (the first) is the only
// refusal among verdicts.
func onlyPlanRefuses(verdicts []Verdict) bool {
	for _, v := range verdicts[1:] {
		if v.Decision.Refused() {
			return false
		}
	}
	return true
}

// leaseView is what the caller of reserveTx knows of leases: its holder
// name, and the unused parts of its own open leases on the plan.
type leaseView struct {
	holder  string
	ownFree int64
}

// leasedTx is what the open budget leases of a plan held by others than
// holder hold.
func (l *StoreLedger) leasedTx(ctx context.Context, tx *sql.Tx, planID, holder string) (int64, error) {
	var n int64
	err := l.txRow(ctx, tx, `SELECT CAST(COALESCE(SUM(granted_nano - consumed_nano - released_nano), 0) AS BIGINT) FROM budget_leases
		WHERE plan_id = ? AND open = 1 AND holder <> ?`, planID, holder).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("budget: read the leases of plan %s: %w", planID, err)
	}
	return n, nil
}

// lockCaps creates (first call of the month) and locks the rows of the caps
// of r that apply to repo, sorted by scope.
func (l *StoreLedger) lockCaps(ctx context.Context, tx *sql.Tx, r ReserveRequest, repo string, now time.Time) ([]capRow, error) {
	caps := r.CapsFor(repo)
	slices.SortFunc(caps, func(a, b Cap) int { return strings.Compare(capScope(a, now), capScope(b, now)) })
	rows := make([]capRow, 0, len(caps))
	for _, c := range caps {
		scope := capScope(c, now)
		if _, err := l.txExec(ctx, tx, (`INSERT INTO budget_caps (scope, limit_nano) VALUES (?, ?)
			ON CONFLICT (scope) DO UPDATE SET limit_nano = excluded.limit_nano`), scope, c.Limit); err != nil {
			return nil, fmt.Errorf("budget: cap %s: %w", scope, err)
		}
		cr := capRow{scope: scope, cap: c}
		var warned int
		if err := l.txRow(ctx, tx, (`SELECT limit_nano, spent_nano, reserved_nano, warned FROM budget_caps WHERE scope = ?`+l.forUpdate()), scope).
			Scan(&cr.limit, &cr.spent, &cr.reserve, &warned); err != nil {
			return nil, fmt.Errorf("budget: read cap %s: %w", scope, err)
		}
		cr.warned = warned != 0
		rows = append(rows, cr)
	}
	return rows, nil
}

func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// Reserve implements Ledger.
func (l *StoreLedger) Reserve(ctx context.Context, r ReserveRequest) (Reservation, error) {
	if r.Amount < 0 {
		return Reservation{}, fmt.Errorf("budget: negative reservation %d", r.Amount)
	}
	var res Reservation
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = l.reserveTx(ctx, tx, r, l.now(), leaseView{})
		return err
	})
	if err != nil {
		return Reservation{}, err
	}
	return l.recordReservation(ctx, res, func(ctx context.Context) error {
		return l.Settle(ctx, Settlement{ReservationID: res.ID, Outcome: OutcomeUnreached, Detail: "audit log unavailable"})
	})
}

// recordReservation writes a reservation's events to the audit log before
// the gateway answers the call that caused them. If it cannot, the call is
// refused (fail closed) and undo releases the reservation.
func (l *StoreLedger) recordReservation(ctx context.Context, res Reservation, undo func(context.Context) error) (Reservation, error) {
	if err := l.record(ctx, res.Events); err != nil {
		if res.ID != "" {
			_ = undo(context.WithoutCancel(ctx))
		}
		return Reservation{}, err
	}
	return res, nil
}

// reserveTx is the read-judge-reserve of one call inside tx: it locks the
// plan and its caps, judges the call on every scope, latches a stop or an
// escalation, and either reserves the call's worst case on every scope or
// records the refusal.
//
// A call refused on the plan only is refused as Busy, without latching,
// when it would pass without the leases that are not the caller's to judge:
// those of other holders (whose unused parts are unknown here), and the
// unused parts of the caller's own (lv.ownFree). The caller's own leases'
// calls in flight count, like single reservations.
func (l *StoreLedger) reserveTx(ctx context.Context, tx *sql.Tx, r ReserveRequest, now time.Time, lv leaseView) (Reservation, error) {
	var res Reservation
	var events []Event
	err := func() error {
		p, err := l.lockPlan(ctx, tx, r.PlanID)
		if err != nil {
			return err
		}
		rows, err := l.lockCaps(ctx, tx, r, p.Repo, now)
		if err != nil {
			return err
		}

		planV := Evaluate(ScopePlan, p.ID, p.State(), r.Amount)
		verdicts := []Verdict{planV}
		for _, cr := range rows {
			verdicts = append(verdicts, Evaluate(cr.cap.Scope, cr.cap.Key, State{Limit: cr.limit, Spent: cr.spent, Reserved: cr.reserve, Ratios: CapRatios}, r.Amount))
		}
		verdicts = append(verdicts, Ceiling(r.Ceiling, r.Amount))
		worst := Worst(verdicts...)
		res = Reservation{Verdict: worst, Verdicts: verdicts, Plan: p}
		ev := func(kind string, v Verdict) Event {
			return Event{Kind: kind, PlanID: p.ID, RunID: r.RunID, Model: r.Model, Scope: v.Scope, Amount: r.Amount,
				Spent: p.Spent, Reserved: p.Reserved, Limit: v.Limit, Ratio: v.Ratio, Reason: v.Reason}
		}

		id := newID()
		if worst.Decision.Refused() && planV.Decision.Refused() && !p.Stopped && onlyPlanRefuses(verdicts) {
			// Would this call be refused without the budget leases? Then
			// they, not spending, stand in the way: refuse it for now,
			// without latching a stop or an escalation.
			leased, err := l.leasedTx(ctx, tx, p.ID, lv.holder)
			if err != nil {
				return err
			}
			leased += lv.ownFree
			alt := p.State()
			alt.Reserved -= leased
			if leased > 0 && !Evaluate(ScopePlan, p.ID, alt, r.Amount).Decision.Refused() {
				busy := planV
				busy.Decision = Busy
				busy.Reason = fmt.Sprintf("plan %s: %s of its budget is held by budget leases (calls in flight, or other gateway processes); without them this call would pass: retry shortly",
					p.ID, FormatUSD(leased))
				verdicts[0] = busy
				res = Reservation{Verdict: busy, Verdicts: verdicts, Plan: p}
				return l.insertEntry(ctx, tx, entry{id: newID(), kind: "refuse", r: r, amount: r.Amount, decision: string(Busy), reason: busy.Reason})
			}
		}
		if worst.Decision.Refused() {
			switch {
			case planV.Decision == HardStop && !p.Stopped:
				e := ev(EventStop, planV)
				e.StopReason = policies.StopBudgetExceeded
				events = append(events, e)
				if _, err := l.txExec(ctx, tx, (`UPDATE budget_plans SET stopped = 1, stop_reason = ?, updated_at = ?, version = version + 1 WHERE plan_id = ?`),
					planV.Reason, l.stamp(), p.ID); err != nil {
					return fmt.Errorf("budget: latch the stop of plan %s: %w", p.ID, err)
				}
				res.Plan.Stopped, res.Plan.StopReason = true, planV.Reason
			case planV.Decision == ApprovalRequired && !p.Escalated:
				events = append(events, ev(EventEscalate, planV))
				if _, err := l.txExec(ctx, tx, (`UPDATE budget_plans SET escalated = 1, updated_at = ?, version = version + 1 WHERE plan_id = ?`), l.stamp(), p.ID); err != nil {
					return fmt.Errorf("budget: mark plan %s escalated: %w", p.ID, err)
				}
				res.Plan.Escalated = true
			}
			res.Events = events
			return l.insertEntry(ctx, tx, entry{id: id, kind: "refuse", r: r, amount: r.Amount, decision: string(worst.Decision), reason: worst.Reason})
		}

		// Allowed: reserve on the plan and every cap, each guarded by its
		// stop limit so that a logic error cannot overshoot either.
		stopAt := threshold(p.Limit, p.Ratios.Stop)
		if err := l.guardedAdd(ctx, tx, `UPDATE budget_plans SET reserved_nano = reserved_nano + ?, updated_at = ?
			WHERE plan_id = ? AND spent_nano + reserved_nano + ? <= ?`, r.Amount, l.stamp(), p.ID, r.Amount, stopAt); err != nil {
			return fmt.Errorf("budget: reserve on plan %s: %w", p.ID, err)
		}
		res.Plan.Reserved += r.Amount
		scopes := make([]string, 0, len(rows))
		for _, cr := range rows {
			if err := l.guardedAdd(ctx, tx, `UPDATE budget_caps SET reserved_nano = reserved_nano + ?
				WHERE scope = ? AND spent_nano + reserved_nano + ? <= limit_nano`, r.Amount, cr.scope, r.Amount); err != nil {
				return fmt.Errorf("budget: reserve on cap %s: %w", cr.scope, err)
			}
			scopes = append(scopes, cr.scope)
		}
		if planV.Decision == Warn && !p.Warned {
			events = append(events, ev(EventWarn, planV))
			if _, err := l.txExec(ctx, tx, (`UPDATE budget_plans SET warned = 1 WHERE plan_id = ?`), p.ID); err != nil {
				return err
			}
			res.Plan.Warned = true
		}
		for i, cr := range rows {
			if v := verdicts[1+i]; v.Decision == Warn && !cr.warned {
				events = append(events, ev(EventWarn, v))
				if _, err := l.txExec(ctx, tx, (`UPDATE budget_caps SET warned = 1 WHERE scope = ?`), cr.scope); err != nil {
					return err
				}
			}
		}
		res.ID = id
		res.Events = events
		res.caps, res.amount = strings.Join(scopes, ","), r.Amount
		return l.insertEntry(ctx, tx, entry{id: id, kind: "reserve", r: r, caps: res.caps, amount: r.Amount,
			decision: string(worst.Decision), reason: worst.Reason})
	}()
	if err != nil {
		return Reservation{}, err
	}
	return res, nil
}

func (l *StoreLedger) record(ctx context.Context, events []Event) error {
	if l.audit == nil {
		return nil
	}
	for _, e := range events {
		if err := l.audit.RecordBudgetEvent(ctx, e); err != nil {
			return fmt.Errorf("budget: record %s for plan %s in the audit log (refusing the call): %w", e.Kind, e.PlanID, err)
		}
	}
	return nil
}

var errGuard = errors.New("the reservation would cross the limit (concurrent change); retry")

func (l *StoreLedger) guardedAdd(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
	res, err := l.txExec(ctx, tx, (query), args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return errGuard
	}
	return nil
}

type entry struct {
	id, kind string
	lease    string
	r        ReserveRequest
	caps     string
	amount   int64
	decision string
	reason   string
	usage    Usage
}

func (l *StoreLedger) insertEntry(ctx context.Context, tx *sql.Tx, e entry) error {
	_, err := l.txExec(ctx, tx, (`INSERT INTO budget_entries
		(reservation_id, kind, plan_id, run_id, provider, model, caps, amount_nano, decision,
		 input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
		 degraded, cache_hit, reason, at, lease_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		e.id, e.kind, e.r.PlanID, e.r.RunID, e.r.Provider, e.r.Model, e.caps, e.amount, e.decision,
		e.usage.InputTokens, e.usage.CachedInputTokens, e.usage.CacheWriteTokens, e.usage.OutputTokens, e.usage.ReasoningTokens,
		b2i(e.r.Degraded), b2i(e.r.CacheHit), e.reason, l.stamp(), e.lease)
	if err != nil {
		return fmt.Errorf("budget: append to the ledger: %w", err)
	}
	return nil
}

// Settle implements Ledger.
func (l *StoreLedger) Settle(ctx context.Context, s Settlement) error {
	if s.Cost < 0 {
		return fmt.Errorf("budget: negative cost %d for reservation %s", s.Cost, s.ReservationID)
	}
	return l.inTx(ctx, func(tx *sql.Tx) error {
		var r ReserveRequest
		var caps string
		var reserved int64
		var degraded, cacheHit int
		err := l.txRow(ctx, tx, (`SELECT plan_id, run_id, provider, model, caps, amount_nano, degraded, cache_hit
			FROM budget_entries WHERE reservation_id = ? AND kind = 'reserve'`), s.ReservationID).
			Scan(&r.PlanID, &r.RunID, &r.Provider, &r.Model, &caps, &reserved, &degraded, &cacheHit)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("budget: settle %s: %w", s.ReservationID, ErrNoReservation)
		}
		if err != nil {
			return fmt.Errorf("budget: settle %s: %w", s.ReservationID, err)
		}
		r.Degraded, r.CacheHit = degraded != 0, cacheHit != 0
		var n int
		if err := l.txRow(ctx, tx, (`SELECT COUNT(*) FROM budget_entries WHERE reservation_id = ? AND kind = 'settle'`), s.ReservationID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("budget: settle %s: %w", s.ReservationID, ErrAlreadySettled)
		}
		if _, err := l.txExec(ctx, tx, (`UPDATE budget_plans SET reserved_nano = reserved_nano - ?, spent_nano = spent_nano + ?, updated_at = ? WHERE plan_id = ?`),
			reserved, s.Cost, l.stamp(), r.PlanID); err != nil {
			return fmt.Errorf("budget: settle on plan %s: %w", r.PlanID, err)
		}
		if caps != "" {
			for _, scope := range strings.Split(caps, ",") {
				if _, err := l.txExec(ctx, tx, (`UPDATE budget_caps SET reserved_nano = reserved_nano - ?, spent_nano = spent_nano + ? WHERE scope = ?`),
					reserved, s.Cost, scope); err != nil {
					return fmt.Errorf("budget: settle on cap %s: %w", scope, err)
				}
			}
		}
		return l.insertEntry(ctx, tx, entry{id: s.ReservationID, kind: "settle", r: r, caps: caps, amount: s.Cost,
			decision: string(s.Outcome), reason: s.Detail, usage: s.Usage})
	})
}

// Flagged lists the plans whose budget has crossed a threshold that
// people are told of: warned, escalated or stopped (latched in the same
// transaction as the crossing, so a notice lost with a crashed process can
// be sent again from here).
func (l *StoreLedger) Flagged(ctx context.Context) ([]PlanStatus, error) {
	rows, err := l.st.DB().QueryContext(ctx, `SELECT plan_id FROM budget_plans WHERE warned = 1 OR escalated = 1 OR stopped = 1 ORDER BY plan_id`)
	if err != nil {
		return nil, fmt.Errorf("budget: list flagged plans: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]PlanStatus, 0, len(ids))
	for _, id := range ids {
		p, err := l.Status(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Status implements Ledger.
func (l *StoreLedger) Status(ctx context.Context, planID string) (PlanStatus, error) {
	p, err := scanPlan(l.st.DB().QueryRowContext(ctx, l.q(`SELECT `+planColumns+` FROM budget_plans WHERE plan_id = ?`), planID))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("budget: plan %q: %w", planID, ErrUnknownPlan)
	}
	if err != nil {
		return p, fmt.Errorf("budget: read plan %s: %w", planID, err)
	}
	rows, err := l.st.DB().QueryContext(ctx, l.q(`SELECT granted_nano - consumed_nano - released_nano, expires_at
		FROM budget_leases WHERE plan_id = ? AND open = 1`), planID)
	if err != nil {
		return p, fmt.Errorf("budget: read the leases of plan %s: %w", planID, err)
	}
	defer rows.Close()
	now := l.now()
	for rows.Next() {
		var amount int64
		var expires string
		if err := rows.Scan(&amount, &expires); err != nil {
			return p, err
		}
		p.Leased += amount
		p.OpenLeases++
		if t, err := time.Parse(time.RFC3339Nano, expires); err != nil || now.After(t) {
			p.ExpiredLeases++
		}
	}
	return p, rows.Err()
}

// Approve implements Ledger: it lets the plan's calls past the escalation
// ratio (up to the stop ratio). Who may approve is decided by the caller
// (the CLI operator, or the /approve-budget comment command's checks).
func (l *StoreLedger) Approve(ctx context.Context, planID, approver string) error {
	if strings.TrimSpace(approver) == "" {
		return errors.New("budget: an approval needs the approver's name")
	}
	var p PlanStatus
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if p, err = l.lockPlan(ctx, tx, planID); err != nil {
			return err
		}
		if p.Stopped {
			return fmt.Errorf("budget: plan %s is stopped (%s); raise its budget and resume it with `agentgate budget resume` instead", planID, policies.StopBudgetExceeded)
		}
		_, err = l.txExec(ctx, tx, (`UPDATE budget_plans SET approved_by = ?, approved_at = ?, escalated = 0, updated_at = ?, version = version + 1 WHERE plan_id = ?`),
			approver, l.stamp(), l.stamp(), planID)
		return err
	})
	if err != nil {
		return err
	}
	return l.record(ctx, []Event{{Kind: EventApprove, PlanID: planID, Scope: ScopePlan, Spent: p.Spent, Reserved: p.Reserved,
		Limit: p.Limit, Ratio: p.Ratio, Actor: approver, Reason: "approved continuing past the escalation ratio"}})
}

// ApproveBudget is Approve under the name hooks/commands' /approve-budget
// handler asks for (its BudgetApprover interface).
func (l *StoreLedger) ApproveBudget(ctx context.Context, planID, by string) error {
	return l.Approve(ctx, planID, by)
}

// Resume implements Ledger: it lifts the stop latch. The plan stops again
// at its next call if its spend is still at the stop ratio.
func (l *StoreLedger) Resume(ctx context.Context, planID, by string) error {
	if strings.TrimSpace(by) == "" {
		return errors.New("budget: resuming a plan needs the name of who resumes it")
	}
	var p PlanStatus
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if p, err = l.lockPlan(ctx, tx, planID); err != nil {
			return err
		}
		_, err = l.txExec(ctx, tx, (`UPDATE budget_plans SET stopped = 0, stop_reason = '', updated_at = ?, version = version + 1 WHERE plan_id = ?`), l.stamp(), planID)
		return err
	})
	if err != nil {
		return err
	}
	return l.record(ctx, []Event{{Kind: EventResume, PlanID: planID, Scope: ScopePlan, Spent: p.Spent, Reserved: p.Reserved,
		Limit: p.Limit, Ratio: p.Ratio, Actor: by, Reason: "resumed after " + string(policies.StopBudgetExceeded)}})
}

// RunTotals implements Ledger.
func (l *StoreLedger) RunTotals(ctx context.Context, runID string) (RunTotals, error) {
	t := RunTotals{RunID: runID, ByModel: map[string]ModelUsage{}}
	rows, err := l.st.DB().QueryContext(ctx, l.q(`SELECT kind, plan_id, provider, model, amount_nano, decision,
		input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, degraded, cache_hit
		FROM budget_entries WHERE run_id = ? ORDER BY seq`), runID)
	if err != nil {
		return t, fmt.Errorf("budget: read the ledger of run %s: %w", runID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind, planID, provider, model, decision string
		var amount int64
		var u Usage
		var degraded, cacheHit int
		if err := rows.Scan(&kind, &planID, &provider, &model, &amount, &decision,
			&u.InputTokens, &u.CachedInputTokens, &u.CacheWriteTokens, &u.OutputTokens, &u.ReasoningTokens, &degraded, &cacheHit); err != nil {
			return t, err
		}
		t.PlanID = planID
		switch kind {
		case "refuse":
			t.Refused++
		case "orphan":
			// An orphaned lease charged in full: money, not a call.
			t.Cost += amount
		case "settle":
			switch {
			case cacheHit != 0:
				t.CacheHits++
			case Outcome(decision) == OutcomeUnreached:
			case degraded != 0:
				t.LocalCalls++
				t.Degraded = true
			default:
				t.ExternalCalls++
			}
			m := t.ByModel[model]
			m.Provider = provider
			m.Calls++
			m.Usage.Add(u)
			m.Cost += amount
			t.ByModel[model] = m
			t.Tokens.Add(u)
			t.Cost += amount
		}
	}
	if err := rows.Err(); err != nil {
		return t, err
	}
	rows.Close() // SQLite has one connection: free it before the next query
	t.CostUSD = NanoToUSD(t.Cost)
	if t.PlanID != "" {
		if p, err := l.Status(ctx, t.PlanID); err == nil {
			t.Budget, t.BudgetUSD, t.Stopped = p.Limit, NanoToUSD(p.Limit), p.Stopped
		}
	}
	return t, nil
}
