package forge

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/agentgate/agentgate/internal/store"
)

// Component is the store migration component of the forge's tables.
const Component = "forge"

// Migrations of the forge's tables.
var Migrations = []store.Migration{{
	Version: 1,
	Name:    "evaluations",
	SQLite: `CREATE TABLE forge_evaluations (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	repo          TEXT    NOT NULL,
	target        TEXT    NOT NULL,
	source        TEXT    NOT NULL,
	head_sha      TEXT    NOT NULL,
	base_sha      TEXT    NOT NULL,
	plan_id       TEXT    NOT NULL,
	risk          TEXT    NOT NULL,
	passed        INTEGER NOT NULL,
	critical_high INTEGER NOT NULL,
	tests_passed  INTEGER NOT NULL,
	commits       TEXT    NOT NULL,
	attestation   TEXT    NOT NULL,
	summary       TEXT    NOT NULL,
	at            TEXT    NOT NULL
);
CREATE INDEX forge_evaluations_head ON forge_evaluations (repo, target, head_sha)`,
	Postgres: `CREATE TABLE forge_evaluations (
	id            BIGSERIAL PRIMARY KEY,
	repo          TEXT    NOT NULL,
	target        TEXT    NOT NULL,
	source        TEXT    NOT NULL,
	head_sha      TEXT    NOT NULL,
	base_sha      TEXT    NOT NULL,
	plan_id       TEXT    NOT NULL,
	risk          TEXT    NOT NULL,
	passed        INTEGER NOT NULL,
	critical_high INTEGER NOT NULL,
	tests_passed  INTEGER NOT NULL,
	commits       TEXT    NOT NULL,
	attestation   TEXT    NOT NULL,
	summary       TEXT    NOT NULL,
	at            TEXT    NOT NULL
);
CREATE INDEX forge_evaluations_head ON forge_evaluations (repo, target, head_sha)`,
}}

// Evaluation is one recorded rung evaluation of a head.
type Evaluation struct {
	Repo, Target, Source string
	Head, Base           string
	PlanID               string
	Risk                 string
	Passed               bool
	CriticalOrHigh       int
	TestsPassed          bool
	Commits              []string // the commits base..head this evaluation covers
	Attestation          string   // reference of the signed attestation ("" when none)
	Summary              string
	At                   time.Time
}

// Evaluations is the forge_evaluations table.
type Evaluations struct{ st *store.Store }

// OpenEvaluations migrates the forge tables.
func OpenEvaluations(ctx context.Context, st *store.Store) (*Evaluations, error) {
	if err := st.Migrate(ctx, Component, Migrations); err != nil {
		return nil, fmt.Errorf("forge: %w", err)
	}
	return &Evaluations{st: st}, nil
}

// Save records an evaluation.
func (e *Evaluations) Save(ctx context.Context, ev Evaluation) error {
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	_, err := e.st.DB().ExecContext(ctx, e.st.Rebind(`INSERT INTO forge_evaluations
		(repo, target, source, head_sha, base_sha, plan_id, risk, passed, critical_high, tests_passed, commits, attestation, summary, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		ev.Repo, ev.Target, ev.Source, ev.Head, ev.Base, ev.PlanID, ev.Risk, b2i(ev.Passed), ev.CriticalOrHigh, b2i(ev.TestsPassed),
		strings.Join(ev.Commits, " "), ev.Attestation, ev.Summary, ev.At.UTC().Format(time.RFC3339Nano))
	if err != nil {
		return fmt.Errorf("record evaluation: %w", err)
	}
	return nil
}

// Passing returns the passing evaluations of target in repo.
func (e *Evaluations) Passing(ctx context.Context, repo, target string) ([]Evaluation, error) {
	rows, err := e.st.DB().QueryContext(ctx, e.st.Rebind(`SELECT source, head_sha, base_sha, plan_id, risk, critical_high, tests_passed, commits, attestation, summary, at
		FROM forge_evaluations WHERE repo = ? AND target = ? AND passed = 1 ORDER BY id`), repo, target)
	if err != nil {
		return nil, fmt.Errorf("read evaluations: %w", err)
	}
	defer rows.Close()
	var out []Evaluation
	for rows.Next() {
		ev := Evaluation{Repo: repo, Target: target, Passed: true}
		var tests int
		var commits, at string
		if err := rows.Scan(&ev.Source, &ev.Head, &ev.Base, &ev.PlanID, &ev.Risk, &ev.CriticalOrHigh, &tests, &commits, &ev.Attestation, &ev.Summary, &at); err != nil {
			return nil, fmt.Errorf("read evaluations: %w", err)
		}
		ev.TestsPassed = tests != 0
		ev.Commits = strings.Fields(commits)
		ev.At, _ = time.Parse(time.RFC3339Nano, at)
		out = append(out, ev)
	}
	return out, rows.Err()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
