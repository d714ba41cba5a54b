package isolate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Defaults of a Netless runner.
const (
	DefaultTimeout   = 10 * time.Minute
	DefaultMaxOutput = 64 << 20
)

// Options configure a Netless runner.
type Options struct {
	// Timeout is the default wall-clock limit of a command (DefaultTimeout
	// when 0).
	Timeout time.Duration
	// MaxOutput is the default cap per output stream (DefaultMaxOutput
	// when 0).
	MaxOutput int64
	// AllowUnisolated lets commands run without isolation when the machine
	// cannot provide it. Only tests and explicit operator opt-ins set it;
	// every Result then says Isolation "none".
	AllowUnisolated bool
	// GoEnv overrides the Go cache locations passed to commands (keys
	// GOPATH, GOMODCACHE, GOCACHE). Unset keys come from the host's
	// `go env`, so caches stay warm across evaluations.
	GoEnv map[string]string
	// TempDir is where per-command HOME and TMPDIR directories are made
	// (os.TempDir() when empty).
	TempDir string
}

// Netless runs commands in fresh network and PID namespaces (no network:
// only a down loopback exists) with an allowlisted environment, and kills
// the whole namespace at the time limit.
type Netless struct {
	opts Options

	once      sync.Once
	mode      string // isolation name, "" when unavailable
	probeErr  error
	env       []string
	pathValue string
}

// NewNetless returns a runner. Probing happens on first use.
func NewNetless(opts Options) *Netless {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxOutput <= 0 {
		opts.MaxOutput = DefaultMaxOutput
	}
	return &Netless{opts: opts}
}

// Isolation reports what the runner will confine commands with, or an
// error (wrapping ErrUnavailable) when it would refuse to run.
func (n *Netless) Isolation() (string, error) {
	n.once.Do(n.init)
	if n.mode == "" {
		return "", n.probeErr
	}
	return n.mode, nil
}

func (n *Netless) init() {
	n.env, n.pathValue, n.probeErr = baseEnv(n.opts.GoEnv)
	if n.probeErr != nil {
		n.probeErr = fmt.Errorf("%w: %v", ErrUnavailable, n.probeErr)
		return
	}
	mode, err := probeFunc()
	switch {
	case err == nil:
		n.mode = mode
	case n.opts.AllowUnisolated:
		n.mode = "none"
	default:
		n.probeErr = fmt.Errorf("%w: cannot create network namespaces here (%v); run as root or enable unprivileged user namespaces, or use a sandbox runner", ErrUnavailable, err)
	}
}

// Run implements Runner.
func (n *Netless) Run(ctx context.Context, c Cmd) (Result, error) {
	mode, err := n.Isolation()
	if err != nil {
		return Result{}, err
	}
	if c.Dir == "" {
		return Result{}, errors.New("isolate: Cmd.Dir is required (the directory of the code to run)")
	}
	prog, err := lookPath(c.Path, n.pathValue)
	if err != nil {
		return Result{}, err
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = n.opts.Timeout
	}
	maxOut := c.MaxOutput
	if maxOut <= 0 {
		maxOut = n.opts.MaxOutput
	}
	scratch, err := os.MkdirTemp(n.opts.TempDir, "agentgate-run-")
	if err != nil {
		return Result{}, fmt.Errorf("isolate: make scratch dir: %w", err)
	}
	defer os.RemoveAll(scratch)
	home := filepath.Join(scratch, "home")
	tmp := filepath.Join(scratch, "tmp")
	for _, d := range []string{home, tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return Result{}, fmt.Errorf("isolate: make scratch dir: %w", err)
		}
	}

	env := mergeEnv(n.env, []string{"HOME=" + home, "TMPDIR=" + tmp}, c.Env)
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := exec.Command(prog, c.Args...)
	cmd.Dir = c.Dir
	cmd.Env = env
	cmd.Stdin = c.Stdin
	stdout := &capped{max: maxOut}
	stderr := &capped{max: maxOut}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	configure(cmd, mode)
	// Without a PID namespace a detached grandchild could hold the output
	// pipes open forever; stop waiting for them shortly after the leader.
	cmd.WaitDelay = 5 * time.Second

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("isolate: start %s: %w", c.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var waitErr error
	killed, waited := false, true
	select {
	case waitErr = <-done:
	case <-runCtx.Done():
		killed = true
		killTree(cmd)
		select {
		case waitErr = <-done:
		case <-time.After(15 * time.Second):
			waited = false
			waitErr = errors.New("process did not exit after SIGKILL")
		}
	}
	res := Result{Duration: time.Since(start), Isolation: mode, ExitCode: -1}
	if waited {
		// Only after Wait returned are the output buffers no longer written.
		res.Stdout, res.Stderr = stdout.buf, stderr.buf
		res.StdoutTruncated, res.StderrTruncated = stdout.truncated, stderr.truncated
		if cmd.ProcessState != nil {
			res.ExitCode = cmd.ProcessState.ExitCode()
		}
	}
	// Whatever the leader did, nothing it started may outlive the run.
	killTree(cmd)
	if killed {
		if ctx.Err() != nil {
			return res, fmt.Errorf("isolate: %s cancelled: %w", c.Path, ctx.Err())
		}
		return res, fmt.Errorf("isolate: %s killed after %s: %w", c.Path, timeout, ErrTimeout)
	}
	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) {
		return res, fmt.Errorf("isolate: %s: %w", c.Path, waitErr)
	}
	return res, nil
}

// lookPath resolves prog against the runner's PATH, not the caller's.
func lookPath(prog, pathValue string) (string, error) {
	if prog == "" {
		return "", errors.New("isolate: Cmd.Path is empty")
	}
	if strings.Contains(prog, "/") {
		if !filepath.IsAbs(prog) {
			return "", fmt.Errorf("isolate: program %q must be absolute or a bare name", prog)
		}
		return prog, nil
	}
	for _, dir := range filepath.SplitList(pathValue) {
		p := filepath.Join(dir, prog)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("isolate: %q not found in %s", prog, pathValue)
}

// mergeEnv applies later KEY=VALUE lists over earlier ones.
func mergeEnv(lists ...[]string) []string {
	idx := map[string]int{}
	var out []string
	for _, l := range lists {
		for _, kv := range l {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := idx[k]; ok {
				out[i] = kv
				continue
			}
			idx[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

// probeFunc is replaced in tests to simulate a machine without namespaces.
var probeFunc = probe

var (
	hostGoOnce sync.Once
	hostGoEnv  map[string]string
	hostGoErr  error
	hostGoBin  string
)

// hostGo reads the host's Go cache locations once.
func hostGo() (map[string]string, string, error) {
	hostGoOnce.Do(func() {
		hostGoBin, hostGoErr = exec.LookPath("go")
		if hostGoErr != nil {
			hostGoErr = fmt.Errorf("the go command is not on PATH: %w", hostGoErr)
			return
		}
		var out bytes.Buffer
		cmd := exec.Command(hostGoBin, "env", "-json", "GOPATH", "GOMODCACHE", "GOCACHE", "GOROOT")
		cmd.Stdout = &out
		if err := cmd.Run(); err != nil {
			hostGoErr = fmt.Errorf("go env: %w", err)
			return
		}
		hostGoErr = json.Unmarshal(out.Bytes(), &hostGoEnv)
	})
	return hostGoEnv, hostGoBin, hostGoErr
}

// baseEnv is the allowlisted environment every command starts from.
func baseEnv(over map[string]string) ([]string, string, error) {
	goenv, gobin, err := hostGo()
	if err != nil {
		return nil, "", err
	}
	get := func(k string) string {
		if v, ok := over[k]; ok {
			return v
		}
		return goenv[k]
	}
	path := strings.Join([]string{filepath.Join(goenv["GOROOT"], "bin"), filepath.Dir(gobin), "/usr/local/bin", "/usr/bin", "/bin"}, string(os.PathListSeparator))
	env := []string{
		"PATH=" + path,
		"GOPATH=" + get("GOPATH"),
		"GOMODCACHE=" + get("GOMODCACHE"),
		"GOCACHE=" + get("GOCACHE"),
		"GOPROXY=off",           // no module downloads: everything must be in the module cache
		"GOTOOLCHAIN=local",     // never fetch another toolchain
		"GOFLAGS=-mod=readonly", // go.mod/go.sum are inputs, not outputs
		"GOENV=off",             // ignore the host user's go env file
		"GOWORK=off",            // a go.work in the repository must not pull in outside code
		"GONOSUMDB=", "GOPRIVATE=", "GOINSECURE=",
		"LC_ALL=C",
	}
	if v, ok := os.LookupEnv("CGO_ENABLED"); ok {
		env = append(env, "CGO_ENABLED="+v)
	}
	return env, path, nil
}
