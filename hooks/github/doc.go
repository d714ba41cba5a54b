// Package github is agentgate's GitHub API adapter: App installation auth
// (ghinstallation, one cached client and token per installation), check runs
// published idempotently by external_id with annotations batched by 50,
// commit statuses, comments, reactions, merges pinned to the evaluated SHA,
// workflow dispatch, and API discipline: retries with backoff on 5xx and
// network errors for repeatable calls, Retry-After and secondary rate limits
// honoured for every call, writes serialised per installation, and
// Prometheus metrics for calls, retries, latency and remaining rate limit.
// GitHub Enterprise Server works by configuring its API URL.
package github
