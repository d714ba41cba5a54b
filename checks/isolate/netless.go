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
	// RequireLandlock refuses to run (ErrUnavailable) when the kernel
	// cannot confine the filesystem with Landlock. Without it such a
	// machine runs commands unconfined on the filesystem and every Result
	// says so in Isolation.
	RequireLandlock bool
	// AllowUnixSockets lets commands create AF_UNIX sockets. By default a
	// seccomp filter refuses them (EPERM) wherever Landlock confines the
	// command: a network namespace does not hide the host's pathname
	// sockets (Docker's, systemd's, a database's), and Landlock before ABI
	// 9 does not govern connecting to them. Tests that listen on unix
	// sockets need it.
	AllowUnixSockets bool
	// TestExec is the absolute path of a program whose main calls
	// TestExecMain when IsTestExec (cmd/agentgate: the agentgate binary).
	// With it, and Landlock, the Go test binaries of a Cmd with
	// TestBinaries run through it (`go test -exec`) in a Landlock domain
	// nested in the command's that has no access to the shared Go build
	// cache, and with a private GOCACHE: the test code cannot plant build
	// or test-cache entries that later evaluations would trust, nor read
	// other repositories' compiled packages. The go command itself keeps
	// the shared cache.
	TestExec string
}

// Netless runs commands in fresh network and PID namespaces (no network:
// only a down loopback exists) with an allowlisted environment, and kills
// the whole namespace at the time limit.
type Netless struct {
	opts Options

	once      sync.Once
	mode      string // namespaces: "netns+pidns", "userns+netns+pidns", "none"; "" when unavailable
	iso       string // what Results report: mode plus the filesystem confinement
	probeErr  error
	env       []string
	pathValue string
	llABI     int   // the kernel's Landlock ABI, when usable
	llErr     error // why Landlock is not used; nil when it is
	lastCap   int
	system    fsPolicy // the system paths of every policy, classified once
	goroot    string
	goBinDir  string
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
// error (wrapping ErrUnavailable) when it would refuse to run. With
// Landlock it ends in "+landlock-abiN" (N the kernel's Landlock ABI);
// without, it says "(no filesystem confinement: why)".
func (n *Netless) Isolation() (string, error) {
	n.once.Do(n.init)
	if n.mode == "" {
		return "", n.probeErr
	}
	return n.iso, nil
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
		return
	}
	goenv, gobin, _ := hostGo() // baseEnv succeeded, so this did too
	n.goroot, n.goBinDir = goenv["GOROOT"], filepath.Dir(gobin)
	n.llABI, n.llErr = landlockProbeFunc()
	if n.llErr == nil {
		if n.lastCap, err = capLastCap(); err != nil {
			n.llErr = fmt.Errorf("read cap_last_cap: %v", err)
		}
	}
	switch {
	case n.llErr == nil && n.mode == "none":
		n.iso = fmt.Sprintf("landlock-abi%d", n.llABI) + n.setupSocketFilter()
	case n.llErr == nil:
		n.iso = fmt.Sprintf("%s+landlock-abi%d", n.mode, n.llABI) + n.setupSocketFilter()
	case n.opts.RequireLandlock:
		n.mode = ""
		n.probeErr = fmt.Errorf("%w: filesystem confinement is required but Landlock is unusable: %v", ErrUnavailable, n.llErr)
	case n.mode == "none":
		n.iso = "none"
	default:
		n.iso = fmt.Sprintf("%s (no filesystem confinement: %v)", n.mode, n.llErr)
	}
	if n.llErr == nil {
		addPaths(&n.system.roDirs, &n.system.roFiles, systemReadDirs...)
		addPaths(&n.system.roDirs, &n.system.roFiles, systemReadFiles...)
		addPaths(&n.system.roDirs, &n.system.roFiles, n.goroot, n.goBinDir)
		addPaths(&n.system.rwDirs, &n.system.rwFiles, systemWriteFiles...)
		// The go command must be able to write its build cache; under
		// Landlock it could not create a missing one.
		if c := envValue(n.env, "GOCACHE"); filepath.IsAbs(c) {
			_ = os.MkdirAll(c, 0o755)
		}
	}
}

// setupSocketFilter builds the unix-socket filter every confined command
// gets (unless unix sockets are allowed) and returns what it adds to the
// isolation: "+no-unix-sockets", or why host unix sockets stay reachable.
func (n *Netless) setupSocketFilter() string {
	if n.opts.AllowUnixSockets {
		return " (unix sockets allowed)"
	}
	f, err := socketFilterFor()
	if err != nil {
		return fmt.Sprintf(" (host unix sockets reachable: %v)", err)
	}
	n.system.socketFilter = f
	return "+no-unix-sockets"
}

// Run implements Runner.
func (n *Netless) Run(ctx context.Context, c Cmd) (Result, error) {
	iso, err := n.Isolation()
	if err != nil {
		return Result{}, err
	}
	mode := n.mode
	if c.Dir == "" {
		return Result{}, errors.New("isolate: Cmd.Dir is required (the directory of the code to run)")
	}
	for _, p := range append(append([]string{c.Dir}, c.Writable...), c.ReadOnly...) {
		if p != "" && !filepath.IsAbs(p) {
			return Result{}, fmt.Errorf("isolate: path %q must be absolute", p)
		}
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
	scratch := c.ScratchDir
	if scratch != "" {
		if !filepath.IsAbs(scratch) || filepath.Dir(filepath.Clean(scratch)) == filepath.Clean(scratch) {
			return Result{}, fmt.Errorf("isolate: ScratchDir %q must be an absolute path below a directory", scratch)
		}
		if err := os.RemoveAll(scratch); err != nil {
			return Result{}, fmt.Errorf("isolate: empty scratch dir: %w", err)
		}
		if err := os.MkdirAll(scratch, 0o700); err != nil {
			return Result{}, fmt.Errorf("isolate: make scratch dir: %w", err)
		}
	} else if scratch, err = os.MkdirTemp(n.opts.TempDir, "agentgate-run-"); err != nil {
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
	var pol *fsPolicy
	if n.llErr == nil {
		pol = n.policy(c, prog, scratch, env)
		if c.TestBinaries && n.opts.TestExec != "" {
			if !filepath.IsAbs(n.opts.TestExec) || strings.ContainsAny(n.opts.TestExec, " \t\n'\"") {
				return Result{}, fmt.Errorf("isolate: TestExec %q must be an absolute path without spaces or quotes", n.opts.TestExec)
			}
			addPaths(&pol.roDirs, &pol.roFiles, n.opts.TestExec)
			extra, err := n.testExecSetup(pol, env, scratch, envValue(env, "GOCACHE"))
			if err != nil {
				return Result{}, fmt.Errorf("isolate: test-binary domain: %w", err)
			}
			env = mergeEnv(env, extra)
			if filepath.Base(prog) == "go" {
				iso += "+test-binary-domain"
			} else {
				// GOFLAGS reaches a go test the command starts, unless the
				// command (the change's own script) resets it.
				iso += "+test-binary-domain-via-GOFLAGS"
			}
		}
	}
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
	var done <-chan error
	if pol != nil {
		done, err = startConfined(cmd, pol)
	} else {
		err = cmd.Start()
		if err == nil {
			ch := make(chan error, 1)
			go func() { ch <- cmd.Wait() }()
			done = ch
		}
	}
	if err != nil {
		return Result{}, fmt.Errorf("isolate: start %s: %w", c.Path, err)
	}
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
	res := Result{Duration: time.Since(start), Isolation: iso, ExitCode: -1}
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

// landlockProbeFunc is replaced in tests to simulate a kernel without
// Landlock.
var landlockProbeFunc = probeLandlock

// System paths every command may read (and execute): what a Go toolchain,
// a C compiler for cgo, a shell and tests need. Not /etc as a whole (a
// gate host keeps secrets there), not /home, /root, /var, /srv, /tmp.
// Missing paths are skipped.
var (
	systemReadDirs = []string{
		"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
		"/proc",
		"/sys/fs/cgroup", "/sys/kernel/mm/transparent_hugepage", "/sys/devices/system/cpu", "/sys/devices/system/node",
		"/etc/ssl/certs", "/etc/pki/tls/certs", "/etc/pki/ca-trust/extracted", "/etc/ld.so.conf.d",
	}
	systemReadFiles = []string{
		"/etc/passwd", "/etc/group", "/etc/hosts", "/etc/host.conf", "/etc/nsswitch.conf", "/etc/resolv.conf",
		"/etc/gai.conf", "/etc/services", "/etc/protocols", "/etc/localtime", "/etc/mime.types",
		"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ssl/cert.pem", "/etc/ssl/ca-bundle.pem", "/etc/gitconfig",
		"/dev/random", "/dev/urandom",
	}
	systemWriteFiles = []string{"/dev/null", "/dev/zero", "/dev/full"}
)

// policy is the filesystem confinement of one command: the system paths,
// GOROOT and the go command's directory, the module cache (read-only),
// the program itself and c.ReadOnly may be read; c.Dir, c.Writable, the
// per-run scratch dir (HOME, TMPDIR) and the build cache may be written.
func (n *Netless) policy(c Cmd, prog, scratch string, env []string) *fsPolicy {
	p := &fsPolicy{abi: n.llABI, lastCap: n.lastCap, dropCap: os.Geteuid() == 0, procWrite: n.mode == "userns+netns+pidns",
		socketFilter: n.system.socketFilter}
	p.roDirs = append(p.roDirs, n.system.roDirs...)
	p.roFiles = append(p.roFiles, n.system.roFiles...)
	p.rwFiles = append(p.rwFiles, n.system.rwFiles...)
	addPaths(&p.roDirs, &p.roFiles, envValue(env, "GOMODCACHE"), prog)
	addPaths(&p.roDirs, &p.roFiles, c.ReadOnly...)
	addPaths(&p.rwDirs, &p.rwFiles, scratch, envValue(env, "GOCACHE"), c.Dir)
	addPaths(&p.rwDirs, &p.rwFiles, c.Writable...)
	return p
}

// addPaths sorts the absolute paths that exist into directories and
// files; absent ones grant nothing.
func addPaths(dirs, files *[]string, paths ...string) {
	for _, path := range paths {
		if path == "" || !filepath.IsAbs(path) {
			continue
		}
		st, err := os.Stat(path)
		switch {
		case err != nil:
		case st.IsDir():
			*dirs = append(*dirs, path)
		default:
			*files = append(*files, path)
		}
	}
}

// envValue is the value of key in a KEY=VALUE list (the last one wins).
func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

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
