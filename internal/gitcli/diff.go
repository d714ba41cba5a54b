package gitcli

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
)

// File modes git records in trees.
const (
	ModeNone       uint32 = 0
	ModeDir        uint32 = 0o040000
	ModeFile       uint32 = 0o100644
	ModeExecutable uint32 = 0o100755
	ModeSymlink    uint32 = 0o120000
	ModeSubmodule  uint32 = 0o160000 // a gitlink
)

// NumstatEntry is one line of `git diff --numstat -z`.
type NumstatEntry struct {
	Path    string // the path on the new side
	OldPath string // the path on the old side; equal to Path unless renamed
	Added   int
	Deleted int
	Binary  bool // git printed "-" counts
}

// RawEntry is one record of `git diff --raw -z --no-abbrev`.
type RawEntry struct {
	OldMode, NewMode uint32
	OldOID, NewOID   string
	Status           byte // A C D M R T U X
	Score            int  // similarity percent for R and C
	Path             string
	OldPath          string // equal to Path unless renamed or copied
}

// Change is one changed path with both its raw and numstat information.
type Change struct {
	RawEntry
	Added   int
	Deleted int
	Binary  bool
}

// Renamed reports whether the change moved the file.
func (c Change) Renamed() bool { return c.Status == 'R' }

func diffArgs(base, head string, formats ...string) []string {
	args := append([]string{"diff"}, formats...)
	return append(args, "-z", "-M", "--no-abbrev", "--no-ext-diff", "--no-textconv", "--no-color",
		"--ignore-submodules=none", "--end-of-options", base+"..."+head, "--")
}

// Numstat returns the per-file line counts of base...head (the change on
// head since the merge base), with renames detected.
func Numstat(ctx context.Context, repo, base, head string) ([]NumstatEntry, error) {
	out, err := Run(ctx, repo, diffArgs(base, head, "--numstat")...)
	if err != nil {
		return nil, fmt.Errorf("list changed files of %s...%s: %w", base, head, err)
	}
	return ParseNumstat(out)
}

// Raw returns the raw diff records (modes, object ids, status) of
// base...head.
func Raw(ctx context.Context, repo, base, head string) ([]RawEntry, error) {
	out, err := Run(ctx, repo, diffArgs(base, head, "--raw")...)
	if err != nil {
		return nil, fmt.Errorf("list changed files of %s...%s: %w", base, head, err)
	}
	return ParseRaw(out)
}

// Diff returns every changed path of base...head with modes, object ids
// and line counts, from a single git process.
func Diff(ctx context.Context, repo, base, head string) ([]Change, error) {
	out, err := Run(ctx, repo, diffArgs(base, head, "--raw", "--numstat")...)
	if err != nil {
		return nil, fmt.Errorf("list changed files of %s...%s: %w", base, head, err)
	}
	return ParseRawNumstat(out)
}

// ParseRawNumstat parses the output of `git diff --raw --numstat -z`:
// all raw records, then all numstat records. The two lists must describe
// the same paths.
func ParseRawNumstat(data []byte) ([]Change, error) {
	p := &tokenizer{data: data}
	var changes []Change
	for p.more() && p.peek() == ':' {
		e, err := p.raw()
		if err != nil {
			return nil, err
		}
		changes = append(changes, Change{RawEntry: e})
	}
	index := make(map[string]int, len(changes))
	for i, c := range changes {
		index[c.Path] = i
	}
	seen := 0
	for p.more() {
		n, err := p.numstat()
		if err != nil {
			return nil, err
		}
		i, ok := index[n.Path]
		if !ok {
			return nil, fmt.Errorf("parse git diff: numstat path %q has no raw record", n.Path)
		}
		changes[i].Added, changes[i].Deleted, changes[i].Binary = n.Added, n.Deleted, n.Binary
		seen++
	}
	if seen != len(changes) {
		return nil, fmt.Errorf("parse git diff: %d raw records but %d numstat records", len(changes), seen)
	}
	return changes, nil
}

// ParseNumstat parses `git diff --numstat -z` output.
func ParseNumstat(data []byte) ([]NumstatEntry, error) {
	p := &tokenizer{data: data}
	var out []NumstatEntry
	for p.more() {
		n, err := p.numstat()
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// ParseRaw parses `git diff --raw -z --no-abbrev` output.
func ParseRaw(data []byte) ([]RawEntry, error) {
	p := &tokenizer{data: data}
	var out []RawEntry
	for p.more() {
		e, err := p.raw()
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

type tokenizer struct {
	data []byte
	pos  int
}

func (p *tokenizer) more() bool { return p.pos < len(p.data) }
func (p *tokenizer) peek() byte { return p.data[p.pos] }

// next returns the bytes up to the next NUL; the output must end in NUL.
func (p *tokenizer) next(what string) ([]byte, error) {
	i := bytes.IndexByte(p.data[p.pos:], 0)
	if i < 0 {
		return nil, fmt.Errorf("parse git diff: %s at byte %d is not NUL-terminated", what, p.pos)
	}
	tok := p.data[p.pos : p.pos+i]
	p.pos += i + 1
	return tok, nil
}

func (p *tokenizer) path(what string) (string, error) {
	b, err := p.next(what)
	if err != nil {
		return "", err
	}
	if len(b) == 0 {
		return "", fmt.Errorf("parse git diff: empty %s at byte %d", what, p.pos)
	}
	return string(b), nil
}

func (p *tokenizer) numstat() (NumstatEntry, error) {
	start := p.pos
	tok, err := p.next("numstat record")
	if err != nil {
		return NumstatEntry{}, err
	}
	a, rest, ok1 := bytes.Cut(tok, []byte{'\t'})
	d, name, ok2 := bytes.Cut(rest, []byte{'\t'})
	if !ok1 || !ok2 {
		return NumstatEntry{}, fmt.Errorf("parse git diff: malformed numstat record at byte %d", start)
	}
	var n NumstatEntry
	switch {
	case string(a) == "-" && string(d) == "-":
		n.Binary = true
	default:
		if n.Added, err = count(a); err != nil {
			return n, fmt.Errorf("parse git diff: numstat at byte %d: %w", start, err)
		}
		if n.Deleted, err = count(d); err != nil {
			return n, fmt.Errorf("parse git diff: numstat at byte %d: %w", start, err)
		}
	}
	if len(name) > 0 {
		n.Path = string(name)
		n.OldPath = n.Path
		return n, nil
	}
	if n.OldPath, err = p.path("rename source"); err != nil {
		return n, err
	}
	if n.Path, err = p.path("rename destination"); err != nil {
		return n, err
	}
	return n, nil
}

func count(b []byte) (int, error) {
	if len(b) == 0 || len(b) > 10 {
		return 0, fmt.Errorf("bad line count %q", b)
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bad line count %q", b)
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}

func (p *tokenizer) raw() (RawEntry, error) {
	start := p.pos
	tok, err := p.next("raw record")
	if err != nil {
		return RawEntry{}, err
	}
	// ":100644 100644 <oid> <oid> M" or "... R086"
	f := bytes.Fields(tok)
	if len(f) != 5 || len(f[0]) < 2 || f[0][0] != ':' || len(f[4]) == 0 {
		return RawEntry{}, fmt.Errorf("parse git diff: malformed raw record at byte %d", start)
	}
	var e RawEntry
	if e.OldMode, err = mode(f[0][1:]); err != nil {
		return e, fmt.Errorf("parse git diff: raw record at byte %d: %w", start, err)
	}
	if e.NewMode, err = mode(f[1]); err != nil {
		return e, fmt.Errorf("parse git diff: raw record at byte %d: %w", start, err)
	}
	if !isHex(f[2]) || !isHex(f[3]) {
		return e, fmt.Errorf("parse git diff: raw record at byte %d: bad object id", start)
	}
	e.OldOID, e.NewOID = string(f[2]), string(f[3])
	e.Status = f[4][0]
	switch e.Status {
	case 'A', 'D', 'M', 'T', 'U', 'X':
		if len(f[4]) != 1 {
			return e, fmt.Errorf("parse git diff: raw record at byte %d: bad status %q", start, f[4])
		}
		if e.Path, err = p.path("path"); err != nil {
			return e, err
		}
		e.OldPath = e.Path
	case 'R', 'C':
		if e.Score, err = strconv.Atoi(string(f[4][1:])); err != nil || e.Score < 0 || e.Score > 100 {
			return e, fmt.Errorf("parse git diff: raw record at byte %d: bad score %q", start, f[4])
		}
		if e.OldPath, err = p.path("rename source"); err != nil {
			return e, err
		}
		if e.Path, err = p.path("rename destination"); err != nil {
			return e, err
		}
	default:
		return e, fmt.Errorf("parse git diff: raw record at byte %d: unknown status %q", start, f[4])
	}
	return e, nil
}

func mode(b []byte) (uint32, error) {
	if len(b) != 6 {
		return 0, fmt.Errorf("bad mode %q", b)
	}
	v, err := strconv.ParseUint(string(b), 8, 32)
	if err != nil {
		return 0, fmt.Errorf("bad mode %q", b)
	}
	return uint32(v), nil
}

func isHex(b []byte) bool {
	if len(b) != 40 && len(b) != 64 {
		return false
	}
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
