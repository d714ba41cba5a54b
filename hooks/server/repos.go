package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// repoCache keeps one bare repository per GitHub repository and fetches
// only the refs an evaluation needs, authenticating with the installation
// token through a credential helper that reads it from the environment:
// the token never appears in a URL, an argument, a config file, a log or
// an error.
type repoCache struct {
	dir    string
	gitURL string // e.g. https://github.com/
	mu     sync.Mutex
	locks  map[string]*sync.Mutex
}

func newRepoCache(dir, gitURL string) (*repoCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the clone cache %s: %w", dir, err)
	}
	if _, err := exec.LookPath("git"); err != nil {
		return nil, fmt.Errorf("git is required to fetch repositories (install git): %w", err)
	}
	return &repoCache{dir: dir, gitURL: gitURL, locks: map[string]*sync.Mutex{}}, nil
}

var repoNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$`)
var refNameRE = regexp.MustCompile(`^[A-Za-z0-9_./-]+$`)
var shaRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// ErrCommitGone means the head SHA is no longer reachable from the fetched
// refs (force-pushed away): the evaluation is stale.
var ErrCommitGone = errors.New("commit is no longer in the repository")

// credentialHelper answers git's credential requests from the environment.
const credentialHelper = `!f() { test "$1" = get || exit 0; echo username=x-access-token; echo "password=$AGENTGATE_GIT_TOKEN"; }; f`

func (c *repoCache) git(ctx context.Context, dir, token string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + c.dir, // no user config, no user credential helpers
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=true",
		"LANG=C",
		// The first empty helper resets any helper list from elsewhere.
		"GIT_CONFIG_COUNT=3",
		"GIT_CONFIG_KEY_0=credential.helper", "GIT_CONFIG_VALUE_0=",
		"GIT_CONFIG_KEY_1=credential.helper", "GIT_CONFIG_VALUE_1=" + credentialHelper,
		"GIT_CONFIG_KEY_2=protocol.version", "GIT_CONFIG_VALUE_2=2",
		"AGENTGATE_GIT_TOKEN=" + token,
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if token != "" {
			msg = strings.ReplaceAll(msg, token, "[token]")
		}
		if len(msg) > 1000 {
			msg = msg[:1000]
		}
		return "", fmt.Errorf("git %s: %w: %s", args[0], err, msg)
	}
	return strings.TrimSpace(out.String()), nil
}

func (c *repoCache) lock(repo string) func() {
	c.mu.Lock()
	l, ok := c.locks[repo]
	if !ok {
		l = &sync.Mutex{}
		c.locks[repo] = l
	}
	c.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// FetchBranch fetches one branch (e.g. to read the policy on the base).
func (c *repoCache) FetchBranch(ctx context.Context, repo, token, branch string) (string, map[string]string, error) {
	return c.Fetch(ctx, repo, token, []string{branch}, "")
}

// Fetch updates the cached repository with the given branches and makes
// sure head (when not "") is present. It returns the repository directory and the SHA
// of each fetched branch (missing branches are absent from the map).
func (c *repoCache) Fetch(ctx context.Context, repo, token string, branches []string, head string) (string, map[string]string, error) {
	if !repoNameRE.MatchString(repo) || strings.Contains(repo, "..") {
		return "", nil, fmt.Errorf("refusing to fetch repository %q: not owner/name", repo)
	}
	if head != "" && !shaRE.MatchString(head) {
		return "", nil, fmt.Errorf("refusing to fetch: head %q is not a full SHA", head)
	}
	unlock := c.lock(repo)
	defer unlock()
	dir := filepath.Join(c.dir, filepath.FromSlash(repo)+".git")
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", nil, fmt.Errorf("create %s: %w", dir, err)
		}
		if _, err := c.git(ctx, dir, "", "init", "-q", "--bare"); err != nil {
			return "", nil, err
		}
	}
	url := c.gitURL + repo + ".git"
	args := []string{"fetch", "-q", "--no-tags", "--force", "--prune", "--no-write-fetch-head", url}
	for _, b := range branches {
		if b == "" || !refNameRE.MatchString(b) || strings.Contains(b, "..") || strings.HasPrefix(b, "-") {
			return "", nil, fmt.Errorf("refusing to fetch branch %q", b)
		}
		args = append(args, "+refs/heads/"+b+":refs/remotes/origin/"+b)
	}
	// A branch may be gone (deleted after the event); fetch what exists.
	if _, err := c.git(ctx, dir, token, args...); err != nil {
		if !strings.Contains(err.Error(), "couldn't find remote ref") {
			return "", nil, fmt.Errorf("fetch %s: %w", repo, err)
		}
		for _, b := range branches {
			_, _ = c.git(ctx, dir, token, "fetch", "-q", "--no-tags", "--force", "--no-write-fetch-head", url, "+refs/heads/"+b+":refs/remotes/origin/"+b)
		}
	}
	shas := map[string]string{}
	for _, b := range branches {
		if s, err := c.git(ctx, dir, "", "rev-parse", "-q", "--verify", "refs/remotes/origin/"+b+"^{commit}"); err == nil {
			shas[b] = s
		}
	}
	if head == "" {
		return dir, shas, nil
	}
	if _, err := c.git(ctx, dir, "", "cat-file", "-e", head+"^{commit}"); err != nil {
		// Not reachable from the branch tips: ask for the commit itself.
		_, _ = c.git(ctx, dir, token, "fetch", "-q", "--no-tags", "--no-write-fetch-head", url, head)
		if head == "" {
			return dir, shas, nil
		}
		if _, err := c.git(ctx, dir, "", "cat-file", "-e", head+"^{commit}"); err != nil {
			return "", nil, fmt.Errorf("%w: %s@%s", ErrCommitGone, repo, head)
		}
	}
	// Keep the evaluated commit reachable while it is evaluated.
	if _, err := c.git(ctx, dir, "", "update-ref", "refs/agentgate/"+head, head); err != nil {
		return "", nil, err
	}
	return dir, shas, nil
}

// Release drops the ref that kept head reachable during its evaluation, so
// that the cache does not pin every commit it ever evaluated.
func (c *repoCache) Release(ctx context.Context, repo, head string) {
	if !repoNameRE.MatchString(repo) || !shaRE.MatchString(head) {
		return
	}
	dir := filepath.Join(c.dir, filepath.FromSlash(repo)+".git")
	unlock := c.lock(repo)
	defer unlock()
	_, _ = c.git(context.WithoutCancel(ctx), dir, "", "update-ref", "-d", "refs/agentgate/"+head)
}
