// Package server is `agentgate serve`, the GitHub App: configuration
// (agentgate.yaml plus AGENTGATE_* overrides), the webhook intake mounted at
// POST /webhook, River workers that route deliveries (push to agent/*,
// pull_request, check_run/check_suite rerequested, installation events,
// comment commands) to evaluations, the evaluation flow (serialised per
// repository and PR, a newer head cancels an older one, fetch with the
// installation token into a clone cache, evaluate, audit, post the check
// run), the reconciler, /healthz, /readyz, /metrics and graceful shutdown.
package server
