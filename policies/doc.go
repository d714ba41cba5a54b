// Package policies is agentgate's contract language: the Go types, embedded
// JSON Schemas and strict loaders for the files a user writes (WORK_PLAN.json,
// a thread's config.yaml, requirements.yaml, the repository policy
// .agentgate/policy.yaml), the semantic rules that tie them together, and
// thread discovery with the ownership map ("which thread owns this path").
//
// It depends on nothing else in agentgate.
package policies
