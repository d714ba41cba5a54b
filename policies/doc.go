// Package policies is agentgate's contract language: the Go types, embedded
// JSON Schemas and strict loaders for the files a user writes (WORK_PLAN.json,
// a thread's config.yaml, requirements.yaml, the repository policy
// .agentgate/policy.yaml), the semantic rules that tie them together, and
// thread discovery with the ownership map ("which thread owns this path").
//
// Entry points:
//
//   - LoadWorkPlan, LoadThread, LoadRequirements, LoadPolicy load one file:
//     strict decoding (unknown fields, duplicate keys, wrong types, nulls,
//     YAML anchors/aliases/tags and files over MaxFileSize are problems),
//     the embedded JSON Schema (Schema, SchemaNames), defaults, and the
//     rules that need only that file. Errors are Problems, every problem at
//     once, each printed as file:line:col: field: message.
//   - LoadTree loads a whole repository snapshot from an fs.FS (DirFS for a
//     work tree, or any fs.FS over a commit) and applies the cross-file
//     rules. The Tree answers Owner, ThreadForPlan, PolicyArtifacts and
//     IsPolicyArtifact; PlanAllows and MatchGlob serve the scope check.
//   - CheckAcceptanceTests verifies that every acceptance test named in
//     the requirements exists in its package's _test.go files.
//
// The reference for users is docs/contracts.md. The package depends on
// nothing else in agentgate.
package policies
