package githubdouble

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/golang-jwt/jwt/v4"
)

// APIPrefix is where the REST API is mounted, as on GitHub Enterprise
// Server. A non-empty prefix makes absolute-path bugs in the client show up.
const APIPrefix = "/api/v3"

// GitPrefix is where repositories are served over smart HTTP:
// <URL>/git/<owner>/<repo>.git.
const GitPrefix = "/git"

// Call is one request the double received.
type Call struct {
	Method      string
	Path        string // escaped path without APIPrefix (or with GitPrefix for git)
	Query       string
	OperationID string // "" for git traffic and unknown routes
	Status      int    // status the double answered (-1: hung up)
	Body        []byte
	Injected    bool // answered by an injected fault
	Time        time.Time
}

// Fault is a scripted failure answered instead of the normal response to the
// next Times matching requests (after the request was validated).
type Fault struct {
	OperationID string // match this operation ("" = any API operation)
	Method      string // and this method ("" = any)
	Status      int    // 500, 502, 403, 429, ...
	// RetryAfter, when non-zero, is sent as a Retry-After header (seconds).
	RetryAfter time.Duration
	// SecondaryRateLimit answers GitHub's secondary-rate-limit 403 body.
	SecondaryRateLimit bool
	// PrimaryRateLimit answers GitHub's primary-rate-limit 403: headers
	// x-ratelimit-remaining 0 and x-ratelimit-reset RetryAfter from now.
	PrimaryRateLimit bool
	// HangUp closes the connection without an answer (a network error).
	HangUp bool
	// Delay answers normally, but only after this long (a slow GitHub).
	Delay time.Duration
	Times int // how many requests get this answer
	// Until, when set, keeps answering the fault until that time (Times is
	// then ignored).
	Until time.Time
}

// CheckRun is the double's record of a check run the app wrote.
type CheckRun struct {
	ID          int64
	Repo        string // owner/repo
	Name        string
	HeadSHA     string
	ExternalID  string
	Status      string
	Conclusion  string
	Title       string
	Summary     string
	Text        string
	Annotations []map[string]any
	Writes      int // create + updates
	Created     time.Time
}

// Status is a commit status the app posted.
type Status struct {
	Repo, SHA, State, Context, Description, TargetURL string
}

// Comment is an issue comment the app wrote (or a test seeded).
type Comment struct {
	ID     int64
	Repo   string
	Issue  int
	Body   string
	User   string
	Edited bool
}

// Reaction is a reaction the app added to a comment.
type Reaction struct {
	Repo      string
	CommentID int64
	Content   string
}

// Merge is a pull request merge the app asked for.
type Merge struct {
	Repo   string
	Number int
	SHA    string
	Method string
}

// Dispatch is a workflow_dispatch the app sent.
type Dispatch struct {
	Repo, Workflow, Ref string
	Inputs              map[string]any
}

// Pull is a pull request the double knows.
type Pull struct {
	Number  int
	State   string // open or closed
	HeadRef string
	HeadSHA string
	BaseRef string
	BaseSHA string
	Draft   bool
	User    string
}

type tokenInfo struct {
	installation int64
	expires      time.Time
}

// Double is a running GitHub API double.
type Double struct {
	URL    string // server root, e.g. http://127.0.0.1:1234
	APIURL string // URL + APIPrefix + "/" (go-github's BaseURL)
	GitURL string // URL + GitPrefix + "/"
	AppID  int64
	// PrivateKeyPEM is the App's private key (PKCS#1 PEM), for the app under test.
	PrivateKeyPEM []byte

	t       testing.TB
	srv     *httptest.Server
	spec    *spec
	appKey  *rsa.PublicKey
	gitRoot string
	gitBin  string

	mu            sync.Mutex
	calls         []Call
	violations    []string
	faults        []*Fault
	tokens        map[string]tokenInfo
	nextID        int64
	checkRuns     []*CheckRun
	statuses      []Status
	comments      []*Comment
	reactions     []Reaction
	merges        []Merge
	dispatches    []Dispatch
	pulls         map[string][]*Pull
	installations map[int64][]string
	handlers      map[string]Handler
	tokenTTL      time.Duration
	repoDirs      map[string]string
}

// Handler overrides the double's answer for one operation. It gets the
// validated request body and path parameters and writes the response.
type Handler func(w http.ResponseWriter, r *http.Request, params map[string]string, body []byte)

// New starts a double and stops it when the test ends. Every request that
// does not match an operation of the OpenAPI subset, or does not validate
// against it, fails the test with the reason.
func New(t testing.TB) *Double {
	t.Helper()
	s, err := loadSpec()
	if err != nil {
		t.Fatalf("%v", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("githubdouble: generate app key: %v", err)
	}
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("githubdouble: git is required to serve repositories: %v", err)
	}
	d := &Double{
		AppID:         4242,
		PrivateKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		t:             t,
		spec:          s,
		appKey:        &key.PublicKey,
		gitRoot:       t.TempDir(),
		gitBin:        gitBin,
		tokens:        map[string]tokenInfo{},
		nextID:        1000,
		pulls:         map[string][]*Pull{},
		installations: map[int64][]string{},
		handlers:      map[string]Handler{},
		tokenTTL:      time.Hour,
		repoDirs:      map[string]string{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc(APIPrefix+"/", d.serveAPI)
	mux.HandleFunc(GitPrefix+"/", d.serveGit)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		d.violation("request outside the API mount %s: %s %s (absolute-path bug in the client?)", APIPrefix, r.Method, r.URL.EscapedPath())
		http.NotFound(w, r)
	})
	d.srv = httptest.NewServer(mux)
	d.URL = d.srv.URL
	d.APIURL = d.URL + APIPrefix + "/"
	d.GitURL = d.URL + GitPrefix + "/"
	t.Cleanup(d.srv.Close)
	return d
}

// Close stops the server early (it is also stopped when the test ends).
func (d *Double) Close() { d.srv.Close() }

func (d *Double) violation(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	d.mu.Lock()
	d.violations = append(d.violations, msg)
	d.mu.Unlock()
	d.t.Errorf("githubdouble: %s", msg)
}

// Violations returns the invalid or unknown requests seen so far.
func (d *Double) Violations() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.violations...)
}

// AddInstallation makes an installation with access to the given repositories
// ("owner/repo").
func (d *Double) AddInstallation(id int64, repos ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.installations[id] = append(d.installations[id], repos...)
}

// SetTokenTTL changes the lifetime of tokens issued from now on.
func (d *Double) SetTokenTTL(ttl time.Duration) {
	d.mu.Lock()
	d.tokenTTL = ttl
	d.mu.Unlock()
}

// AddRepo creates an empty bare repository served at GitURL+owner/repo.git
// and returns its directory, into which a test pushes with plain git.
func (d *Double) AddRepo(fullName string) string {
	d.t.Helper()
	dir := filepath.Join(d.gitRoot, filepath.FromSlash(fullName)+".git")
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		d.t.Fatalf("githubdouble: %v", err)
	}
	out, err := exec.Command(d.gitBin, "init", "-q", "--bare", dir).CombinedOutput()
	if err != nil {
		d.t.Fatalf("githubdouble: git init --bare: %v: %s", err, out)
	}
	d.mu.Lock()
	d.repoDirs[fullName] = dir
	d.mu.Unlock()
	return dir
}

// SetPull adds or replaces a pull request of repo (matched by number).
func (d *Double) SetPull(repo string, p Pull) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p.State == "" {
		p.State = "open"
	}
	if p.User == "" {
		p.User = "agent-bot"
	}
	for i, q := range d.pulls[repo] {
		if q.Number == p.Number {
			d.pulls[repo][i] = &p
			return
		}
	}
	d.pulls[repo] = append(d.pulls[repo], &p)
}

// AddComment seeds an issue comment and returns its id.
func (d *Double) AddComment(repo string, issue int, user, body string) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nextID++
	d.comments = append(d.comments, &Comment{ID: d.nextID, Repo: repo, Issue: issue, Body: body, User: user})
	return d.nextID
}

// Inject queues a scripted failure.
func (d *Double) Inject(f Fault) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fc := f
	d.faults = append(d.faults, &fc)
}

// Handle overrides the answer for an operation id (e.g. "pulls/get").
func (d *Double) Handle(operationID string, h Handler) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.handlers[operationID] = h
}

// Calls returns the recorded requests.
func (d *Double) Calls() []Call {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Call(nil), d.calls...)
}

// CallsTo returns the recorded requests for one operation id.
func (d *Double) CallsTo(operationID string) []Call {
	var out []Call
	for _, c := range d.Calls() {
		if c.OperationID == operationID {
			out = append(out, c)
		}
	}
	return out
}

// CheckRuns returns copies of the check runs written so far, oldest first.
func (d *Double) CheckRuns() []CheckRun {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]CheckRun, 0, len(d.checkRuns))
	for _, c := range d.checkRuns {
		cp := *c
		cp.Annotations = append([]map[string]any(nil), c.Annotations...)
		out = append(out, cp)
	}
	return out
}

// Statuses returns the commit statuses posted.
func (d *Double) Statuses() []Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Status(nil), d.statuses...)
}

// Comments returns the issue comments (seeded and written).
func (d *Double) Comments() []Comment {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Comment, 0, len(d.comments))
	for _, c := range d.comments {
		out = append(out, *c)
	}
	return out
}

// Reactions returns the reactions added.
func (d *Double) Reactions() []Reaction {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Reaction(nil), d.reactions...)
}

// Merges returns the merges performed.
func (d *Double) Merges() []Merge {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Merge(nil), d.merges...)
}

// Dispatches returns the workflow dispatches received.
func (d *Double) Dispatches() []Dispatch {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Dispatch(nil), d.dispatches...)
}

func (d *Double) record(c Call) {
	c.Time = time.Now()
	d.mu.Lock()
	d.calls = append(d.calls, c)
	d.mu.Unlock()
}

// statusRecorder remembers the status code written.
type statusRecorder struct {
	http.ResponseWriter
	code int
	body bytes.Buffer // a copy of what was written, for response validation
	// onStatus records the call as soon as its status is known, before
	// the client can see the answer (tests count calls right after).
	onStatus func(code int)
}

func (s *statusRecorder) status(code int) {
	if s.code == 0 {
		s.code = code
		if s.onStatus != nil {
			s.onStatus(code)
			s.onStatus = nil
		}
	}
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status(code)
	s.ResponseWriter.WriteHeader(code)
}

// Hijack lets faults drop the connection.
func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("githubdouble: connection cannot be hijacked")
	}
	s.status(-1)
	return hj.Hijack()
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.status(http.StatusOK)
	if s.body.Len() < 8<<20 {
		s.body.Write(b)
	}
	return s.ResponseWriter.Write(b)
}

func (d *Double) serveAPI(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.EscapedPath(), APIPrefix)
	body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	call := Call{Method: r.Method, Path: path, Query: r.URL.RawQuery, Body: body}
	rec := &statusRecorder{ResponseWriter: w}
	rec.onStatus = func(code int) {
		call.Status = code
		d.record(call)
	}
	defer rec.status(http.StatusOK) // a handler that wrote nothing answered 200

	route, params, err := d.spec.route(r.Method, path)
	if err != nil {
		d.violation("unknown call %s %s: %v", r.Method, path, err)
		writeJSON(rec, http.StatusNotFound, map[string]any{"message": "Not Found (githubdouble: " + err.Error() + ")"})
		return
	}
	call.OperationID = route.Operation.OperationID
	in, err := d.validate(r, body, route, params)
	if err != nil {
		d.violation("invalid request %s %s (%s): %v", r.Method, path, call.OperationID, err)
		writeJSON(rec, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed (githubdouble): " + err.Error()})
		return
	}
	if !d.authorize(rec, r, call.OperationID) {
		return
	}
	if hit := d.pickFault(call.OperationID, r.Method); hit != nil {
		if hit.Delay > 0 {
			select {
			case <-time.After(hit.Delay):
			case <-r.Context().Done():
			}
		} else {
			call.Injected = true
			d.serveFault(rec, hit)
			return
		}
	}
	d.mu.Lock()
	h := d.handlers[call.OperationID]
	d.mu.Unlock()
	if h == nil {
		h = d.builtin(call.OperationID)
	}
	validateResponse := true
	if h == nil {
		// GitHub's own examples are served as they are; some are older than
		// the schemas (e.g. no role_name in the permission example), so only
		// answers the double builds are held to the description.
		validateResponse = false
		h = func(w http.ResponseWriter, _ *http.Request, _ map[string]string, _ []byte) {
			code, ex := example(route.Operation)
			writeJSON(w, code, ex)
		}
	}
	h(rec, r, params, body)
	// The double's own answers must match the description too, or tests
	// would pass against shapes GitHub never sends.
	if validateResponse && rec.code >= 200 && rec.code < 300 && rec.code != http.StatusNoContent {
		out := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in, Status: rec.code, Header: rec.Header(),
			Body:    io.NopCloser(bytes.NewReader(rec.body.Bytes())),
			Options: &openapi3filter.Options{MultiError: true, IncludeResponseStatus: true},
		}
		if err := openapi3filter.ValidateResponse(r.Context(), out); err != nil {
			d.violation("double defect: response to %s %s (%s) does not match the OpenAPI description: %v", r.Method, path, call.OperationID, err)
		}
	}
}

func (d *Double) validate(r *http.Request, body []byte, route *routers.Route, params map[string]string) (*openapi3filter.RequestValidationInput, error) {
	rc := r.Clone(r.Context())
	rc.Body = io.NopCloser(bytes.NewReader(body))
	rc.ContentLength = int64(len(body))
	in := &openapi3filter.RequestValidationInput{
		Request:    rc,
		PathParams: params,
		Route:      route,
		Options: &openapi3filter.Options{
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
			MultiError:         true,
		},
	}
	return in, openapi3filter.ValidateRequest(r.Context(), in)
}

// authorize checks the credentials GitHub would: an App JWT for /app
// endpoints, an unexpired installation token for everything else.
func (d *Double) authorize(w http.ResponseWriter, r *http.Request, op string) bool {
	auth := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(auth, " ")
	if strings.HasPrefix(op, "apps/") && op != "apps/list-repos-accessible-to-installation" && op != "apps/get-repo-installation" {
		if !strings.EqualFold(scheme, "bearer") || d.checkJWT(cred) != nil {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "A JSON web token could not be decoded"})
			return false
		}
		return true
	}
	if !strings.EqualFold(scheme, "token") && !strings.EqualFold(scheme, "bearer") {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Requires authentication"})
		return false
	}
	if _, ok := d.tokenInstallation(cred); !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Bad credentials"})
		return false
	}
	return true
}

func (d *Double) checkJWT(raw string) error {
	tok, err := jwt.ParseWithClaims(raw, &jwt.RegisteredClaims{}, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodRS256 {
			return nil, fmt.Errorf("unexpected signing method %v", t.Header["alg"])
		}
		return d.appKey, nil
	})
	if err != nil {
		return err
	}
	c := tok.Claims.(*jwt.RegisteredClaims)
	if c.Issuer != strconv.FormatInt(d.AppID, 10) {
		return fmt.Errorf("iss %q is not the app id", c.Issuer)
	}
	return nil
}

func (d *Double) tokenInstallation(tok string) (int64, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ti, ok := d.tokens[tok]
	if !ok || time.Now().After(ti.expires) {
		return 0, false
	}
	return ti.installation, true
}

// pickFault takes the next scripted fault for this request, if any.
func (d *Double) pickFault(op, method string) *Fault {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, f := range d.faults {
		if (f.OperationID != "" && f.OperationID != op) || (f.Method != "" && f.Method != method) {
			continue
		}
		if !f.Until.IsZero() {
			if time.Now().After(f.Until) {
				continue
			}
		} else {
			if f.Times <= 0 {
				continue
			}
			f.Times--
		}
		return f
	}
	return nil
}

// serveFault answers with the scripted failure.
func (d *Double) serveFault(w http.ResponseWriter, hit *Fault) {
	if hit.HangUp {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	if hit.RetryAfter > 0 && !hit.PrimaryRateLimit {
		w.Header().Set("Retry-After", strconv.Itoa(int((hit.RetryAfter+time.Second-1)/time.Second)))
	}
	switch {
	case hit.PrimaryRateLimit:
		w.Header().Set("X-RateLimit-Limit", "5000")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Used", "5000")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(hit.RetryAfter).Unix(), 10))
		w.Header().Set("X-RateLimit-Resource", "core")
		writeJSON(w, hit.Status, map[string]any{
			"message":           "API rate limit exceeded for installation ID 1.",
			"documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
		})
	case hit.SecondaryRateLimit:
		writeJSON(w, hit.Status, map[string]any{
			"message":           "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.",
			"documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
		})
	case hit.Status == http.StatusBadGateway:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(hit.Status)
		_, _ = io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1></body></html>")
	default:
		writeJSON(w, hit.Status, map[string]any{"message": http.StatusText(hit.Status)})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	if code == http.StatusNoContent || v == nil && code != http.StatusOK {
		w.WriteHeader(code)
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// serveGit serves repositories over smart HTTP with git http-backend. Like
// GitHub it asks for Basic credentials and accepts an installation token as
// the password (user x-access-token).
func (d *Double) serveGit(w http.ResponseWriter, r *http.Request) {
	call := Call{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery}
	rec := &statusRecorder{ResponseWriter: w}
	rec.onStatus = func(code int) {
		call.Status = code
		d.record(call)
	}
	defer rec.status(http.StatusOK)
	_, pass, ok := r.BasicAuth()
	inst, valid := d.tokenInstallation(pass)
	if !ok || !valid {
		rec.Header().Set("WWW-Authenticate", `Basic realm="GitHub"`)
		http.Error(rec, "authentication required", http.StatusUnauthorized)
		return
	}
	repo := strings.TrimPrefix(r.URL.Path, GitPrefix+"/")
	if i := strings.Index(repo, ".git/"); i >= 0 {
		repo = repo[:i]
	}
	d.mu.Lock()
	allowed := false
	for _, full := range d.installations[inst] {
		if full == repo {
			allowed = true
		}
	}
	d.mu.Unlock()
	if !allowed {
		http.Error(rec, "Repository not found.", http.StatusNotFound)
		return
	}
	h := &cgi.Handler{
		Path: d.gitBin,
		Root: GitPrefix,
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + d.gitRoot, "GIT_HTTP_EXPORT_ALL=1"},
	}
	h.ServeHTTP(rec, r)
}

// builtin returns the stateful handler for an operation, or nil to answer
// GitHub's example.
func (d *Double) builtin(op string) Handler {
	switch op {
	case "apps/create-installation-access-token":
		return d.createToken
	case "apps/list-repos-accessible-to-installation":
		return d.listInstallationRepos
	case "checks/create":
		return d.createCheckRun
	case "checks/update":
		return d.updateCheckRun
	case "checks/get":
		return d.getCheckRun
	case "checks/list-for-ref":
		return d.listCheckRunsForRef
	case "repos/create-commit-status":
		return d.createStatus
	case "issues/create-comment":
		return d.createComment
	case "issues/get-comment":
		return d.getComment
	case "issues/update-comment":
		return d.updateComment
	case "issues/list-comments":
		return d.listComments
	case "reactions/create-for-issue-comment":
		return d.createReaction
	case "pulls/list":
		return d.listPulls
	case "pulls/get":
		return d.getPull
	case "pulls/merge":
		return d.mergePull
	case "actions/create-workflow-dispatch":
		return d.dispatch
	case "repos/get-branch":
		return d.getBranch
	}
	return nil
}

// exampleFor returns a deep copy of GitHub's example body for op.
func (d *Double) exampleFor(op string) map[string]any {
	for _, t := range d.spec.templates {
		for _, o := range t.item.Operations() {
			if o.OperationID != op {
				continue
			}
			_, ex := example(o)
			return deepCopy(ex)
		}
	}
	return map[string]any{}
}

func deepCopy(v any) map[string]any {
	b, _ := json.Marshal(v)
	out := map[string]any{}
	_ = json.Unmarshal(b, &out)
	return out
}

func repoOf(p map[string]string) string { return p["owner"] + "/" + p["repo"] }

func (d *Double) createToken(w http.ResponseWriter, _ *http.Request, p map[string]string, _ []byte) {
	id, _ := strconv.ParseInt(p["installation_id"], 10, 64)
	d.mu.Lock()
	_, known := d.installations[id]
	ttl := d.tokenTTL
	d.mu.Unlock()
	if !known {
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
		return
	}
	buf := make([]byte, 18)
	_, _ = rand.Read(buf)
	tok := fmt.Sprintf("ghs_%x", buf)
	exp := time.Now().Add(ttl).UTC()
	d.mu.Lock()
	d.tokens[tok] = tokenInfo{installation: id, expires: exp}
	d.mu.Unlock()
	ex := d.exampleFor("apps/create-installation-access-token")
	ex["token"] = tok
	ex["expires_at"] = exp.Format(time.RFC3339)
	ex["repository_selection"] = "selected"
	delete(ex, "repositories")
	writeJSON(w, http.StatusCreated, ex)
}

func (d *Double) repoJSON(full string) map[string]any {
	owner, name, _ := strings.Cut(full, "/")
	list := d.exampleFor("apps/list-repos-accessible-to-installation")
	repo := map[string]any{}
	if rs, ok := list["repositories"].([]any); ok && len(rs) > 0 {
		repo, _ = rs[0].(map[string]any)
	}
	repo["name"] = name
	repo["full_name"] = full
	if o, ok := repo["owner"].(map[string]any); ok {
		o["login"] = owner
	}
	repo["clone_url"] = d.GitURL + full + ".git"
	repo["default_branch"] = "main"
	return repo
}

func (d *Double) listInstallationRepos(w http.ResponseWriter, r *http.Request, _ map[string]string, _ []byte) {
	_, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	inst, _ := d.tokenInstallation(cred)
	d.mu.Lock()
	names := append([]string(nil), d.installations[inst]...)
	d.mu.Unlock()
	repos := []any{}
	for _, n := range names {
		repos = append(repos, d.repoJSON(n))
	}
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(repos), "repositories": repos})
}

func (d *Double) checkRunJSON(c *CheckRun) map[string]any {
	ex := d.exampleFor("checks/get")
	ex["id"] = c.ID
	ex["name"] = c.Name
	ex["head_sha"] = c.HeadSHA
	ex["external_id"] = c.ExternalID
	ex["status"] = c.Status
	if c.Conclusion == "" {
		ex["conclusion"] = nil
	} else {
		ex["conclusion"] = c.Conclusion
	}
	ex["output"] = map[string]any{"title": c.Title, "summary": c.Summary, "text": c.Text, "annotations_count": len(c.Annotations), "annotations_url": ""}
	return ex
}

func applyCheckRun(c *CheckRun, in map[string]any) {
	if v, ok := in["name"].(string); ok {
		c.Name = v
	}
	if v, ok := in["external_id"].(string); ok {
		c.ExternalID = v
	}
	if v, ok := in["status"].(string); ok {
		c.Status = v
	}
	if v, ok := in["conclusion"].(string); ok {
		c.Conclusion = v
		c.Status = "completed"
	}
	if out, ok := in["output"].(map[string]any); ok {
		if v, ok := out["title"].(string); ok {
			c.Title = v
		}
		if v, ok := out["summary"].(string); ok {
			c.Summary = v
		}
		if v, ok := out["text"].(string); ok {
			c.Text = v
		}
		if as, ok := out["annotations"].([]any); ok {
			for _, a := range as {
				if m, ok := a.(map[string]any); ok {
					c.Annotations = append(c.Annotations, m)
				}
			}
		}
	}
	c.Writes++
}

func (d *Double) createCheckRun(w http.ResponseWriter, _ *http.Request, p map[string]string, body []byte) {
	in := map[string]any{}
	_ = json.Unmarshal(body, &in)
	d.mu.Lock()
	d.nextID++
	c := &CheckRun{ID: d.nextID, Repo: repoOf(p), Status: "queued", Created: time.Now()}
	c.HeadSHA, _ = in["head_sha"].(string)
	applyCheckRun(c, in)
	d.checkRuns = append(d.checkRuns, c)
	cp := *c
	d.mu.Unlock()
	writeJSON(w, http.StatusCreated, d.checkRunJSON(&cp))
}

func (d *Double) findCheckRun(repo, id string) *CheckRun {
	n, _ := strconv.ParseInt(id, 10, 64)
	for _, c := range d.checkRuns {
		if c.ID == n && c.Repo == repo {
			return c
		}
	}
	return nil
}

func (d *Double) updateCheckRun(w http.ResponseWriter, _ *http.Request, p map[string]string, body []byte) {
	in := map[string]any{}
	_ = json.Unmarshal(body, &in)
	d.mu.Lock()
	c := d.findCheckRun(repoOf(p), p["check_run_id"])
	if c == nil {
		d.mu.Unlock()
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
		return
	}
	applyCheckRun(c, in)
	cp := *c
	d.mu.Unlock()
	writeJSON(w, http.StatusOK, d.checkRunJSON(&cp))
}

func (d *Double) getCheckRun(w http.ResponseWriter, _ *http.Request, p map[string]string, _ []byte) {
	d.mu.Lock()
	c := d.findCheckRun(repoOf(p), p["check_run_id"])
	if c == nil {
		d.mu.Unlock()
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
		return
	}
	cp := *c
	d.mu.Unlock()
	writeJSON(w, http.StatusOK, d.checkRunJSON(&cp))
}

func (d *Double) listCheckRunsForRef(w http.ResponseWriter, r *http.Request, p map[string]string, _ []byte) {
	q := r.URL.Query()
	d.mu.Lock()
	var match []CheckRun
	for _, c := range d.checkRuns {
		if c.Repo != repoOf(p) || c.HeadSHA != p["ref"] {
			continue
		}
		if n := q.Get("check_name"); n != "" && n != c.Name {
			continue
		}
		if s := q.Get("status"); s != "" && s != c.Status {
			continue
		}
		match = append(match, *c)
	}
	d.mu.Unlock()
	runs := []any{}
	for i := len(match) - 1; i >= 0; i-- { // newest first, as GitHub
		runs = append(runs, d.checkRunJSON(&match[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(runs), "check_runs": runs})
}

func (d *Double) createStatus(w http.ResponseWriter, _ *http.Request, p map[string]string, body []byte) {
	var in struct {
		State, Context, Description string
		TargetURL                   string `json:"target_url"`
	}
	_ = json.Unmarshal(body, &in)
	d.mu.Lock()
	d.statuses = append(d.statuses, Status{Repo: repoOf(p), SHA: p["sha"], State: in.State, Context: in.Context, Description: in.Description, TargetURL: in.TargetURL})
	d.mu.Unlock()
	ex := d.exampleFor("repos/create-commit-status")
	ex["state"] = in.State
	ex["context"] = in.Context
	ex["description"] = in.Description
	writeJSON(w, http.StatusCreated, ex)
}

func (d *Double) commentJSON(c *Comment) map[string]any {
	ex := d.exampleFor("issues/get-comment")
	ex["id"] = c.ID
	ex["body"] = c.Body
	if u, ok := ex["user"].(map[string]any); ok {
		u["login"] = c.User
	}
	return ex
}

func (d *Double) findComment(repo, id string) *Comment {
	n, _ := strconv.ParseInt(id, 10, 64)
	for _, c := range d.comments {
		if c.ID == n && c.Repo == repo {
			return c
		}
	}
	return nil
}

func (d *Double) createComment(w http.ResponseWriter, _ *http.Request, p map[string]string, body []byte) {
	var in struct{ Body string }
	_ = json.Unmarshal(body, &in)
	n, _ := strconv.Atoi(p["issue_number"])
	d.mu.Lock()
	d.nextID++
	c := &Comment{ID: d.nextID, Repo: repoOf(p), Issue: n, Body: in.Body, User: "agentgate[bot]"}
	d.comments = append(d.comments, c)
	cp := *c
	d.mu.Unlock()
	writeJSON(w, http.StatusCreated, d.commentJSON(&cp))
}

func (d *Double) getComment(w http.ResponseWriter, _ *http.Request, p map[string]string, _ []byte) {
	d.mu.Lock()
	c := d.findComment(repoOf(p), p["comment_id"])
	var cp Comment
	if c != nil {
		cp = *c
	}
	d.mu.Unlock()
	if c == nil {
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
		return
	}
	writeJSON(w, http.StatusOK, d.commentJSON(&cp))
}

func (d *Double) updateComment(w http.ResponseWriter, _ *http.Request, p map[string]string, body []byte) {
	var in struct{ Body string }
	_ = json.Unmarshal(body, &in)
	d.mu.Lock()
	c := d.findComment(repoOf(p), p["comment_id"])
	var cp Comment
	if c != nil {
		c.Body, c.Edited = in.Body, true
		cp = *c
	}
	d.mu.Unlock()
	if c == nil {
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
		return
	}
	writeJSON(w, http.StatusOK, d.commentJSON(&cp))
}

func (d *Double) listComments(w http.ResponseWriter, _ *http.Request, p map[string]string, _ []byte) {
	n, _ := strconv.Atoi(p["issue_number"])
	d.mu.Lock()
	var cs []Comment
	for _, c := range d.comments {
		if c.Repo == repoOf(p) && c.Issue == n {
			cs = append(cs, *c)
		}
	}
	d.mu.Unlock()
	out := []any{}
	for i := range cs {
		out = append(out, d.commentJSON(&cs[i]))
	}
	b, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (d *Double) createReaction(w http.ResponseWriter, _ *http.Request, p map[string]string, body []byte) {
	var in struct{ Content string }
	_ = json.Unmarshal(body, &in)
	id, _ := strconv.ParseInt(p["comment_id"], 10, 64)
	d.mu.Lock()
	d.reactions = append(d.reactions, Reaction{Repo: repoOf(p), CommentID: id, Content: in.Content})
	d.mu.Unlock()
	ex := d.exampleFor("reactions/create-for-issue-comment")
	ex["content"] = in.Content
	writeJSON(w, http.StatusCreated, ex)
}

func (d *Double) pullJSON(repo string, p *Pull) map[string]any {
	ex := d.exampleFor("pulls/get")
	ex["number"] = p.Number
	ex["state"] = p.State
	// GitHub's example predates the team schema's required "type".
	ex["requested_teams"] = []any{}
	ex["draft"] = p.Draft
	if u, ok := ex["user"].(map[string]any); ok {
		u["login"] = p.User
	}
	set := func(key, ref, sha string) {
		m, ok := ex[key].(map[string]any)
		if !ok {
			m = map[string]any{}
			ex[key] = m
		}
		m["ref"], m["sha"] = ref, sha
		m["repo"] = d.repoJSON(repo)
	}
	set("head", p.HeadRef, p.HeadSHA)
	set("base", p.BaseRef, p.BaseSHA)
	return ex
}

func (d *Double) listPulls(w http.ResponseWriter, r *http.Request, p map[string]string, _ []byte) {
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	d.mu.Lock()
	var ps []Pull
	for _, pr := range d.pulls[repoOf(p)] {
		if state != "all" && pr.State != state {
			continue
		}
		if b := q.Get("base"); b != "" && b != pr.BaseRef {
			continue
		}
		ps = append(ps, *pr)
	}
	d.mu.Unlock()
	sort.Slice(ps, func(i, j int) bool { return ps[i].Number > ps[j].Number })
	out := []any{}
	for i := range ps {
		out = append(out, d.pullJSON(repoOf(p), &ps[i]))
	}
	b, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (d *Double) getPull(w http.ResponseWriter, _ *http.Request, p map[string]string, _ []byte) {
	n, _ := strconv.Atoi(p["pull_number"])
	d.mu.Lock()
	var found *Pull
	for _, pr := range d.pulls[repoOf(p)] {
		if pr.Number == n {
			cp := *pr
			found = &cp
		}
	}
	d.mu.Unlock()
	if found == nil {
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
		return
	}
	writeJSON(w, http.StatusOK, d.pullJSON(repoOf(p), found))
}

func (d *Double) mergePull(w http.ResponseWriter, _ *http.Request, p map[string]string, body []byte) {
	var in struct {
		SHA         string `json:"sha"`
		MergeMethod string `json:"merge_method"`
	}
	_ = json.Unmarshal(body, &in)
	n, _ := strconv.Atoi(p["pull_number"])
	d.mu.Lock()
	var found *Pull
	for _, pr := range d.pulls[repoOf(p)] {
		if pr.Number == n {
			found = pr
		}
	}
	if found == nil {
		d.mu.Unlock()
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
		return
	}
	if in.SHA != "" && in.SHA != found.HeadSHA {
		d.mu.Unlock()
		writeJSON(w, http.StatusConflict, map[string]any{"message": "Head branch was modified. Review and try the merge again."})
		return
	}
	found.State = "closed"
	d.merges = append(d.merges, Merge{Repo: repoOf(p), Number: n, SHA: in.SHA, Method: in.MergeMethod})
	sha := found.HeadSHA
	d.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"sha": sha, "merged": true, "message": "Pull Request successfully merged"})
}

func (d *Double) dispatch(w http.ResponseWriter, _ *http.Request, p map[string]string, body []byte) {
	var in struct {
		Ref    string         `json:"ref"`
		Inputs map[string]any `json:"inputs"`
	}
	_ = json.Unmarshal(body, &in)
	d.mu.Lock()
	d.dispatches = append(d.dispatches, Dispatch{Repo: repoOf(p), Workflow: p["workflow_id"], Ref: in.Ref, Inputs: in.Inputs})
	d.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// getBranch answers from the served repository when there is one, so the
// branch tip is the commit a test pushed.
func (d *Double) getBranch(w http.ResponseWriter, _ *http.Request, p map[string]string, _ []byte) {
	d.mu.Lock()
	dir, ok := d.repoDirs[repoOf(p)]
	d.mu.Unlock()
	ex := d.exampleFor("repos/get-branch")
	if ok {
		out, err := exec.Command(d.gitBin, "--git-dir", dir, "rev-parse", "-q", "--verify", "refs/heads/"+p["branch"]+"^{commit}").Output()
		if err != nil {
			writeJSON(w, http.StatusNotFound, map[string]any{"message": "Branch not found"})
			return
		}
		if c, ok := ex["commit"].(map[string]any); ok {
			c["sha"] = strings.TrimSpace(string(out))
		}
	}
	ex["name"] = p["branch"]
	writeJSON(w, http.StatusOK, ex)
}
