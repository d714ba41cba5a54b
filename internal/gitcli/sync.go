package gitcli

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"time"
)

// SyncStats says what Sync did.
type SyncStats struct {
	Kept    int // entries already identical (files verified by content)
	Written int // entries created or rewritten
	Removed int // paths removed (not in the commit, or different from it)
}

// Sync makes dst exactly the tree of commit sha, as Export writes it into
// an empty directory, rewriting only what differs. It is for work trees
// that are reused across evaluations (Go's build and test caches key
// compiled packages by directory, and creating thousands of files costs far
// more than reading them).
//
// Nothing already in dst is trusted: earlier untrusted code (tests) may have
// run in it. Every regular file is compared by content — its git blob id is
// recomputed from the bytes on disk — and must have exactly the mode Export
// gives it; symbolic links must have the committed target; directories must
// be directories. Everything else (extra files, other file types, a
// directory replaced by a link) is removed and written again through an
// os.Root, so a link left behind cannot redirect a write outside dst.
// An error leaves dst in an unknown state: the caller should discard it.
func Sync(ctx context.Context, repo, sha, dst string, maxFileSize int64) (SyncStats, error) {
	return SyncSince(ctx, repo, sha, dst, maxFileSize, time.Time{})
}

// SyncSince is Sync that also rewrites every file whose inode changed
// (ctime, which no unprivileged process can set back) after since — the
// end of the previous sync —, even when its content is the commit's. A
// file an earlier test rewrote with the right bytes but an old mtime would
// otherwise keep that mtime, and Go's test cache, which judges the files a
// test opens by size, mode and mtime, could replay a result obtained on
// other content. A zero since checks content only.
func SyncSince(ctx context.Context, repo, sha, dst string, maxFileSize int64, since time.Time) (SyncStats, error) {
	var st SyncStats
	tree, err := CommitFS(ctx, repo, sha)
	if err != nil {
		return st, err
	}
	defer tree.Close()
	if maxFileSize <= 0 {
		maxFileSize = 1 << 62
	}
	tree.MaxFileSize = maxFileSize
	if fi, err := os.Lstat(dst); err == nil && !fi.IsDir() {
		return st, fmt.Errorf("sync %s: %s is not a directory", short(sha), dst)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return st, fmt.Errorf("sync %s: create %s: %w", short(sha), dst, err)
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return st, fmt.Errorf("sync %s: open %s: %w", short(sha), dst, err)
	}
	defer root.Close()
	fail := func(p string, err error) (SyncStats, error) {
		return st, fmt.Errorf("sync %s into %s: %s: %w", short(sha), dst, p, err)
	}
	for _, e := range tree.Entries() {
		if (e.Mode == ModeFile || e.Mode == ModeExecutable) && e.Size > maxFileSize {
			return fail(e.Path, fmt.Errorf("%d bytes, more than the %d byte limit: %w", e.Size, maxFileSize, ErrTooLarge))
		}
	}

	// What is on disk, listed without following links.
	type onDisk struct {
		path    string
		mode    fs.FileMode
		size    int64
		touched bool // changed after since
	}
	var present []onDisk
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		touched := false
		if ct, ok := changeTime(fi); ok && !since.IsZero() && ct.After(since) {
			touched = true
		}
		present = append(present, onDisk{path: p, mode: fi.Mode(), size: fi.Size(), touched: touched})
		if d.IsDir() {
			if e, ok := tree.entries[p]; !ok || (e.Mode != ModeDir && e.Mode != ModeSubmodule) {
				return fs.SkipDir // removed as a whole below
			}
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("sync %s: list %s: %w", short(sha), dst, err)
	}

	keep := make(map[string]bool, len(present))
	var remove []string
	for _, f := range present {
		e, ok := tree.entries[f.path]
		same := false
		if ok {
			switch e.Mode {
			case ModeDir, ModeSubmodule:
				same = f.mode.IsDir()
				if same && f.mode.Perm() != 0o755 {
					if err := root.Chmod(f.path, 0o755); err != nil {
						return fail(f.path, err)
					}
				}
			case ModeSymlink:
				if f.mode.Type() == fs.ModeSymlink {
					target, err := tree.ReadLink(f.path)
					if err != nil {
						return fail(f.path, err)
					}
					got, err := root.Readlink(f.path)
					same = err == nil && got == target
				}
			default:
				if f.mode == exportPerm(e.Mode) && f.size == e.Size && !f.touched {
					same, err = blobMatches(root, f.path, *e)
					if err != nil {
						return fail(f.path, err)
					}
				}
			}
		}
		if same {
			keep[f.path] = true
		} else {
			remove = append(remove, f.path)
		}
	}
	// Children first, so that removing a directory never races its listing.
	sort.Sort(sort.Reverse(sort.StringSlice(remove)))
	for _, p := range remove {
		if err := root.RemoveAll(p); err != nil {
			return fail(p, err)
		}
		st.Removed++
	}
	for _, e := range tree.Entries() { // sorted: parents before children
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("sync %s: %w", short(sha), err)
		}
		if keep[e.Path] {
			st.Kept++
			continue
		}
		if err := exportEntry(tree, root, e); err != nil {
			return fail(e.Path, err)
		}
		st.Written++
	}
	return st, nil
}

// exportPerm is the exact file mode Export gives a blob entry.
func exportPerm(mode uint32) fs.FileMode {
	if mode == ModeExecutable {
		return 0o755
	}
	return 0o644
}

// blobMatches reports whether the regular file p under root has the
// content of e, by recomputing its git object id (SHA-1, or SHA-256 for
// repositories in that format).
func blobMatches(root *os.Root, p string, e TreeEntry) (bool, error) {
	var h hash.Hash
	switch len(e.OID) {
	case 40:
		h = sha1.New()
	case 64:
		h = sha256.New()
	default:
		return false, fmt.Errorf("object id %q has an unknown length", e.OID)
	}
	f, err := root.OpenFile(p, os.O_RDONLY|noFollow, 0)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return false, nil // unreadable: rewritten
		}
		return false, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() != e.Size {
		return false, err
	}
	h.Write([]byte("blob " + strconv.FormatInt(e.Size, 10) + "\x00"))
	n, err := io.Copy(h, io.LimitReader(f, e.Size+1))
	if err != nil {
		return false, err
	}
	return n == e.Size && hex.EncodeToString(h.Sum(nil)) == e.OID, nil
}
