// Package audit is agentgate's append-only, hash-chained event log.
//
// Every gate decision, stop event and outside action is appended as a
// Record before it is acted on (DESIGN rule 5). Records form a chain: each
// carries the hash of the one before it, and its own hash is SHA-256 over a
// canonical encoding of all its fields (see Hash). The database refuses
// UPDATE, DELETE, INSERT OR REPLACE and TRUNCATE on the log with triggers,
// and refuses an insert that does not extend the chain; the triggers stop
// bugs, the chain catches anyone who edits the file with another program.
//
// A Checkpoint is the chain head (seq, hash) signed with the gate key and
// stored in its own append-only table. A checkpoint for a record that is no
// longer in the log proves that the tail was cut. Verify walks the chain and
// the checkpoints and names the first broken record.
//
// Appends are serialised across goroutines and processes: on SQLite by the
// write lock taken at BEGIN IMMEDIATE, on PostgreSQL by a transaction-scoped
// advisory lock.
package audit
