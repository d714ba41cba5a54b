// Package webhook is agentgate's GitHub webhook intake: POST /webhook
// verifies X-Hub-Signature-256 (HMAC-SHA256 only, constant time, any of
// several secrets for rotation), requires X-GitHub-Event and
// X-GitHub-Delivery, caps bodies at 25 MiB, and in one database transaction
// records the delivery (unique on its id) and enqueues a durable River job,
// answering 202 only after the commit. A repeated delivery answers 200 and
// enqueues nothing; an event agentgate does not handle is recorded and
// answered 202 without a job.
//
// It never calls go-github's ValidatePayload, which skips verification when
// the secret is empty and falls back to SHA-1.
package webhook
