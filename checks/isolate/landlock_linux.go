//go:build linux

package isolate

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/net/bpf"

	"github.com/agentgate/agentgate/internal/seccompthread"
	"golang.org/x/sys/unix"
)

// Access rights of the rules (intersected with what the kernel's ABI
// handles). Write access never includes making device nodes, ioctl on
// devices or connecting to pathname sockets outside the domain.
const (
	rightsRead = ll.AccessFSExecute | ll.AccessFSReadFile | ll.AccessFSReadDir
	rightsRW   = rightsRead | ll.AccessFSWriteFile | ll.AccessFSRemoveDir | ll.AccessFSRemoveFile |
		ll.AccessFSMakeDir | ll.AccessFSMakeReg | ll.AccessFSMakeSock | ll.AccessFSMakeFifo |
		ll.AccessFSMakeSym | ll.AccessFSRefer | ll.AccessFSTruncate
	fileRights = ll.AccessFSExecute | ll.AccessFSReadFile | ll.AccessFSWriteFile | ll.AccessFSTruncate
)

// landlockConfigs are go-landlock's configurations by ABI version (index
// 0 = ABI 1); the newest is used for kernels newer than go-landlock.
var landlockConfigs = []landlock.Config{landlock.V1, landlock.V2, landlock.V3, landlock.V4, landlock.V5,
	landlock.V6, landlock.V7, landlock.V8, landlock.V9, landlock.V10, landlock.V11}

// probeLandlock returns the kernel's Landlock ABI version, or why Landlock
// cannot confine the runner's commands. ABI 1 is refused: it denies every
// rename across directories, which the go command needs.
func probeLandlock() (int, error) {
	abi, err := ll.LandlockGetABIVersion()
	if err != nil {
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
			return 0, errors.New("the kernel has no Landlock (Linux 5.19+ with landlock in the lsm= boot list)")
		}
		return 0, fmt.Errorf("landlock: %v", err)
	}
	if abi < 2 {
		return abi, fmt.Errorf("the kernel's Landlock ABI %d cannot allow renames across directories; need ABI 2 (Linux 5.19+)", abi)
	}
	return abi, nil
}

// capLastCap is the highest capability number of the running kernel.
func capLastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// fsPolicy is the filesystem confinement of one command.
type fsPolicy struct {
	abi     int
	lastCap int  // capabilities 0..lastCap are dropped from the bounding set
	dropCap bool // the runner is root: drop every capability across exec
	roDirs  []string
	roFiles []string
	rwDirs  []string
	rwFiles []string
	// procWrite adds write_file on /proc: in a user namespace the runner
	// itself writes the child's uid_map and gid_map from the confined
	// thread (see the package doc).
	procWrite bool
	// socketFilter, when set, is the seccomp program installed after the
	// Landlock domain (unixSocketFilter: no AF_UNIX sockets).
	socketFilter []bpf.RawInstruction
}

// ruleset builds the Landlock ruleset of p: an fd to pass to
// landlock_restrict_self (close it after), and its flags. The handled
// rights are exactly the kernel ABI's filesystem rights, so anything not
// granted here is denied.
func (p *fsPolicy) ruleset() (int, uint32, error) {
	i := min(p.abi, len(landlockConfigs)) - 1
	if i < 1 {
		return -1, 0, fmt.Errorf("the kernel's Landlock ABI %d is not usable", p.abi)
	}
	cfg := landlock.Config{HandledAccessFS: landlockConfigs[i].HandledAccessFS}
	handled := cfg.HandledAccessFS
	grant := func(rights landlock.AccessFSSet, paths []string) landlock.Rule {
		return landlock.PathAccess(rights&handled, paths...)
	}
	var rules []landlock.Rule
	add := func(rights landlock.AccessFSSet, paths []string) {
		if len(paths) > 0 {
			rules = append(rules, grant(rights, paths))
		}
	}
	add(rightsRead, p.roDirs)
	add(rightsRead&fileRights, p.roFiles)
	add(rightsRW, p.rwDirs)
	add(rightsRW&fileRights, p.rwFiles)
	if p.procWrite {
		add(ll.AccessFSWriteFile, []string{"/proc"})
	}
	fd, flags, err := cfg.NewRulesetFD(rules...)
	if err != nil {
		return -1, 0, fmt.Errorf("building the Landlock ruleset: %w", err)
	}
	if fd < 0 {
		return -1, 0, errors.New("the Landlock ruleset would restrict nothing")
	}
	return fd, flags, nil
}

// restrictThread confines the calling OS thread, and so every process it
// starts afterwards: no_new_privs, (as root) an empty capability bounding
// set, empty inheritable and ambient sets, then the Landlock domain and
// (unless unix sockets are allowed) the seccomp unix-socket filter.
// Only this thread changes: the prctl, capset and landlock_restrict_self
// calls are the per-thread system calls, never the all-threads variants.
// The caller must have locked the goroutine to its thread and must never
// unlock it, so that the thread ends with the goroutine.
func restrictThread(p *fsPolicy, fd int, flags uint32) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	if p.dropCap {
		for c := 0; c <= p.lastCap; c++ {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
				return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
			}
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
			return fmt.Errorf("clearing ambient capabilities: %w", err)
		}
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			return fmt.Errorf("capget: %w", err)
		}
		if data[0].Inheritable != 0 || data[1].Inheritable != 0 {
			data[0].Inheritable, data[1].Inheritable = 0, 0
			if err := unix.Capset(&hdr, &data[0]); err != nil {
				return fmt.Errorf("clearing inheritable capabilities: %w", err)
			}
		}
	}
	if err := ll.LandlockRestrictSelf(fd, flags); err != nil {
		return fmt.Errorf("landlock_restrict_self: %w", err)
	}
	if p.socketFilter != nil {
		if err := seccompthread.Load(p.socketFilter); err != nil {
			return err
		}
	}
	return nil
}

// socketFilterFor returns the unix-socket filter, or why there is none.
func socketFilterFor() ([]bpf.RawInstruction, error) { return unixSocketFilter() }

// startConfined starts cmd from a goroutine locked to a fresh OS thread
// that is confined by p first; the child inherits the thread's Landlock
// domain, no_new_privs and capability sets (clone runs on the calling
// thread). The same goroutine waits for the command: the thread must live
// as long as the child, because Pdeathsig fires when the thread that
// started the child exits. The returned channel yields Wait's result. The
// goroutine never unlocks its thread, so the Go runtime ends the thread
// with it and never reuses it for other goroutines; the runtime also never
// clones new threads from a locked one (it uses its template thread), so
// nothing else in the process inherits the confinement. The main thread is
// never used: it cannot end, the runtime would park it confined forever.
func startConfined(cmd *exec.Cmd, p *fsPolicy) (<-chan error, error) {
	fd, flags, err := p.ruleset()
	if err != nil {
		return nil, err
	}
	started := make(chan error, 1)
	done := make(chan error, 1)
	var confine func(locked chan<- struct{})
	confine = func(locked chan<- struct{}) {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The main thread cannot exit (the runtime parks it forever
			// instead), so it is never confined. Holding it locked makes
			// the retry run on another thread.
			next := make(chan struct{})
			go confine(next)
			<-next
			runtime.UnlockOSThread()
			close(locked)
			return
		}
		close(locked)
		// Never unlocked from here on: see above.
		err := restrictThread(p, fd, flags)
		unix.Close(fd)
		if err == nil {
			err = cmd.Start()
		}
		started <- err
		if err == nil {
			done <- cmd.Wait()
		}
	}
	go confine(make(chan struct{}))
	if err := <-started; err != nil {
		return nil, err
	}
	return done, nil
}
