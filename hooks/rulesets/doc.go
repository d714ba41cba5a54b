// Package rulesets builds and applies the repository rulesets that make
// GitHub enforce the promotion ladder: on each ladder branch (develop,
// staging, main) the agentgate/<target> check is required and bound to the
// App (so a status from anyone else cannot satisfy it), force pushes,
// deletions and creation are blocked, and changes land only through pull
// requests. Plan builds the rulesets as data; Apply creates or updates them,
// matched by name, over a narrow client (go-github's RepositoriesService).
package rulesets
