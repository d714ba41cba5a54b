package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agentgate/agentgate/policies"
)

// NetworkMode says what network a sandboxed process gets. Deny is the only
// mode in v1: the one future way out (the metered LLM gateway) will be a
// separate, explicit mode.
type NetworkMode string

// NetworkDeny gives the process an empty network namespace (Linux) or no
// network rules at all (macOS), plus Landlock/seccomp denies.
const NetworkDeny NetworkMode = "deny"

// Policy is everything a driver needs to confine one run. It is pure data:
// validated once (Validate) and serializable into the execution manifest.
type Policy struct {
	// Name identifies the sandbox instance (state directory, cgroup and
	// mount names). Lower-case letters, digits and '-'.
	Name     string             `json:"name"`
	Volume   Volume             `json:"volume"`
	Identity Identity           `json:"identity"`
	Wrappers map[string]Wrapper `json:"wrappers"`
	// Env is the environment allowlist: exact values the process gets.
	// Names that change how programs load code (LD_*, BASH_ENV, GIT_*, …)
	// are refused by Validate.
	Env map[string]string `json:"env,omitempty"`
	// ReadPaths are the only host paths the process may read (and execute
	// from). The volume is always readable and writable in addition.
	ReadPaths []string `json:"read_paths"`
	Network   Network  `json:"network"`
	Limits    Limits   `json:"limits"`
	// AllowUnixSockets lifts the seccomp socket(AF_UNIX) deny, for test
	// runners that need local IPC inside the sandbox. Hidden /run and the
	// private /tmp remain. Default false.
	AllowUnixSockets bool `json:"allow_unix_sockets,omitempty"`
}

// Volume is the only writable place: a filesystem image of its own.
type Volume struct {
	// Image is the image file (ext4 on Linux, an APFS sparse image on macOS).
	Image string `json:"image"`
	// SizeBytes is the image size; it caps what the agent can write.
	SizeBytes int64 `json:"size_bytes"`
	// FS is the filesystem type ("ext4", "apfs").
	FS string `json:"fs"`
	// MountPoint is where the volume is mounted on the host; inside the
	// sandbox it appears at the same path.
	MountPoint string `json:"mount_point"`
}

// Identity is the dedicated system user and group the process runs as.
type Identity struct {
	User  string `json:"user"`
	Group string `json:"group"`
	// UID and GID are filled in by the driver after provisioning.
	UID int `json:"uid,omitempty"`
	GID int `json:"gid,omitempty"`
}

// Wrapper is one allowlisted command: a root-owned file outside the volume,
// pinned by the SHA-256 of its content.
type Wrapper struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// Network is the network policy.
type Network struct {
	Mode NetworkMode `json:"mode"`
	// Requested are the hosts the thread's config.yaml asked for
	// (network.allow). They are recorded, not granted: v1 denies all
	// network and the metered gateway will be the only egress.
	Requested []string `json:"requested,omitempty"`
}

// Limits bound one run. Zero means "not set" only where noted; Validate
// requires the ones a run cannot do without.
type Limits struct {
	Wall          time.Duration `json:"wall"`
	CPUTime       time.Duration `json:"cpu_time"`
	CPUs          float64       `json:"cpus,omitempty"` // cgroup CPU quota, in CPUs
	MemoryBytes   int64         `json:"memory_bytes"`
	Pids          int           `json:"pids"`
	OpenFiles     int           `json:"open_files"`
	FileSizeBytes int64         `json:"file_size_bytes"`
}

// Host is what the runner machine contributes to a Policy: where wrappers
// live and their pins, where volumes live, and defaults for limits the
// thread does not set.
type Host struct {
	// StateDir holds images, mount points, snapshots and state files.
	StateDir string
	// Wrappers pins every wrapper the runner offers (name -> path + hash).
	Wrappers map[string]Wrapper
	// User and Group default to DefaultUser/DefaultGroup.
	User, Group string
	// ReadPaths replaces DefaultReadPaths when non-empty.
	ReadPaths []string
	// ExtraReadPaths are added to the read allowlist (a toolchain outside /usr).
	ExtraReadPaths []string
	// VolumeSize defaults to DefaultVolumeSize.
	VolumeSize int64
	// Env is the runner's fixed environment for sandboxed processes; PATH,
	// HOME, TMPDIR and the Go caches are always set by the driver.
	Env map[string]string
}

// Defaults.
const (
	DefaultUser       = "agentgate-sbx"
	DefaultGroup      = "agentgate-sbx"
	DefaultStateDir   = "/var/lib/agentgate/sandbox"
	DefaultVolumeSize = 2 << 30
	DefaultWall       = 30 * time.Minute
	DefaultMemory     = 2 << 30
	DefaultPids       = 512
	DefaultOpenFiles  = 1024
	DefaultFileSize   = 1 << 30
	// SandboxPath is the PATH inside the sandbox: root-owned directories
	// only, never one in the volume.
	SandboxPath = "/usr/local/bin:/usr/bin:/bin"
)

// DefaultReadPaths is the read allowlist when the host sets none: system
// binaries and libraries, configuration in /etc, and the few devices
// programs need. /home, /root, /var, /run, /srv, /opt, /tmp and /work are
// not readable.
var DefaultReadPaths = []string{
	"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
	"/dev/null", "/dev/zero", "/dev/urandom", "/dev/random",
}

var (
	nameRE      = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)
	identRE     = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,30}$`)
	envNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	hexSHA256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	snapNameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	// wrapperNameRE: tool names as config.yaml lists them ("go", "run_tests.sh").
	wrapperNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._+-]{0,62}$`)
	memRE         = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*(Ki|Mi|Gi|Ti|K|M|G|T|k)?B?$`)
)

// forbiddenEnv are environment names (or prefixes ending in '_' or '*')
// that make programs load code or configuration chosen by whoever sets
// them. The policy refuses them outright rather than filtering silently.
var forbiddenEnv = []string{
	"LD_*", "DYLD_*", "BASH_ENV", "ENV", "BASH_FUNC_*", "PROMPT_COMMAND", "SHELLOPTS",
	"BASHOPTS", "PS4", "PYTHONSTARTUP", "PYTHONPATH", "PYTHONHOME", "PERL5OPT", "PERL5LIB",
	"PERLLIB", "RUBYOPT", "RUBYLIB", "NODE_OPTIONS", "NODE_PATH", "GIT_*", "GCONV_PATH",
	"LOCPATH", "HOSTALIASES", "RESOLV_HOST_CONF", "MALLOC_*", "GLIBC_TUNABLES", "IFS",
	"CDPATH", "GOFLAGS", "GOTOOLCHAIN", "GOROOT", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
	"PATH", "HOME", "TMPDIR", "SSH_AUTH_SOCK", "DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR",
}

// ForbiddenEnvName reports whether name may never be passed into a sandbox
// by a caller (the driver sets PATH, HOME and TMPDIR itself).
func ForbiddenEnvName(name string) bool {
	up := strings.ToUpper(name)
	for _, f := range forbiddenEnv {
		if strings.HasSuffix(f, "*") {
			if strings.HasPrefix(up, strings.TrimSuffix(f, "*")) {
				return true
			}
			continue
		}
		if up == f {
			return true
		}
	}
	return false
}

// ParseMemory parses a byte size like "2Gi", "512Mi", "1G" or "1048576".
func ParseMemory(s string) (int64, error) {
	m := memRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("memory %q: want a number with an optional unit (Ki, Mi, Gi, Ti, K, M, G, T), e.g. 2Gi", s)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("memory %q: %w", s, err)
	}
	mult := map[string]float64{"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
		"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}[m[2]]
	b := v * mult
	if b < 1 || b > math.MaxInt64/2 {
		return 0, fmt.Errorf("memory %q: out of range", s)
	}
	return int64(b), nil
}

// FromThread builds the Policy of one run from the thread's config.yaml
// (which tools, how long, how much CPU and memory, requested network) and,
// when present, the plan's limits (max_runtime, which may only tighten the
// thread's). Every tool the thread lists must have a pinned wrapper on the
// host: a missing one is an error, never a silently narrower allowlist.
func FromThread(name string, th policies.Thread, plan *policies.WorkPlan, host Host) (Policy, error) {
	p := Policy{
		Name:     name,
		Wrappers: map[string]Wrapper{},
		Env:      map[string]string{},
		Network:  Network{Mode: NetworkDeny, Requested: append([]string(nil), th.Network.Allow...)},
		Identity: Identity{User: or(host.User, DefaultUser), Group: or(host.Group, DefaultGroup)},
	}
	stateDir := or(host.StateDir, DefaultStateDir)
	size := host.VolumeSize
	if size == 0 {
		size = DefaultVolumeSize
	}
	p.Volume = Volume{
		Image:      filepath.Join(stateDir, name, "volume.img"),
		SizeBytes:  size,
		FS:         "ext4",
		MountPoint: filepath.Join(stateDir, name, "mnt"),
	}
	p.ReadPaths = append([]string(nil), DefaultReadPaths...)
	if len(host.ReadPaths) > 0 {
		p.ReadPaths = append([]string(nil), host.ReadPaths...)
	}
	p.ReadPaths = append(p.ReadPaths, host.ExtraReadPaths...)
	for k, v := range host.Env {
		p.Env[k] = v
	}

	var missing []string
	for _, tool := range th.Tools {
		w, ok := host.Wrappers[tool]
		if !ok {
			missing = append(missing, tool)
			continue
		}
		p.Wrappers[tool] = w
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return Policy{}, fmt.Errorf("thread %q lists tools with no pinned wrapper on this runner: %s; install a root-owned wrapper for each and pin its SHA-256 in the runner's wrapper list, or remove the tool from config.yaml",
			th.Name, strings.Join(missing, ", "))
	}

	// Wall clock: the tighter of the thread's and the plan's max_runtime.
	wall := DefaultWall
	if th.Runtime.MaxRuntime != "" {
		d, err := time.ParseDuration(string(th.Runtime.MaxRuntime))
		if err != nil {
			return Policy{}, fmt.Errorf("config.yaml runtime.max_runtime %q: %w; write a Go duration such as 30m", th.Runtime.MaxRuntime, err)
		}
		wall = d
	}
	if plan != nil && plan.Limits.MaxRuntime != "" {
		d, err := time.ParseDuration(string(plan.Limits.MaxRuntime))
		if err != nil {
			return Policy{}, fmt.Errorf("WORK_PLAN.json limits.max_runtime %q: %w; write a Go duration such as 30m", plan.Limits.MaxRuntime, err)
		}
		if d < wall {
			wall = d
		}
	}
	p.Limits.Wall = wall
	cpus := th.Runtime.CPU
	if cpus < 0 || cpus > 1024 {
		return Policy{}, fmt.Errorf("config.yaml runtime.cpu %v: want a number of CPUs between 0 and 1024", cpus)
	}
	p.Limits.CPUs = cpus
	// RLIMIT_CPU is per process; give each process at most the CPU time the
	// whole run could use at its quota (at least one CPU) within the wall clock.
	p.Limits.CPUTime = time.Duration(math.Max(1, math.Ceil(cpus)) * float64(wall))
	p.Limits.MemoryBytes = DefaultMemory
	if th.Runtime.Memory != "" {
		m, err := ParseMemory(th.Runtime.Memory)
		if err != nil {
			return Policy{}, fmt.Errorf("config.yaml runtime.memory: %w", err)
		}
		p.Limits.MemoryBytes = m
	}
	p.Limits.Pids = DefaultPids
	p.Limits.OpenFiles = DefaultOpenFiles
	p.Limits.FileSizeBytes = min(int64(DefaultFileSize), size)
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Validate checks the policy once, at the edge. Every error says what to fix.
func (p Policy) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !nameRE.MatchString(p.Name) {
		bad("policy name %q: use 1-31 lower-case letters, digits and '-', starting with a letter", p.Name)
	}
	if !identRE.MatchString(p.Identity.User) || !identRE.MatchString(p.Identity.Group) {
		bad("identity %q:%q: user and group must be system names ([a-z_][a-z0-9_-]*)", p.Identity.User, p.Identity.Group)
	}
	if p.Identity.User == "root" || p.Identity.Group == "root" {
		bad("identity: the sandbox never runs as root; use a dedicated system user")
	}
	for _, path := range []struct{ what, p string }{{"volume image", p.Volume.Image}, {"volume mount point", p.Volume.MountPoint}} {
		if err := cleanAbs(path.p); err != nil {
			bad("%s: %v", path.what, err)
		}
	}
	if under(p.Volume.MountPoint, "/tmp") || under(p.Volume.MountPoint, "/proc") || under(p.Volume.MountPoint, "/run") || under(p.Volume.MountPoint, "/dev") {
		bad("volume mount point %s: /tmp, /run, /dev and /proc are replaced inside the sandbox; mount the volume elsewhere (default %s)", p.Volume.MountPoint, DefaultStateDir)
	}
	if p.Volume.SizeBytes < 16<<20 {
		bad("volume size %d bytes: at least 16 MiB", p.Volume.SizeBytes)
	}
	switch p.Volume.FS {
	case "ext4", "apfs":
	default:
		bad("volume fs %q: ext4 (Linux) or apfs (macOS)", p.Volume.FS)
	}
	if len(p.Wrappers) == 0 {
		bad("no wrappers: a sandbox with no allowlisted command can run nothing; list tools in config.yaml")
	}
	for name, w := range p.Wrappers {
		if !wrapperNameRE.MatchString(name) {
			bad("wrapper name %q: use letters, digits, '.', '_', '+' and '-'", name)
		}
		if err := cleanAbs(w.Path); err != nil {
			bad("wrapper %s: %v", name, err)
		}
		if under(w.Path, p.Volume.MountPoint) {
			bad("wrapper %s at %s lies inside the volume; wrappers must be root-owned files outside it", name, w.Path)
		}
		if !hexSHA256RE.MatchString(w.SHA256) {
			bad("wrapper %s: sha256 %q is not 64 lower-case hex digits", name, w.SHA256)
		}
	}
	for k := range p.Env {
		if !envNameRE.MatchString(k) {
			bad("env %q: not a valid variable name", k)
		} else if ForbiddenEnvName(k) {
			bad("env %s is refused: it lets the caller change what programs load or where they look; the driver sets PATH, HOME and TMPDIR itself", k)
		}
		if strings.ContainsRune(p.Env[k], 0) {
			bad("env %s: value contains NUL", k)
		}
	}
	if len(p.ReadPaths) == 0 {
		bad("read allowlist is empty: nothing could run")
	}
	for _, r := range p.ReadPaths {
		if err := cleanAbs(r); err != nil {
			bad("read path: %v", err)
		} else if r == "/" {
			bad("read path /: a read-only root still leaks world-readable secrets; list directories instead")
		}
	}
	if p.Network.Mode != NetworkDeny {
		bad("network mode %q: only %q exists in this version", p.Network.Mode, NetworkDeny)
	}
	l := p.Limits
	if l.Wall <= 0 {
		bad("limits.wall must be positive: the wall clock is what ends a fork bomb")
	}
	if l.CPUTime <= 0 || l.MemoryBytes <= 0 || l.Pids <= 0 || l.OpenFiles <= 0 || l.FileSizeBytes <= 0 {
		bad("limits: cpu_time, memory_bytes, pids, open_files and file_size_bytes must all be positive")
	}
	if l.MemoryBytes > 0 && l.MemoryBytes < 8<<20 {
		bad("limits.memory_bytes %d: at least 8 MiB", l.MemoryBytes)
	}
	if l.CPUs < 0 {
		bad("limits.cpus must not be negative")
	}
	return errors.Join(errs...)
}

func cleanAbs(p string) error {
	if p == "" {
		return errors.New("empty path")
	}
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%q is not absolute", p)
	}
	if filepath.Clean(p) != p {
		return fmt.Errorf("%q is not clean (no '..', '.', '//' or trailing '/')", p)
	}
	if strings.ContainsAny(p, "\x00\n\r\"") {
		return fmt.Errorf("%q contains a NUL, newline or quote", p)
	}
	return nil
}

// under reports whether p is dir or inside it (both clean and absolute).
func under(p, dir string) bool {
	if dir == "" {
		return false
	}
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// JSON returns the policy as indented JSON for the execution manifest.
func (p Policy) JSON() []byte {
	b, _ := json.MarshalIndent(p, "", "  ")
	return b
}
