// Package gopkgs answers the Go-specific questions the tests, static and
// vuln checks share about an exported tree: where its modules are, what
// its package graph is (`go list`, run under an isolate.Runner because it
// evaluates repository-controlled build configuration), and which packages
// a change can affect (the changed packages and everything that imports
// them, directly, transitively or from tests).
package gopkgs
