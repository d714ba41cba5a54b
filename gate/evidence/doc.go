// Package evidence records what the gate decided, in the order DESIGN rule 5
// requires: the decision (and, for a stop, the stop event) is appended to
// the audit log first; then the execution manifest, the logs and a snapshot
// of the change (a git bundle of merge-base..head plus a patch) are
// persisted; then the decision is attested (a signed in-toto statement in a
// Sigstore bundle) and the audit head is checkpointed. Only then does the
// caller report.
//
// Storage goes through Sink (a local directory by default), so that an
// object store can be added without touching the recording logic.
package evidence
