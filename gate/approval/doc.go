// Package approval decides whether a promotion approval counts, as pure
// logic over facts the adapters gather.
//
// An approval is bound to one (repository, PR, target branch, head SHA,
// approver). It is accepted only from a created (never edited) command, from
// someone with write permission who is listed as an approver of the rung
// (by user or team), and who is neither the PR author, nor an author or
// committer of any commit in it, nor an agent identity, nor the human who
// launched the run, nor a bot. A new push or a retarget voids it; a replayed
// delivery of the same comment is refused. Every refusal and every dismissed
// approval carries a reason code and a sentence a person can act on, in the
// manner of palantir/policy-bot's "Ignored 1 approval from disqualified
// users".
package approval
