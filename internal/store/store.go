package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Dialect names the SQL dialect of a store.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// BusyTimeout is how long a SQLite connection waits for another writer (in
// this or another process) before giving up with "database is locked".
const BusyTimeout = 10 * time.Second

// Store is an open database.
type Store struct {
	db      *sql.DB
	pool    *pgxpool.Pool // nil on SQLite
	dialect Dialect
	path    string // SQLite file path ("" on PostgreSQL)
}

// Open opens the database named by dsn:
//
//   - "postgres://..." or "postgresql://..." opens PostgreSQL through pgx;
//   - "sqlite://PATH" or a plain file path opens (and creates, mode 0600) a
//     SQLite database in WAL mode;
//   - "" opens DefaultPath().
//
// On SQLite the *sql.DB holds one connection (SetMaxOpenConns(1)), as River's
// SQLite driver recommends; transactions begin IMMEDIATE so that a
// read-then-write transaction takes the write lock up front and concurrent
// writers in other processes queue on busy_timeout instead of failing.
func Open(ctx context.Context, dsn string) (*Store, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(ctx, dsn)
	case strings.HasPrefix(dsn, "sqlite://"):
		return openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite://"))
	case strings.Contains(dsn, "://"):
		return nil, fmt.Errorf("store: unsupported database %q: use a file path, sqlite://PATH or a postgres:// DSN", redact(dsn))
	case dsn == "":
		p, err := DefaultPath()
		if err != nil {
			return nil, err
		}
		return openSQLite(ctx, p)
	default:
		return openSQLite(ctx, dsn)
	}
}

// DefaultPath is the default SQLite database:
// $XDG_STATE_HOME/agentgate/agentgate.db, or ~/.local/state/agentgate/agentgate.db.
func DefaultPath() (string, error) {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("store: cannot find the state directory (set XDG_STATE_HOME or HOME, or pass --db): %w", err)
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "agentgate", "agentgate.db"), nil
}

func openSQLite(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("store: empty SQLite path")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("store: SQLite path %q must not contain '?' or '#'", path)
	}
	if path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("store: create the database directory: %w", err)
		}
		// Create the file ourselves so that it is private (SQLite would use 0644).
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		f.Close()
	}
	q := fmt.Sprintf("?_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate",
		BusyTimeout.Milliseconds())
	db, err := sql.Open("sqlite", path+q)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	// Switching a new database to WAL takes an exclusive lock for which
	// SQLite does not always call the busy handler: several processes
	// opening a fresh file at once can get SQLITE_BUSY here. Retry within
	// BusyTimeout, as busy_timeout would.
	var mode string
	deadline := time.Now().Add(BusyTimeout)
	for attempt := 0; ; attempt++ {
		err := db.PingContext(ctx)
		if err == nil {
			err = db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode)
		}
		if err == nil {
			break
		}
		if !isBusy(err) || time.Now().After(deadline) || ctx.Err() != nil {
			db.Close()
			return nil, fmt.Errorf("store: open %s (is it a SQLite database?): %w", path, err)
		}
		time.Sleep(time.Duration(5+rand.IntN(20*min(attempt+1, 10))) * time.Millisecond)
	}
	if path != ":memory:" && !strings.EqualFold(mode, "wal") {
		db.Close()
		return nil, fmt.Errorf("store: %s: cannot switch to WAL mode (journal_mode=%s); is the file on a network filesystem?", path, mode)
	}
	return &Store{db: db, dialect: SQLite, path: path}, nil
}

func openPostgres(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: parse PostgreSQL DSN %s: %w", redact(dsn), err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect to %s: %w", redact(dsn), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connect to %s (is the server running and the database created?): %w", redact(dsn), err)
	}
	return &Store{db: stdlib.OpenDBFromPool(pool), pool: pool, dialect: Postgres}, nil
}

// redact hides a password in a DSN so that it can appear in errors and logs.
func redact(dsn string) string {
	at := strings.LastIndex(dsn, "@")
	scheme := strings.Index(dsn, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return dsn
	}
	userinfo := dsn[scheme+3 : at]
	if i := strings.Index(userinfo, ":"); i >= 0 {
		return dsn[:scheme+3] + userinfo[:i] + ":xxxxx" + dsn[at:]
	}
	return dsn
}

// DB is the database/sql handle (for riversqlite.New on SQLite, and for
// plain SQL on either backend).
func (s *Store) DB() *sql.DB { return s.db }

// Pool is the pgx pool on PostgreSQL (for riverpgxv5.New) and nil on SQLite.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Dialect says which SQL dialect the store speaks.
func (s *Store) Dialect() Dialect { return s.dialect }

// Path is the SQLite file path, or "" on PostgreSQL.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close() error {
	err := s.db.Close()
	if s.pool != nil {
		s.pool.Close()
	}
	return err
}

// Rebind turns '?' placeholders into PostgreSQL's $1, $2, ... ('?' inside
// single-quoted strings, double-quoted identifiers and comments is left
// alone). On SQLite it returns q unchanged.
func (s *Store) Rebind(q string) string {
	if s.dialect != Postgres {
		return q
	}
	return rebindDollar(q)
}

func rebindDollar(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(q) {
				if q[j] == c {
					if j+1 < len(q) && q[j+1] == c { // doubled quote
						j += 2
						continue
					}
					break
				}
				j++
			}
			if j >= len(q) {
				j = len(q) - 1
			}
			b.WriteString(q[i : j+1])
			i = j
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i - 1
			}
			b.WriteString(q[i : i+j+1])
			i += j
		case c == '?':
			n++
			fmt.Fprintf(&b, "$%d", n)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Version reports the database engine and its version, e.g. "sqlite 3.54.1"
// or "postgres 15.18", for attestations and manifests.
func (s *Store) Version(ctx context.Context) (string, error) {
	var v string
	switch s.dialect {
	case SQLite:
		if err := s.db.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&v); err != nil {
			return "", fmt.Errorf("store: read the SQLite version: %w", err)
		}
		return "sqlite " + v, nil
	default:
		if err := s.db.QueryRowContext(ctx, "SHOW server_version").Scan(&v); err != nil {
			return "", fmt.Errorf("store: read the PostgreSQL version: %w", err)
		}
		if i := strings.IndexByte(v, ' '); i > 0 {
			v = v[:i]
		}
		return "postgres " + v, nil
	}
}

// InTx runs fn in a transaction and commits it if fn returns nil. On SQLite
// the transaction holds the database's write lock from its first statement
// (BEGIN IMMEDIATE), so fn may read then write without another writer
// slipping in between. fn must not use s.DB() itself: on SQLite there is only
// one connection and that would deadlock.
func (s *Store) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// isBusy reports a SQLite lock conflict (SQLITE_BUSY or SQLITE_LOCKED).
func isBusy(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "database is locked") || strings.Contains(msg, "SQLITE_LOCKED")
}
