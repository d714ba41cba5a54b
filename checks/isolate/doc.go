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
//
// What Netless does not confine: the filesystem and the user. The command
// runs as the gate's own uid and can write wherever the gate can, including
// the shared Go caches (GOCACHE, GOMODCACHE) and agentgate's cache of base
// results and the vulnerability database. Use it where the gate runs in a
// throwaway environment (a CI job), or behind the sandbox runner, which
// adds a dedicated uid, a read allowlist and Landlock.
package isolate
