// Package ladder holds the promotion ladder's rules as pure functions:
// which (source, target) pairs are rungs, what each rung requires, who may
// push where, which pushes are security events (force pushes, deletions,
// agent identities outside agent/*), the Plan-Id:/Iteration: trailer rule and
// automatic approval of low-risk promotions.
//
// Every decision explains itself: a refused pair names the allowed next
// rung, a rung decision lists each requirement with why it holds or fails.
// Nothing here talks to git, GitHub or storage; the adapters in hooks/ gather
// the facts (fast-forward or not, check results, approvals) and ask.
package ladder
