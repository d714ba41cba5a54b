// Package forge is the local forge: the promotion ladder on a plain git
// server, without GitHub. A pre-receive hook (installed by `agentgate hooks
// install`, also usable as a GitHub Enterprise Server pre-receive hook)
// evaluates every pushed ref update with the same rules as the GitHub App:
//
//   - agent/* updates run the develop rung (checks, plan, trailers) and are
//     refused with the reasons when it fails; a pass is recorded and attested;
//   - develop, staging and main move only by fast-forward to the tip of the
//     rung's source branch, and only when the rung passes (gate evidence and
//     budget for staging, an approval or the policy's auto-approval for main);
//   - force pushes, deletions of ladder branches and agent identities pushing
//     outside agent/* are refused and recorded as STOP_UNAUTHORIZED_ACCESS.
//
// Decisions come from gate/ladder and gate/approval; checks from the engine
// behind the Checker interface; state (evaluations, approvals) and the audit
// log live in agentgate's store. Every decision is audited before the hook
// answers git.
package forge
