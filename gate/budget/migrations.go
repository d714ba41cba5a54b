package budget

import "github.com/agentgate/agentgate/internal/store"

// Component is the ledger's migration component name in the store.
const Component = "budget"

// The entries table is the append-only ledger: every reservation, refusal
// and settlement is a new row. budget_plans and budget_caps hold the running
// totals, updated in the same transaction as the entry that moves them, so
// that admission can lock one row instead of summing the ledger.
//
// Version 2 adds budget leases (see lease.go): budget_leases holds each
// lease's running amounts (granted, consumed by settled calls, released,
// charged when orphaned); budget_plans.version changes whenever a plan's
// admission state changes (limit, ratios, approval, escalation, stop,
// resume), so that in-memory admission notices it on the next call; entries
// name the lease they belong to.
var migrations = []store.Migration{{
	Version: 1,
	Name:    "ledger",
	SQLite: `
CREATE TABLE budget_plans (
	plan_id          TEXT    PRIMARY KEY,
	limit_nano       INTEGER NOT NULL,
	warn_ratio       REAL    NOT NULL,
	escalate_ratio   REAL    NOT NULL,
	stop_ratio       REAL    NOT NULL,
	repo             TEXT    NOT NULL DEFAULT '',
	degrade_to_local INTEGER NOT NULL DEFAULT 0,
	spent_nano       INTEGER NOT NULL DEFAULT 0,
	reserved_nano    INTEGER NOT NULL DEFAULT 0,
	warned           INTEGER NOT NULL DEFAULT 0,
	escalated        INTEGER NOT NULL DEFAULT 0,
	approved_by      TEXT    NOT NULL DEFAULT '',
	approved_at      TEXT    NOT NULL DEFAULT '',
	stopped          INTEGER NOT NULL DEFAULT 0,
	stop_reason      TEXT    NOT NULL DEFAULT '',
	updated_at       TEXT    NOT NULL
);
CREATE TABLE budget_caps (
	scope         TEXT    PRIMARY KEY,
	limit_nano    INTEGER NOT NULL,
	spent_nano    INTEGER NOT NULL DEFAULT 0,
	reserved_nano INTEGER NOT NULL DEFAULT 0,
	warned        INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE budget_entries (
	seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
	reservation_id      TEXT    NOT NULL,
	kind                TEXT    NOT NULL,
	plan_id             TEXT    NOT NULL,
	run_id              TEXT    NOT NULL,
	provider            TEXT    NOT NULL,
	model               TEXT    NOT NULL,
	caps                TEXT    NOT NULL DEFAULT '',
	amount_nano         INTEGER NOT NULL,
	decision            TEXT    NOT NULL,
	input_tokens        INTEGER NOT NULL DEFAULT 0,
	cached_input_tokens INTEGER NOT NULL DEFAULT 0,
	cache_write_tokens  INTEGER NOT NULL DEFAULT 0,
	output_tokens       INTEGER NOT NULL DEFAULT 0,
	reasoning_tokens    INTEGER NOT NULL DEFAULT 0,
	degraded            INTEGER NOT NULL DEFAULT 0,
	cache_hit           INTEGER NOT NULL DEFAULT 0,
	reason              TEXT    NOT NULL DEFAULT '',
	at                  TEXT    NOT NULL,
	UNIQUE (reservation_id, kind)
);
CREATE INDEX budget_entries_run ON budget_entries (run_id);
CREATE INDEX budget_entries_plan ON budget_entries (plan_id);
CREATE TRIGGER budget_entries_no_update BEFORE UPDATE ON budget_entries
BEGIN SELECT RAISE(ABORT, 'budget ledger is append-only'); END;
CREATE TRIGGER budget_entries_no_delete BEFORE DELETE ON budget_entries
BEGIN SELECT RAISE(ABORT, 'budget ledger is append-only'); END;
CREATE TRIGGER budget_entries_no_replace BEFORE INSERT ON budget_entries
WHEN EXISTS (SELECT 1 FROM budget_entries WHERE seq = NEW.seq OR (reservation_id = NEW.reservation_id AND kind = NEW.kind))
BEGIN SELECT RAISE(ABORT, 'budget ledger is append-only'); END;
`,
	Postgres: `
CREATE TABLE budget_plans (
	plan_id          TEXT             PRIMARY KEY,
	limit_nano       BIGINT           NOT NULL,
	warn_ratio       DOUBLE PRECISION NOT NULL,
	escalate_ratio   DOUBLE PRECISION NOT NULL,
	stop_ratio       DOUBLE PRECISION NOT NULL,
	repo             TEXT             NOT NULL DEFAULT '',
	degrade_to_local INTEGER          NOT NULL DEFAULT 0,
	spent_nano       BIGINT           NOT NULL DEFAULT 0,
	reserved_nano    BIGINT           NOT NULL DEFAULT 0,
	warned           INTEGER          NOT NULL DEFAULT 0,
	escalated        INTEGER          NOT NULL DEFAULT 0,
	approved_by      TEXT             NOT NULL DEFAULT '',
	approved_at      TEXT             NOT NULL DEFAULT '',
	stopped          INTEGER          NOT NULL DEFAULT 0,
	stop_reason      TEXT             NOT NULL DEFAULT '',
	updated_at       TEXT             NOT NULL
);
CREATE TABLE budget_caps (
	scope         TEXT    PRIMARY KEY,
	limit_nano    BIGINT  NOT NULL,
	spent_nano    BIGINT  NOT NULL DEFAULT 0,
	reserved_nano BIGINT  NOT NULL DEFAULT 0,
	warned        INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE budget_entries (
	seq                 BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	reservation_id      TEXT    NOT NULL,
	kind                TEXT    NOT NULL,
	plan_id             TEXT    NOT NULL,
	run_id              TEXT    NOT NULL,
	provider            TEXT    NOT NULL,
	model               TEXT    NOT NULL,
	caps                TEXT    NOT NULL DEFAULT '',
	amount_nano         BIGINT  NOT NULL,
	decision            TEXT    NOT NULL,
	input_tokens        BIGINT  NOT NULL DEFAULT 0,
	cached_input_tokens BIGINT  NOT NULL DEFAULT 0,
	cache_write_tokens  BIGINT  NOT NULL DEFAULT 0,
	output_tokens       BIGINT  NOT NULL DEFAULT 0,
	reasoning_tokens    BIGINT  NOT NULL DEFAULT 0,
	degraded            INTEGER NOT NULL DEFAULT 0,
	cache_hit           INTEGER NOT NULL DEFAULT 0,
	reason              TEXT    NOT NULL DEFAULT '',
	at                  TEXT    NOT NULL,
	UNIQUE (reservation_id, kind)
);
CREATE INDEX budget_entries_run ON budget_entries (run_id);
CREATE INDEX budget_entries_plan ON budget_entries (plan_id);
CREATE FUNCTION budget_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'budget ledger is append-only'; END $$;
CREATE TRIGGER budget_entries_no_change BEFORE UPDATE OR DELETE ON budget_entries
FOR EACH ROW EXECUTE FUNCTION budget_entries_append_only();
CREATE TRIGGER budget_entries_no_truncate BEFORE TRUNCATE ON budget_entries
FOR EACH STATEMENT EXECUTE FUNCTION budget_entries_append_only();
`,
}, {
	Version: 2,
	Name:    "leases",
	SQLite: `
ALTER TABLE budget_plans ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE budget_entries ADD COLUMN lease_id TEXT NOT NULL DEFAULT '';
CREATE TABLE budget_leases (
	lease_id      TEXT    PRIMARY KEY,
	plan_id       TEXT    NOT NULL,
	run_id        TEXT    NOT NULL,
	holder        TEXT    NOT NULL,
	caps          TEXT    NOT NULL DEFAULT '',
	granted_nano  INTEGER NOT NULL,
	consumed_nano INTEGER NOT NULL DEFAULT 0,
	released_nano INTEGER NOT NULL DEFAULT 0,
	charged_nano  INTEGER NOT NULL DEFAULT 0,
	open          INTEGER NOT NULL DEFAULT 1,
	admit_until   TEXT    NOT NULL,
	expires_at    TEXT    NOT NULL,
	created_at    TEXT    NOT NULL,
	closed_at     TEXT    NOT NULL DEFAULT '',
	close_reason  TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX budget_leases_open ON budget_leases (open, expires_at);
CREATE INDEX budget_leases_plan ON budget_leases (plan_id, open);
`,
	Postgres: `
ALTER TABLE budget_plans ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE budget_entries ADD COLUMN lease_id TEXT NOT NULL DEFAULT '';
CREATE TABLE budget_leases (
	lease_id      TEXT    PRIMARY KEY,
	plan_id       TEXT    NOT NULL,
	run_id        TEXT    NOT NULL,
	holder        TEXT    NOT NULL,
	caps          TEXT    NOT NULL DEFAULT '',
	granted_nano  BIGINT  NOT NULL,
	consumed_nano BIGINT  NOT NULL DEFAULT 0,
	released_nano BIGINT  NOT NULL DEFAULT 0,
	charged_nano  BIGINT  NOT NULL DEFAULT 0,
	open          INTEGER NOT NULL DEFAULT 1,
	admit_until   TEXT    NOT NULL,
	expires_at    TEXT    NOT NULL,
	created_at    TEXT    NOT NULL,
	closed_at     TEXT    NOT NULL DEFAULT '',
	close_reason  TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX budget_leases_open ON budget_leases (open, expires_at);
CREATE INDEX budget_leases_plan ON budget_leases (plan_id, open);
`,
}}
