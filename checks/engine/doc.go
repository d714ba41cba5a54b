// Package engine evaluates a change: it resolves the range, loads the
// policy from the base commit and the plan from head (Prepare), runs the
// configured checks concurrently, each under its own timeout and with
// panics contained (Evaluate), and builds the report with the decision.
//
// The engine fails closed: a check that errors, panics, times out, ignores
// its cancellation or returns a malformed result counts as a failure with
// the reason stated. Input the gate cannot evaluate (a bad ref, an invalid
// plan, a plan asking for more than its thread allows) is an *InputError,
// which the command maps to exit code 2.
package engine
