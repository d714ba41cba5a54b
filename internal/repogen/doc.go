// Package repogen generates realistic agent repositories for benchmarks
// and load tests: a Go module with threads (config.yaml, requirements.yaml,
// WORK_PLAN.json) and thousands of source files on main, and an agent
// branch that edits, adds and renames files and plants fake secrets. Real
// git commits are made with the git CLI; the content is deterministic for
// a given seed.
package repogen
