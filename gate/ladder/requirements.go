package ladder

import (
	"fmt"
	"strings"

	"github.com/agentgate/agentgate/policies"
)

// Outcome is whether one requirement of a rung holds, and why.
type Outcome struct {
	Requirement string `json:"requirement"`
	Satisfied   bool   `json:"satisfied"`
	Detail      string `json:"detail"`
}

// Facts are the outcomes the adapter gathered, keyed by requirement name.
// A requirement without a fact fails closed.
type Facts map[string]Outcome

// Set records an outcome under its requirement.
func (f Facts) Set(o Outcome) { f[o.Requirement] = o }

// Decision is the evaluation of one rung for one promotion.
type Decision struct {
	Rung     policies.Rung `json:"rung"`
	Source   string        `json:"source"`
	Target   string        `json:"target"`
	SHA      string        `json:"sha"`
	Passed   bool          `json:"passed"`
	Outcomes []Outcome     `json:"outcomes"`
}

// EvaluateRung checks every requirement of rung against facts. A missing
// fact is a failure ("not evaluated"), never a pass.
func EvaluateRung(rung policies.Rung, source, target, sha string, facts Facts) Decision {
	d := Decision{Rung: rung, Source: Branch(source), Target: Branch(target), SHA: sha, Passed: true}
	for _, req := range rung.Requires {
		o, ok := facts[req]
		if !ok {
			o = Outcome{Requirement: req, Detail: "not evaluated; a requirement that was not evaluated fails closed"}
		}
		o.Requirement = req
		if !o.Satisfied {
			d.Passed = false
		}
		d.Outcomes = append(d.Outcomes, o)
	}
	return d
}

// Failed lists the outcomes that did not hold.
func (d Decision) Failed() []Outcome {
	var out []Outcome
	for _, o := range d.Outcomes {
		if !o.Satisfied {
			out = append(out, o)
		}
	}
	return out
}

// Summary is one line for a check-run title or a pusher: what was decided.
func (d Decision) Summary() string {
	if d.Passed {
		return fmt.Sprintf("promotion %s -> %s at %s: all %d requirements hold", d.Source, d.Target, short(d.SHA), len(d.Outcomes))
	}
	var names []string
	for _, o := range d.Failed() {
		names = append(names, o.Requirement)
	}
	return fmt.Sprintf("promotion %s -> %s at %s refused: %s not satisfied", d.Source, d.Target, short(d.SHA), strings.Join(names, ", "))
}

// Explain is the multi-line explanation: one line per requirement.
func (d Decision) Explain() string {
	var b strings.Builder
	b.WriteString(d.Summary())
	for _, o := range d.Outcomes {
		mark := "FAIL"
		if o.Satisfied {
			mark = "ok"
		}
		fmt.Fprintf(&b, "\n  [%s] %s: %s", mark, o.Requirement, o.Detail)
	}
	return b.String()
}
