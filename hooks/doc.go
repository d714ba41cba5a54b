// Package hooks is agentgate's edge: the webhook server (signature
// verification, delivery dedup, durable queue), event routing, comment
// commands, the GitHub API adapter, and the local forge (a plain git
// repository with a pre-receive hook) so the whole gate runs without GitHub.
package hooks
