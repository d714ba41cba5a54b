package tests

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Counts are statement counts.
type Counts struct {
	Covered int64 `json:"covered"`
	Total   int64 `json:"total"`
}

// Add sums counts.
func (c Counts) Add(o Counts) Counts { return Counts{c.Covered + o.Covered, c.Total + o.Total} }

// Percent is the covered share in percent; ok is false with no statements.
func (c Counts) Percent() (float64, bool) {
	if c.Total == 0 {
		return 0, false
	}
	return 100 * float64(c.Covered) / float64(c.Total), true
}

// Profile is a parsed coverage profile: statement counts per file (the
// file as the profile names it, "importpath/file.go").
type Profile struct {
	Mode  string            `json:"mode"`
	Files map[string]Counts `json:"files"`
}

// Limits of the profile parser.
const (
	maxProfileLines = 10 << 20
	maxProfileFiles = 200000
)

type blockKey struct {
	file string
	pos  string
}

// ParseProfile reads a Go coverage profile (`-coverprofile`). Blocks that
// appear more than once (several test binaries covering one package) are
// merged: a block is covered if any run covered it.
func ParseProfile(r io.Reader) (*Profile, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	p := &Profile{Files: map[string]Counts{}}
	type block struct {
		stmts   int64
		covered bool
	}
	blocks := map[blockKey]*block{}
	var order []blockKey
	n := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		n++
		if n > maxProfileLines {
			return nil, fmt.Errorf("coverage profile has more than %d lines", maxProfileLines)
		}
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "mode:") {
			mode := strings.TrimSpace(strings.TrimPrefix(line, "mode:"))
			switch mode {
			case "set", "count", "atomic":
			default:
				return nil, fmt.Errorf("coverage profile line %d: unknown mode %q", n, mode)
			}
			if p.Mode != "" && p.Mode != mode {
				return nil, fmt.Errorf("coverage profile line %d: mode %q after %q", n, mode, p.Mode)
			}
			p.Mode = mode
			continue
		}
		if p.Mode == "" {
			return nil, fmt.Errorf("coverage profile line %d: block before the mode line", n)
		}
		// file.go:l1.c1,l2.c2 numStmt count
		colon := strings.LastIndex(line, ":")
		if colon <= 0 {
			return nil, fmt.Errorf("coverage profile line %d: no file name", n)
		}
		file, rest := line[:colon], line[colon+1:]
		fields := strings.Fields(rest)
		if len(fields) != 3 || !validPos(fields[0]) {
			return nil, fmt.Errorf("coverage profile line %d: want \"file:l.c,l.c stmts count\"", n)
		}
		stmts, err1 := strconv.ParseInt(fields[1], 10, 32)
		count, err2 := strconv.ParseInt(fields[2], 10, 64)
		if err1 != nil || err2 != nil || stmts < 0 || count < 0 {
			return nil, fmt.Errorf("coverage profile line %d: bad counts", n)
		}
		k := blockKey{file, fields[0]}
		b := blocks[k]
		if b == nil {
			if len(p.Files) >= maxProfileFiles {
				if _, ok := p.Files[file]; !ok {
					return nil, fmt.Errorf("coverage profile names more than %d files", maxProfileFiles)
				}
			}
			b = &block{stmts: stmts}
			blocks[k] = b
			order = append(order, k)
			if _, ok := p.Files[file]; !ok {
				p.Files[file] = Counts{}
			}
		}
		if count > 0 {
			b.covered = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read coverage profile: %w", err)
	}
	for _, k := range order {
		b := blocks[k]
		c := p.Files[k.file]
		c.Total += b.stmts
		if b.covered {
			c.Covered += b.stmts
		}
		p.Files[k.file] = c
	}
	return p, nil
}

// validPos checks "l.c,l.c".
func validPos(s string) bool {
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return false
	}
	for _, lc := range []string{a, b} {
		l, c, ok := strings.Cut(lc, ".")
		if !ok {
			return false
		}
		if _, err := strconv.ParseUint(l, 10, 32); err != nil {
			return false
		}
		if _, err := strconv.ParseUint(c, 10, 32); err != nil {
			return false
		}
	}
	return true
}

// Total sums all files.
func (p *Profile) Total() Counts {
	var t Counts
	for _, c := range p.Files {
		t = t.Add(c)
	}
	return t
}
