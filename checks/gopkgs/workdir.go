package gopkgs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/agentgate/agentgate/checks/basecache"
	"github.com/agentgate/agentgate/internal/gitcli"
)

// MaxExportFile bounds a single file written by an export.
const MaxExportFile = 64 << 20

// WorkTree is an exported commit and a scratch directory beside it.
type WorkTree struct {
	Dir     string // the exported tree
	Scratch string // for outputs such as coverage profiles; never inside the tree
	release func()
}

// Release gives the work tree back (its lock, or its temp dir).
func (w *WorkTree) Release() { w.release() }

// Export writes commit sha of repo into a work directory under root. It prefers a
// stable directory per repository and role (head/base), because Go's
// build cache keys compiled packages by directory: the same path across
// evaluations keeps compilation cached. A stable directory is brought to
// the commit with gitcli.Sync, which verifies every file left by the
// previous evaluation by content and rewrites only what differs (creating
// files is most of an export's cost). A busy stable directory (another
// evaluation of the same repository) falls back to a fresh temp dir.
func Export(ctx context.Context, root, repo, role, sha string) (*WorkTree, error) {
	abs, err := filepath.Abs(repo)
	if err != nil {
		return nil, err
	}
	base := filepath.Join(root, "work", basecache.Key(abs)[:16], role)
	stable := true
	w, err := lockedWorkTree(base)
	if err != nil {
		stable = false
		tmp, terr := os.MkdirTemp("", "agentgate-work-")
		if terr != nil {
			return nil, fmt.Errorf("make work dir: %w", terr)
		}
		w = &WorkTree{Dir: filepath.Join(tmp, "tree"), Scratch: filepath.Join(tmp, "scratch"), release: func() { os.RemoveAll(tmp) }}
	}
	if err := os.RemoveAll(w.Scratch); err != nil {
		w.release()
		return nil, fmt.Errorf("clean work dir: %w", err)
	}
	if err := os.MkdirAll(w.Scratch, 0o755); err != nil {
		w.release()
		return nil, fmt.Errorf("make work dir: %w", err)
	}
	if stable {
		st, err := gitcli.Sync(ctx, repo, sha, w.Dir, MaxExportFile)
		if err == nil {
			Logf(ctx, "work tree %s at %s: %d kept, %d written, %d removed", role, sha, st.Kept, st.Written, st.Removed)
			return w, nil
		}
		if ctx.Err() != nil {
			w.release()
			return nil, fmt.Errorf("export %s %s: %w", role, sha, err)
		}
		Logf(ctx, "work tree %s: sync failed, exporting afresh: %v", role, err)
	}
	if err := os.RemoveAll(w.Dir); err != nil {
		w.release()
		return nil, fmt.Errorf("clean work dir: %w", err)
	}
	if err := gitcli.Export(ctx, repo, sha, w.Dir, MaxExportFile); err != nil {
		w.release()
		return nil, fmt.Errorf("export %s %s: %w", role, sha, err)
	}
	return w, nil
}
