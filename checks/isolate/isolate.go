package isolate

import (
	"context"
	"errors"
	"io"
	"time"
)

// Cmd is one command to run on untrusted code.
type Cmd struct {
	// Path is the program: an absolute path, or a name looked up in the
	// runner's own PATH (never the caller's).
	Path string
	// Args are the arguments after the program name.
	Args []string
	// Dir is the working directory; it must exist. Under Landlock the
	// command may read and write it.
	Dir string
	// Writable are more absolute paths (directories or files) the command
	// may read and write under Landlock: the exported work tree's root
	// when Dir is a module inside it, the tree's scratch dir for outputs.
	// Everything else outside the runner's fixed allowlist is denied.
	// Empty entries are ignored; relative ones are refused.
	Writable []string
	// ReadOnly are more absolute paths the command may only read (and
	// execute), e.g. the vulnerability database.
	ReadOnly []string
	// Env holds extra KEY=VALUE entries added to the runner's allowlisted
	// environment (they override it). Only trusted callers set these.
	Env []string
	// Stdin is the standard input; nil means empty.
	Stdin io.Reader
	// Timeout bounds the wall clock; 0 means the runner's default.
	Timeout time.Duration
	// MaxOutput caps each of stdout and stderr in bytes; 0 means the
	// runner's default. Output past the cap is dropped and flagged.
	MaxOutput int64
	// TestBinaries marks a command that runs Go test binaries (`go
	// test`): with Options.TestExec they run in their own, narrower
	// domain (see there).
	TestBinaries bool
	// ScratchDir, when set (absolute), is where the runner makes the
	// command's HOME and TMPDIR, emptied before and removed after the run;
	// by default a fresh temp dir. A stable path keeps `go test` results
	// cacheable for tests that read TMPDIR or HOME (t.TempDir does): the
	// test cache keys on the values of the variables a test reads.
	ScratchDir string
}

// Result is what a finished command left behind.
type Result struct {
	ExitCode        int
	Stdout          []byte
	Stderr          []byte
	StdoutTruncated bool
	StderrTruncated bool
	Duration        time.Duration
	// Isolation names what confined the command, e.g. "netns+pidns" or
	// "none" for an explicitly allowed unisolated run. Reports carry it.
	Isolation string
}

// Runner runs a command on untrusted code. Run returns an error when the
// command could not be started, was refused, or was killed (time limit or
// cancelled context); a command that ran and exited non-zero is not an
// error: look at ExitCode.
type Runner interface {
	Run(ctx context.Context, c Cmd) (Result, error)
}

// Errors callers may test with errors.Is.
var (
	// ErrUnavailable: the runner cannot isolate on this machine and
	// unisolated runs were not allowed.
	ErrUnavailable = errors.New("isolation unavailable")
	// ErrTimeout: the command hit its time limit and was killed.
	ErrTimeout = errors.New("time limit exceeded")
)

// capped keeps the first max bytes written and counts the rest.
type capped struct {
	max       int64
	buf       []byte
	truncated bool
}

func (c *capped) Write(p []byte) (int, error) {
	room := c.max - int64(len(c.buf))
	if room <= 0 {
		if len(p) > 0 {
			c.truncated = true
		}
		return len(p), nil
	}
	if int64(len(p)) > room {
		c.buf = append(c.buf, p[:room]...)
		c.truncated = true
		return len(p), nil
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}
