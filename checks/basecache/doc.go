// Package basecache stores check results of a base commit on disk, keyed by
// the commit SHA and everything else the result depends on (tool versions,
// command, database version), so that re-checking another head against
// the same base does not re-run the base's tests or scans.
//
// Only the gate writes the cache, and only results computed from a commit
// it resolved itself; entries are JSON files written atomically.
package basecache
