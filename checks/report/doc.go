// Package report defines report.json, the evidence `agentgate check`
// writes for one evaluation of a change, its JSON Schema (draft 2020-12,
// embedded), a strict loader, the decision and exit-code rules, and the
// SARIF 2.1.0 and plain-text renderings.
//
// A report never contains a secret: checks redact before they build
// findings, and the renderers only copy finding fields.
package report
