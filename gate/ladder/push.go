package ladder

import (
	"fmt"
	"strings"

	"github.com/agentgate/agentgate/policies"
)

// ZeroSHA is git's all-zero object name: a created or deleted ref.
const ZeroSHA = "0000000000000000000000000000000000000000"

// Pusher is who pushed, as far as the transport can tell. GitHub and GHES
// give a login; the local forge gives whatever the server was told.
type Pusher struct {
	Login string
	Email string
}

func (p Pusher) String() string {
	switch {
	case p.Login != "" && p.Email != "":
		return p.Login + " <" + p.Email + ">"
	case p.Login != "":
		return p.Login
	case p.Email != "":
		return "<" + p.Email + ">"
	}
	return "an unidentified pusher"
}

// IsAgent reports whether id matches one of the policy's agent identities,
// by login (case-insensitive) or e-mail (case-insensitive).
func IsAgent(agents []policies.AgentIdentity, login, email string) bool {
	for _, a := range agents {
		if a.Login != "" && login != "" && strings.EqualFold(a.Login, login) {
			return true
		}
		if a.Email != "" && email != "" && strings.EqualFold(a.Email, email) {
			return true
		}
	}
	return false
}

// RefUpdate is one pushed ref update. FastForward is computed by the adapter
// (git merge-base --is-ancestor old new) and only meaningful when both Old
// and New are non-zero.
type RefUpdate struct {
	Ref         string
	Old, New    string
	FastForward bool
	Pusher      Pusher
}

// Created reports a new ref.
func (u RefUpdate) Created() bool { return isZero(u.Old) }

// Deleted reports a deleted ref.
func (u RefUpdate) Deleted() bool { return isZero(u.New) }

func isZero(sha string) bool { return sha == "" || strings.Trim(sha, "0") == "" }

// Action is what the adapter must do with a ref update.
type Action string

const (
	// Accept: nothing more to check.
	Accept Action = "accept"
	// Refuse: reject the update with Reason (a security event when Stop is set).
	Refuse Action = "refuse"
	// RunChecks: an agent branch update; run the check gate on it.
	RunChecks Action = "run_checks"
	// Promote: a fast-forward of a protected branch; evaluate Rung and accept
	// only when it passes.
	Promote Action = "promote"
)

// PushDecision is the ladder's answer to one ref update.
type PushDecision struct {
	Action Action
	Branch string
	Reason string
	// Stop is set for security events (STOP_UNAUTHORIZED_ACCESS): the adapter
	// records it, alerts and halts the plan's runs.
	Stop policies.StopReason
	// Rung is the rung into Branch, for Promote.
	Rung policies.Rung
}

// SecurityEvent reports whether the decision must be recorded as a security
// event.
func (d PushDecision) SecurityEvent() bool { return d.Stop != "" }

// EvaluatePush applies the push rules to one ref update:
//   - an agent identity may push only to agent/*; anywhere else is
//     STOP_UNAUTHORIZED_ACCESS;
//   - a protected branch (develop, staging, main) moves only by fast-forward
//     promotion; a force push or deletion is STOP_UNAUTHORIZED_ACCESS;
//   - an agent branch update runs the checks; other branches are accepted
//     (they are not on the ladder and cannot be promoted from).
func (l *Ladder) EvaluatePush(u RefUpdate, agents []policies.AgentIdentity) PushDecision {
	isBranch := strings.HasPrefix(u.Ref, "refs/heads/")
	branch := Branch(u.Ref)
	d := PushDecision{Branch: branch}
	agent := IsAgent(agents, u.Pusher.Login, u.Pusher.Email)

	if agent && (!isBranch || !l.AgentBranch(branch)) {
		d.Action = Refuse
		d.Stop = policies.StopUnauthorizedAccess
		d.Reason = fmt.Sprintf("%s: agent identity %s may push only to %s branches; this push is recorded as a security event (%s) and halts the plan's runs", u.Ref, u.Pusher, seed[0].Source, policies.StopUnauthorizedAccess)
		return d
	}
	if !isBranch {
		d.Action = Accept
		d.Reason = u.Ref + ": not a branch; not on the ladder"
		return d
	}
	if l.Protected(branch) {
		switch {
		case u.Deleted():
			d.Action = Refuse
			d.Stop = policies.StopUnauthorizedAccess
			d.Reason = fmt.Sprintf("%s: deleting a ladder branch is not allowed; recorded as a security event (%s)", branch, policies.StopUnauthorizedAccess)
		case u.Created():
			d.Action = Refuse
			d.Reason = fmt.Sprintf("%s: a ladder branch cannot be created by a push through the gate; create it before installing the gate (agentgate hooks install) or ask an administrator", branch)
		case !u.FastForward:
			d.Action = Refuse
			d.Stop = policies.StopUnauthorizedAccess
			d.Reason = fmt.Sprintf("%s: force push refused (%s is not an ancestor of %s); ladder branches move only by fast-forward promotion; recorded as a security event (%s)", branch, short(u.Old), short(u.New), policies.StopUnauthorizedAccess)
		default:
			r, ok := l.Into(branch)
			if !ok {
				d.Action = Refuse
				d.Reason = fmt.Sprintf("%s: this policy's ladder has no rung into %s, so it cannot be promoted", branch, branch)
				return d
			}
			d.Action = Promote
			d.Rung = r
			d.Reason = fmt.Sprintf("%s: promotion %s -> %s; rung requires %s", branch, r.Source, r.Target, strings.Join(r.Requires, ", "))
		}
		return d
	}
	if l.AgentBranch(branch) {
		if u.Deleted() {
			d.Action = Accept
			d.Reason = branch + ": agent branch deleted"
			return d
		}
		d.Action = RunChecks
		d.Reason = branch + ": agent branch; running the checks"
		return d
	}
	d.Action = Accept
	d.Reason = fmt.Sprintf("%s: not a ladder branch; it cannot be promoted (changes enter the ladder from %s)", branch, seed[0].Source)
	return d
}

// short abbreviates a SHA for messages.
func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
