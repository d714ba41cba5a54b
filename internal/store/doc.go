// Package store opens agentgate's database: an embedded SQLite file by
// default (modernc.org/sqlite, WAL, no cgo) or PostgreSQL through a
// postgres:// DSN, and applies versioned schema migrations that each
// component (audit log, webhook deliveries, gateway ledger, ...) registers
// for itself.
//
// The store deliberately knows nothing about what is stored in it. It exposes
// the *sql.DB (for database/sql code and riversqlite) and, on PostgreSQL, the
// *pgxpool.Pool (for riverpgxv5); both share one pool of connections.
//
// SQL written for both backends uses '?' placeholders and goes through
// Store.Rebind, which turns them into $1, $2, ... on PostgreSQL.
package store
