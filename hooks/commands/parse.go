package commands

import (
	"regexp"
	"strings"
)

// MaxBodyBytes bounds the comment body we parse; GitHub caps comments at
// 65536 characters, so anything larger is not a real comment.
const MaxBodyBytes = 256 << 10

// MaxCommandsPerComment bounds the work one comment can cause.
const MaxCommandsPerComment = 10

// commandLine is a line that looks like a command: a slash at column 0 and a
// command word. Arguments are checked by each handler's own regex.
var commandLine = regexp.MustCompile(`^/([A-Za-z][A-Za-z0-9-]*)(?:[ \t]+.*)?$`)

// Line is a command line found in a comment.
type Line struct {
	N    int    // 1-based line number in the body
	Name string // lower-cased command word without the slash
	Text string // the line, trailing spaces and \r trimmed
}

// Parse returns the command lines of a comment body: lines that start with
// "/word" at column 0 and lie outside fenced code blocks (``` or ~~~),
// block quotes (">"), indented code blocks (a command must start at column
// 0, so indentation never matches) and HTML comments. At most
// MaxCommandsPerComment lines are returned; an oversized body yields none.
func Parse(body string) []Line {
	if len(body) > MaxBodyBytes {
		return nil
	}
	var out []Line
	var fence string // the open fence marker ("```", "~~~~", ...), "" outside
	inHTMLComment := false
	for i, raw := range strings.Split(body, "\n") {
		line := strings.TrimRight(raw, " \t\r")
		trimmed := strings.TrimLeft(line, " ")
		indent := len(line) - len(trimmed)
		if fence != "" {
			// A closing fence: same character, at least as long, nothing after.
			if indent <= 3 && strings.HasPrefix(trimmed, fence) && strings.Trim(trimmed, fence[:1]) == "" {
				fence = ""
			}
			continue
		}
		if indent <= 3 {
			if f := fenceOpen(trimmed); f != "" {
				fence = f
				continue
			}
		}
		if inHTMLComment {
			if strings.Contains(line, "-->") {
				inHTMLComment = false
			}
			continue
		}
		if strings.HasPrefix(trimmed, "<!--") {
			if !strings.Contains(trimmed[4:], "-->") {
				inHTMLComment = true
			}
			continue
		}
		m := commandLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		out = append(out, Line{N: i + 1, Name: strings.ToLower(m[1]), Text: line})
		if len(out) == MaxCommandsPerComment {
			break
		}
	}
	return out
}

// fenceOpen returns the fence marker when s opens a fenced code block.
func fenceOpen(s string) string {
	for _, c := range []byte{'`', '~'} {
		n := 0
		for n < len(s) && s[n] == c {
			n++
		}
		if n >= 3 {
			if c == '`' && strings.ContainsRune(s[n:], '`') {
				return "" // not a fence: backticks in the info string
			}
			return s[:n]
		}
	}
	return ""
}
