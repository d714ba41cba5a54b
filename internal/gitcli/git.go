package gitcli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// EmptyTree is the object id of the empty tree (SHA-1 repositories).
const EmptyTree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

// maxStderr bounds how much of git's stderr is kept for error messages.
const maxStderr = 4 << 10

// safeConfig overrides repository-local configuration that could run code,
// reach the network or change what the gate sees. Global and system config
// are disabled through the environment.
var safeConfig = []string{
	"-c", "core.fsmonitor=false",
	"-c", "core.hooksPath=/dev/null",
	"-c", "core.attributesFile=/dev/null",
	"-c", "attr.tree=" + EmptyTree, // git >= 2.40; older versions ignore it
	"-c", "core.quotePath=false",
	"-c", "core.pager=cat",
	"-c", "core.askPass=",
	"-c", "core.sshCommand=false",
	"-c", "protocol.allow=never", // no lazy fetch from promisor remotes
	"-c", "diff.external=",
	"-c", "diff.relative=false",
	"-c", "diff.noprefix=false",
	"-c", "diff.mnemonicPrefix=false",
	"-c", "diff.srcPrefix=a/",
	"-c", "diff.dstPrefix=b/",
	"-c", "diff.ignoreSubmodules=none",
	"-c", "diff.renames=true",
	"-c", "diff.renameLimit=1000", // bounded: an unpaired rename only makes the diff stricter
	"-c", "diff.suppressBlankEmpty=false",
	"-c", "diff.context=3",
	"-c", "diff.interHunkContext=0",
	"-c", "diff.orderFile=/dev/null",
	"-c", "log.showSignature=false",
	"-c", "log.follow=false",
	"-c", "core.bigFileThreshold=512m",
	"-c", "gc.auto=0",
	"-c", "maintenance.auto=false",
}

var (
	envOnce sync.Once
	baseEnv []string
	noWork  string // an empty directory used as the work tree
	envErr  error
)

// environment builds the process environment once: the caller's environment
// minus every GIT_* variable, plus fixed settings.
func environment() ([]string, string, error) {
	envOnce.Do(func() {
		for _, kv := range os.Environ() {
			k, _, _ := strings.Cut(kv, "=")
			switch {
			case strings.HasPrefix(k, "GIT_"), k == "PAGER", k == "LESS", k == "SSH_ASKPASS",
				k == "EDITOR", k == "VISUAL", k == "LANG", k == "LANGUAGE", strings.HasPrefix(k, "LC_"),
				k == "XDG_CONFIG_HOME", k == "PREFIX":
				continue
			}
			baseEnv = append(baseEnv, kv)
		}
		baseEnv = append(baseEnv,
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
			"GIT_TERMINAL_PROMPT=0",
			"GIT_ASKPASS=",
			"SSH_ASKPASS=",
			"GIT_PAGER=cat",
			"PAGER=cat",
			"GIT_OPTIONAL_LOCKS=0",
			"GIT_NO_REPLACE_OBJECTS=1",
			"GIT_ATTR_NOSYSTEM=1",
			"GIT_NO_LAZY_FETCH=1",
			"GIT_PROTOCOL_FROM_USER=0",
			"GIT_ALLOW_PROTOCOL=",
			"LC_ALL=C",
		)
		noWork, envErr = os.MkdirTemp("", "agentgate-git-nowork-")
	})
	return baseEnv, noWork, envErr
}

// Error is a failed git invocation.
type Error struct {
	Args   []string // git arguments after the safety options
	Stderr string   // trimmed, bounded
	Err    error
}

func (e *Error) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("git %s: %s", strings.Join(e.Args, " "), msg)
}

func (e *Error) Unwrap() error { return e.Err }

// repoDirs caches the git directory of each repository path.
var repoDirs sync.Map // string -> string

// gitDir resolves repo's git directory (work tree or bare) once.
func gitDir(ctx context.Context, repo string) (string, error) {
	abs, err := filepath.Abs(repo)
	if err != nil {
		return "", fmt.Errorf("resolve repository path %q: %w", repo, err)
	}
	if d, ok := repoDirs.Load(abs); ok {
		return d.(string), nil
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("open repository %q: %w (pass the path of a git repository)", repo, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("open repository %q: not a directory (pass the path of a git repository)", repo)
	}
	env, _, err := environment()
	if err != nil {
		return "", fmt.Errorf("prepare git environment: %w", err)
	}
	args := append(append([]string{}, safeConfig...), "-C", abs, "rev-parse", "--absolute-git-dir")
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Env = env
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &limitedBuffer{max: maxStderr, buf: &stderr}
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%q is not a git repository (%s): %w", repo, strings.TrimSpace(stderr.String()), err)
	}
	d := strings.TrimSpace(out.String())
	repoDirs.Store(abs, d)
	return d, nil
}

// Command returns an unstarted git command for repo with the safe
// environment, bound to ctx. The work tree is an empty directory so that
// nothing in the checkout (attributes, untracked files) influences output.
func Command(ctx context.Context, repo string, args ...string) (*exec.Cmd, error) {
	env, empty, err := environment()
	if err != nil {
		return nil, fmt.Errorf("prepare git environment: %w", err)
	}
	dir, err := gitDir(ctx, repo)
	if err != nil {
		return nil, err
	}
	full := make([]string, 0, len(safeConfig)+6+len(args))
	full = append(full, safeConfig...)
	full = append(full, "--no-pager", "--git-dir="+dir, "--work-tree="+empty)
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Env = env
	cmd.Dir = empty
	cmd.WaitDelay = 2 * time.Second
	return cmd, nil
}

// Run runs git in repo and returns its standard output. A non-zero exit is
// an *Error carrying git's stderr.
func Run(ctx context.Context, repo string, args ...string) ([]byte, error) {
	return RunInput(ctx, repo, nil, args...)
}

// RunInput is Run with stdin.
func RunInput(ctx context.Context, repo string, stdin io.Reader, args ...string) ([]byte, error) {
	cmd, err := Command(ctx, repo, args...)
	if err != nil {
		return nil, err
	}
	var out, stderr bytes.Buffer
	cmd.Stdin = stdin
	cmd.Stdout = &out
	cmd.Stderr = &limitedBuffer{max: maxStderr, buf: &stderr}
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
		return nil, &Error{Args: args, Stderr: stderr.String(), Err: err}
	}
	return out.Bytes(), nil
}

type limitedBuffer struct {
	max int
	buf *bytes.Buffer
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		if len(p) > room {
			l.buf.Write(p[:room])
		} else {
			l.buf.Write(p)
		}
	}
	return len(p), nil
}

// ErrBadRevision reports a revision that does not name a commit.
var ErrBadRevision = errors.New("not a commit")

var shaRE = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

// IsSHA reports whether s is a full lowercase SHA-1 or SHA-256 object id.
func IsSHA(s string) bool { return shaRE.MatchString(s) }

// VerifyCommit resolves rev to the full id of a commit in repo. A revision
// that does not exist, is not a commit, or looks like an option is an error
// wrapping ErrBadRevision.
func VerifyCommit(ctx context.Context, repo, rev string) (string, error) {
	if rev == "" || strings.HasPrefix(rev, "-") || strings.ContainsAny(rev, "\x00\n\r") || strings.Contains(rev, "..") {
		return "", fmt.Errorf("revision %q: %w (name a branch, tag or commit SHA)", rev, ErrBadRevision)
	}
	out, err := Run(ctx, repo, "rev-parse", "--verify", "--quiet", "--end-of-options", rev+"^{commit}")
	if err != nil {
		var ge *Error
		if errors.As(err, &ge) && ctx.Err() == nil {
			return "", fmt.Errorf("revision %q in %s: %w (fetch it, or name an existing branch, tag or commit SHA)", rev, repo, ErrBadRevision)
		}
		return "", fmt.Errorf("resolve revision %q: %w", rev, err)
	}
	sha := strings.TrimSpace(string(out))
	if !IsSHA(sha) {
		return "", fmt.Errorf("revision %q resolved to %q: %w", rev, sha, ErrBadRevision)
	}
	return sha, nil
}

// ErrNoMergeBase reports two commits with no common ancestor (or a shallow
// clone that lacks it).
var ErrNoMergeBase = errors.New("no merge base")

// MergeBase returns the best common ancestor of a and b. Unrelated
// histories, or a shallow clone missing the ancestor, give ErrNoMergeBase.
func MergeBase(ctx context.Context, repo, a, b string) (string, error) {
	out, err := Run(ctx, repo, "merge-base", "--end-of-options", a, b)
	if err != nil {
		var ge *Error
		if errors.As(err, &ge) && ctx.Err() == nil {
			if ee := new(exec.ExitError); errors.As(err, &ee) && ee.ExitCode() == 1 {
				return "", fmt.Errorf("merge base of %s and %s: %w (unrelated histories, or a shallow clone: fetch with full history)", a, b, ErrNoMergeBase)
			}
		}
		return "", fmt.Errorf("merge base of %s and %s: %w", a, b, err)
	}
	sha := strings.TrimSpace(string(out))
	if !IsSHA(sha) {
		return "", fmt.Errorf("merge base of %s and %s: unexpected output %q", a, b, sha)
	}
	return sha, nil
}

// IsShallow reports whether repo is a shallow clone.
func IsShallow(ctx context.Context, repo string) (bool, error) {
	out, err := Run(ctx, repo, "rev-parse", "--is-shallow-repository")
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(out)) == "true", nil
}
