package audit

import (
	"bytes"
	"context"

	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentgate/agentgate/gate/sign"
	"github.com/agentgate/agentgate/internal/store"
	"github.com/sigstore/sigstore/pkg/signature"
)

// MaxPayload bounds one record's payload (compacted JSON).
const MaxPayload = 1 << 20

// maxField bounds each text field other than the payload.
const maxField = 4096

// Event is what a caller appends. Payload is any JSON-marshalable value
// (a json.RawMessage is used as is, after compaction); nil means {}.
type Event struct {
	Actor   string // who caused it: "gate", a GitHub login, "agent:<id>"
	Kind    string // what happened, dotted: "gate.decision", "gate.stop", "github.merge"
	Repo    string
	SHA     string
	PlanID  string
	RunID   string
	Payload any
}

// Record is one stored audit record.
type Record struct {
	Seq      int64           `json:"seq"`
	Time     time.Time       `json:"time"`
	Actor    string          `json:"actor"`
	Kind     string          `json:"kind"`
	Repo     string          `json:"repo"`
	SHA      string          `json:"sha"`
	PlanID   string          `json:"plan_id"`
	RunID    string          `json:"run_id"`
	Payload  json.RawMessage `json:"payload"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
}

// Head is the last record of the log ({0, GenesisHash} when empty).
type Head struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// Checkpoint is a signed chain head.
type Checkpoint struct {
	ID        int64     `json:"id"`
	Time      time.Time `json:"time"`
	HeadSeq   int64     `json:"head_seq"`
	HeadHash  string    `json:"head_hash"`
	KeyHint   string    `json:"key_hint"`
	Signature []byte    `json:"signature"`
}

// Options configure a Log.
type Options struct {
	// Signer signs checkpoints. Without one, Checkpoint fails and no
	// periodic checkpoints are written.
	Signer signature.Signer
	// CheckpointEvery writes a checkpoint inside the append transaction
	// whenever the head's seq is a multiple of it (0: never; call
	// Checkpoint instead).
	CheckpointEvery int64
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// Log is the audit log in one store.
type Log struct {
	st      *store.Store
	opts    Options
	keyHint string
}

// Open migrates the audit tables and returns the log.
func Open(ctx context.Context, st *store.Store, opts Options) (*Log, error) {
	if err := st.Migrate(ctx, Component, Migrations); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	l := &Log{st: st, opts: opts}
	if l.opts.Now == nil {
		l.opts.Now = time.Now
	}
	if opts.Signer != nil {
		pub, err := opts.Signer.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("audit: read the signer's public key: %w", err)
		}
		if l.keyHint, err = sign.KeyHint(pub); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
	}
	return l, nil
}

// Store is the store the log lives in.
func (l *Log) Store() *store.Store { return l.st }

// Append appends one event and returns the stored record.
func (l *Log) Append(ctx context.Context, e Event) (Record, error) {
	rs, err := l.AppendBatch(ctx, []Event{e})
	if err != nil {
		return Record{}, err
	}
	return rs[0], nil
}

// AppendBatch appends events in one transaction, in order: all or none.
func (l *Log) AppendBatch(ctx context.Context, events []Event) ([]Record, error) {
	if len(events) == 0 {
		return nil, nil
	}
	prepared := make([]Record, len(events))
	for i, e := range events {
		r, err := prepare(e)
		if err != nil {
			return nil, fmt.Errorf("audit: event %d (%s): %w", i, e.Kind, err)
		}
		prepared[i] = r
	}
	var out []Record
	err := l.st.InTx(ctx, func(tx *sql.Tx) error {
		head, err := l.lockedHead(ctx, tx)
		if err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, l.st.Rebind(`INSERT INTO audit
			(seq, time, actor, kind, repo, sha, plan_id, run_id, payload, prev_hash, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`))
		if err != nil {
			return err
		}
		defer stmt.Close()
		now := l.opts.Now().UTC()
		out = make([]Record, 0, len(prepared))
		for _, r := range prepared {
			r.Seq = head.Seq + 1
			r.Time = now
			r.PrevHash = head.Hash
			r.Hash = Hash(&r)
			if _, err := stmt.ExecContext(ctx, r.Seq, r.Time.Format(TimeFormat), r.Actor, r.Kind, r.Repo, r.SHA,
				r.PlanID, r.RunID, string(r.Payload), r.PrevHash, r.Hash); err != nil {
				return fmt.Errorf("insert record %d: %w", r.Seq, err)
			}
			head = Head{Seq: r.Seq, Hash: r.Hash}
			out = append(out, r)
			if l.opts.Signer != nil && l.opts.CheckpointEvery > 0 && r.Seq%l.opts.CheckpointEvery == 0 {
				if _, err := l.insertCheckpoint(ctx, tx, head); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit: append: %w", err)
	}
	return out, nil
}

func prepare(e Event) (Record, error) {
	for name, v := range map[string]string{"actor": e.Actor, "kind": e.Kind, "repo": e.Repo, "sha": e.SHA, "plan_id": e.PlanID, "run_id": e.RunID} {
		if len(v) > maxField {
			return Record{}, fmt.Errorf("%s is longer than %d bytes", name, maxField)
		}
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			return Record{}, fmt.Errorf("%s is not valid UTF-8 text", name)
		}
	}
	if e.Kind == "" || e.Actor == "" {
		return Record{}, errors.New("kind and actor are required")
	}
	var raw []byte
	switch p := e.Payload.(type) {
	case nil:
		raw = []byte("{}")
	case json.RawMessage:
		raw = p
	case []byte:
		raw = p
	default:
		b, err := json.Marshal(p)
		if err != nil {
			return Record{}, fmt.Errorf("encode the payload: %w", err)
		}
		raw = b
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return Record{}, fmt.Errorf("the payload is not valid JSON: %w", err)
	}
	if buf.Len() > MaxPayload {
		return Record{}, fmt.Errorf("the payload is %d bytes; the limit is %d", buf.Len(), MaxPayload)
	}
	if bytes.ContainsRune(buf.Bytes(), 0) || !utf8.Valid(buf.Bytes()) {
		return Record{}, errors.New("the payload is not valid UTF-8")
	}
	return Record{Actor: e.Actor, Kind: e.Kind, Repo: e.Repo, SHA: e.SHA, PlanID: e.PlanID, RunID: e.RunID,
		Payload: json.RawMessage(buf.Bytes())}, nil
}

// lockedHead takes the append lock (PostgreSQL: advisory lock; SQLite: the
// transaction already holds the write lock) and reads the head.
func (l *Log) lockedHead(ctx context.Context, tx *sql.Tx) (Head, error) {
	if l.st.Dialect() == store.Postgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext('agentgate.audit'))"); err != nil {
			return Head{}, fmt.Errorf("lock the audit log: %w", err)
		}
	}
	return readHead(ctx, tx)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func readHead(ctx context.Context, q querier) (Head, error) {
	var h Head
	err := q.QueryRowContext(ctx, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").Scan(&h.Seq, &h.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return Head{Seq: 0, Hash: GenesisHash}, nil
	}
	if err != nil {
		return Head{}, fmt.Errorf("read the audit head: %w", err)
	}
	return h, nil
}

// Head returns the last record's seq and hash.
func (l *Log) Head(ctx context.Context) (Head, error) {
	return readHead(ctx, l.st.DB())
}

// Checkpoint signs the current head and stores the checkpoint. When the
// latest checkpoint already covers the head it is returned unchanged.
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) {
	if l.opts.Signer == nil {
		return Checkpoint{}, errors.New("audit: checkpoint needs the gate key (--sign-key)")
	}
	var c Checkpoint
	err := l.st.InTx(ctx, func(tx *sql.Tx) error {
		head, err := l.lockedHead(ctx, tx)
		if err != nil {
			return err
		}
		last, ok, err := lastCheckpoint(ctx, tx)
		if err != nil {
			return err
		}
		if ok && last.HeadSeq == head.Seq && last.HeadHash == head.Hash && last.KeyHint == l.keyHint {
			c = last
			return nil
		}
		c, err = l.insertCheckpoint(ctx, tx, head)
		return err
	})
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint: %w", err)
	}
	return c, nil
}

func (l *Log) insertCheckpoint(ctx context.Context, tx *sql.Tx, head Head) (Checkpoint, error) {
	var id int64
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) + 1 FROM audit_checkpoints").Scan(&id); err != nil {
		return Checkpoint{}, err
	}
	c := Checkpoint{ID: id, Time: l.opts.Now().UTC(), HeadSeq: head.Seq, HeadHash: head.Hash, KeyHint: l.keyHint}
	sig, err := l.opts.Signer.SignMessage(bytes.NewReader(CheckpointMessage(&c)))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("sign the checkpoint: %w", err)
	}
	c.Signature = sig
	_, err = tx.ExecContext(ctx, l.st.Rebind("INSERT INTO audit_checkpoints (id, time, head_seq, head_hash, key_hint, signature) VALUES (?, ?, ?, ?, ?, ?)"),
		c.ID, c.Time.Format(TimeFormat), c.HeadSeq, c.HeadHash, c.KeyHint, base64.StdEncoding.EncodeToString(sig))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("store the checkpoint: %w", err)
	}
	return c, nil
}

func lastCheckpoint(ctx context.Context, q querier) (Checkpoint, bool, error) {
	row := q.QueryRowContext(ctx, "SELECT id, time, head_seq, head_hash, key_hint, signature FROM audit_checkpoints ORDER BY id DESC LIMIT 1")
	c, err := scanCheckpoint(row.Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return Checkpoint{}, false, nil
	}
	if err != nil {
		return Checkpoint{}, false, err
	}
	return c, true, nil
}

func scanCheckpoint(scan func(...any) error) (Checkpoint, error) {
	var c Checkpoint
	var t, sig string
	if err := scan(&c.ID, &t, &c.HeadSeq, &c.HeadHash, &c.KeyHint, &sig); err != nil {
		return c, err
	}
	var err error
	if c.Time, err = time.Parse(TimeFormat, t); err != nil {
		return c, fmt.Errorf("checkpoint %d: bad time %q", c.ID, t)
	}
	if c.Signature, err = base64.StdEncoding.DecodeString(sig); err != nil {
		return c, fmt.Errorf("checkpoint %d: bad signature encoding", c.ID)
	}
	return c, nil
}

// Checkpoints returns every checkpoint, oldest first.
func (l *Log) Checkpoints(ctx context.Context) ([]Checkpoint, error) {
	rows, err := l.st.DB().QueryContext(ctx, "SELECT id, time, head_seq, head_hash, key_hint, signature FROM audit_checkpoints ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("audit: read checkpoints: %w", err)
	}
	defer rows.Close()
	var out []Checkpoint
	for rows.Next() {
		c, err := scanCheckpoint(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("audit: read checkpoints: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

const selectRecords = "SELECT seq, time, actor, kind, repo, sha, plan_id, run_id, payload, prev_hash, hash FROM audit"

// rawRecord keeps the stored time text so that Verify hashes what is stored.
type rawRecord struct {
	Record
	timeText string
}

func scanRecord(scan func(...any) error) (rawRecord, error) {
	var r rawRecord
	var payload string
	if err := scan(&r.Seq, &r.timeText, &r.Actor, &r.Kind, &r.Repo, &r.SHA, &r.PlanID, &r.RunID, &payload, &r.PrevHash, &r.Hash); err != nil {
		return r, err
	}
	r.Payload = json.RawMessage(payload)
	r.Time, _ = time.Parse(TimeFormat, r.timeText)
	return r, nil
}

// Each calls fn for every record with seq > after, in order, stopping at
// the first error.
func (l *Log) Each(ctx context.Context, after int64, fn func(Record) error) error {
	return l.each(ctx, after, func(r rawRecord) error { return fn(r.Record) })
}

func (l *Log) each(ctx context.Context, after int64, fn func(rawRecord) error) error {
	// Page through the log so that a long walk never holds SQLite's only
	// connection for its whole duration.
	const page = 1000
	for {
		rows, err := l.st.DB().QueryContext(ctx, l.st.Rebind(selectRecords+" WHERE seq > ? ORDER BY seq LIMIT ?"), after, page)
		if err != nil {
			return fmt.Errorf("audit: read records: %w", err)
		}
		var batch []rawRecord
		for rows.Next() {
			r, err := scanRecord(rows.Scan)
			if err != nil {
				rows.Close()
				return fmt.Errorf("audit: read records: %w", err)
			}
			batch = append(batch, r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("audit: read records: %w", err)
		}
		for _, r := range batch {
			if err := fn(r); err != nil {
				return err
			}
			after = r.Seq
		}
		if len(batch) < page {
			return nil
		}
	}
}

// Tail returns the last n records, oldest first.
func (l *Log) Tail(ctx context.Context, n int) ([]Record, error) {
	if n <= 0 {
		return nil, nil
	}
	head, err := l.Head(ctx)
	if err != nil {
		return nil, err
	}
	var out []Record
	err = l.Each(ctx, max(head.Seq-int64(n), 0), func(r Record) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// Verifier checks checkpoint signatures; use sign.LoadVerifier.
type Verifier = signature.Verifier
