package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/agentgate/agentgate/checks/basecache"
	"github.com/agentgate/agentgate/internal/gitcli"
)

// workTree is an exported commit and a scratch directory beside it.
type workTree struct {
	dir     string // the exported tree
	scratch string // for the coverage profile; never inside the tree
	release func()
}

// export writes commit sha of repo into a work directory. It prefers a
// stable directory per repository and role (head/base), because Go's
// build cache keys compiled packages by directory: the same path across
// evaluations keeps compilation cached. A busy stable directory (another
// evaluation of the same repository) falls back to a fresh temp dir.
func (c *Check) export(ctx context.Context, root, repo, role, sha string) (*workTree, error) {
	abs, err := filepath.Abs(repo)
	if err != nil {
		return nil, err
	}
	base := filepath.Join(root, "tests-work", basecache.Key(abs)[:16], role)
	w, err := lockedWorkTree(base)
	if err != nil {
		tmp, terr := os.MkdirTemp("", "agentgate-tests-")
		if terr != nil {
			return nil, fmt.Errorf("make work dir: %w", terr)
		}
		w = &workTree{dir: filepath.Join(tmp, "tree"), scratch: filepath.Join(tmp, "scratch"), release: func() { os.RemoveAll(tmp) }}
	}
	for _, d := range []string{w.dir, w.scratch} {
		if err := os.RemoveAll(d); err != nil {
			w.release()
			return nil, fmt.Errorf("clean work dir: %w", err)
		}
	}
	if err := os.MkdirAll(w.scratch, 0o755); err != nil {
		w.release()
		return nil, fmt.Errorf("make work dir: %w", err)
	}
	if err := gitcli.Export(ctx, repo, sha, w.dir, maxExportFile); err != nil {
		w.release()
		return nil, fmt.Errorf("export %s %s: %w", role, sha, err)
	}
	return w, nil
}

func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return string(out), err
}
