package gopkgs

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

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
// evaluation of the same repository), or one that cannot be repaired
// (earlier code left entries that cannot be removed), falls back to a
// fresh temp dir, so a hostile tree cannot block later evaluations.
func Export(ctx context.Context, root, repo, role, sha string) (*WorkTree, error) {
	abs, err := filepath.Abs(repo)
	if err != nil {
		return nil, err
	}
	base := filepath.Join(root, "work", basecache.Key(abs)[:16], role)
	if w, err := lockedWorkTree(base); err == nil {
		err := prepareStable(ctx, w, repo, role, sha)
		if err == nil {
			return w, nil
		}
		w.release()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("export %s %s: %w", role, sha, err)
		}
		Logf(ctx, "work tree %s: %v; using a temporary one", role, err)
	}
	tmp, err := os.MkdirTemp("", "agentgate-work-")
	if err != nil {
		return nil, fmt.Errorf("make work dir: %w", err)
	}
	w := &WorkTree{Dir: filepath.Join(tmp, "tree"), Scratch: filepath.Join(tmp, "scratch"), release: func() { _ = ForceRemoveAll(tmp) }}
	if err := os.MkdirAll(w.Scratch, 0o755); err != nil {
		w.release()
		return nil, fmt.Errorf("make work dir: %w", err)
	}
	if err := gitcli.Export(ctx, repo, sha, w.Dir, MaxExportFile); err != nil {
		w.release()
		return nil, fmt.Errorf("export %s %s: %w", role, sha, err)
	}
	return w, nil
}

// prepareStable empties the scratch dir and brings the tree to sha: a
// verified sync, else a fresh export.
func prepareStable(ctx context.Context, w *WorkTree, repo, role, sha string) error {
	if err := ForceRemoveAll(w.Scratch); err != nil {
		return fmt.Errorf("clean the scratch dir: %w", err)
	}
	if err := os.MkdirAll(w.Scratch, 0o755); err != nil {
		return fmt.Errorf("make the scratch dir: %w", err)
	}
	// The stamp (beside the tree, where confined code cannot write) marks
	// the end of the last sync: files changed after it are rewritten even
	// when their bytes are right, so no mtime planted by a test survives.
	stamp := filepath.Join(filepath.Dir(w.Dir), "synced")
	var since time.Time
	if fi, err := os.Stat(stamp); err == nil {
		since = fi.ModTime()
	}
	st, err := gitcli.SyncSince(ctx, repo, sha, w.Dir, MaxExportFile, since)
	if err == nil {
		Logf(ctx, "work tree %s at %s: %d kept, %d written, %d removed", role, sha, st.Kept, st.Written, st.Removed)
		return writeStamp(stamp)
	}
	if ctx.Err() != nil {
		return err
	}
	Logf(ctx, "work tree %s: sync failed, exporting afresh: %v", role, err)
	if err := ForceRemoveAll(w.Dir); err != nil {
		return fmt.Errorf("clean the work tree: %w", err)
	}
	if err := gitcli.Export(ctx, repo, sha, w.Dir, MaxExportFile); err != nil {
		return fmt.Errorf("export %s %s: %w", role, sha, err)
	}
	return writeStamp(stamp)
}

func writeStamp(path string) error {
	if err := os.WriteFile(path, []byte(time.Now().UTC().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
		return fmt.Errorf("stamp the work tree: %w", err)
	}
	return nil
}

// ForceRemoveAll removes dir like os.RemoveAll, first giving its owner
// back the permissions earlier code may have taken away (a directory
// made unreadable or unwritable by a test).
func ForceRemoveAll(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			_ = os.Chmod(p, 0o700) // before WalkDir reads it
		}
		return nil
	})
	return os.RemoveAll(dir)
}
