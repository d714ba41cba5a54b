// Package sandbox is where agent and test processes run: OS drivers (Linux,
// macOS), command allowlist wrappers, limits, the kill switch, checkpoints and
// rollback, and the metered egress to LLM APIs.
package sandbox
