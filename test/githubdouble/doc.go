// Package githubdouble is a GitHub REST API double for tests. It is an
// httptest server that validates every request the app makes against GitHub's
// published OpenAPI description (the subset in ../shared/testdata/github/openapi)
// and fails the test on an unknown route or an invalid request, records every
// call, keeps the state the app writes (check runs, statuses, comments,
// reactions, merges), issues installation tokens against an App JWT, injects
// scripted failures (5xx, secondary rate limits with Retry-After), and serves
// repositories over real git smart HTTP (`git http-backend` behind net/http/cgi)
// to holders of a valid installation token.
package githubdouble
