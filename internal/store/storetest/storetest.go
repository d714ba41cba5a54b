// Package storetest runs a test against every backend of internal/store:
// a fresh SQLite file and a fresh database on the throwaway PostgreSQL of
// internal/pgtest.
//
//	func TestMain(m *testing.M) { os.Exit(storetest.Run(m)) }
//
//	func TestSomething(t *testing.T) {
//		storetest.Each(t, func(t *testing.T, s *store.Store) { ... })
//	}
package storetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/agentgate/agentgate/internal/pgtest"
	"github.com/agentgate/agentgate/internal/store"
)

// Run runs the tests and stops the shared PostgreSQL server afterwards.
func Run(m *testing.M) int { return pgtest.Run(m) }

// Backends lists the backends Each runs on.
var Backends = []store.Dialect{store.SQLite, store.Postgres}

// DSN returns the DSN of a new, empty database of the given backend.
func DSN(t testing.TB, d store.Dialect) string {
	t.Helper()
	if d == store.Postgres {
		return pgtest.DSN(t)
	}
	return filepath.Join(t.TempDir(), "agentgate.db")
}

// Open opens a new, empty database of the given backend, closed when the
// test ends.
func Open(t testing.TB, d store.Dialect) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), DSN(t, d))
	if err != nil {
		t.Fatalf("open %s store: %v", d, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Each runs fn as one subtest per backend ("sqlite", "postgres"), each with
// a fresh database.
func Each(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	t.Helper()
	for _, d := range Backends {
		t.Run(string(d), func(t *testing.T) { fn(t, Open(t, d)) })
	}
}

// EachDSN is Each for tests that open the database themselves (several
// connections, other processes).
func EachDSN(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	for _, d := range Backends {
		t.Run(string(d), func(t *testing.T) { fn(t, DSN(t, d)) })
	}
}
