package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Migration is one versioned schema change of one component. Versions of a
// component start at 1 and increase by one. Each dialect has its own SQL
// (several statements separated by ';' are allowed). A migration is applied
// in one transaction together with its schema_migrations row.
type Migration struct {
	Version  int
	Name     string
	SQLite   string
	Postgres string
}

var componentRE = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,63}$`)

const schemaMigrationsSQLite = `CREATE TABLE IF NOT EXISTS schema_migrations (
	component  TEXT    NOT NULL,
	version    INTEGER NOT NULL,
	name       TEXT    NOT NULL,
	checksum   TEXT    NOT NULL,
	applied_at TEXT    NOT NULL,
	PRIMARY KEY (component, version)
)`

const schemaMigrationsPostgres = `CREATE TABLE IF NOT EXISTS schema_migrations (
	component  TEXT        NOT NULL,
	version    INTEGER     NOT NULL,
	name       TEXT        NOT NULL,
	checksum   TEXT        NOT NULL,
	applied_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (component, version)
)`

// ErrSchemaTooNew means the database was migrated by a newer agentgate.
var ErrSchemaTooNew = errors.New("database schema is newer than this agentgate")

// ErrMigrationChanged means an applied migration's SQL no longer matches.
var ErrMigrationChanged = errors.New("an applied migration was changed")

// Migrate brings component's schema up to the last of migs. It is safe to
// call from several processes at once (SQLite: the write lock; PostgreSQL:
// an advisory lock) and does nothing when the schema is current. Applied
// migrations must never be edited: Migrate refuses when the SQL of an applied
// version differs from the one recorded.
func (s *Store) Migrate(ctx context.Context, component string, migs []Migration) error {
	if !componentRE.MatchString(component) {
		return fmt.Errorf("store: invalid migration component %q (lower-case letters, digits, '_', '.', '-')", component)
	}
	for i, m := range migs {
		if m.Version != i+1 {
			return fmt.Errorf("store: %s: migration %d has version %d; versions must be 1, 2, 3, ... in order", component, i+1, m.Version)
		}
		// Both dialects are required even though one is used, so that a
		// component cannot ship a migration that breaks the other backend.
		if m.SQLite == "" || m.Postgres == "" {
			return fmt.Errorf("store: %s: migration %d (%s) has no SQLite or no PostgreSQL SQL; give both", component, m.Version, m.Name)
		}
	}
	ddl := schemaMigrationsSQLite
	if s.dialect == Postgres {
		ddl = schemaMigrationsPostgres
	}
	if err := s.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMigrations(ctx, tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, ddl)
		return err
	}); err != nil {
		return fmt.Errorf("store: create schema_migrations: %w", err)
	}
	for {
		done, err := s.migrateOne(ctx, component, migs)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

func (s *Store) sqlFor(m Migration) string {
	if s.dialect == Postgres {
		return m.Postgres
	}
	return m.SQLite
}

func checksum(sqlText string) string {
	h := sha256.Sum256([]byte(sqlText))
	return hex.EncodeToString(h[:])
}

func (s *Store) lockMigrations(ctx context.Context, tx *sql.Tx) error {
	if s.dialect != Postgres {
		return nil // BEGIN IMMEDIATE already holds the write lock
	}
	_, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext('agentgate.schema_migrations'))")
	return err
}

// migrateOne applies the next missing migration, if any, in its own
// transaction, after checking the recorded ones.
func (s *Store) migrateOne(ctx context.Context, component string, migs []Migration) (done bool, err error) {
	err = s.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMigrations(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, s.Rebind("SELECT version, checksum FROM schema_migrations WHERE component = ? ORDER BY version"), component)
		if err != nil {
			return err
		}
		applied := map[int]string{}
		maxV := 0
		for rows.Next() {
			var v int
			var sum string
			if err := rows.Scan(&v, &sum); err != nil {
				rows.Close()
				return err
			}
			applied[v] = sum
			maxV = max(maxV, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if maxV > len(migs) {
			return fmt.Errorf("%w: %s is at version %d but this binary knows %d; upgrade agentgate", ErrSchemaTooNew, component, maxV, len(migs))
		}
		for v, sum := range applied {
			if want := checksum(s.sqlFor(migs[v-1])); sum != want {
				return fmt.Errorf("%w: %s version %d (%s); add a new migration instead of editing one", ErrMigrationChanged, component, v, migs[v-1].Name)
			}
		}
		if maxV == len(migs) {
			done = true
			return nil
		}
		m := migs[maxV]
		text := s.sqlFor(m)
		if _, err := tx.ExecContext(ctx, text); err != nil {
			return fmt.Errorf("%s migration %d (%s): %w", component, m.Version, m.Name, err)
		}
		var at any = time.Now().UTC().Format(time.RFC3339Nano)
		if s.dialect == Postgres {
			at = time.Now().UTC()
		}
		_, err = tx.ExecContext(ctx, s.Rebind("INSERT INTO schema_migrations (component, version, name, checksum, applied_at) VALUES (?, ?, ?, ?, ?)"),
			component, m.Version, m.Name, checksum(text), at)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: migrate: %w", err)
	}
	return done, nil
}

// SchemaVersion returns the highest applied migration version of component
// (0 when none).
func (s *Store) SchemaVersion(ctx context.Context, component string) (int, error) {
	var v sql.NullInt64
	err := s.db.QueryRowContext(ctx, s.Rebind("SELECT MAX(version) FROM schema_migrations WHERE component = ?"), component).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("store: read the schema version of %s (was the database migrated?): %w", component, err)
	}
	return int(v.Int64), nil
}
