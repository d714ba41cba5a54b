// Package app holds end-to-end scenarios of `agentgate serve` against the
// GitHub API double (test/githubdouble), with real git repositories, the
// real store and GitHub's published webhook payloads, signed like GitHub
// signs them. The crash scenario runs the real binary in a subprocess.
package app
