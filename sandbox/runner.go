package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CodeRunner runs commands on untrusted code (`go list`, `go test`, `go
// vet`) inside a sandbox, for the checks. Its Run method has the shape of
// checks/isolate.Runner, so the checks package plugs it in with a field
// copy (see RunCode). The code must be inside the volume: CopyIn puts it
// there. Program names are wrapper names: "go" runs the allowlisted "go"
// wrapper, never a binary found in a PATH.
type CodeRunner struct {
	D Driver
	// Volume is the volume's mount point (Policy.Volume.MountPoint).
	Volume string
	// Timeout and MaxOutput are defaults (10 minutes, 64 MiB).
	Timeout   time.Duration
	MaxOutput int64
	// Exec runs cp/chown for CopyIn (OSExecutor by default).
	Exec Executor
	// UID and GID own the copied code (the sandbox identity).
	UID, GID int
}

// CodeCmd mirrors checks/isolate.Cmd.
type CodeCmd struct {
	Path      string
	Args      []string
	Dir       string // absolute, inside the volume
	Env       []string
	Stdin     io.Reader
	Timeout   time.Duration
	MaxOutput int64
}

// CodeResult mirrors checks/isolate.Result, plus the sandbox's own result.
type CodeResult struct {
	ExitCode        int
	Stdout          []byte
	Stderr          []byte
	StdoutTruncated bool
	StderrTruncated bool
	Duration        time.Duration
	Isolation       string
	Sandbox         Result
}

// ErrCodeTimeout is returned when a command hit its wall clock.
var ErrCodeTimeout = errors.New("time limit exceeded")

type capWriter struct {
	max       int64
	buf       bytes.Buffer
	truncated bool
}

func (c *capWriter) Write(p []byte) (int, error) {
	room := c.max - int64(c.buf.Len())
	if room < int64(len(p)) {
		c.truncated = true
		if room > 0 {
			c.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return c.buf.Write(p)
}

// RunCode runs one command. A command that ran and failed is a result
// with a non-zero exit, not an error; refusals, start failures and time
// limits are errors (ErrCodeTimeout for the latter), as isolate expects.
func (r *CodeRunner) RunCode(ctx context.Context, c CodeCmd) (CodeResult, error) {
	var res CodeResult
	name := filepath.Base(c.Path)
	dir := filepath.Clean(c.Dir)
	if !filepath.IsAbs(dir) || !under(dir, r.Volume) {
		return res, fmt.Errorf("sandbox runner: %s is not inside the volume %s; copy the code in with CopyIn", c.Dir, r.Volume)
	}
	rel, _ := filepath.Rel(r.Volume, dir)
	env := map[string]string{}
	for _, kv := range c.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return res, fmt.Errorf("sandbox runner: environment entry %q is not KEY=VALUE", kv)
		}
		env[k] = v
	}
	maxOut := c.MaxOutput
	if maxOut <= 0 {
		maxOut = r.MaxOutput
	}
	if maxOut <= 0 {
		maxOut = 64 << 20
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = r.Timeout
	}
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	stdout, stderr := &capWriter{max: maxOut}, &capWriter{max: maxOut}
	sr, err := r.D.Run(ctx, RunSpec{Wrapper: name, Args: c.Args, Dir: rel, Env: env, Stdin: c.Stdin,
		Stdout: stdout, Stderr: stderr, Timeout: timeout})
	res = CodeResult{ExitCode: sr.ExitCode, Stdout: stdout.buf.Bytes(), Stderr: stderr.buf.Bytes(),
		StdoutTruncated: stdout.truncated, StderrTruncated: stderr.truncated, Duration: sr.Duration,
		Isolation: "sandbox:" + sr.Capabilities.OS, Sandbox: sr}
	if err != nil {
		return res, err
	}
	if sr.Hit(LimitWall) {
		return res, fmt.Errorf("sandbox runner: %s: %w (%v)", name, ErrCodeTimeout, timeout)
	}
	return res, nil
}

// CopyIn copies a host directory of code into the volume at rel (which must
// not exist yet), owned by the sandbox identity, and returns the absolute
// path. Symlinks are copied as links, never followed. Call it while no
// sandbox process runs (after Kill), so nothing in the volume can race it.
func (r *CodeRunner) CopyIn(ctx context.Context, src, rel string) (string, error) {
	ex := r.Exec
	if ex == nil {
		ex = OSExecutor{}
	}
	clean := filepath.Clean(rel)
	if filepath.IsAbs(rel) || clean == "." || strings.HasPrefix(clean, "..") {
		return "", fmt.Errorf("sandbox runner: %q must be a path inside the volume", rel)
	}
	if err := r.D.Kill(ctx); err != nil {
		return "", fmt.Errorf("sandbox runner: %w", err)
	}
	// The parent must be a real directory, not an agent symlink.
	parent := filepath.Join(r.Volume, filepath.Dir(clean))
	pf, err := openBeneath(r.Volume, filepath.Dir(clean))
	if filepath.Dir(clean) == "." {
		pf, err = os.Open(r.Volume)
	}
	if err != nil {
		return "", fmt.Errorf("sandbox runner: %w", err)
	}
	fi, err := pf.Stat()
	pf.Close()
	if err != nil || !fi.IsDir() {
		return "", fmt.Errorf("sandbox runner: %s is not a directory", parent)
	}
	dst := filepath.Join(r.Volume, clean)
	if _, err := os.Lstat(dst); err == nil {
		return "", fmt.Errorf("sandbox runner: %s already exists", dst)
	}
	if _, err := ex.Run(ctx, Cmd{Path: "cp", Args: []string{"-R", "-P", "--preserve=mode,timestamps", "--", src, dst}}); err != nil {
		return "", fmt.Errorf("sandbox runner: copying in: %w", err)
	}
	if _, err := ex.Run(ctx, Cmd{Path: "chown", Args: []string{"-R", "-h", fmt.Sprintf("%d:%d", r.UID, r.GID), "--", dst}}); err != nil {
		return "", fmt.Errorf("sandbox runner: %w", err)
	}
	return dst, nil
}
