// Package gittest builds real git repositories in temporary directories for
// tests, with the git CLI and a fixed identity and clock.
package gittest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Repo is a git repository with a work tree under a test's temp dir.
type Repo struct {
	T   testing.TB
	Dir string
	env []string
}

// New creates an empty repository on branch main.
func New(t testing.TB) *Repo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed (apt-get install git)")
	}
	r := &Repo{T: t, Dir: t.TempDir()}
	r.env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Test Agent", "GIT_AUTHOR_EMAIL=agent@example.com",
		"GIT_COMMITTER_NAME=Test Agent", "GIT_COMMITTER_EMAIL=agent@example.com",
		"GIT_AUTHOR_DATE=2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2026-01-01T00:00:00Z",
	)
	r.Git("init", "-q", "-b", "main")
	return r
}

// Git runs git in the repository and returns trimmed stdout; it fails the
// test on error.
func (r *Repo) Git(args ...string) string {
	r.T.Helper()
	out, err := r.GitErr(args...)
	if err != nil {
		r.T.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// GitErr runs git and returns its error instead of failing.
func (r *Repo) GitErr(args ...string) (string, error) {
	return r.GitInput(nil, args...)
}

// GitInput runs git with stdin.
func (r *Repo) GitInput(stdin []byte, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = r.Dir
	cmd.Env = r.env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", &runError{err: err, stderr: errb.String()}
	}
	return strings.TrimSpace(out.String()), nil
}

type runError struct {
	err    error
	stderr string
}

func (e *runError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.stderr) }

// Write creates or replaces a file (and its directories) in the work tree.
func (r *Repo) Write(path, content string) {
	r.T.Helper()
	r.WriteBytes(path, []byte(content), 0o644)
}

// WriteBytes writes a file with the given permissions.
func (r *Repo) WriteBytes(path string, content []byte, perm os.FileMode) {
	r.T.Helper()
	p := filepath.Join(r.Dir, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.T.Fatal(err)
	}
	if err := os.WriteFile(p, content, perm); err != nil {
		r.T.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		r.T.Fatal(err)
	}
}

// Remove deletes a file from the work tree.
func (r *Repo) Remove(path string) {
	r.T.Helper()
	if err := os.Remove(filepath.Join(r.Dir, filepath.FromSlash(path))); err != nil {
		r.T.Fatal(err)
	}
}

// Symlink creates a symbolic link in the work tree.
func (r *Repo) Symlink(target, path string) {
	r.T.Helper()
	p := filepath.Join(r.Dir, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.T.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		r.T.Fatal(err)
	}
}

// Commit stages everything and commits; it returns the new commit's SHA.
func (r *Repo) Commit(msg string) string {
	r.T.Helper()
	r.Git("add", "-A")
	r.Git("commit", "-q", "--allow-empty", "--no-verify", "-m", msg)
	return r.Git("rev-parse", "HEAD")
}

// Branch creates and switches to a new branch at the current HEAD.
func (r *Repo) Branch(name string) {
	r.T.Helper()
	r.Git("checkout", "-q", "-b", name)
}

// Checkout switches to an existing branch or commit.
func (r *Repo) Checkout(rev string) {
	r.T.Helper()
	r.Git("checkout", "-q", rev)
}

// CopyDir copies the regular files under src (a directory of this
// module, e.g. examples/payments-repo) into the work tree, keeping
// permissions.
func (r *Repo) CopyDir(src string) {
	r.T.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		r.WriteBytes(filepath.ToSlash(rel), data, info.Mode().Perm())
		return nil
	})
	if err != nil {
		r.T.Fatalf("copy %s: %v", src, err)
	}
}

// Append adds text to the end of a work-tree file.
func (r *Repo) Append(path, text string) {
	r.T.Helper()
	p := filepath.Join(r.Dir, filepath.FromSlash(path))
	data, err := os.ReadFile(p)
	if err != nil {
		r.T.Fatal(err)
	}
	info, err := os.Stat(p)
	if err != nil {
		r.T.Fatal(err)
	}
	r.WriteBytes(path, append(data, text...), info.Mode().Perm())
}

// Read returns a work-tree file's content.
func (r *Repo) Read(path string) string {
	r.T.Helper()
	data, err := os.ReadFile(filepath.Join(r.Dir, filepath.FromSlash(path)))
	if err != nil {
		r.T.Fatal(err)
	}
	return string(data)
}

// FromDir creates a repository whose first commit on main holds a copy of
// src, and returns it with that commit's SHA.
func FromDir(t testing.TB, src string) (*Repo, string) {
	t.Helper()
	r := New(t)
	r.CopyDir(src)
	return r, r.Commit("base: " + filepath.Base(src))
}
