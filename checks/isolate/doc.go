// Package isolate runs repository code (`go list`, `go test`, `go vet`,
// govulncheck's package loading) for the checks: with no network, a hard
// time limit that kills every process the command started, a clean
// environment built from an allowlist, and bounded output.
//
// Runner is the seam: the default Linux implementation (Netless) puts the
// command in new network and PID namespaces (plus a user namespace when not
// root). The sandbox driver plugs a real sandbox behind the same interface.
// When isolation is not available Netless refuses to run (fail closed)
// unless the caller explicitly allowed unisolated runs, and every Result
// says which isolation the command actually had.
package isolate
