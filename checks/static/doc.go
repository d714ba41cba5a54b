// Package static is the static-analysis check: `go vet` on the Go packages
// the change touched (on head, through an isolate.Runner: vet type-checks
// repository code and evaluates its build configuration), plus staticcheck
// when the gate is configured with a staticcheck binary. Each diagnostic
// becomes a finding at its file and line; a tool that cannot run is an
// error, never a pass.
package static
