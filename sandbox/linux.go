//go:build linux

package sandbox

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// LinuxOptions configure the Linux driver.
type LinuxOptions struct {
	// Exec runs host tools (losetup, mkfs.ext4, fsfreeze, cp, useradd).
	Exec Executor
	// InitPath is the binary re-executed as the sandbox init (default: this
	// executable); InitArgs are its arguments (default "sandbox-init").
	// Tests point them at the test binary, whose TestMain calls InitMain.
	InitPath string
	InitArgs []string
	Logger   *slog.Logger
}

// Linux is the Linux driver: a loop-mounted ext4 image as the only
// writable place, a dedicated system user and group, new mount, network,
// pid, ipc and uts namespaces with a fresh /proc, Landlock, seccomp,
// rlimits and cgroup limits. It needs root.
type Linux struct {
	pol      Policy
	opts     LinuxOptions
	stateDir string
	mu       sync.Mutex
}

// linuxState is persisted next to the volume so that `sandbox kill`,
// `snapshot` and `rollback` work from another process.
type linuxState struct {
	Loop      string     `json:"loop,omitempty"`
	Mounted   bool       `json:"mounted"`
	InitPid   int        `json:"init_pid,omitempty"`
	InitStart uint64     `json:"init_start,omitempty"` // /proc/pid/stat starttime: guards against pid reuse
	Cgroups   *cgroupSet `json:"cgroups,omitempty"`
}

// NewLinux returns the driver for a validated policy.
func NewLinux(p Policy, o LinuxOptions) (*Linux, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("sandbox policy: %w", err)
	}
	if p.Volume.FS != "ext4" {
		return nil, fmt.Errorf("sandbox policy: the Linux driver uses ext4 volumes, not %q", p.Volume.FS)
	}
	if o.Exec == nil {
		o.Exec = OSExecutor{}
	}
	if o.InitPath == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("sandbox: locating this executable to re-run as the sandbox init: %w", err)
		}
		o.InitPath = exe
		if o.InitArgs == nil {
			o.InitArgs = []string{"sandbox-init"}
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Linux{pol: p, opts: o, stateDir: filepath.Dir(p.Volume.MountPoint)}, nil
}

// Policy returns the driver's policy.
func (d *Linux) Policy() Policy { return d.pol }

func (d *Linux) harvestDir() string  { return filepath.Join(d.stateDir, "harvest") }
func (d *Linux) snapshotDir() string { return filepath.Join(d.stateDir, "snapshots") }
func (d *Linux) statePath() string   { return filepath.Join(d.stateDir, "state.json") }

// HarvestView is the read-only, nosymfollow view of the volume.
func (d *Linux) HarvestView() string { return d.harvestDir() }

func (d *Linux) load() (linuxState, error) {
	var st linuxState
	b, err := os.ReadFile(d.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("sandbox state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("sandbox state %s is corrupt (%v); detach by hand: umount, losetup -d", d.statePath(), err)
	}
	return st, nil
}

func (d *Linux) save(st linuxState) error {
	b, _ := json.MarshalIndent(st, "", "  ")
	tmp := d.statePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("sandbox state: %w", err)
	}
	return os.Rename(tmp, d.statePath())
}

// Probe implements Driver.
func (d *Linux) Probe(ctx context.Context) (Capabilities, error) { return ProbeLinux(), nil }

// ProbeLinux reports the confinement layers this machine offers.
func ProbeLinux() Capabilities {
	c := Capabilities{OS: "linux", Root: os.Geteuid() == 0}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		c.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	add := func(name string, ok bool, detail string) {
		c.Layers = append(c.Layers, Layer{Name: name, Available: ok, Detail: detail, Required: true})
	}
	add("root", c.Root, "the Linux driver mounts, makes namespaces and switches uid")
	nsOK := true
	for _, ns := range []string{"mnt", "net", "pid", "ipc", "uts"} {
		if _, err := os.Stat("/proc/self/ns/" + ns); err != nil {
			nsOK = false
		}
	}
	add("namespaces", nsOK, "mnt, net, pid, ipc, uts")
	abi, err := ll.LandlockGetABIVersion()
	if err != nil {
		abi = 0
	}
	c.LandlockABI = abi
	switch {
	case abi >= 6:
		add("landlock", true, fmt.Sprintf("ABI %d: files, TCP, scopes", abi))
	case abi >= 4:
		add("landlock", true, fmt.Sprintf("ABI %d: files, TCP (no scopes; seccomp covers abstract sockets)", abi))
	case abi > 0:
		add("landlock", false, fmt.Sprintf("ABI %d has no TCP rules; need 4+", abi))
	default:
		add("landlock", false, "not enabled (add landlock to the lsm= boot parameter)")
	}
	ok, detail := seccompAvailable()
	if ok {
		if _, err := SeccompProgram(false); err != nil {
			ok, detail = false, err.Error()
		}
	}
	add("seccomp", ok, detail)
	v, ctrls := cgroupInfo()
	c.CgroupVersion, c.Controllers = v, ctrls
	add("cgroups", v != 0, fmt.Sprintf("v%d %s", v, strings.Join(ctrls, ",")))
	_, lerr := os.Stat("/dev/loop-control")
	lp, lperr := exec.LookPath("losetup")
	add("loop", lerr == nil && lperr == nil, strings.TrimSpace(lp+" /dev/loop-control"))
	mk, mkerr := exec.LookPath("mkfs.ext4")
	add("ext4", mkerr == nil, mk)
	return c
}

func (d *Linux) identity() (uid, gid int, err error) {
	u, err := user.Lookup(d.pol.Identity.User)
	if err != nil {
		return 0, 0, fmt.Errorf("sandbox identity: %w; run `agentgate sandbox provision` (or Provision) first", err)
	}
	g, err := user.LookupGroup(d.pol.Identity.Group)
	if err != nil {
		return 0, 0, fmt.Errorf("sandbox identity: %w; run `agentgate sandbox provision` first", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(g.Gid)
	if uid == 0 || gid == 0 {
		return 0, 0, fmt.Errorf("sandbox identity %s:%s resolves to root; use a dedicated system user", u.Username, g.Name)
	}
	if u.Gid != g.Gid {
		return 0, 0, fmt.Errorf("sandbox identity: user %s's primary group is %s, not %s (%s)", u.Username, u.Gid, g.Name, g.Gid)
	}
	return uid, gid, nil
}

// Provision implements Driver: the dedicated system group and user, with
// no home, no shell and no login.
func (d *Linux) Provision(ctx context.Context) error {
	g, u := d.pol.Identity.Group, d.pol.Identity.User
	if _, err := user.LookupGroup(g); err != nil {
		if _, err := d.opts.Exec.Run(ctx, Cmd{Path: "/usr/sbin/groupadd", Args: []string{"--system", g}}); err != nil {
			return fmt.Errorf("provision: %w", err)
		}
	}
	if _, err := user.Lookup(u); err != nil {
		if _, err := d.opts.Exec.Run(ctx, Cmd{Path: "/usr/sbin/useradd", Args: []string{"--system", "--gid", g,
			"--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", u}}); err != nil {
			return fmt.Errorf("provision: %w", err)
		}
	}
	_, _, err := d.identity()
	return err
}

// Attach implements Driver: create the image on first use (ext4 with
// 256-byte inodes for nanosecond ctimes, root:group owned), loop-mount it
// nosuid,nodev,noatime, set the setgid directory and default ACLs, and
// add the read-only nosymfollow harvest view.
func (d *Linux) Attach(ctx context.Context) (AttachedVolume, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, gid, err := d.identity()
	if err != nil {
		return AttachedVolume{}, err
	}
	v := AttachedVolume{MountPoint: d.pol.Volume.MountPoint, HarvestView: d.harvestDir(), Image: d.pol.Volume.Image}
	st, err := d.load()
	if err != nil {
		return v, err
	}
	if st.Mounted && isMountPoint(d.pol.Volume.MountPoint) {
		v.Device = st.Loop
		return v, nil
	}
	for _, dir := range []string{filepath.Dir(d.stateDir), d.stateDir} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return v, fmt.Errorf("attach: %w", err)
		}
	}
	// The agent uid must traverse to the mount point, and nothing more.
	if err := os.Chmod(d.stateDir, 0o711); err != nil {
		return v, fmt.Errorf("attach: %w", err)
	}
	for _, dir := range []string{d.pol.Volume.MountPoint, d.harvestDir()} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return v, fmt.Errorf("attach: %w", err)
		}
	}
	if _, err := os.Stat(d.pol.Volume.Image); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(d.pol.Volume.Image), 0o711); err != nil {
			return v, fmt.Errorf("attach: %w", err)
		}
		f, err := os.OpenFile(d.pol.Volume.Image, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return v, fmt.Errorf("attach: creating the image: %w", err)
		}
		err = f.Truncate(d.pol.Volume.SizeBytes)
		f.Close()
		if err != nil {
			return v, fmt.Errorf("attach: sizing the image: %w", err)
		}
		if _, err := d.opts.Exec.Run(ctx, Cmd{Path: "mkfs.ext4", Args: []string{"-q", "-F", "-I", "256", "-m", "0",
			"-E", fmt.Sprintf("root_owner=0:%d", gid), d.pol.Volume.Image}}); err != nil {
			os.Remove(d.pol.Volume.Image)
			return v, fmt.Errorf("attach: %w", err)
		}
		v.Created = true
	}
	out, err := d.opts.Exec.Run(ctx, Cmd{Path: "losetup", Args: []string{"--find", "--show", "--nooverlap", d.pol.Volume.Image}})
	if err != nil {
		return v, fmt.Errorf("attach: %w", err)
	}
	loop := strings.TrimSpace(string(out.Stdout))
	if !strings.HasPrefix(loop, "/dev/loop") {
		return v, fmt.Errorf("attach: losetup printed %q, not a loop device", loop)
	}
	st.Loop, v.Device = loop, loop
	if err := d.save(st); err != nil {
		return v, err
	}
	if err := unix.Mount(loop, d.pol.Volume.MountPoint, "ext4", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOATIME, ""); err != nil {
		_, _ = d.opts.Exec.Run(ctx, Cmd{Path: "losetup", Args: []string{"-d", loop}})
		return v, fmt.Errorf("attach: mounting %s on %s: %w", loop, d.pol.Volume.MountPoint, err)
	}
	st.Mounted = true
	if err := d.save(st); err != nil {
		return v, err
	}
	mp := d.pol.Volume.MountPoint
	if err := os.Chown(mp, 0, gid); err != nil {
		return v, fmt.Errorf("attach: %w", err)
	}
	if err := os.Chmod(mp, 0o770|os.ModeSetgid); err != nil {
		return v, fmt.Errorf("attach: %w", err)
	}
	if err := setGroupACL(mp, gid); err != nil {
		return v, fmt.Errorf("attach: setting the volume's ACL: %w", err)
	}
	for _, sub := range []struct {
		name string
		mode os.FileMode
	}{{".tmp", 0o770 | os.ModeSetgid | os.ModeSticky}, {"home", 0o770 | os.ModeSetgid}, {"work", 0o770 | os.ModeSetgid}, {"out", 0o770 | os.ModeSetgid}} {
		p := filepath.Join(mp, sub.name)
		fi, err := os.Lstat(p)
		if err == nil && !fi.IsDir() {
			return v, fmt.Errorf("attach: %s in the volume is not a directory; the volume was tampered with: roll back or recreate it", sub.name)
		}
		if errors.Is(err, os.ErrNotExist) {
			if err := os.Mkdir(p, 0o700); err != nil {
				return v, fmt.Errorf("attach: %w", err)
			}
			if err := os.Chown(p, 0, gid); err != nil {
				return v, fmt.Errorf("attach: %w", err)
			}
			if err := os.Chmod(p, sub.mode); err != nil {
				return v, fmt.Errorf("attach: %w", err)
			}
		}
	}
	hv := d.harvestDir()
	if err := unix.Mount(mp, hv, "", unix.MS_BIND, ""); err != nil {
		return v, fmt.Errorf("attach: harvest view: %w", err)
	}
	if err := unix.Mount("", hv, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_NOSYMFOLLOW, ""); err != nil {
		_ = unix.Unmount(hv, 0)
		return v, fmt.Errorf("attach: making the harvest view read-only and nosymfollow: %w", err)
	}
	d.opts.Logger.Info("sandbox volume attached", "name", d.pol.Name, "device", loop, "mount", mp)
	return v, nil
}

// setGroupACL writes the POSIX ACLs `setfacl -m g:<gid>:rwx -d -m
// g:<gid>:rwx -d -m u::rwx -d -m o::-` would, straight into the xattrs, so
// that the host needs no acl package.
func setGroupACL(path string, gid int) error {
	const undefined = 0xFFFFFFFF
	entry := func(b []byte, tag, perm uint16, id uint32) []byte {
		b = binary.LittleEndian.AppendUint16(b, tag)
		b = binary.LittleEndian.AppendUint16(b, perm)
		return binary.LittleEndian.AppendUint32(b, id)
	}
	acl := binary.LittleEndian.AppendUint32(nil, 2)
	acl = entry(acl, 0x01, 7, undefined)   // user::rwx
	acl = entry(acl, 0x04, 7, undefined)   // group::rwx
	acl = entry(acl, 0x08, 7, uint32(gid)) // group:<gid>:rwx
	acl = entry(acl, 0x10, 7, undefined)   // mask::rwx
	acl = entry(acl, 0x20, 0, undefined)   // other::---
	if err := unix.Setxattr(path, "system.posix_acl_access", acl, 0); err != nil {
		return err
	}
	return unix.Setxattr(path, "system.posix_acl_default", acl, 0)
}

func isMountPoint(path string) bool {
	for _, m := range mountInfo() {
		if m.mountPoint == path {
			return true
		}
	}
	return false
}

type mountEntry struct {
	majMin, root, mountPoint, opts string
}

func mountInfoOf(path string) []mountEntry {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 {
			continue
		}
		out = append(out, mountEntry{majMin: fs[2], root: fs[3], mountPoint: unescapeMount(fs[4]), opts: fs[5]})
	}
	return out
}

func mountInfo() []mountEntry { return mountInfoOf("/proc/self/mountinfo") }

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// loopMajMin returns "major:minor" of a loop device.
func loopMajMin(dev string) string {
	var st unix.Stat_t
	if unix.Stat(dev, &st) != nil {
		return ""
	}
	return fmt.Sprintf("%d:%d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))
}

// holders lists pids (other than this process) whose mount namespace has
// the device mounted: a live sandbox namespace keeps the filesystem alive
// even after the host unmounts it.
func holders(majMin string) []int {
	if majMin == "" {
		return nil
	}
	self := os.Getpid()
	selfNS, _ := os.Readlink("/proc/self/ns/mnt")
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		if err != nil || ns == selfNS {
			continue
		}
		for _, m := range mountInfoOf(fmt.Sprintf("/proc/%d/mountinfo", pid)) {
			if m.majMin == majMin {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// procStart returns the starttime field of /proc/pid/stat.
func procStart(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// uidProcs lists pids whose real, effective or saved uid is uid.
func uidProcs(uid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	want := strconv.Itoa(uid)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "Uid:") {
				f := strings.Fields(line)
				if len(f) >= 4 && (f[1] == want || f[2] == want || f[3] == want) {
					out = append(out, pid)
				}
				break
			}
		}
	}
	return out
}

// AgentProcesses lists every process running as the sandbox uid. After a
// run and after Kill it must be empty: the uid is dedicated, so this is
// exact, and it also catches anything that left the namespace.
func (d *Linux) AgentProcesses() ([]int, error) {
	uid, _, err := d.identity()
	if err != nil {
		return nil, err
	}
	return uidProcs(uid), nil
}

// killSwitch marks a run ended by Kill from outside Run.
const killSwitch = "kill_switch"

var relDirRE = regexp.MustCompile(`^[A-Za-z0-9._/-]*$`)

// Run implements Driver.
func (d *Linux) Run(ctx context.Context, spec RunSpec) (Result, error) {
	res := Result{Wrapper: spec.Wrapper, Args: spec.Args}
	caps := ProbeLinux()
	res.Capabilities = caps
	d.opts.Logger.Info("sandbox capabilities", "name", d.pol.Name, "landlock_abi", caps.LandlockABI, "cgroup", caps.CgroupVersion, "report", caps.String())
	if err := caps.Refuse(); err != nil {
		return res, err
	}
	w, ok := d.pol.Wrappers[spec.Wrapper]
	if !ok {
		return res, fmt.Errorf("%w: %q; allowlisted: %s", ErrNotAllowlisted, spec.Wrapper, strings.Join(d.wrapperNames(), ", "))
	}
	if err := VerifyWrapper(spec.Wrapper, w, d.pol.Volume.MountPoint); err != nil {
		return res, err
	}
	for _, a := range spec.Args {
		if strings.ContainsRune(a, 0) {
			return res, fmt.Errorf("sandbox run: argument contains NUL")
		}
	}
	uid, gid, err := d.identity()
	if err != nil {
		return res, err
	}
	mp := d.pol.Volume.MountPoint
	env, err := d.env(spec.Env)
	if err != nil {
		return res, err
	}
	dir := spec.Dir
	if dir == "" {
		dir = "work"
	}
	if !relDirRE.MatchString(dir) || filepath.IsAbs(dir) || strings.HasPrefix(filepath.Clean(dir), "..") {
		return res, fmt.Errorf("sandbox run: working directory %q must be relative to the volume, without '..'", spec.Dir)
	}
	d.mu.Lock()
	st, err := d.load()
	if err != nil {
		d.mu.Unlock()
		return res, err
	}
	if !st.Mounted || !isMountPoint(mp) {
		d.mu.Unlock()
		return res, fmt.Errorf("sandbox run: the volume is not attached; run `agentgate sandbox attach` (or Attach) first")
	}
	if st.InitPid != 0 && procStart(st.InitPid) == st.InitStart {
		d.mu.Unlock()
		return res, fmt.Errorf("sandbox run: a run is already in progress (init pid %d); one run at a time per sandbox", st.InitPid)
	}
	cg, err := newCgroups(d.pol.Name, d.pol.Limits)
	if err != nil {
		d.mu.Unlock()
		return res, fmt.Errorf("sandbox run: %w", err)
	}
	st.Cgroups = cg
	if err := d.save(st); err != nil {
		d.mu.Unlock()
		cg.remove()
		return res, err
	}
	d.mu.Unlock()

	cfg := initConfig{
		Volume: mp, TmpDir: filepath.Join(mp, ".tmp"), ReadPaths: d.pol.ReadPaths,
		Wrapper: w.Path, WrapperHash: strings.ToLower(w.SHA256), Args: spec.Args, Env: env,
		Dir: filepath.Join(mp, filepath.Clean(dir)), UID: uid, GID: gid, Limits: d.pol.Limits,
		AllowUnix: d.pol.AllowUnixSockets, LandlockABI: caps.LandlockABI,
		Hide: []string{"/run", "/var/run", "/dev/shm", "/dev/mqueue"},
	}
	wall := d.pol.Limits.Wall
	if spec.Timeout > 0 && spec.Timeout < wall {
		wall = spec.Timeout
	}
	start := time.Now()
	ir, killedBy, err := d.launch(ctx, cfg, cg, wall, spec)
	res.Duration = time.Since(start)
	// Confirm nothing survived, whatever happened above.
	killErr := cg.killAll(5 * time.Second)
	res.LimitsHit = cg.limitsHit()
	if rmErr := cg.remove(); rmErr != nil && killErr == nil {
		killErr = rmErr
	}
	d.mu.Lock()
	if st2, lerr := d.load(); lerr == nil {
		st2.InitPid, st2.InitStart, st2.Cgroups = 0, 0, nil
		_ = d.save(st2)
	}
	d.mu.Unlock()
	res.FilesWritten = countWritten(d.harvestDir(), start)
	if killedBy != "" {
		res.Killed = true
		if killedBy != killSwitch {
			res.LimitsHit = append(res.LimitsHit, killedBy)
		}
	}
	if err != nil {
		return res, err
	}
	if killErr != nil {
		return res, fmt.Errorf("sandbox run: %w", killErr)
	}
	res.ExitCode = ir.ExitCode
	if ir.Signal != 0 {
		sig := syscall.Signal(ir.Signal)
		res.Signal = unix.SignalName(sig)
		switch sig {
		case syscall.SIGXCPU:
			res.LimitsHit = append(res.LimitsHit, LimitCPUTime)
		case syscall.SIGXFSZ:
			res.LimitsHit = append(res.LimitsHit, LimitFileSize)
		}
	}
	if killedBy != "" && ir.Signal == 0 && ir.Error == "" {
		res.Signal = "SIGKILL"
		res.ExitCode = 137
	}
	var sfs unix.Statfs_t
	if unix.Statfs(mp, &sfs) == nil && sfs.Bavail == 0 {
		res.LimitsHit = append(res.LimitsHit, LimitDisk)
	}
	res.LimitsHit = dedupe(res.LimitsHit)
	if ir.Error != "" {
		switch ir.Stage {
		case "wrapper":
			return res, fmt.Errorf("%w: %s", ErrWrapperTampered, ir.Error)
		case "exec", "wait":
			return res, fmt.Errorf("sandbox run: starting the wrapper: %s", ir.Error)
		default:
			return res, fmt.Errorf("%w: sandbox init refused the run at %s: %s", ErrLayerMissing, ir.Stage, ir.Error)
		}
	}
	d.opts.Logger.Info("sandbox run finished", "name", d.pol.Name, "wrapper", spec.Wrapper, "exit", res.ExitCode,
		"signal", res.Signal, "limits_hit", res.LimitsHit, "duration", res.Duration)
	return res, nil
}

func dedupe(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func (d *Linux) wrapperNames() []string {
	var names []string
	for n := range d.pol.Wrappers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// env builds the wrapper's environment from nothing: the driver's fixed
// variables, then the policy's allowlist, then the caller's (checked).
func (d *Linux) env(extra map[string]string) ([]string, error) {
	mp := d.pol.Volume.MountPoint
	m := map[string]string{
		"PATH":           SandboxPath,
		"HOME":           filepath.Join(mp, "home"),
		"TMPDIR":         "/tmp",
		"LANG":           "C.UTF-8",
		"GOCACHE":        filepath.Join(mp, ".cache", "go-build"),
		"GOPATH":         filepath.Join(mp, "go"),
		"GOTOOLCHAIN":    "local",
		"XDG_CACHE_HOME": filepath.Join(mp, ".cache"),
		"USER":           d.pol.Identity.User,
	}
	for k, v := range d.pol.Env {
		m[k] = v
	}
	for k, v := range extra {
		if !envNameRE.MatchString(k) || ForbiddenEnvName(k) {
			return nil, fmt.Errorf("sandbox run: environment variable %s is refused: it would change what programs load or where they look", k)
		}
		if strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("sandbox run: environment variable %s contains NUL", k)
		}
		m[k] = v
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out, nil
}

// launch starts the init in new namespaces, puts it in the cgroups,
// releases it with its config, and waits, killing it at the wall clock or
// when ctx ends. killedBy names the limit that made us kill.
func (d *Linux) launch(ctx context.Context, cfg initConfig, cg *cgroupSet, wall time.Duration, spec RunSpec) (ir initResult, killedBy string, err error) {
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return ir, "", err
	}
	resR, resW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		cfgW.Close()
		return ir, "", err
	}
	defer resR.Close()
	cmd := exec.Command(d.opts.InitPath, d.opts.InitArgs...)
	cmd.Env = []string{InitEnv + "=1"}
	cmd.ExtraFiles = append([]*os.File{cfgR, resW}, spec.InheritExtraFiles...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = spec.Stdin, spec.Stdout, spec.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWNET | syscall.CLONE_NEWPID | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS,
		Setsid:     true,
		Pdeathsig:  syscall.SIGKILL,
	}
	// Pdeathsig follows the thread that forked: keep it alive for the run.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		cfgR.Close()
		cfgW.Close()
		resW.Close()
		return ir, "", fmt.Errorf("%w: starting the sandbox init in new namespaces: %v", ErrLayerMissing, err)
	}
	cfgR.Close()
	resW.Close()
	pid := cmd.Process.Pid
	abort := func(e error) (initResult, string, error) {
		cfgW.Close() // the init reads EOF and refuses
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return ir, "", e
	}
	if err := cg.add(pid); err != nil {
		return abort(fmt.Errorf("sandbox run: %w", err))
	}
	d.mu.Lock()
	st, err := d.load()
	if err == nil {
		st.InitPid, st.InitStart = pid, procStart(pid)
		err = d.save(st)
	}
	d.mu.Unlock()
	if err != nil {
		return abort(err)
	}
	if err := json.NewEncoder(cfgW).Encode(cfg); err != nil {
		return abort(fmt.Errorf("sandbox run: sending the config to the init: %w", err))
	}
	cfgW.Close()

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(wall)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		killedBy = LimitWall
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-done
	case <-ctx.Done():
		killedBy = "cancelled"
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-done
	}
	if killedBy == "cancelled" {
		killedBy = ""
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			killedBy = LimitWall
		}
	}
	data, _ := io.ReadAll(io.LimitReader(resR, 1<<16))
	if len(data) == 0 {
		if killedBy != "" {
			return initResult{ExitCode: 137, Signal: int(syscall.SIGKILL)}, killedBy, nil
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			// Killed from outside this call: the kill switch (Kill/Detach).
			return initResult{ExitCode: 137, Signal: int(syscall.SIGKILL)}, killSwitch, nil
		}
		return ir, killedBy, fmt.Errorf("sandbox run: the init died without a report (%v)", cmd.ProcessState)
	}
	if err := json.Unmarshal(data, &ir); err != nil {
		return ir, killedBy, fmt.Errorf("sandbox run: unreadable init report: %w", err)
	}
	return ir, killedBy, nil
}

// countWritten counts regular files and symlinks whose ctime is at or after
// since, walking the harvest view (lstat only, never following links).
func countWritten(root string, since time.Time) int {
	n := 0
	_ = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil {
			return nil
		}
		if time.Unix(st.Ctim.Sec, st.Ctim.Nsec).Before(since) {
			return nil
		}
		n++
		return nil
	})
	return n
}

// Kill implements Driver: SIGKILL the namespace's init (the kernel then
// kills every process in the pid namespace), confirm the cgroups are
// empty (freezer/cgroup.kill as a backstop) and that no process of the
// agent uid is left anywhere. It is idempotent.
func (d *Linux) Kill(ctx context.Context) error {
	d.mu.Lock()
	st, err := d.load()
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if st.InitPid > 0 && st.InitStart != 0 && procStart(st.InitPid) == st.InitStart {
		_ = syscall.Kill(st.InitPid, syscall.SIGKILL)
		deadline := time.Now().Add(5 * time.Second)
		for procStart(st.InitPid) == st.InitStart && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	var errs []error
	if st.Cgroups != nil {
		if err := st.Cgroups.killAll(5 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	uid, _, err := d.identity()
	if err == nil {
		deadline := time.Now().Add(5 * time.Second)
		for {
			left := uidProcs(uid)
			if len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("%w: agent uid %d still has processes %v", ErrLiveWriter, uid, left))
				break
			}
			for _, p := range left {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

// Detach implements Driver: kill, confirm, then a non-lazy unmount of the
// harvest view and the volume, then detach the loop device.
func (d *Linux) Detach(ctx context.Context) error {
	if err := d.Kill(ctx); err != nil {
		return fmt.Errorf("detach: the kill did not confirm an empty sandbox, so the volume stays mounted: %w", err)
	}
	return d.release(ctx)
}

// release unmounts and detaches without killing. It refuses when any other
// mount namespace still holds the filesystem: a host-only unmount would
// "succeed" while the agent kept writing (the kill-switch ordering trap).
func (d *Linux) release(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err := d.load()
	if err != nil {
		return err
	}
	mm := loopMajMin(st.Loop)
	if h := holders(mm); len(h) > 0 {
		return fmt.Errorf("%w: the volume is still mounted in the mount namespace of pid(s) %v; kill first (agentgate sandbox kill)", ErrLiveWriter, h)
	}
	for _, p := range []string{d.harvestDir(), d.pol.Volume.MountPoint} {
		if !isMountPoint(p) {
			continue
		}
		if err := unix.Unmount(p, 0); err != nil {
			return fmt.Errorf("detach: unmounting %s: %w (never lazily: find what holds it with `fuser -m %s`)", p, err, p)
		}
	}
	st.Mounted = false
	if err := d.save(st); err != nil {
		return err
	}
	if st.Loop != "" {
		if _, err := d.opts.Exec.Run(ctx, Cmd{Path: "losetup", Args: []string{"-d", st.Loop}}); err != nil {
			return fmt.Errorf("detach: %w", err)
		}
		backing := filepath.Join("/sys/block", filepath.Base(st.Loop), "loop", "backing_file")
		deadline := time.Now().Add(2 * time.Second)
		for {
			b, err := os.ReadFile(backing)
			if err != nil || strings.TrimSpace(string(b)) != d.pol.Volume.Image {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%w: %s still backs %s after losetup -d: something still holds the filesystem", ErrLiveWriter, st.Loop, d.pol.Volume.Image)
			}
			time.Sleep(10 * time.Millisecond)
		}
		st.Loop = ""
		if err := d.save(st); err != nil {
			return err
		}
	}
	d.opts.Logger.Info("sandbox volume detached", "name", d.pol.Name)
	return nil
}

func (d *Linux) snapshotPath(id SnapshotID) (string, error) {
	if !snapNameRE.MatchString(string(id)) || strings.Contains(string(id), "..") {
		return "", fmt.Errorf("snapshot name %q: use letters, digits, '.', '_' and '-'", id)
	}
	return filepath.Join(d.snapshotDir(), string(id)+".img"), nil
}

// Snapshot implements Driver: freeze the filesystem (when attached), make
// a sparse copy of the image, thaw.
func (d *Linux) Snapshot(ctx context.Context, name string) (SnapshotID, error) {
	id := SnapshotID(name)
	dst, err := d.snapshotPath(id)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(dst); err == nil {
		return "", fmt.Errorf("snapshot %s already exists; pick another name", name)
	}
	if err := os.MkdirAll(d.snapshotDir(), 0o700); err != nil {
		return "", fmt.Errorf("snapshot: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err := d.load()
	if err != nil {
		return "", err
	}
	if st.Mounted && isMountPoint(d.pol.Volume.MountPoint) {
		if _, err := d.opts.Exec.Run(ctx, Cmd{Path: "fsfreeze", Args: []string{"-f", d.pol.Volume.MountPoint}}); err != nil {
			return "", fmt.Errorf("snapshot: %w", err)
		}
		defer func() {
			_, _ = d.opts.Exec.Run(context.WithoutCancel(ctx), Cmd{Path: "fsfreeze", Args: []string{"-u", d.pol.Volume.MountPoint}})
		}()
	}
	tmp := dst + ".tmp"
	if _, err := d.opts.Exec.Run(ctx, Cmd{Path: "cp", Args: []string{"--sparse=always", d.pol.Volume.Image, tmp}}); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("snapshot: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("snapshot: %w", err)
	}
	return id, nil
}

// Snapshots lists the snapshot names.
func (d *Linux) Snapshots() ([]SnapshotID, error) {
	ents, err := os.ReadDir(d.snapshotDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []SnapshotID
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".img") {
			out = append(out, SnapshotID(strings.TrimSuffix(e.Name(), ".img")))
		}
	}
	return out, nil
}

// Rollback implements Driver: kill, detach, copy the snapshot back over the
// image, attach.
func (d *Linux) Rollback(ctx context.Context, id SnapshotID) error {
	src, err := d.snapshotPath(id)
	if err != nil {
		return err
	}
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("rollback: snapshot %s: %w", id, err)
	}
	if err := d.Detach(ctx); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	tmp := d.pol.Volume.Image + ".rollback"
	if _, err := d.opts.Exec.Run(ctx, Cmd{Path: "cp", Args: []string{"--sparse=always", src, tmp}}); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rollback: %w", err)
	}
	if err := os.Rename(tmp, d.pol.Volume.Image); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	if _, err := d.Attach(ctx); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

var _ Driver = (*Linux)(nil)

// Inventory implements Inventorier: every non-directory path in the volume
// with a signature that changes on any write (ctime cannot be forged by
// the agent), read through the harvest view without following links.
func (d *Linux) Inventory(ctx context.Context) (map[string]string, error) {
	root := d.harvestDir()
	if !isMountPoint(root) {
		return nil, fmt.Errorf("inventory: the volume is not attached")
	}
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if de.IsDir() {
			if rel == "lost+found" || rel == ".tmp" || rel == ".cache" {
				return filepath.SkipDir
			}
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		out[rel] = fmt.Sprintf("%o:%d:%d.%09d:%d", st.Mode, st.Size, st.Ctim.Sec, st.Ctim.Nsec, st.Ino)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return out, nil
}
