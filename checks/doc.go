// Package checks holds the gate's checks, one subpackage per check (scope,
// secrets, vuln, tests, static). Each takes a subject (repository, base,
// head, plan, policy read from base) and returns findings; none talks to
// GitHub or to the store.
package checks
