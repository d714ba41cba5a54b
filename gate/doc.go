// Package gate makes and records decisions: the promotion ladder, approval
// rules, stop conditions and reason codes, attestations, the append-only audit
// log, execution manifests and budgets. It knows nothing of HTTP or GitHub's
// JSON.
package gate
