// Package tests is the tests check: it runs the plan's test command on the
// head of a change (no network, a time limit, through an isolate.Runner),
// parses the per-test results of `go test -json` and the coverage profile,
// and fails when a test fails, an acceptance test of the thread's
// requirements is missing or did not pass, a changed Go file has no test
// change in its package (require_tests_for_changed), or coverage of the
// changed files is below coverage_changed_min. Total coverage falling
// versus base by more than coverage_regression_tolerance is a finding that
// stops the run (STOP_COVERAGE_REGRESSION).
//
// Speed: with the default command only the packages the change can affect
// are tested on head (the changed packages and their reverse dependencies,
// including test-only importers, from `go list` on head); the others keep
// the base's results, which are computed once per base commit (the full
// suite) and cached on disk. Exports go to stable per-repository work
// directories so Go's build cache stays warm across evaluations.
package tests
