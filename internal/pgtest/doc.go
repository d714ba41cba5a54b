// Package pgtest starts a throwaway PostgreSQL server for tests: initdb in a
// temporary directory (as the postgres user when the tests run as root),
// listening only on a unix socket in that directory, shared by every test
// of one test binary and stopped when the binary ends.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
//
// and call DSN(t) in a test to get a fresh, empty database. The server starts
// on the first call only, so test binaries that never ask pay nothing.
//
// When the PostgreSQL server binaries are missing, DSN fails the test under
// CI=true (naming the Debian package to install) and skips it otherwise.
// AGENTGATE_TEST_POSTGRES_DSN points the tests at an existing server instead;
// it must allow CREATE DATABASE.
package pgtest
