package gitcli

import (
	"context"
	"fmt"
	"os"
	"path"
)

// Export writes the tree of commit sha into the directory dst (created if
// missing, and expected to be empty). It reads blobs with cat-file, so no
// checkout filter, hook or attribute runs. Files are written through an
// os.Root, so neither a crafted path nor a symbolic link written earlier in
// the export can place a file outside dst. Symbolic links are recreated
// verbatim (the sandbox confines what follows them); submodules become
// empty directories. Files larger than maxFileSize (<= 0: no limit) fail
// the export.
func Export(ctx context.Context, repo, sha, dst string, maxFileSize int64) error {
	tree, err := CommitFS(ctx, repo, sha)
	if err != nil {
		return err
	}
	defer tree.Close()
	if maxFileSize <= 0 {
		maxFileSize = 1 << 62
	}
	tree.MaxFileSize = maxFileSize
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("export %s: create %s: %w", short(sha), dst, err)
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return fmt.Errorf("export %s: open %s: %w", short(sha), dst, err)
	}
	defer root.Close()
	for _, e := range tree.Entries() { // sorted: parents before children
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("export %s: %w", short(sha), err)
		}
		if err := exportEntry(tree, root, e); err != nil {
			return fmt.Errorf("export %s into %s: %s: %w", short(sha), dst, e.Path, err)
		}
	}
	return nil
}

func exportEntry(tree *FS, root *os.Root, e TreeEntry) error {
	switch e.Mode {
	case ModeDir, ModeSubmodule:
		if err := root.Mkdir(e.Path, 0o755); err != nil {
			return err
		}
		return root.Chmod(e.Path, 0o755) // exact, whatever the umask (Sync relies on it)
	case ModeSymlink:
		target, err := tree.ReadLink(e.Path)
		if err != nil {
			return err
		}
		return root.Symlink(target, e.Path)
	}
	data, err := tree.blob("export", &e)
	if err != nil {
		return err
	}
	perm := os.FileMode(0o644)
	if e.Mode == ModeExecutable {
		perm = 0o755
	}
	if d := path.Dir(e.Path); d != "." {
		if _, err := root.Lstat(d); err != nil {
			return fmt.Errorf("parent directory: %w", err)
		}
	}
	f, err := root.OpenFile(e.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil { // exact, whatever the umask (Sync relies on it)
		f.Close()
		return err
	}
	return f.Close()
}
