//go:build linux

package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"

	"github.com/agentgate/agentgate/internal/seccompthread"
)

// InitEnv marks a process as the sandbox init. The driver sets it (and
// nothing else) in the environment of the re-executed binary.
const InitEnv = "AGENTGATE_SANDBOX_INIT"

// initConfig is what the host tells the init, over fd 3, once the init is
// in its cgroups. Reading it is also the start gate.
type initConfig struct {
	Volume      string   `json:"volume"`
	TmpDir      string   `json:"tmp_dir"`
	ReadPaths   []string `json:"read_paths"`
	Wrapper     string   `json:"wrapper"`
	WrapperHash string   `json:"wrapper_sha256"`
	Args        []string `json:"args"`
	Env         []string `json:"env"`
	Dir         string   `json:"dir"`
	UID         int      `json:"uid"`
	GID         int      `json:"gid"`
	Limits      Limits   `json:"limits"`
	AllowUnix   bool     `json:"allow_unix"`
	LandlockABI int      `json:"landlock_abi"`
	Hide        []string `json:"hide"`
}

// initResult is what the init reports, over fd 4, before it exits.
type initResult struct {
	Stage    string `json:"stage,omitempty"` // where a refusal happened
	Error    string `json:"error,omitempty"`
	ExitCode int    `json:"exit_code"`
	Signal   int    `json:"signal,omitempty"`
}

// IsInit reports whether this process was started as the sandbox init.
func IsInit() bool { return os.Getenv(InitEnv) == "1" }

// InitMain is the sandbox init: pid 1 of the new pid namespace. It applies
// the layers in order — private mounts, fresh /proc, hidden /run and
// /dev/shm, /tmp from the volume, rlimits, empty capability bounding set,
// no_new_privs, Landlock, seccomp — then starts the wrapper as the agent
// uid/gid with no supplementary groups and a clean environment, reaps every
// child, and exits when the wrapper does (which kills whatever is left in
// the namespace). Any failure refuses the run. It never returns.
func InitMain() {
	res := initResult{ExitCode: 126}
	resf := os.NewFile(4, "result")
	report := func() {
		if resf != nil {
			_ = json.NewEncoder(resf).Encode(res)
		}
	}
	if !IsInit() || os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "agentgate sandbox-init: internal command, started only by the sandbox driver")
		os.Exit(125)
	}
	// Everything below happens on this one OS thread; the Landlock domain
	// and seccomp filter are installed on it and the wrapper is forked
	// from it. The thread is never unlocked.
	runtime.LockOSThread()
	cfg, stage, err := readInitConfig()
	if err == nil {
		stage, err = applyLayers(cfg)
	}
	if err != nil {
		res.Stage, res.Error = stage, err.Error()
		report()
		os.Exit(125)
	}
	res = runWrapper(cfg)
	report()
	os.Exit(0)
}

func readInitConfig() (*initConfig, string, error) {
	f := os.NewFile(3, "config")
	if f == nil {
		return nil, "config", errors.New("no config fd")
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	f.Close()
	if err != nil {
		return nil, "config", err
	}
	var cfg initConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, "config", fmt.Errorf("the host closed the gate without a config (run aborted): %w", err)
	}
	return &cfg, "", nil
}

func applyLayers(cfg *initConfig) (string, error) {
	// Descriptors: nothing but 0-2 may reach the wrapper.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return "fds", fmt.Errorf("close_range: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return "mounts", fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "hidepid=2"); err != nil {
		return "mounts", fmt.Errorf("mounting a fresh /proc: %w", err)
	}
	for _, d := range cfg.Hide {
		fi, err := os.Lstat(d)
		if err != nil || !fi.IsDir() {
			continue // absent, or a symlink (/var/run -> /run) hidden through its target
		}
		if err := unix.Mount("tmpfs", d, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=4k,mode=0755"); err != nil {
			return "mounts", fmt.Errorf("hiding %s: %w", d, err)
		}
	}
	if err := unix.Mount(cfg.TmpDir, "/tmp", "", unix.MS_BIND, ""); err != nil {
		return "mounts", fmt.Errorf("binding %s over /tmp: %w", cfg.TmpDir, err)
	}
	if err := unix.Mount("", "/tmp", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return "mounts", fmt.Errorf("remounting /tmp nosuid,nodev: %w", err)
	}
	_ = unix.Sethostname([]byte("agentgate-sandbox"))

	l := cfg.Limits
	cpu := uint64(max(1, l.CPUTime/time.Second))
	for _, r := range []struct {
		res       int
		soft, max uint64
	}{
		{unix.RLIMIT_CORE, 0, 0},
		{unix.RLIMIT_NOFILE, uint64(l.OpenFiles), uint64(l.OpenFiles)},
		{unix.RLIMIT_FSIZE, uint64(l.FileSizeBytes), uint64(l.FileSizeBytes)},
		{unix.RLIMIT_CPU, cpu, cpu + 1},
		{unix.RLIMIT_NPROC, uint64(l.Pids), uint64(l.Pids)},
	} {
		if err := unix.Setrlimit(r.res, &unix.Rlimit{Cur: r.soft, Max: r.max}); err != nil {
			return "rlimits", fmt.Errorf("setrlimit %d: %w", r.res, err)
		}
	}

	// The wrapper is checked again here, after the mounts, just before use.
	if err := checkWrapperHash(cfg.Wrapper, cfg.WrapperHash); err != nil {
		return "wrapper", err
	}

	last, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return "capabilities", fmt.Errorf("reading cap_last_cap: %w", err)
	}
	lastCap, err := strconv.Atoi(strings.TrimSpace(string(last)))
	if err != nil {
		return "capabilities", fmt.Errorf("cap_last_cap: %w", err)
	}
	for c := 0; c <= lastCap; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return "capabilities", fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return "capabilities", fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return "no_new_privs", err
	}
	if err := restrictLandlock(cfg); err != nil {
		return "landlock", err
	}
	raw, err := SeccompProgram(cfg.AllowUnix)
	if err != nil {
		return "seccomp", err
	}
	if err := seccompthread.Load(raw); err != nil {
		return "seccomp", err
	}
	return "", nil
}

func checkWrapperHash(path, want string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrWrapperTampered, err)
	}
	defer f.Close()
	got, err := hashReader(f)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%w: %s changed between the host check and exec", ErrWrapperTampered, path)
	}
	return nil
}

// landlockConfig returns go-landlock's config for an exact ABI version;
// below 4 (no TCP rules) the sandbox refuses to run.
func landlockConfig(abi int) (landlock.Config, error) {
	cfgs := []landlock.Config{landlock.V4, landlock.V5, landlock.V6, landlock.V7, landlock.V8, landlock.V9, landlock.V10, landlock.V11}
	if abi < 4 {
		return landlock.Config{}, fmt.Errorf("%w: Landlock ABI %d has no TCP rules; need ABI 4 or later (Linux 6.7+)", ErrLayerMissing, abi)
	}
	if abi-4 >= len(cfgs) {
		abi = 4 + len(cfgs) - 1
	}
	return cfgs[abi-4], nil
}

// restrictLandlock enforces, on this thread: read (and execute) only the
// allowlist, read and write only the volume (with refer, so renames inside
// it work) and /dev/null, no TCP bind or connect (no port rule), and the
// ABI 6 scopes (abstract unix sockets, signals) when available. The config
// matches the kernel's ABI exactly: never best-effort.
func restrictLandlock(cfg *initConfig) error {
	c, err := landlockConfig(cfg.LandlockABI)
	if err != nil {
		return err
	}
	var dirs, files []string
	for _, p := range append(append([]string{}, cfg.ReadPaths...), "/proc") {
		fi, err := os.Stat(p)
		if err != nil {
			continue // absent paths (/lib32 on most hosts) grant nothing
		}
		if fi.IsDir() {
			dirs = append(dirs, p)
		} else {
			files = append(files, p)
		}
	}
	rules := []landlock.Rule{
		// /tmp is a bind mount of the volume's .tmp; Landlock judges paths by
		// walking up mounts, so the bind needs its own rule.
		landlock.RWDirs(cfg.Volume, "/tmp").WithRefer(),
		landlock.RWFiles("/dev/null"),
		landlock.ROFiles(cfg.Wrapper),
	}
	if len(dirs) > 0 {
		rules = append(rules, landlock.RODirs(dirs...))
	}
	if len(files) > 0 {
		rules = append(rules, landlock.ROFiles(files...))
	}
	fd, flags, err := c.NewRulesetFD(rules...)
	if err != nil {
		return fmt.Errorf("building the Landlock ruleset: %w", err)
	}
	if fd < 0 {
		return fmt.Errorf("%w: Landlock would restrict nothing", ErrLayerMissing)
	}
	defer unix.Close(fd)
	if err := ll.LandlockRestrictSelf(fd, flags); err != nil {
		return fmt.Errorf("landlock_restrict_self: %w", err)
	}
	return nil
}

func runWrapper(cfg *initConfig) initResult {
	cmd := exec.Command(cfg.Wrapper, cfg.Args...)
	cmd.Args[0] = filepath.Base(cfg.Wrapper)
	cmd.Env = cfg.Env
	cmd.Dir = cfg.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(cfg.UID), Gid: uint32(cfg.GID), Groups: []uint32{}},
		Setsid:     true, // no controlling terminal: no TIOCSTI into the caller's tty
	}
	if err := cmd.Start(); err != nil {
		return initResult{Stage: "exec", Error: err.Error(), ExitCode: 127}
	}
	main := cmd.Process.Pid
	// Reap everything (orphans reparent to us, pid 1) until the wrapper ends.
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return initResult{Stage: "wait", Error: err.Error(), ExitCode: 125}
		}
		if pid == main {
			r := initResult{ExitCode: ws.ExitStatus()}
			if ws.Signaled() {
				r.Signal = int(ws.Signal())
				r.ExitCode = 128 + int(ws.Signal())
			}
			return r
		}
	}
}
