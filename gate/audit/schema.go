package audit

import "github.com/agentgate/agentgate/internal/store"

// Component is the migration component name of the audit log.
const Component = "audit"

// Migrations create the audit tables. Times are stored as TEXT in
// TimeFormat and payloads as TEXT (not jsonb) so that the hashed bytes are
// exactly the stored bytes.
var Migrations = []store.Migration{{
	Version: 1,
	Name:    "audit log and checkpoints",
	SQLite: `
CREATE TABLE audit (
	seq       INTEGER PRIMARY KEY,
	time      TEXT NOT NULL,
	actor     TEXT NOT NULL,
	kind      TEXT NOT NULL,
	repo      TEXT NOT NULL,
	sha       TEXT NOT NULL,
	plan_id   TEXT NOT NULL,
	run_id    TEXT NOT NULL,
	payload   TEXT NOT NULL,
	prev_hash TEXT NOT NULL,
	hash      TEXT NOT NULL UNIQUE
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
-- INSERT OR REPLACE deletes the old row without firing DELETE triggers.
CREATE TRIGGER audit_no_replace BEFORE INSERT ON audit
WHEN EXISTS (SELECT 1 FROM audit WHERE seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
-- Only an insert that extends the chain is accepted.
CREATE TRIGGER audit_extends_chain BEFORE INSERT ON audit
WHEN NEW.seq IS NOT (SELECT COALESCE(MAX(seq), 0) + 1 FROM audit)
  OR NEW.prev_hash IS NOT COALESCE((SELECT hash FROM audit ORDER BY seq DESC LIMIT 1), '0000000000000000000000000000000000000000000000000000000000000000')
BEGIN SELECT RAISE(ABORT, 'audit append does not extend the chain'); END;

CREATE TABLE audit_checkpoints (
	id        INTEGER PRIMARY KEY,
	time      TEXT NOT NULL,
	head_seq  INTEGER NOT NULL,
	head_hash TEXT NOT NULL,
	key_hint  TEXT NOT NULL,
	signature TEXT NOT NULL
);
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_replace BEFORE INSERT ON audit_checkpoints
WHEN EXISTS (SELECT 1 FROM audit_checkpoints WHERE id = NEW.id)
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
`,
	Postgres: `
CREATE TABLE audit (
	seq       BIGINT PRIMARY KEY,
	time      TEXT NOT NULL,
	actor     TEXT NOT NULL,
	kind      TEXT NOT NULL,
	repo      TEXT NOT NULL,
	sha       TEXT NOT NULL,
	plan_id   TEXT NOT NULL,
	run_id    TEXT NOT NULL,
	payload   TEXT NOT NULL,
	prev_hash TEXT NOT NULL,
	hash      TEXT NOT NULL UNIQUE
);
CREATE FUNCTION agentgate_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit log is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE FUNCTION agentgate_audit_extends_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	last_seq  BIGINT;
	last_hash TEXT;
BEGIN
	SELECT seq, hash INTO last_seq, last_hash FROM audit ORDER BY seq DESC LIMIT 1;
	IF NEW.seq IS DISTINCT FROM COALESCE(last_seq, 0) + 1
	   OR NEW.prev_hash IS DISTINCT FROM COALESCE(last_hash, '0000000000000000000000000000000000000000000000000000000000000000') THEN
		RAISE EXCEPTION 'audit append does not extend the chain';
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER audit_no_update_delete BEFORE UPDATE OR DELETE ON audit
	FOR EACH ROW EXECUTE FUNCTION agentgate_audit_refuse();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
	FOR EACH STATEMENT EXECUTE FUNCTION agentgate_audit_refuse();
CREATE TRIGGER audit_extends_chain BEFORE INSERT ON audit
	FOR EACH ROW EXECUTE FUNCTION agentgate_audit_extends_chain();

CREATE TABLE audit_checkpoints (
	id        BIGINT PRIMARY KEY,
	time      TEXT NOT NULL,
	head_seq  BIGINT NOT NULL,
	head_hash TEXT NOT NULL,
	key_hint  TEXT NOT NULL,
	signature TEXT NOT NULL
);
CREATE TRIGGER audit_checkpoints_no_update_delete BEFORE UPDATE OR DELETE ON audit_checkpoints
	FOR EACH ROW EXECUTE FUNCTION agentgate_audit_refuse();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
	FOR EACH STATEMENT EXECUTE FUNCTION agentgate_audit_refuse();
`,
}}
