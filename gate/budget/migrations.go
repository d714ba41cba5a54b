package budget

import "github.com/agentgate/agentgate/internal/store"

// Component is the ledger's migration component name in the store.
const Component = "budget"

// The entries table is the append-only ledger: every reservation, refusal
// and settlement is a new row. budget_plans and budget_caps hold the running
// totals, updated in the same transaction as the entry that moves them, so
// that admission can lock one row instead of summing the ledger.
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
}}
