// Package secrets is the secret-scanning check: gitleaks, in-process, over
// the lines the change adds (git diff -U0 -M merge-base..head), the
// messages of the change's commits, and the lines individual commits of
// the branch added that the net diff no longer has (a key added and then
// removed is still in the pushed history).
//
// Trust: the rules are gitleaks' defaults merged with the BASE commit's
// .gitleaks.toml, and ignore entries come from the base's .gitleaksignore;
// inline gitleaks:allow comments are ignored, since the agent writes them.
// Secrets are redacted inside gitleaks (Redact=100) and no finding field
// that could hold one (Match, Secret, Line) is ever copied out.
//
// Fail closed: the commits are verified first, and the scan fails when
// the parsed diff (and history) does not account for every added line git
// counted
// (a parser that silently stopped early, or an empty scan of a non-empty
// diff, is an error, never "no findings"). Any finding stops the run with
// STOP_SECRET_EXPOSURE.
//
// gitleaks' config loader keeps global state (viper, the [extend] depth
// counter) and is not re-entrant, so configs are loaded under one mutex,
// never through [extend]: the default and repository rules are merged here,
// and each distinct config is loaded once per process (keyed by a hash of
// its bytes).
package secrets
