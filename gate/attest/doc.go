// Package attest builds, signs and verifies the gate's decision
// attestations.
//
// An attestation is an in-toto Statement v1 whose subject is the head commit
// (digest algorithm "gitCommit") and whose predicate (PredicateType) records
// what the gate saw and decided: repository, base, head, merge base, rung,
// plan and policy digests, each check's status and finding counts, tool and
// database versions, decision, stop reason and approvals. The statement is
// signed as a DSSE envelope (payload type application/vnd.in-toto+json) with
// sigstore's dsse.WrapSigner and written as a Sigstore bundle v0.3
// (*.sigstore.json) carrying only a public-key hint, so that it can be
// verified offline by this package, by sigstore-go or by
//
//	cosign verify-blob-attestation --bundle F --key PUB --insecure-ignore-tlog \
//	  --digest HEAD_SHA --digestAlg gitCommit --type https://agentgate.dev/attestation/gate-decision/v1
//
// There is no transparency-log entry or timestamp: the bundle proves "signed
// by this key", not "signed at this time".
package attest
