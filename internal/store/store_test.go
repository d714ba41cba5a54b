package store_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/agentgate/agentgate/internal/store"
	"github.com/agentgate/agentgate/internal/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Run(m)) }

var widgets = []store.Migration{
	{Version: 1, Name: "widgets",
		SQLite:   `CREATE TABLE widgets (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)`,
		Postgres: `CREATE TABLE widgets (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE)`},
	{Version: 2, Name: "widgets.colour",
		SQLite:   `ALTER TABLE widgets ADD COLUMN colour TEXT NOT NULL DEFAULT 'red'; CREATE INDEX widgets_colour ON widgets (colour)`,
		Postgres: `ALTER TABLE widgets ADD COLUMN colour TEXT NOT NULL DEFAULT 'red'; CREATE INDEX widgets_colour ON widgets (colour)`},
}

func TestMigrateAppliesEachVersionOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		for i := 0; i < 2; i++ {
			if err := s.Migrate(ctx, "widgets", widgets); err != nil {
				t.Fatalf("migrate (run %d): %v", i+1, err)
			}
		}
		v, err := s.SchemaVersion(ctx, "widgets")
		if err != nil || v != 2 {
			t.Fatalf("SchemaVersion = %d, %v; want 2", v, err)
		}
		if _, err := s.DB().ExecContext(ctx, s.Rebind("INSERT INTO widgets (name) VALUES (?)"), "a"); err != nil {
			t.Fatal(err)
		}
		var colour string
		if err := s.DB().QueryRowContext(ctx, s.Rebind("SELECT colour FROM widgets WHERE name = ?"), "a").Scan(&colour); err != nil || colour != "red" {
			t.Fatalf("colour = %q, %v", colour, err)
		}
	})
}

func TestMigrateComponentsAreIndependent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if err := s.Migrate(ctx, "widgets", widgets[:1]); err != nil {
			t.Fatal(err)
		}
		other := []store.Migration{{Version: 1, Name: "gadgets", SQLite: "CREATE TABLE gadgets (id INTEGER)", Postgres: "CREATE TABLE gadgets (id INTEGER)"}}
		if err := s.Migrate(ctx, "gadgets", other); err != nil {
			t.Fatal(err)
		}
		// A later binary adds widgets v2; gadgets stays at 1.
		if err := s.Migrate(ctx, "widgets", widgets); err != nil {
			t.Fatal(err)
		}
		for comp, want := range map[string]int{"widgets": 2, "gadgets": 1, "nothing": 0} {
			if v, err := s.SchemaVersion(ctx, comp); err != nil || v != want {
				t.Errorf("%s: version %d, %v; want %d", comp, v, err, want)
			}
		}
	})
}

func TestMigrateRefuses(t *testing.T) {
	edited := append([]store.Migration(nil), widgets...)
	edited[0].SQLite += " -- edited"
	edited[0].Postgres += " -- edited"
	cases := []struct {
		name  string
		first []store.Migration
		then  []store.Migration
		want  error
		text  string
	}{
		{name: "OlderBinary", first: widgets, then: widgets[:1], want: store.ErrSchemaTooNew},
		{name: "EditedMigration", first: widgets, then: edited, want: store.ErrMigrationChanged},
		{name: "VersionGap", then: []store.Migration{{Version: 2, Name: "x", SQLite: "SELECT 1", Postgres: "SELECT 1"}}, text: "versions must be 1, 2, 3"},
		{name: "MissingDialect", then: []store.Migration{{Version: 1, Name: "x", SQLite: "SELECT 1"}}, text: "has no"},
		{name: "BadSQLRollsBack", then: []store.Migration{{Version: 1, Name: "bad", SQLite: "CREATE TABLE ok1 (x INT); CREATE TABLEX nope", Postgres: "CREATE TABLE ok1 (x INT); CREATE TABLEX nope"}}, text: "bad"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, s *store.Store) {
				ctx := context.Background()
				if tc.first != nil {
					if err := s.Migrate(ctx, "widgets", tc.first); err != nil {
						t.Fatal(err)
					}
				}
				err := s.Migrate(ctx, "widgets", tc.then)
				if err == nil {
					t.Fatal("Migrate succeeded; want an error")
				}
				if tc.want != nil && !errors.Is(err, tc.want) {
					t.Fatalf("error %v; want %v", err, tc.want)
				}
				if tc.text != "" && !strings.Contains(err.Error(), tc.text) {
					t.Fatalf("error %q does not mention %q", err, tc.text)
				}
				if tc.name == "BadSQLRollsBack" {
					if _, err := s.DB().ExecContext(ctx, "SELECT x FROM ok1"); err == nil {
						t.Fatal("a failed migration left its first table behind")
					}
					if v, _ := s.SchemaVersion(ctx, "widgets"); v != 0 {
						t.Fatalf("failed migration recorded as version %d", v)
					}
				}
			})
		})
	}
}

func TestMigrateConcurrentOpenersApplyOnce(t *testing.T) {
	storetest.EachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := store.Open(ctx, dsn)
				if err != nil {
					errs <- err
					return
				}
				defer s.Close()
				errs <- s.Migrate(ctx, "widgets", widgets)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		s, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var n int
		if err := s.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations WHERE component = 'widgets'").Scan(&n); err != nil || n != 2 {
			t.Fatalf("%d migration rows, %v; want 2", n, err)
		}
	})
}

func TestInTxRollsBackOnError(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if err := s.Migrate(ctx, "widgets", widgets); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		err := s.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, s.Rebind("INSERT INTO widgets (name) VALUES (?)"), "x"); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx error %v; want boom", err)
		}
		var n int
		if err := s.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM widgets").Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d rows after rollback, %v", n, err)
		}
	})
}

func TestVersionNamesEngine(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		v, err := s.Version(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(v, string(s.Dialect())+" ") {
			t.Fatalf("Version = %q", v)
		}
	})
}

func TestOpenSQLiteFileIsPrivateAndWAL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, dsn := range []string{filepath.Join(dir, "a", "plain.db"), "sqlite://" + filepath.Join(dir, "b", "url.db")} {
		s, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if s.Dialect() != store.SQLite || s.Pool() != nil {
			t.Fatalf("%s: dialect %s", dsn, s.Dialect())
		}
		fi, err := os.Stat(s.Path())
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v; want 0600", s.Path(), fi.Mode().Perm())
		}
		var mode string
		if err := s.DB().QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("journal_mode %q, %v", mode, err)
		}
		s.Close()
	}
}

func TestOpenRejectsBadDSN(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "not.db")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("this is not a database\n", 400)), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"mysql://u:secret@h/db":         "unsupported",
		filepath.Join(dir, "x?mode=ro"): "must not contain",
		notDB:                           "SQLite",
		"postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=1": "connect",
	}
	for dsn, want := range cases {
		_, err := store.Open(context.Background(), dsn)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v; want an error containing %q", dsn, err, want)
		}
		if err != nil && (strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "secret")) {
			t.Errorf("Open(%q) error leaks the password: %v", dsn, err)
		}
	}
}

func TestDefaultPathUsesXDGStateHome(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/var/tmp/state")
	if p, err := store.DefaultPath(); err != nil || p != "/var/tmp/state/agentgate/agentgate.db" {
		t.Fatalf("DefaultPath = %q, %v", p, err)
	}
	t.Setenv("XDG_STATE_HOME", "relative") // not absolute: ignored per the XDG spec
	t.Setenv("HOME", "/home/u")
	if p, err := store.DefaultPath(); err != nil || p != "/home/u/.local/state/agentgate/agentgate.db" {
		t.Fatalf("DefaultPath = %q, %v", p, err)
	}
}
