package evidence

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentgate/agentgate/internal/gitcli"
)

// ErrEmptyRange means head adds no commits since the merge base.
var ErrEmptyRange = errors.New("evidence: head adds no commits since the merge base")

// Bundle writes a git bundle of mergeBase..head of repo to out. The bundle's
// only ref is refs/heads/agentgate-snapshot (pointing at head) and its
// prerequisite is mergeBase, so "git bundle verify" and "git fetch" work in
// any clone that has the merge base.
//
// git bundle needs a ref, and the gate must not write to the repository it
// judges, so the bundle is made in a throw-away bare repository that borrows
// the objects through objects/info/alternates. git runs with the safe
// environment of internal/gitcli (no hooks, no fsmonitor, no global or
// system config).
func Bundle(ctx context.Context, repo, mergeBase, head, out string) error {
	if !gitcli.IsSHA(mergeBase) || !gitcli.IsSHA(head) {
		return fmt.Errorf("evidence: bundle needs full commit SHAs, got %q..%q", mergeBase, head)
	}
	if mergeBase == head {
		return ErrEmptyRange
	}
	common, err := gitcli.Run(ctx, repo, "rev-parse", "--path-format=absolute", "--git-common-dir")
	if err != nil {
		return fmt.Errorf("evidence: find the repository's objects: %w", err)
	}
	objects := filepath.Join(strings.TrimSpace(string(common)), "objects")
	tmp, err := os.MkdirTemp("", "agentgate-snapshot-")
	if err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	defer os.RemoveAll(tmp)
	files := map[string]string{
		"HEAD":                          "ref: refs/heads/agentgate-snapshot\n",
		"config":                        "[core]\n\trepositoryformatversion = 0\n\tbare = true\n",
		"objects/info/alternates":       objects + "\n",
		"refs/heads/agentgate-snapshot": head + "\n",
	}
	for name, content := range files {
		p := filepath.Join(tmp, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return fmt.Errorf("evidence: %w", err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return fmt.Errorf("evidence: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(tmp, "objects", "pack"), 0o700); err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if _, err := gitcli.Run(ctx, tmp, "bundle", "create", "--quiet", abs, "refs/heads/agentgate-snapshot", "^"+mergeBase); err != nil {
		return fmt.Errorf("evidence: git bundle: %w", err)
	}
	return nil
}

// Patch returns the change mergeBase..head as a mailbox of patches
// (git format-patch, binary diffs included), for reviewers without git.
func Patch(ctx context.Context, repo, mergeBase, head string) ([]byte, error) {
	if !gitcli.IsSHA(mergeBase) || !gitcli.IsSHA(head) {
		return nil, fmt.Errorf("evidence: patch needs full commit SHAs, got %q..%q", mergeBase, head)
	}
	out, err := gitcli.Run(ctx, repo, "format-patch", "--stdout", "--binary", "--no-color", "--no-signature", mergeBase+".."+head)
	if err != nil {
		return nil, fmt.Errorf("evidence: git format-patch: %w", err)
	}
	return out, nil
}
