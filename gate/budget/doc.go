// Package budget is the money side of an agent run: the pure threshold
// rules (warn, escalate for human approval, hard stop) that judge a request's
// worst-case cost against a plan's budget and the monthly organisation and
// repository caps, and the store-backed ledger that reserves that worst case
// atomically before a call and settles it to the real cost afterwards.
//
// Amounts are integer nano-USD (1 USD = 1e9), so sums are exact in int64: a
// $50 budget is 5e10.
//
// Thresholds are judged on projected spend: what is already spent, plus what
// other in-flight calls have reserved, plus this call's worst case. Warning
// and escalation therefore fire a little early rather than a little late, and
// the stop can never be overshot by concurrent calls. A call whose projection
// would cross the stop ratio is refused and latches the plan stopped
// (STOP_BUDGET_EXCEEDED) until a human resumes it; max_tokens is never
// silently clamped to the remaining budget.
//
// StoreLedger reserves call by call, one durable transaction each. Leaser,
// which the gateway uses, reserves budget leases — blocks of a plan's budget
// that never span a threshold — by the same guarded transaction, admits the
// calls that fit in memory, and writes settlements by group commit; see
// lease.go for its rules, and docs/gateway.md.
package budget
