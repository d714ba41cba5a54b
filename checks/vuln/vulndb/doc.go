// Package vulndb builds and locates the offline Go vulnerability database
// that the vuln check hands to govulncheck (`-db file:///...`).
//
// The source is the golang.org/x/vulndb module at a pinned pseudo-version,
// fetched with `go mod download` (so through the module proxy and the
// module cache, checksummed by go.sum's database). Its data/osv directory
// holds one OSV entry per advisory. Build writes the layout x/vuln's client
// reads for file:// URLs: ID/<id>.json (the entries, byte for byte),
// index/modules.json (per module: id, modified and the latest
// non-superseded fix) and index/db.json (the newest modification time).
// Entries in the module carry a zero "modified" time; the builder uses the
// vulndb commit time from the pseudo-version instead, so the database
// reports a real age.
package vulndb
