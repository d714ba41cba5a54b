package gitcli

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Ident is a commit's author or committer.
type Ident struct {
	Name  string
	Email string
	When  time.Time
}

// Trailer is one "Key: value" line of a commit message's trailer block.
type Trailer struct {
	Key   string
	Value string
}

// Commit is one parsed commit object.
type Commit struct {
	SHA       string
	Tree      string
	Parents   []string
	Author    Ident
	Committer Ident
	Message   string // the full message (subject, body, trailers)
	Trailers  []Trailer
}

// Trailer returns the value of the last trailer named key (case-insensitive).
func (c *Commit) Trailer(key string) (string, bool) {
	for i := len(c.Trailers) - 1; i >= 0; i-- {
		if strings.EqualFold(c.Trailers[i].Key, key) {
			return c.Trailers[i].Value, true
		}
	}
	return "", false
}

// MaxLogCommits bounds Log: a range longer than this is an error rather
// than an unbounded read.
const MaxLogCommits = 100000

// Log returns the commits reachable from to but not from from (from..to),
// newest first. An empty from means all ancestors of to.
func Log(ctx context.Context, repo, from, to string) ([]Commit, error) {
	rng := to
	if from != "" {
		rng = from + ".." + to
	}
	out, err := Run(ctx, repo, "rev-list", "--max-count="+strconv.Itoa(MaxLogCommits+1), "--end-of-options", rng)
	if err != nil {
		return nil, fmt.Errorf("list commits %s: %w", rng, err)
	}
	shas := strings.Fields(string(out))
	if len(shas) > MaxLogCommits {
		return nil, fmt.Errorf("list commits %s: more than %d commits", rng, MaxLogCommits)
	}
	if len(shas) == 0 {
		return nil, nil
	}
	b, err := startBatch(ctx, repo)
	if err != nil {
		return nil, err
	}
	defer b.close()
	commits := make([]Commit, 0, len(shas))
	for _, sha := range shas {
		if !IsSHA(sha) {
			return nil, fmt.Errorf("list commits %s: unexpected rev-list output %q", rng, sha)
		}
		typ, data, err := b.object(sha, 64<<20)
		if err != nil {
			return nil, fmt.Errorf("read commit %s: %w", short(sha), err)
		}
		if typ != "commit" {
			return nil, fmt.Errorf("read commit %s: object is a %s", short(sha), typ)
		}
		c, err := ParseCommit(sha, data)
		if err != nil {
			return nil, err
		}
		commits = append(commits, c)
	}
	return commits, nil
}

// ParseCommit parses a raw commit object (as `git cat-file commit` prints).
func ParseCommit(sha string, data []byte) (Commit, error) {
	c := Commit{SHA: sha}
	headers, msg, ok := bytes.Cut(data, []byte("\n\n"))
	if !ok {
		headers, msg = bytes.TrimSuffix(data, []byte("\n")), nil
	}
	for _, line := range bytes.Split(headers, []byte("\n")) {
		if len(line) == 0 || line[0] == ' ' { // continuation of gpgsig/mergetag
			continue
		}
		k, v, _ := bytes.Cut(line, []byte(" "))
		switch string(k) {
		case "tree":
			c.Tree = string(v)
		case "parent":
			c.Parents = append(c.Parents, string(v))
		case "author":
			c.Author = parseIdent(string(v))
		case "committer":
			c.Committer = parseIdent(string(v))
		}
	}
	if !isHex([]byte(c.Tree)) {
		return c, fmt.Errorf("read commit %s: no tree header", short(sha))
	}
	c.Message = string(msg)
	c.Trailers = ParseTrailers(c.Message)
	return c, nil
}

func parseIdent(s string) Ident {
	var id Ident
	lt, gt := strings.IndexByte(s, '<'), strings.LastIndexByte(s, '>')
	if lt < 0 || gt < lt {
		id.Name = strings.TrimSpace(s)
		return id
	}
	id.Name = strings.TrimSpace(s[:lt])
	id.Email = s[lt+1 : gt]
	f := strings.Fields(s[gt+1:])
	if len(f) >= 1 {
		if secs, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			id.When = time.Unix(secs, 0).UTC()
			if len(f) >= 2 && len(f[1]) == 5 {
				if off, err := strconv.Atoi(f[1][1:]); err == nil {
					sec := (off/100)*3600 + (off%100)*60
					if f[1][0] == '-' {
						sec = -sec
					}
					id.When = id.When.In(time.FixedZone(f[1], sec))
				}
			}
		}
	}
	return id
}

var trailerRE = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9-]*)\s*:\s?(.*)$`)

// ParseTrailers returns the trailers of a commit message: the last
// paragraph, when every line of it is a "Key: value" line or a continuation
// (a line starting with whitespace) of one. This is stricter than git's own
// heuristic, on purpose: a paragraph of prose is never read as trailers.
func ParseTrailers(msg string) []Trailer {
	msg = strings.TrimRight(msg, "\n \t")
	paras := strings.Split(msg, "\n\n")
	if len(paras) < 2 { // the subject line alone has no trailers
		return nil
	}
	last := strings.Trim(paras[len(paras)-1], "\n")
	var out []Trailer
	for _, line := range strings.Split(last, "\n") {
		line = strings.TrimRight(line, " \t\r")
		if line != "" && (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			out[len(out)-1].Value += " " + strings.TrimSpace(line)
			continue
		}
		m := trailerRE.FindStringSubmatch(line)
		if m == nil {
			return nil
		}
		out = append(out, Trailer{Key: m[1], Value: strings.TrimSpace(m[2])})
	}
	return out
}
