package ladder

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/agentgate/agentgate/policies"
)

// Seed rungs. A repository policy may drop a rung or add requirements to one;
// it can never add a pair or remove a seed requirement.
var seed = []policies.Rung{
	{Name: "develop", Source: "agent/*", Target: "develop", Requires: []string{
		policies.RequireChecks, policies.RequirePlanValid, policies.RequireTrailers,
	}},
	{Name: "staging", Source: "develop", Target: "staging", Requires: []string{
		policies.RequirePolicyValid, policies.RequireGateEvidence, policies.RequireBudgetCompliant,
	}},
	{Name: "main", Source: "staging", Target: "main", Requires: []string{
		policies.RequireHumanApproval,
	}},
}

// knownRequirements are the requirement names a rung may list.
var knownRequirements = []string{
	policies.RequireChecks, policies.RequirePlanValid, policies.RequireTrailers,
	policies.RequirePolicyValid, policies.RequireGateEvidence, policies.RequireBudgetCompliant,
	policies.RequireHumanApproval,
}

// Seed returns a copy of the default ladder: agent/* -> develop -> staging -> main.
func Seed() []policies.Rung {
	out := make([]policies.Rung, len(seed))
	for i, r := range seed {
		r.Requires = slices.Clone(r.Requires)
		out[i] = r
	}
	return out
}

// Ladder is a validated promotion ladder.
type Ladder struct {
	rungs []policies.Rung
}

// New builds the ladder from a policy's rungs. An empty list means the seed
// ladder. Rungs are merged with the seed so that a policy can only tighten
// the seed rules: seed requirements are always kept, and a rung the seed does
// not have may extend the ladder beyond it (main -> production) but never
// open another way into a seed branch (release/* -> main would skip develop
// and staging).
func New(rungs []policies.Rung) (*Ladder, error) {
	if len(rungs) == 0 {
		return &Ladder{rungs: Seed()}, nil
	}
	var out, extra []policies.Rung
	seen := map[string]bool{}
	for i, r := range rungs {
		if r.Source == "" || r.Target == "" {
			return nil, fmt.Errorf("ladder rung %d has an empty source or target: fix .agentgate/policy.yaml", i)
		}
		if _, err := path.Match(r.Source, ""); err != nil {
			return nil, fmt.Errorf("ladder rung %d: source %q is not a valid branch pattern: fix .agentgate/policy.yaml", i, r.Source)
		}
		key := r.Source + "->" + r.Target
		if seen[key] {
			return nil, fmt.Errorf("ladder rung %d (%s -> %s) is listed twice: keep one entry in .agentgate/policy.yaml", i, r.Source, r.Target)
		}
		seen[key] = true
		for _, req := range r.Requires {
			if !slices.Contains(knownRequirements, req) {
				return nil, fmt.Errorf("ladder rung %s -> %s requires unknown %q (known: %s): fix .agentgate/policy.yaml", r.Source, r.Target, req, strings.Join(knownRequirements, ", "))
			}
		}
		j := slices.IndexFunc(seed, func(s policies.Rung) bool { return s.Source == r.Source && s.Target == r.Target })
		if j < 0 {
			if isSeedBranch(r.Target) {
				return nil, fmt.Errorf("ladder rung %d (%s -> %s) opens another way into %s; only %s lead there (a policy may tighten the seed ladder, never loosen it): fix .agentgate/policy.yaml", i, r.Source, r.Target, r.Target, seedPairs())
			}
			if strings.ContainsAny(r.Target, "*?[") {
				return nil, fmt.Errorf("ladder rung %d: target %q must be a branch name, not a pattern: fix .agentgate/policy.yaml", i, r.Target)
			}
			if len(r.Requires) == 0 {
				return nil, fmt.Errorf("ladder rung %d (%s -> %s) requires nothing; a rung needs at least one requirement: fix .agentgate/policy.yaml", i, r.Source, r.Target)
			}
			e := r
			e.Requires = slices.Clone(r.Requires)
			if e.Name == "" {
				e.Name = r.Target
			}
			extra = append(extra, e)
			continue
		}
		merged := seed[j]
		merged.Requires = slices.Clone(seed[j].Requires)
		if r.Name != "" {
			merged.Name = r.Name
		}
		for _, req := range r.Requires {
			if !slices.Contains(merged.Requires, req) {
				merged.Requires = append(merged.Requires, req)
			}
		}
		out = append(out, merged)
	}
	// Keep ladder order (bottom to top) whatever order the policy used;
	// extensions come after the seed rungs, in policy order.
	slices.SortFunc(out, func(a, b policies.Rung) int { return seedIndex(a) - seedIndex(b) })
	return &Ladder{rungs: append(out, extra...)}, nil
}

func isSeedBranch(b string) bool {
	for _, r := range seed {
		if r.Target == b || r.Source == b {
			return true
		}
	}
	return false
}

// MustSeed is the seed ladder; it cannot fail.
func MustSeed() *Ladder { l, _ := New(nil); return l }

func seedIndex(r policies.Rung) int {
	return slices.IndexFunc(seed, func(s policies.Rung) bool { return s.Source == r.Source && s.Target == r.Target })
}

func seedPairs() string {
	var s []string
	for _, r := range seed {
		s = append(s, r.Source+" -> "+r.Target)
	}
	return strings.Join(s, ", ")
}

// Rungs returns the ladder's rungs, bottom first.
func (l *Ladder) Rungs() []policies.Rung {
	out := make([]policies.Rung, len(l.rungs))
	copy(out, l.rungs)
	return out
}

// Top is the highest rung's target (main with the seed ladder).
func (l *Ladder) Top() string {
	if len(l.rungs) == 0 {
		return ""
	}
	return l.rungs[len(l.rungs)-1].Target
}

// Branch strips refs/heads/ from a ref name.
func Branch(ref string) string { return strings.TrimPrefix(ref, "refs/heads/") }

// match reports whether a branch matches a rung pattern (path.Match syntax).
func match(pattern, branch string) bool {
	ok, err := path.Match(pattern, branch)
	return err == nil && ok
}

// NotOnLadderError is the refusal for a (source, target) pair that is not a
// rung. Next is the rung the source may be promoted to ("" when the source
// is not a ladder branch at all).
type NotOnLadderError struct {
	Source, Target string
	Next           string // allowed next target for Source
	NextSource     string // the branch Target may be promoted from
	EntryPattern   string // where changes enter the ladder (agent/*)
}

func (e *NotOnLadderError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s -> %s is not on the ladder; ", e.Source, e.Target)
	switch {
	case e.Next != "":
		fmt.Fprintf(&b, "next rung: %s (%s -> %s)", e.Next, e.Source, e.Next)
	case e.Source == e.Target:
		fmt.Fprintf(&b, "a branch cannot be promoted into itself")
	default:
		fmt.Fprintf(&b, "%s is not a ladder branch: changes enter the ladder from %s into its first rung", e.Source, e.EntryPattern)
	}
	if e.NextSource != "" && e.Next == "" {
		fmt.Fprintf(&b, "; %s is promoted only from %s", e.Target, e.NextSource)
	}
	return b.String()
}

// Resolve returns the rung for promoting source into target, or a
// *NotOnLadderError naming the allowed next rung.
func (l *Ladder) Resolve(source, target string) (policies.Rung, error) {
	source, target = Branch(source), Branch(target)
	for _, r := range l.rungs {
		if match(r.Source, source) && r.Target == target {
			return r, nil
		}
	}
	e := &NotOnLadderError{Source: source, Target: target}
	if n, ok := l.Next(source); ok {
		e.Next = n.Target
	}
	for _, r := range l.rungs {
		if r.Target == target {
			e.NextSource = r.Source
		}
	}
	if len(l.rungs) > 0 {
		e.EntryPattern = l.rungs[0].Source
	}
	return policies.Rung{}, e
}

// Next returns the rung whose source matches branch.
func (l *Ladder) Next(branch string) (policies.Rung, bool) {
	branch = Branch(branch)
	for _, r := range l.rungs {
		if match(r.Source, branch) {
			return r, true
		}
	}
	return policies.Rung{}, false
}

// Into returns the rung whose target is branch (how branch is reached).
func (l *Ladder) Into(branch string) (policies.Rung, bool) {
	branch = Branch(branch)
	for _, r := range l.rungs {
		if r.Target == branch {
			return r, true
		}
	}
	return policies.Rung{}, false
}

// Protected reports whether branch is a ladder branch that only moves by
// promotion: a seed branch (develop, staging, main; protected even when a
// policy removes its rung) or the target of any rung.
func (l *Ladder) Protected(branch string) bool {
	branch = Branch(branch)
	if isSeedBranch(branch) {
		return true
	}
	for _, r := range l.rungs {
		if r.Target == branch {
			return true
		}
	}
	return false
}

// AgentBranch reports whether branch is where agents work (agent/*): it
// matches the source pattern of the ladder's entry rung.
func (l *Ladder) AgentBranch(branch string) bool {
	return match(seed[0].Source, Branch(branch))
}
