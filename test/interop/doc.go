// Package interop checks that the gate's attestations verify with outside
// tools: cosign v3.1.3 (built once from the Go module proxy and cached under
// $XDG_CACHE_HOME/agentgate/cosign-v3.1.3) and sigstore-go v1.3.0.
//
// It is a separate, test-only module so that neither cosign nor sigstore-go
// enters agentgate's own dependency graph. Run it with `make interop`
// (cd test/interop && go test ./...).
package interop
