// Package sqlstore keeps recorded approvals and holds in agentgate's store
// (SQLite or PostgreSQL). Every accepted approval is kept, voided ones too: they are
// how a replayed delivery is recognised, and evaluation (approval.Evaluate)
// decides which still count.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/agentgate/agentgate/gate/approval"
	"github.com/agentgate/agentgate/internal/store"
)

// Component is the migration component name.
const Component = "approvals"

// Migrations of the approvals table.
var Migrations = []store.Migration{{
	Version: 1,
	Name:    "approvals",
	SQLite: `CREATE TABLE approvals (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	repo           TEXT    NOT NULL,
	number         INTEGER NOT NULL,
	rung           TEXT    NOT NULL,
	source         TEXT    NOT NULL,
	target         TEXT    NOT NULL,
	head_sha       TEXT    NOT NULL,
	approver_login TEXT    NOT NULL,
	approver_id    INTEGER NOT NULL,
	approver_email TEXT    NOT NULL,
	comment_id     INTEGER NOT NULL,
	delivery_id    TEXT    NOT NULL,
	at             TEXT    NOT NULL,
	auto           INTEGER NOT NULL,
	detail         TEXT    NOT NULL
);
CREATE INDEX approvals_pr ON approvals (repo, number)`,
	Postgres: `CREATE TABLE approvals (
	id             BIGSERIAL PRIMARY KEY,
	repo           TEXT    NOT NULL,
	number         INTEGER NOT NULL,
	rung           TEXT    NOT NULL,
	source         TEXT    NOT NULL,
	target         TEXT    NOT NULL,
	head_sha       TEXT    NOT NULL,
	approver_login TEXT    NOT NULL,
	approver_id    BIGINT  NOT NULL,
	approver_email TEXT    NOT NULL,
	comment_id     BIGINT  NOT NULL,
	delivery_id    TEXT    NOT NULL,
	at             TEXT    NOT NULL,
	auto           INTEGER NOT NULL,
	detail         TEXT    NOT NULL
);
CREATE INDEX approvals_pr ON approvals (repo, number)`,
}, {
	Version: 2,
	Name:    "holds",
	SQLite: `CREATE TABLE approval_holds (
	repo   TEXT    NOT NULL,
	number INTEGER NOT NULL,
	held   INTEGER NOT NULL,
	held_by TEXT   NOT NULL,
	at     TEXT    NOT NULL,
	PRIMARY KEY (repo, number)
)`,
	Postgres: `CREATE TABLE approval_holds (
	repo   TEXT    NOT NULL,
	number INTEGER NOT NULL,
	held   INTEGER NOT NULL,
	held_by TEXT   NOT NULL,
	at     TEXT    NOT NULL,
	PRIMARY KEY (repo, number)
)`,
}}

// Store is the approvals table.
type Store struct{ st *store.Store }

// Open migrates the approvals table.
func Open(ctx context.Context, st *store.Store) (*Store, error) {
	if err := st.Migrate(ctx, Component, Migrations); err != nil {
		return nil, fmt.Errorf("approvals: %w", err)
	}
	return &Store{st: st}, nil
}

// SaveApproval records an accepted approval.
func (s *Store) SaveApproval(ctx context.Context, a approval.Approval) error {
	at := a.At
	if at.IsZero() {
		at = time.Now()
	}
	_, err := s.st.DB().ExecContext(ctx, s.st.Rebind(`INSERT INTO approvals
		(repo, number, rung, source, target, head_sha, approver_login, approver_id, approver_email, comment_id, delivery_id, at, auto, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		a.Repo, a.Number, a.Rung, a.Source, a.Target, a.HeadSHA, a.Approver.Login, a.Approver.ID, a.Approver.Email,
		a.CommentID, a.DeliveryID, at.UTC().Format(time.RFC3339Nano), b2i(a.Auto), a.Detail)
	if err != nil {
		return fmt.Errorf("record approval: %w", err)
	}
	return nil
}

// Approvals returns every recorded approval of one promotion (PR number 0
// for a forge promotion), oldest first.
func (s *Store) Approvals(ctx context.Context, repo string, number int) ([]approval.Approval, error) {
	rows, err := s.st.DB().QueryContext(ctx, s.st.Rebind(`SELECT repo, number, rung, source, target, head_sha,
		approver_login, approver_id, approver_email, comment_id, delivery_id, at, auto, detail
		FROM approvals WHERE repo = ? AND number = ? ORDER BY id`), repo, number)
	if err != nil {
		return nil, fmt.Errorf("read approvals: %w", err)
	}
	defer rows.Close()
	var out []approval.Approval
	for rows.Next() {
		var a approval.Approval
		var at string
		var auto int
		if err := rows.Scan(&a.Repo, &a.Number, &a.Rung, &a.Source, &a.Target, &a.HeadSHA, &a.Approver.Login, &a.Approver.ID,
			&a.Approver.Email, &a.CommentID, &a.DeliveryID, &at, &auto, &a.Detail); err != nil {
			return nil, fmt.Errorf("read approvals: %w", err)
		}
		a.At, _ = time.Parse(time.RFC3339Nano, at)
		a.Auto = auto != 0
		out = append(out, a)
	}
	return out, rows.Err()
}

// SetHold records /hold (held) or /unhold (!held) on a pull request
// (commands.HoldStore).
func (s *Store) SetHold(ctx context.Context, repo string, number int, held bool, by string) error {
	_, err := s.st.DB().ExecContext(ctx, s.st.Rebind(`INSERT INTO approval_holds (repo, number, held, held_by, at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (repo, number) DO UPDATE SET held = excluded.held, held_by = excluded.held_by, at = excluded.at`),
		repo, number, b2i(held), by, time.Now().UTC().Format(time.RFC3339Nano))
	if err != nil {
		return fmt.Errorf("record hold: %w", err)
	}
	return nil
}

// Held reports whether a pull request is on hold, and by whom. A held pull
// request is never promoted.
func (s *Store) Held(ctx context.Context, repo string, number int) (bool, string, error) {
	var held int
	var by string
	err := s.st.DB().QueryRowContext(ctx, s.st.Rebind(`SELECT held, held_by FROM approval_holds WHERE repo = ? AND number = ?`), repo, number).Scan(&held, &by)
	if errors.Is(err, sql.ErrNoRows) {
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("read hold: %w", err)
	}
	return held != 0, by, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
