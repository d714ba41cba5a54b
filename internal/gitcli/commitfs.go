package gitcli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// DefaultMaxFileSize is CommitFS's default cap on a file's size.
const DefaultMaxFileSize = 16 << 20

var errNotExist = fs.ErrNotExist

// ErrSymlink is returned when opening a symbolic link through CommitFS:
// links are never followed, so a link cannot point a loader outside the
// tree. Lstat and ReadLink report them.
var ErrSymlink = errors.New("is a symbolic link (not followed)")

// ErrSubmodule is returned when opening a submodule (gitlink) entry.
var ErrSubmodule = errors.New("is a submodule (not readable)")

// TreeEntry is one entry of a commit's tree.
type TreeEntry struct {
	Path string // slash-separated, relative to the repository root
	Mode uint32 // git mode (ModeFile, ModeExecutable, ModeSymlink, ModeSubmodule, ModeDir)
	OID  string
	Size int64 // blob size; -1 for trees and submodules
}

// IsDir reports whether the entry is a tree.
func (e TreeEntry) IsDir() bool { return e.Mode == ModeDir }

// FS is a read-only fs.FS over one commit's tree, read with git ls-tree and
// git cat-file --batch. It implements fs.ReadFileFS, fs.ReadDirFS,
// fs.StatFS and fs.ReadLinkFS. Symbolic links are listed (ReadDir, Lstat,
// ReadLink) but never followed: Open, ReadFile and Stat of a link fail with
// ErrSymlink. Files over MaxFileSize fail with ErrTooLarge. Call Close to
// stop the background git process.
type FS struct {
	Commit string
	// MaxFileSize caps Open and ReadFile (default DefaultMaxFileSize).
	MaxFileSize int64

	ctx     context.Context
	repo    string
	entries map[string]*TreeEntry
	dirs    map[string][]string // dir -> sorted child names
	blobs   *batch
}

// CommitFS lists the tree of commit sha. The returned FS reads blobs
// lazily; its git process lives until Close or until ctx ends.
func CommitFS(ctx context.Context, repo, sha string) (*FS, error) {
	if !IsSHA(sha) {
		return nil, fmt.Errorf("read tree: %q is not a full commit SHA (resolve it with VerifyCommit first)", sha)
	}
	out, err := Run(ctx, repo, "ls-tree", "-r", "-t", "-z", "-l", "--full-tree", "--end-of-options", sha)
	if err != nil {
		return nil, fmt.Errorf("list files of commit %s: %w", short(sha), err)
	}
	entries, err := ParseLsTree(out)
	if err != nil {
		return nil, fmt.Errorf("list files of commit %s: %w", short(sha), err)
	}
	f := &FS{Commit: sha, MaxFileSize: DefaultMaxFileSize, ctx: ctx, repo: repo,
		entries: make(map[string]*TreeEntry, len(entries)), dirs: map[string][]string{".": nil}}
	f.entries["."] = &TreeEntry{Path: ".", Mode: ModeDir, Size: -1}
	for i := range entries {
		e := &entries[i]
		if !validPath(e.Path) {
			return nil, fmt.Errorf("commit %s has an unsafe path %q (refusing to read it)", short(sha), e.Path)
		}
		if _, dup := f.entries[e.Path]; dup {
			return nil, fmt.Errorf("commit %s lists path %q twice (a corrupt or hostile tree)", short(sha), e.Path)
		}
		f.entries[e.Path] = e
		dir := path.Dir(e.Path)
		f.dirs[dir] = append(f.dirs[dir], path.Base(e.Path))
		if e.IsDir() {
			if _, ok := f.dirs[e.Path]; !ok {
				f.dirs[e.Path] = nil
			}
		}
	}
	for d, names := range f.dirs {
		if _, ok := f.entries[d]; !ok || !f.entries[d].IsDir() {
			return nil, fmt.Errorf("commit %s: %q has children but is not a directory", short(sha), d)
		}
		sort.Strings(names)
	}
	return f, nil
}

// validPath is fs.ValidPath plus: no ".git" component in any letter case,
// no backslashes or control characters.
func validPath(p string) bool {
	if !fs.ValidPath(p) {
		return false
	}
	for _, c := range p {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	for _, el := range strings.Split(p, "/") {
		if strings.EqualFold(el, ".git") {
			return false
		}
	}
	return true
}

// ParseLsTree parses `git ls-tree -z -l` output.
func ParseLsTree(data []byte) ([]TreeEntry, error) {
	var out []TreeEntry
	for _, rec := range splitZ(data) {
		meta, name, ok := bytes.Cut(rec, []byte{'\t'})
		f := bytes.Fields(meta)
		if !ok || len(f) != 4 || len(name) == 0 {
			return nil, fmt.Errorf("malformed ls-tree record %q", truncate(rec))
		}
		m, err := mode(f[0])
		if err != nil {
			return nil, fmt.Errorf("ls-tree record %q: %w", truncate(rec), err)
		}
		if !isHex(f[2]) {
			return nil, fmt.Errorf("ls-tree record %q: bad object id", truncate(rec))
		}
		e := TreeEntry{Path: string(name), Mode: m, OID: string(f[2]), Size: -1}
		switch string(f[1]) {
		case "blob":
			if m != ModeFile && m != ModeExecutable && m != ModeSymlink && m != 0o100664 {
				return nil, fmt.Errorf("ls-tree record %q: blob with mode %o", truncate(rec), m)
			}
			if m == 0o100664 {
				e.Mode = ModeFile
			}
			if e.Size, err = strconv.ParseInt(string(f[3]), 10, 64); err != nil || e.Size < 0 {
				return nil, fmt.Errorf("ls-tree record %q: bad size", truncate(rec))
			}
		case "tree":
			if m != ModeDir {
				return nil, fmt.Errorf("ls-tree record %q: tree with mode %o", truncate(rec), m)
			}
		case "commit":
			if m != ModeSubmodule {
				return nil, fmt.Errorf("ls-tree record %q: commit with mode %o", truncate(rec), m)
			}
		default:
			return nil, fmt.Errorf("ls-tree record %q: unknown type %q", truncate(rec), f[1])
		}
		out = append(out, e)
	}
	return out, nil
}

func truncate(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// Close stops the background git process. The FS stays usable for
// listings; reads after Close fail.
func (f *FS) Close() error {
	if f.blobs == nil {
		return nil
	}
	return f.blobs.close()
}

// Entries returns every entry of the tree (files, links, submodules and
// directories), sorted by path.
func (f *FS) Entries() []TreeEntry {
	out := make([]TreeEntry, 0, len(f.entries))
	for p, e := range f.entries {
		if p != "." {
			out = append(out, *e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Entry returns the tree entry at name, if any.
func (f *FS) Entry(name string) (TreeEntry, bool) {
	e, ok := f.entries[name]
	if !ok {
		return TreeEntry{}, false
	}
	return *e, true
}

func (f *FS) lookup(op, name string) (*TreeEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	e, ok := f.entries[name]
	if !ok {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return e, nil
}

func (f *FS) read(op string, e *TreeEntry) ([]byte, error) {
	switch e.Mode {
	case ModeSymlink:
		return nil, &fs.PathError{Op: op, Path: e.Path, Err: ErrSymlink}
	case ModeSubmodule:
		return nil, &fs.PathError{Op: op, Path: e.Path, Err: ErrSubmodule}
	case ModeDir:
		return nil, &fs.PathError{Op: op, Path: e.Path, Err: errors.New("is a directory")}
	}
	return f.blob(op, e)
}

func (f *FS) blob(op string, e *TreeEntry) ([]byte, error) {
	max := f.MaxFileSize
	if max <= 0 {
		max = DefaultMaxFileSize
	}
	if e.Size > max {
		return nil, &fs.PathError{Op: op, Path: e.Path, Err: fmt.Errorf("%d bytes, more than the %d byte limit: %w", e.Size, max, ErrTooLarge)}
	}
	if f.blobs == nil {
		b, err := startBatch(f.ctx, f.repo)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: e.Path, Err: err}
		}
		f.blobs = b
	}
	typ, data, err := f.blobs.object(e.OID, max)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: e.Path, Err: err}
	}
	if typ != "blob" {
		return nil, &fs.PathError{Op: op, Path: e.Path, Err: fmt.Errorf("object is a %s, not a blob", typ)}
	}
	return data, nil
}

// Open implements fs.FS.
func (f *FS) Open(name string) (fs.File, error) {
	e, err := f.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if e.IsDir() {
		return &dirFile{fs: f, entry: e}, nil
	}
	data, err := f.read("open", e)
	if err != nil {
		return nil, err
	}
	return &blobFile{info: f.info(e), r: bytes.NewReader(data)}, nil
}

// ReadFile implements fs.ReadFileFS.
func (f *FS) ReadFile(name string) ([]byte, error) {
	e, err := f.lookup("read", name)
	if err != nil {
		return nil, err
	}
	return f.read("read", e)
}

// ReadDir implements fs.ReadDirFS.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	e, err := f.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if !e.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	names := f.dirs[name]
	out := make([]fs.DirEntry, 0, len(names))
	for _, n := range names {
		child := path.Join(name, n)
		out = append(out, fs.FileInfoToDirEntry(f.info(f.entries[child])))
	}
	return out, nil
}

// Stat implements fs.StatFS; like Open it does not follow links.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	e, err := f.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	if e.Mode == ModeSymlink {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: ErrSymlink}
	}
	return f.info(e), nil
}

// Lstat implements fs.ReadLinkFS.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	e, err := f.lookup("lstat", name)
	if err != nil {
		return nil, err
	}
	return f.info(e), nil
}

// ReadLink implements fs.ReadLinkFS: the link's target, verbatim.
func (f *FS) ReadLink(name string) (string, error) {
	e, err := f.lookup("readlink", name)
	if err != nil {
		return "", err
	}
	if e.Mode != ModeSymlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	data, err := f.blob("readlink", e)
	if err != nil {
		return "", err
	}
	return string(data), nil
}

func (f *FS) info(e *TreeEntry) *entryInfo { return &entryInfo{e: e} }

type entryInfo struct{ e *TreeEntry }

func (i *entryInfo) Name() string {
	if i.e.Path == "." {
		return "."
	}
	return path.Base(i.e.Path)
}
func (i *entryInfo) Size() int64 {
	if i.e.Size < 0 {
		return 0
	}
	return i.e.Size
}
func (i *entryInfo) Mode() fs.FileMode {
	switch i.e.Mode {
	case ModeDir:
		return fs.ModeDir | 0o755
	case ModeExecutable:
		return 0o755
	case ModeSymlink:
		return fs.ModeSymlink | 0o777
	case ModeSubmodule:
		return fs.ModeIrregular
	}
	return 0o644
}
func (i *entryInfo) ModTime() time.Time { return time.Time{} }
func (i *entryInfo) IsDir() bool        { return i.e.Mode == ModeDir }
func (i *entryInfo) Sys() any           { return *i.e }

type blobFile struct {
	info *entryInfo
	r    *bytes.Reader
}

func (b *blobFile) Stat() (fs.FileInfo, error) { return b.info, nil }
func (b *blobFile) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *blobFile) Close() error               { return nil }

type dirFile struct {
	fs    *FS
	entry *TreeEntry
	pos   int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.fs.info(d.entry), nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.entry.Path, Err: errors.New("is a directory")}
}
func (d *dirFile) Close() error { return nil }
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	all, err := d.fs.ReadDir(d.entry.Path)
	if err != nil {
		return nil, err
	}
	rest := all[d.pos:]
	if n <= 0 {
		d.pos = len(all)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if n > len(rest) {
		n = len(rest)
	}
	d.pos += n
	return rest[:n], nil
}
