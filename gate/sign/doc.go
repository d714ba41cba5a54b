// Package sign loads and creates the gate's signing keys.
//
// A signer is sigstore's signature.SignerVerifier, so that anything sigstore
// can sign with works here: the default is an ECDSA P-256 private key in a
// PEM file (optionally encrypted with a password), and a reference of the
// form NAME://KEY goes to sigstore's KMS layer (kms.Get), which runs the
// plugin program sigstore-kms-NAME from PATH. Cloud KMS providers (awskms://,
// gcpkms://, azurekms://, hashivault://) are separate sigstore modules that
// this binary does not link; use their sigstore-kms-* plugins instead.
package sign
