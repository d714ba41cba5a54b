package webhook

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/agentgate/agentgate/internal/store"
)

// Component is this package's migration component in the store.
const Component = "webhook"

// Migrations create the deliveries table. UNIQUE(delivery_id) is the
// permanent dedup: River's unique jobs expire with job retention, GitHub's
// redeliveries reuse the id forever.
var Migrations = []store.Migration{{
	Version: 1,
	Name:    "webhook_deliveries",
	SQLite: `CREATE TABLE webhook_deliveries (
	delivery_id     TEXT    NOT NULL PRIMARY KEY,
	event           TEXT    NOT NULL,
	action          TEXT    NOT NULL DEFAULT '',
	installation_id INTEGER NOT NULL DEFAULT 0,
	repo            TEXT    NOT NULL DEFAULT '',
	handled         INTEGER NOT NULL,
	received_at     TEXT    NOT NULL,
	payload         BLOB    NOT NULL
)`,
	Postgres: `CREATE TABLE webhook_deliveries (
	delivery_id     TEXT        NOT NULL PRIMARY KEY,
	event           TEXT        NOT NULL,
	action          TEXT        NOT NULL DEFAULT '',
	installation_id BIGINT      NOT NULL DEFAULT 0,
	repo            TEXT        NOT NULL DEFAULT '',
	handled         INTEGER     NOT NULL,
	received_at     TEXT        NOT NULL,
	payload         BYTEA       NOT NULL
)`,
}}

// DeliveryArgs is the durable job for one accepted delivery. The payload
// stays in webhook_deliveries; the job carries only the key.
type DeliveryArgs struct {
	DeliveryID string `json:"delivery_id"`
	Event      string `json:"event"`
}

// Kind is River's job kind.
func (DeliveryArgs) Kind() string { return "github_delivery" }

// Delivery is one webhook delivery as recorded.
type Delivery struct {
	ID             string
	Event          string
	Action         string
	InstallationID int64
	Repo           string // owner/name, "" when the event has no repository
	Payload        []byte
	ReceivedAt     time.Time
}

// Queue records deliveries and enqueues their jobs atomically, on SQLite
// (riversqlite) or PostgreSQL (riverpgxv5), sharing the store's connections.
type Queue struct {
	st     *store.Store
	insert func(ctx context.Context, args river.JobArgs) error
	record func(ctx context.Context, d *Delivery, enqueue bool) (bool, error)
	start  func(ctx context.Context) error
	stop   func(ctx context.Context) error
	cancel func(ctx context.Context) error
}

// MigrateAll applies River's migrations and this package's own.
func MigrateAll(ctx context.Context, st *store.Store) error {
	var err error
	switch st.Dialect() {
	case store.Postgres:
		var m *rivermigrate.Migrator[pgx.Tx]
		if m, err = rivermigrate.New(riverpgxv5.New(st.Pool()), nil); err == nil {
			_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
		}
	default:
		var m *rivermigrate.Migrator[*sql.Tx]
		if m, err = rivermigrate.New(riversqlite.New(st.DB()), nil); err == nil {
			_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
		}
	}
	if err != nil {
		return fmt.Errorf("webhook: apply the job queue's (River) migrations: %w", err)
	}
	if err := st.Migrate(ctx, Component, Migrations); err != nil {
		return fmt.Errorf("webhook: migrate the deliveries table: %w", err)
	}
	return nil
}

const insertDelivery = `INSERT INTO webhook_deliveries
	(delivery_id, event, action, installation_id, repo, handled, received_at, payload)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_id) DO NOTHING`

func deliveryArgs(d *Delivery, enqueue bool) []any {
	h := 0
	if enqueue {
		h = 1
	}
	return []any{d.ID, d.Event, d.Action, d.InstallationID, d.Repo, h, d.ReceivedAt.UTC().Format(time.RFC3339Nano), d.Payload}
}

// jobOpts bounds retries: a delivery that keeps failing goes to River's
// discarded state (our dead letters) instead of retrying for weeks.
var jobOpts = &river.InsertOpts{MaxAttempts: 12}

// NewQueue builds the River client for the store's dialect. cfg may carry
// Workers and Queues (a worker process) or neither (insert only). Call
// MigrateAll first.
func NewQueue(st *store.Store, cfg *river.Config) (*Queue, error) {
	if cfg == nil {
		cfg = &river.Config{}
	}
	q := &Queue{st: st}
	switch st.Dialect() {
	case store.Postgres:
		c, err := river.NewClient(riverpgxv5.New(st.Pool()), cfg)
		if err != nil {
			return nil, fmt.Errorf("webhook: create the job queue client: %w", err)
		}
		q.start, q.stop, q.cancel = c.Start, c.Stop, c.StopAndCancel
		q.insert = func(ctx context.Context, args river.JobArgs) error {
			_, err := c.Insert(ctx, args, jobOpts)
			return err
		}
		ins := st.Rebind(insertDelivery)
		q.record = func(ctx context.Context, d *Delivery, enqueue bool) (bool, error) {
			tx, err := st.Pool().Begin(ctx)
			if err != nil {
				return false, fmt.Errorf("begin: %w", err)
			}
			defer tx.Rollback(ctx) //nolint:errcheck // after Commit this is a no-op
			tag, err := tx.Exec(ctx, ins, deliveryArgs(d, enqueue)...)
			if err != nil {
				return false, fmt.Errorf("record delivery: %w", err)
			}
			if tag.RowsAffected() == 0 {
				return true, nil
			}
			if enqueue {
				if _, err := c.InsertTx(ctx, tx, DeliveryArgs{DeliveryID: d.ID, Event: d.Event}, jobOpts); err != nil {
					return false, fmt.Errorf("enqueue: %w", err)
				}
			}
			return false, tx.Commit(ctx)
		}
	default:
		c, err := river.NewClient(riversqlite.New(st.DB()), cfg)
		if err != nil {
			return nil, fmt.Errorf("webhook: create the job queue client: %w", err)
		}
		q.start, q.stop, q.cancel = c.Start, c.Stop, c.StopAndCancel
		q.insert = func(ctx context.Context, args river.JobArgs) error {
			_, err := c.Insert(ctx, args, jobOpts)
			return err
		}
		b := &batcher{db: st.DB(), client: c, reqs: make(chan *recordReq)}
		go b.loop()
		q.record = b.record
	}
	return q, nil
}

// Record stores the delivery and, when enqueue is set, its job, in one
// transaction. duplicate reports a delivery id seen before (nothing written).
func (q *Queue) Record(ctx context.Context, d *Delivery, enqueue bool) (duplicate bool, err error) {
	dup, err := q.record(ctx, d, enqueue)
	if err != nil {
		return false, fmt.Errorf("webhook: record delivery %s: %w", d.ID, err)
	}
	return dup, nil
}

// Insert enqueues a job that does not come from a delivery (reconciler).
func (q *Queue) Insert(ctx context.Context, args river.JobArgs) (bool, error) {
	if err := q.insert(ctx, args); err != nil {
		return false, fmt.Errorf("webhook: enqueue %s: %w", args.Kind(), err)
	}
	return true, nil
}

// Start starts River's workers and maintenance (only with workers configured).
func (q *Queue) Start(ctx context.Context) error { return q.start(ctx) }

// Stop waits for running jobs to finish (until ctx ends), then stops.
func (q *Queue) Stop(ctx context.Context) error { return q.stop(ctx) }

// StopAndCancel cancels running jobs' contexts and waits for them to
// return; River records them as retryable, so the next start runs them.
func (q *Queue) StopAndCancel(ctx context.Context) error { return q.cancel(ctx) }

// ErrUnknownDelivery means no delivery with that id was recorded.
var ErrUnknownDelivery = errors.New("webhook: unknown delivery")

// Load reads a recorded delivery.
func Load(ctx context.Context, st *store.Store, id string) (*Delivery, error) {
	d := &Delivery{ID: id}
	var received string
	err := st.DB().QueryRowContext(ctx, st.Rebind(`SELECT event, action, installation_id, repo, received_at, payload
		FROM webhook_deliveries WHERE delivery_id = ?`), id).Scan(&d.Event, &d.Action, &d.InstallationID, &d.Repo, &received, &d.Payload)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w %s", ErrUnknownDelivery, id)
	}
	if err != nil {
		return nil, fmt.Errorf("webhook: load delivery %s: %w", id, err)
	}
	d.ReceivedAt, _ = time.Parse(time.RFC3339Nano, received)
	return d, nil
}

// PendingJobs counts jobs not yet finished (queue depth).
func PendingJobs(ctx context.Context, st *store.Store) (int64, error) {
	var n int64
	err := st.DB().QueryRowContext(ctx, `SELECT count(*) FROM river_job WHERE state IN ('available','scheduled','retryable','running','pending')`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("webhook: count queued jobs: %w", err)
	}
	return n, nil
}

// batcher is group commit for SQLite: SQLite has one writer and every
// commit is an fsync, so deliveries that arrive while a commit is in flight
// are written together in the next transaction. Nothing waits for a batch to
// fill (a lone delivery commits at once), and every caller is answered only
// after the transaction holding its row and job has committed.
type batcher struct {
	db     *sql.DB
	client *river.Client[*sql.Tx]
	reqs   chan *recordReq
}

type recordReq struct {
	ctx     context.Context
	d       *Delivery
	enqueue bool
	done    chan recordRes
}

type recordRes struct {
	dup bool
	err error
}

const maxBatch = 64

func (b *batcher) record(ctx context.Context, d *Delivery, enqueue bool) (bool, error) {
	r := &recordReq{ctx: ctx, d: d, enqueue: enqueue, done: make(chan recordRes, 1)}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	// Wait for the outcome even if ctx ends meanwhile: the row may be
	// committed, and the caller must not answer as if it were not.
	res := <-r.done
	return res.dup, res.err
}

func (b *batcher) loop() {
	for first := range b.reqs {
		batch := []*recordReq{first}
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		// Drop requests whose caller already gave up before we started.
		live := batch[:0]
		for _, r := range batch {
			if err := r.ctx.Err(); err != nil {
				r.done <- recordRes{err: err}
				continue
			}
			live = append(live, r)
		}
		if len(live) == 0 {
			continue
		}
		res, err := b.write(live)
		if err != nil && len(live) > 1 {
			// One bad row must not fail its neighbours: retry one by one.
			for _, r := range live {
				rr, err := b.write([]*recordReq{r})
				if err != nil {
					r.done <- recordRes{err: err}
				} else {
					r.done <- rr[0]
				}
			}
			continue
		}
		for i, r := range live {
			if err != nil {
				r.done <- recordRes{err: err}
			} else {
				r.done <- res[i]
			}
		}
	}
}

func (b *batcher) write(batch []*recordReq) ([]recordRes, error) {
	ctx := context.WithoutCancel(batch[0].ctx)
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	out := make([]recordRes, len(batch))
	stmt, err := tx.PrepareContext(ctx, insertDelivery)
	if err != nil {
		return nil, fmt.Errorf("record delivery: %w", err)
	}
	defer stmt.Close()
	var jobs []river.InsertManyParams
	for i, r := range batch {
		res, err := stmt.ExecContext(ctx, deliveryArgs(r.d, r.enqueue)...)
		if err != nil {
			return nil, fmt.Errorf("record delivery: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("record delivery: %w", err)
		}
		if n == 0 {
			out[i].dup = true
			continue
		}
		if r.enqueue {
			jobs = append(jobs, river.InsertManyParams{Args: DeliveryArgs{DeliveryID: r.d.ID, Event: r.d.Event}, InsertOpts: jobOpts})
		}
	}
	if len(jobs) > 0 {
		// One call for the batch: River parses its insert once.
		if _, err := b.client.InsertManyTx(ctx, tx, jobs); err != nil {
			return nil, fmt.Errorf("enqueue: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return out, nil
}
