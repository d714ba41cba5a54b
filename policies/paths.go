package policies

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// MatchGlob reports whether the repo-relative path matches pattern. The
// syntax is doublestar's: '*' and '?' stay within one path segment, '**'
// as a whole segment matches any number of directories (including none),
// '[...]' classes and '{a,b}' alternatives work. "dir/**" matches dir
// itself and everything under it. A malformed pattern matches nothing.
//
// Patterns come from agent-written plans, and doublestar's matching is
// exponential in nested {…} alternatives containing '**'; a pattern over
// the complexity limits (see globComplexity) matches nothing.
func MatchGlob(pattern, p string) bool {
	if globComplexity(pattern) != "" {
		return false
	}
	ok, err := doublestar.Match(pattern, p)
	return err == nil && ok
}

// Complexity limits of glob patterns.
const (
	maxGlobLen    = 512
	maxGlobBraces = 4
)

// globComplexity explains why a pattern is too complex to match safely,
// or returns "".
func globComplexity(pattern string) string {
	if len(pattern) > maxGlobLen {
		return fmt.Sprintf("pattern is longer than %d characters", maxGlobLen)
	}
	if n := strings.Count(pattern, "{"); n > maxGlobBraces {
		return fmt.Sprintf("pattern has %d {…} groups; at most %d are allowed (list several patterns instead)", n, maxGlobBraces)
	}
	return ""
}

// checkRepoPath returns why p is not an acceptable repo-relative path (or
// glob when glob is true), or "" when it is. Rules: not empty, forward
// slashes, not absolute, no '..' element, clean (no "./", "//" or trailing
// "/"), and for globs a valid pattern.
func checkRepoPath(p string, glob bool) string {
	switch {
	case p == "":
		return "path is empty"
	case strings.ContainsRune(p, 0):
		return "path contains a NUL byte"
	case strings.Contains(p, `\`) && !glob:
		return "path contains a backslash; use forward slashes"
	case strings.HasPrefix(p, "/"):
		return "path is absolute; write it relative to the repository root"
	case len(p) >= 2 && p[1] == ':' && (p[0]|0x20 >= 'a' && p[0]|0x20 <= 'z'):
		return "path has a drive letter; write it relative to the repository root"
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "path contains '..'; paths may not leave their directory or the repository"
		}
	}
	if path.Clean(p) != p {
		return "path is not clean (remove './', '//' and trailing '/'); write " + path.Clean(p)
	}
	if glob {
		if strings.Contains(p, `\`) {
			return "pattern contains a backslash; use forward slashes (escapes are not supported)"
		}
		if why := globComplexity(p); why != "" {
			return why
		}
		if !doublestar.ValidatePattern(p) {
			return "malformed glob pattern"
		}
	}
	return ""
}

// staticPrefix is the part of a glob before its first pattern element:
// "services/payments/**/*.go" -> "services/payments". "." for none.
func staticPrefix(pattern string) string {
	els := strings.Split(pattern, "/")
	var out []string
	for i, el := range els {
		if strings.ContainsAny(el, "*?[{\\") {
			break
		}
		if i == len(els)-1 { // the last element of a literal path is the file itself
			out = append(out, el)
			break
		}
		out = append(out, el)
	}
	if len(out) == 0 {
		return "."
	}
	return strings.Join(out, "/")
}

// isLiteral reports whether pattern has no glob metacharacters.
func isLiteral(pattern string) bool {
	return !strings.ContainsAny(pattern, "*?[{\\")
}

// within reports whether p is dir or inside it ("." contains everything).
func within(p, dir string) bool {
	if dir == "." || dir == "" {
		return true
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// globWithin reports whether every path pattern can match lies inside dir:
// its static prefix is inside dir.
func globWithin(pattern, dir string) bool {
	return within(staticPrefix(pattern), dir)
}

// globCoveredBy reports whether every path matched by pattern is also
// matched by cover, for the shapes contract files use: equal patterns, a
// literal path matched by cover, or cover "D/**" (or "D/**/*"…) with the
// pattern's static prefix inside D.
func globCoveredBy(pattern, cover string) bool {
	if pattern == cover {
		return true
	}
	if isLiteral(pattern) {
		return MatchGlob(cover, pattern)
	}
	if d, ok := strings.CutSuffix(cover, "/**"); ok && isLiteral(d) {
		return within(staticPrefix(pattern), d)
	}
	if cover == "**" {
		return true
	}
	return false
}

// errEscapes is returned by resolve for a symlink that leaves the repository.
var errEscapes = errors.New("symlink resolves outside the repository")

// maxSymlinkHops bounds symlink resolution (Linux uses 40 too).
const maxSymlinkHops = 40

// resolve follows symlinks along every element of the repo-relative path p
// inside fsys and returns the path it really names. It fails with an error
// wrapping errEscapes when a link is absolute or climbs above the root.
// Elements that do not exist are kept as they are. File systems without
// fs.ReadLinkFS have no visible symlinks and p is returned unchanged.
// DirFS and os.DirFS implement fs.ReadLinkFS.
func resolve(fsys fs.FS, p string) (string, error) {
	if _, ok := fsys.(fs.ReadLinkFS); !ok || p == "." {
		return p, nil
	}
	// cur is always a fully resolved directory (no links), so ".." on it
	// is its lexical parent. Link targets are spliced in element by
	// element rather than cleaned lexically: "l/.." where l is a link must
	// climb from l's target, as the kernel does.
	rest := strings.Split(p, "/")
	cur := "."
	hops := 0
	for len(rest) > 0 {
		el := rest[0]
		rest = rest[1:]
		switch el {
		case "", ".":
			continue
		case "..":
			if cur == "." {
				return "", &fs.PathError{Op: "resolve", Path: p, Err: errEscapes}
			}
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, el)
		fi, err := fs.Lstat(fsys, next)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			// A real element, or a missing one (which cannot be a link).
			cur = next
			continue
		}
		hops++
		if hops > maxSymlinkHops {
			return "", &fs.PathError{Op: "resolve", Path: p, Err: errors.New("too many levels of symbolic links")}
		}
		target, err := fs.ReadLink(fsys, next)
		if err != nil {
			return "", &fs.PathError{Op: "resolve", Path: p, Err: err}
		}
		if path.IsAbs(target) || strings.HasPrefix(target, `\`) || (len(target) > 1 && target[1] == ':') {
			return "", &fs.PathError{Op: "resolve", Path: next, Err: errors.Join(errEscapes, errors.New("it points to the absolute path "+target))}
		}
		// Resolve the target relative to the link's directory, then go on
		// with what followed the link.
		rest = append(strings.Split(target, "/"), rest...)
	}
	return cur, nil
}

// readContract reads a contract file from fsys, refusing symlinks that
// leave the repository and files over MaxFileSize without reading them
// whole.
func readContract(fsys fs.FS, name string) ([]byte, *Problem) {
	real, err := resolve(fsys, name)
	if err != nil {
		msg := err.Error()
		if errors.Is(err, errEscapes) {
			msg = "refusing to read: " + msg
		}
		return nil, &Problem{File: name, Message: msg}
	}
	f, err := fsys.Open(real)
	if err != nil {
		return nil, &Problem{File: name, Message: "cannot open: " + err.Error()}
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		if !fi.Mode().IsRegular() {
			return nil, &Problem{File: name, Message: "not a regular file"}
		}
		if fi.Size() > MaxFileSize {
			return nil, &Problem{File: name, Message: "file is " + strconv.FormatInt(fi.Size(), 10) + " bytes; the limit is 1048576 bytes (1 MiB): contract files are small, split or trim it"}
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &Problem{File: name, Message: "cannot read: " + err.Error()}
	}
	return data, nil
}

// DirFS returns a file system over the real directory root for LoadTree.
// It is os.DirFS, which since Go 1.25 implements fs.ReadLinkFS, so LoadTree
// sees symlinks and refuses those that leave root (os.DirFS alone would
// follow them when opening).
func DirFS(root string) fs.FS {
	return os.DirFS(root)
}
