// Package scope is the scope check: it compares the files a change
// (merge-base..head, from the git CLI with rename detection) touches
// against the plan and the base policy.
//
// Findings: files outside the plan's target_files; files of another thread
// that are not one of the thread's shared interfaces (STOP_UNAUTHORIZED_ACCESS:
// a handoff is needed); changed policy artifacts and security-critical
// paths (need approval); a plan edited after it first appeared on the
// branch (needs approval); max_files_changed and max_diff_lines; and the
// anomaly rules: new dependencies (go.mod, package.json, requirements.txt,
// Cargo.toml), unexpected file types, binaries, executable bits, symbolic
// links, submodules and oversized files.
//
// The rules are a pure function (Evaluate) of the diff, the plan, the base
// tree and the dependency files, so they are cheap (linear in the number
// of changed paths) and testable without git.
package scope
