package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gogithub "github.com/google/go-github/v60/github"
	github88 "github.com/google/go-github/v88/github"
)

// DefaultAPIURL is github.com's REST API.
const DefaultAPIURL = "https://api.github.com/"

// Config configures the App client.
type Config struct {
	AppID      int64
	PrivateKey []byte // PEM (PKCS#1 or PKCS#8 RSA)
	// APIURL is the REST API root: https://api.github.com/ or, on GitHub
	// Enterprise Server, https://HOST/api/v3/.
	APIURL  string
	Timeout time.Duration // per attempt (default 30s); retries and their waits come on top
	Retry   RetryPolicy
	Metrics *Metrics // required; NewMetrics(nil) for tests
	// Base is the underlying transport (default http.DefaultTransport).
	Base http.RoundTripper
}

// App is a GitHub App: it hands out one cached client per installation.
type App struct {
	cfg     Config
	apiURL  *url.URL
	mu      sync.Mutex
	clients map[int64]*Client
}

// New validates cfg and returns the App.
func New(cfg Config) (*App, error) {
	if cfg.AppID <= 0 {
		return nil, errors.New("github: app id is not set (github.app_id or AGENTGATE_APP_ID)")
	}
	if len(cfg.PrivateKey) == 0 {
		return nil, errors.New("github: the App's private key is not set (github.private_key_file or AGENTGATE_PRIVATE_KEY_FILE)")
	}
	if _, err := ghinstallation.New(http.DefaultTransport, cfg.AppID, 1, cfg.PrivateKey); err != nil {
		return nil, fmt.Errorf("github: the App's private key cannot be used (a PEM RSA key from the App's settings page is expected): %w", err)
	}
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	if !strings.HasSuffix(cfg.APIURL, "/") {
		cfg.APIURL += "/"
	}
	u, err := url.Parse(cfg.APIURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("github: api_url %q is not an http(s) URL (e.g. https://api.github.com/ or https://ghe.example.com/api/v3/)", cfg.APIURL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Base == nil {
		cfg.Base = http.DefaultTransport
	}
	if cfg.Metrics == nil {
		return nil, errors.New("github: metrics are required")
	}
	cfg.Retry = cfg.Retry.withDefaults()
	return &App{cfg: cfg, apiURL: u, clients: map[int64]*Client{}}, nil
}

// APIURL is the configured REST API root.
func (a *App) APIURL() string { return a.cfg.APIURL }

// Installation returns the client for one installation. Clients are cached,
// so the installation token is reused until a minute before it expires.
func (a *App) Installation(id int64) (*Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.clients[id]; ok {
		return c, nil
	}
	rt := &retryTransport{base: a.cfg.Base, policy: a.cfg.Retry, metrics: a.cfg.Metrics, installation: strconv.FormatInt(id, 10), sleep: sleepCtx, attemptTimeout: a.cfg.Timeout}
	tr, err := ghinstallation.New(rt, a.cfg.AppID, id, a.cfg.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("github: installation %d: %w", id, err)
	}
	tr.BaseURL = strings.TrimSuffix(a.cfg.APIURL, "/")
	// Without options ghinstallation sends the body `null`, which GitHub's
	// OpenAPI description does not allow; send an empty object.
	tr.InstallationTokenOptions = &github88.InstallationTokenOptions{}
	// No http.Client timeout: it would also cut short a Retry-After wait.
	// Each attempt is bounded inside the retry transport instead.
	gh := gogithub.NewClient(&http.Client{Transport: tr})
	gh.BaseURL = a.apiURL
	c := &Client{gh: gh, tr: tr, installation: id}
	a.clients[id] = c
	return c, nil
}

// Client calls GitHub for one installation. Writes are serialised per
// installation (GitHub's advice against secondary rate limits).
type Client struct {
	gh           *gogithub.Client
	tr           *ghinstallation.Transport
	installation int64
	writeMu      sync.Mutex
}

// Token returns a valid installation token, for git over HTTPS. Never log it.
func (c *Client) Token(ctx context.Context) (string, error) {
	t, err := c.tr.Token(ctx)
	if err != nil {
		return "", fmt.Errorf("github: get an installation token for installation %d (is the App installed and its key current?): %w", c.installation, err)
	}
	return t, nil
}

// GoGitHub exposes the underlying go-github client for calls this adapter
// does not wrap yet.
func (c *Client) GoGitHub() *gogithub.Client { return c.gh }

func split(repo string) (string, string, error) {
	o, r, ok := strings.Cut(repo, "/")
	if !ok || o == "" || r == "" || strings.Contains(r, "/") {
		return "", "", fmt.Errorf("github: repository %q is not owner/name", repo)
	}
	return o, r, nil
}

// wrap names the call in errors without leaking tokens (go-github errors
// carry only method, URL and message).
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("github: %s: %w", what, err)
}

// IsNotFound reports a 404 from GitHub.
func IsNotFound(err error) bool {
	var er *gogithub.ErrorResponse
	return errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusNotFound
}

// Retryable reports whether err is a transient GitHub failure (5xx, rate
// limit, network) that a later attempt may overcome.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var er *gogithub.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return er.Response.StatusCode >= 500
	}
	var rl *gogithub.RateLimitError
	var ab *gogithub.AbuseRateLimitError
	if errors.As(err, &rl) || errors.As(err, &ab) {
		return true
	}
	return !errors.Is(err, context.Canceled)
}

// PullRequest is the part of a pull request the gate needs.
type PullRequest struct {
	Number  int
	State   string
	Draft   bool
	HeadRef string
	HeadSHA string
	BaseRef string
	BaseSHA string
	Author  string
	// AuthorID and AuthorType ("User", "Bot") identify the author.
	AuthorID   int64
	AuthorType string
	Commits    int // number of commits GitHub reports
}

func fromPR(p *gogithub.PullRequest) PullRequest {
	return PullRequest{
		Number: p.GetNumber(), State: p.GetState(), Draft: p.GetDraft(),
		HeadRef: p.GetHead().GetRef(), HeadSHA: p.GetHead().GetSHA(),
		BaseRef: p.GetBase().GetRef(), BaseSHA: p.GetBase().GetSHA(),
		Author: p.GetUser().GetLogin(), AuthorID: p.GetUser().GetID(), AuthorType: p.GetUser().GetType(),
		Commits: p.GetCommits(),
	}
}

// PullRequest reads one pull request.
func (c *Client) PullRequest(ctx context.Context, repo string, number int) (PullRequest, error) {
	o, r, err := split(repo)
	if err != nil {
		return PullRequest{}, err
	}
	p, _, err := c.gh.PullRequests.Get(ctx, o, r, number)
	if err != nil {
		return PullRequest{}, wrap(fmt.Sprintf("read pull request %s#%d", repo, number), err)
	}
	return fromPR(p), nil
}

// OpenPullRequests lists open pull requests into base ("" = any), capped at
// max (fail closed: the caller learns it was capped).
func (c *Client) OpenPullRequests(ctx context.Context, repo, base string, max int) ([]PullRequest, error) {
	o, r, err := split(repo)
	if err != nil {
		return nil, err
	}
	opts := &gogithub.PullRequestListOptions{State: "open", Base: base, ListOptions: gogithub.ListOptions{PerPage: 100}}
	var out []PullRequest
	for {
		ps, resp, err := c.gh.PullRequests.List(ctx, o, r, opts)
		if err != nil {
			return nil, wrap("list open pull requests of "+repo, err)
		}
		for _, p := range ps {
			out = append(out, fromPR(p))
		}
		if resp.NextPage == 0 || len(out) >= max {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// InstallationRepos lists the repositories ("owner/name") this
// installation can access.
func (c *Client) InstallationRepos(ctx context.Context) ([]string, error) {
	opts := &gogithub.ListOptions{PerPage: 100}
	var out []string
	for {
		rs, resp, err := c.gh.Apps.ListRepos(ctx, opts)
		if err != nil {
			return nil, wrap("list the installation's repositories", err)
		}
		for _, r := range rs.Repositories {
			out = append(out, r.GetFullName())
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// CommitStatus posts a commit status. description is cut to 140 characters.
func (c *Client) CommitStatus(ctx context.Context, repo, sha, state, contextName, description, targetURL string) error {
	o, r, err := split(repo)
	if err != nil {
		return err
	}
	if len(description) > 139 {
		description = description[:136] + "..."
	}
	st := &gogithub.RepoStatus{State: &state, Context: &contextName, Description: &description}
	if targetURL != "" {
		st.TargetURL = &targetURL
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_, _, err = c.gh.Repositories.CreateStatus(ctx, o, r, sha, st)
	return wrap(fmt.Sprintf("post status %s on %s@%s", contextName, repo, sha), err)
}

// Comment is an issue comment as read through the API.
type Comment struct {
	ID        int64
	Body      string
	User      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// GetComment re-reads an issue comment; found is false when it is gone.
func (c *Client) GetComment(ctx context.Context, repo string, id int64) (Comment, bool, error) {
	o, r, err := split(repo)
	if err != nil {
		return Comment{}, false, err
	}
	cm, _, err := c.gh.Issues.GetComment(ctx, o, r, id)
	if IsNotFound(err) {
		return Comment{}, false, nil
	}
	if err != nil {
		return Comment{}, false, wrap(fmt.Sprintf("read comment %d of %s", id, repo), err)
	}
	return Comment{ID: cm.GetID(), Body: cm.GetBody(), User: cm.GetUser().GetLogin(), CreatedAt: cm.GetCreatedAt().Time, UpdatedAt: cm.GetUpdatedAt().Time}, true, nil
}

// CreateComment writes a comment on an issue or pull request.
func (c *Client) CreateComment(ctx context.Context, repo string, number int, body string) (int64, error) {
	o, r, err := split(repo)
	if err != nil {
		return 0, err
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	cm, _, err := c.gh.Issues.CreateComment(ctx, o, r, number, &gogithub.IssueComment{Body: &body})
	if err != nil {
		return 0, wrap(fmt.Sprintf("comment on %s#%d", repo, number), err)
	}
	return cm.GetID(), nil
}

// Comments lists the comments on an issue or pull request, oldest first,
// up to max.
func (c *Client) Comments(ctx context.Context, repo string, number, max int) ([]Comment, error) {
	o, r, err := split(repo)
	if err != nil {
		return nil, err
	}
	opts := &gogithub.IssueListCommentsOptions{ListOptions: gogithub.ListOptions{PerPage: 100}}
	var out []Comment
	for {
		cs, resp, err := c.gh.Issues.ListComments(ctx, o, r, number, opts)
		if err != nil {
			return nil, wrap(fmt.Sprintf("list comments of %s#%d", repo, number), err)
		}
		for _, cm := range cs {
			out = append(out, Comment{ID: cm.GetID(), Body: cm.GetBody(), User: cm.GetUser().GetLogin(), CreatedAt: cm.GetCreatedAt().Time, UpdatedAt: cm.GetUpdatedAt().Time})
		}
		if resp.NextPage == 0 || len(out) >= max {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// UpdateComment replaces a comment's body (one bot comment per PR, kept up
// to date in place).
func (c *Client) UpdateComment(ctx context.Context, repo string, id int64, body string) error {
	o, r, err := split(repo)
	if err != nil {
		return err
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_, _, err = c.gh.Issues.EditComment(ctx, o, r, id, &gogithub.IssueComment{Body: &body})
	return wrap(fmt.Sprintf("update comment %d of %s", id, repo), err)
}

// React adds a reaction (+1, -1, confused, ...) to an issue comment.
func (c *Client) React(ctx context.Context, repo string, commentID int64, content string) error {
	o, r, err := split(repo)
	if err != nil {
		return err
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_, _, err = c.gh.Reactions.CreateIssueCommentReaction(ctx, o, r, commentID, content)
	return wrap(fmt.Sprintf("react to comment %d of %s", commentID, repo), err)
}

// ErrHeadMoved means GitHub refused a merge because the head is no longer
// the SHA that was evaluated (409): evaluate again, never retry blindly.
var ErrHeadMoved = errors.New("github: the pull request's head moved since it was evaluated")

// ErrBaseModified means GitHub answered 405 "Base branch was modified".
var ErrBaseModified = errors.New("github: the base branch was modified; re-check and retry")

// Merge merges a pull request pinned to sha (the evaluated head).
func (c *Client) Merge(ctx context.Context, repo string, number int, sha, method string) (string, error) {
	o, r, err := split(repo)
	if err != nil {
		return "", err
	}
	if len(sha) != 40 {
		return "", fmt.Errorf("github: merge %s#%d: a full head SHA is required to pin the merge", repo, number)
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	res, resp, err := c.gh.PullRequests.Merge(ctx, o, r, number, "", &gogithub.PullRequestOptions{SHA: sha, MergeMethod: method})
	if resp != nil && resp.StatusCode == http.StatusConflict {
		return "", fmt.Errorf("%w (%s#%d, evaluated %s)", ErrHeadMoved, repo, number, sha)
	}
	if resp != nil && resp.StatusCode == http.StatusMethodNotAllowed {
		return "", fmt.Errorf("%w: %v", ErrBaseModified, err)
	}
	if err != nil {
		return "", wrap(fmt.Sprintf("merge %s#%d", repo, number), err)
	}
	return res.GetSHA(), nil
}

// DispatchWorkflow triggers workflow_dispatch of a workflow file on ref.
func (c *Client) DispatchWorkflow(ctx context.Context, repo, workflowFile, ref string, inputs map[string]any) error {
	o, r, err := split(repo)
	if err != nil {
		return err
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_, err = c.gh.Actions.CreateWorkflowDispatchEventByFileName(ctx, o, r, workflowFile, gogithub.CreateWorkflowDispatchEventRequest{Ref: ref, Inputs: inputs})
	return wrap(fmt.Sprintf("dispatch %s on %s@%s", workflowFile, repo, ref), err)
}

// Permission returns a user's permission on repo (admin, maintain, write,
// triage, read, none), read live.
func (c *Client) Permission(ctx context.Context, repo, user string) (string, error) {
	o, r, err := split(repo)
	if err != nil {
		return "", err
	}
	p, _, err := c.gh.Repositories.GetPermissionLevel(ctx, o, r, user)
	if err != nil {
		return "", wrap(fmt.Sprintf("read %s's permission on %s", user, repo), err)
	}
	return p.GetPermission(), nil
}

// Person is a commit author or committer: the GitHub account when GitHub
// matched one (Login, ID) and the e-mail from the commit.
type Person struct {
	Login string
	ID    int64
	Type  string
	Email string
}

// MaxPRCommits is GitHub's limit for listing a pull request's commits.
const MaxPRCommits = 250

// ErrTooManyCommits means a pull request has more commits than can be
// listed; callers deciding who contributed must fail closed.
var ErrTooManyCommits = errors.New("github: the pull request has more than 250 commits; its contributors cannot all be listed")

// PullRequestPeople returns every author and committer of the pull
// request's commits.
func (c *Client) PullRequestPeople(ctx context.Context, repo string, number int) ([]Person, error) {
	o, r, err := split(repo)
	if err != nil {
		return nil, err
	}
	opts := &gogithub.ListOptions{PerPage: 100}
	var out []Person
	n := 0
	for {
		cs, resp, err := c.gh.PullRequests.ListCommits(ctx, o, r, number, opts)
		if err != nil {
			return nil, wrap(fmt.Sprintf("list commits of %s#%d", repo, number), err)
		}
		for _, rc := range cs {
			n++
			out = append(out,
				Person{Login: rc.GetAuthor().GetLogin(), ID: rc.GetAuthor().GetID(), Type: rc.GetAuthor().GetType(), Email: rc.GetCommit().GetAuthor().GetEmail()},
				Person{Login: rc.GetCommitter().GetLogin(), ID: rc.GetCommitter().GetID(), Type: rc.GetCommitter().GetType(), Email: rc.GetCommit().GetCommitter().GetEmail()})
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	if n >= MaxPRCommits {
		return nil, ErrTooManyCommits
	}
	return out, nil
}

// TeamMember reports whether login is an active member of org/team, read
// live (GET /orgs/{org}/teams/{team}/memberships/{user}).
func (c *Client) TeamMember(ctx context.Context, orgTeam, login string) (bool, error) {
	org, team, ok := strings.Cut(orgTeam, "/")
	if !ok || org == "" || team == "" {
		return false, fmt.Errorf("github: team %q is not org/team-slug", orgTeam)
	}
	m, _, err := c.gh.Teams.GetTeamMembershipBySlug(ctx, org, team, login)
	if IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, wrap(fmt.Sprintf("read %s's membership of %s", login, orgTeam), err)
	}
	return m.GetState() == "active", nil
}
