// Package gateway is the metered egress of agent runs to LLM APIs: a reverse
// proxy in front of the OpenAI (Chat Completions, Responses), Anthropic
// (Messages) and local OpenAI-compatible APIs that holds the provider keys,
// admits a call only after reserving its worst-case cost in the budget
// ledger (gate/budget), forwards it unbuffered, reads the provider's usage
// from the response as it flows (JSON or SSE) and settles the reservation to
// the real cost.
//
// An agent run authenticates with a run key (Keys) bound to its plan and run;
// it reaches only the configured upstreams and only the metered endpoints.
// Prices come from a versioned table of integer nano-USD per token
// (prices/prices.json, embedded); a model not in it is refused. The package
// also keeps a response cache for deterministic requests, routes calls to a
// local model when a plan allows degrading, and exports Prometheus metrics.
//
// See docs/gateway.md for the behaviour in full.
package gateway
