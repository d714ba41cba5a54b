// Package vuln is the vulnerability check: govulncheck (golang.org/x/vuln)
// against an offline database (package vulndb) on the head and the base of
// a change, counting only vulnerabilities that are new on head.
//
// govulncheck loads the repository's packages with `go list`, which runs
// repository-controlled code paths (cgo directives, toolchain selection),
// so the scan never runs in the gate's own process: the check starts a
// child of the agentgate binary (`agentgate vulndb scan`, hidden) under an
// isolate.Runner, with no network, a time limit and module downloads off.
// The child runs govulncheck in-process (x/vuln's scan package) and writes
// its JSON stream, which the check parses (the stream's exit code is 0 even
// with findings, so parsing is the only verdict).
//
// Levels: a finding whose innermost trace frame names a function is
// "called", one naming only a package is "imported", otherwise "required".
// By default only new "called" findings in modules fail; standard-library
// findings (module "stdlib", i.e. the toolchain) have their own policy
// (warn by default), and the policy can accept an id until a date.
package vuln
