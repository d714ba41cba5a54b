// Package gitcli runs the git command-line tool for the gate with a fixed,
// safe environment and parses its machine-readable output.
//
// Every process it starts ignores the user's and the system's git
// configuration, cannot prompt, page, run hooks, start an fsmonitor, fetch
// from a promisor remote, substitute objects through refs/replace, or run
// diff drivers, textconv or smudge filters: the repository under inspection
// belongs to an untrusted agent, so nothing in it may make git run code or
// change what a commit appears to contain. Attributes (.gitattributes) from
// the work tree are not read either, so an agent cannot mark a source file
// "-diff" to hide its lines from the scope and secret checks.
//
// Reading a commit never checks anything out: CommitFS and Export read
// blobs with `git cat-file --batch`; `git archive` is avoided because it
// applies smudge filters and export-subst from attributes.
package gitcli
