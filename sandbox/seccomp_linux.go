//go:build linux

package sandbox

import (
	"fmt"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// deniedSyscalls return EPERM: kernel attack surface and every way to
// leave or reshape the sandbox (new namespaces, mounts, tracing, keyrings,
// BPF, io_uring, whose IORING_OP_SOCKET would bypass the socket() rule).
var deniedSyscalls = []string{
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	"ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd",
	"unshare", "setns", "mount", "umount2", "pivot_root", "chroot",
	"fsopen", "fsmount", "fsconfig", "fspick", "move_mount", "open_tree", "mount_setattr",
	"keyctl", "add_key", "request_key", "bpf", "userfaultfd", "perf_event_open",
	"init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
	"open_by_handle_at", "name_to_handle_at", "quotactl", "swapon", "swapoff", "reboot",
	"acct", "lookup_dcookie", "iopl", "ioperm", "vhangup", "settimeofday", "clock_settime",
	"clock_adjtime", "adjtimex", "syslog", "nfsservctl", "uselib", "fanotify_init",
	"add_key", "lsm_set_self_attr",
}

// namespaceCloneFlags are the clone(2) flags that create namespaces.
const namespaceCloneFlags = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWTIME

const (
	retErrnoEPERM  = uint32(seccomp.ActionErrno) | uint32(unix.EPERM)
	retErrnoENOSYS = uint32(seccomp.ActionErrno) | uint32(unix.ENOSYS)
	retKill        = uint32(seccomp.ActionKillProcess)
	ipprotoMPTCP   = 262
	offNr          = 0
	offArch        = 4
)

func argLoOffset(i int) uint32 { return uint32(16 + 8*i) } // little-endian low word

// SeccompProgram builds the sandbox's seccomp filter for this machine's
// architecture. The deny list is assembled by elastic/go-seccomp-bpf; in
// front of it sits a hand-written guard that go-seccomp-bpf does not give:
//   - a foreign architecture (e.g. int 0x80 i386 calls on x86-64) is killed
//     (go-seccomp-bpf would apply the default action, allow, to it);
//   - clone3 returns ENOSYS, so libc falls back to clone, whose flags the
//     filter can see;
//   - socket(2) is judged on the low 32 bits of its int arguments (the
//     kernel truncates them), so a garbage high word cannot dodge the rule:
//     AF_UNIX (unless allowed) and AF_NETLINK are EPERM, as is MPTCP, which
//     Landlock's TCP rules do not cover;
//   - ioctl TIOCSTI and TIOCLINUX (terminal input injection) are EPERM.
func SeccompProgram(allowUnix bool) ([]bpf.RawInstruction, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp: unsupported architecture: %w", err)
	}
	var names []string
	seen := map[string]bool{}
	for _, n := range deniedSyscalls {
		if _, ok := info.SyscallNames[n]; ok && !seen[n] {
			names = append(names, n)
			seen[n] = true
		}
	}
	pol := seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		Syscalls: []seccomp.SyscallGroup{
			{Action: seccomp.ActionErrno, Names: names},
			{Action: seccomp.ActionErrno, NamesWithCondtions: []seccomp.NameWithConditions{{
				Name: "clone",
				Conditions: seccomp.ArgumentConditions{{
					Argument: 0, Operation: seccomp.BitsSet, Value: namespaceCloneFlags,
				}},
			}}},
		},
	}
	body, err := pol.Assemble()
	if err != nil {
		return nil, fmt.Errorf("seccomp: assembling the deny list: %w", err)
	}

	nr := func(name string) (uint32, bool) {
		n, ok := info.SyscallNames[name]
		return uint32(n), ok
	}
	var guard []bpf.Instruction
	// Architecture: anything but the native one is killed.
	guard = append(guard,
		bpf.LoadAbsolute{Off: offArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(info.ID), SkipTrue: 1},
		bpf.RetConstant{Val: retKill},
		bpf.LoadAbsolute{Off: offNr, Size: 4},
	)
	if n, ok := nr("clone3"); ok {
		guard = append(guard,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: n, SkipFalse: 1},
			bpf.RetConstant{Val: retErrnoENOSYS},
		)
	}
	if n, ok := nr("socket"); ok {
		// if nr != socket: skip the socket block.
		block := []bpf.Instruction{
			bpf.LoadAbsolute{Off: argLoOffset(0), Size: 4},
		}
		if !allowUnix {
			block = append(block,
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AF_UNIX, SkipFalse: 1},
				bpf.RetConstant{Val: retErrnoEPERM})
		}
		block = append(block,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AF_NETLINK, SkipFalse: 1},
			bpf.RetConstant{Val: retErrnoEPERM},
			bpf.LoadAbsolute{Off: argLoOffset(2), Size: 4},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: ipprotoMPTCP, SkipFalse: 1},
			bpf.RetConstant{Val: retErrnoEPERM},
			bpf.LoadAbsolute{Off: offNr, Size: 4}, // restore A for what follows
		)
		guard = append(guard, bpf.JumpIf{Cond: bpf.JumpEqual, Val: n, SkipFalse: uint8(len(block))})
		guard = append(guard, block...)
	}
	if n, ok := nr("ioctl"); ok {
		block := []bpf.Instruction{
			bpf.LoadAbsolute{Off: argLoOffset(1), Size: 4},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.TIOCSTI, SkipFalse: 1},
			bpf.RetConstant{Val: retErrnoEPERM},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.TIOCLINUX, SkipFalse: 1},
			bpf.RetConstant{Val: retErrnoEPERM},
			bpf.LoadAbsolute{Off: offNr, Size: 4},
		}
		guard = append(guard, bpf.JumpIf{Cond: bpf.JumpEqual, Val: n, SkipFalse: uint8(len(block))})
		guard = append(guard, block...)
	}
	prog := append(guard, body...)
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("seccomp: assembling the filter: %w", err)
	}
	if len(raw) > 4096 {
		return nil, fmt.Errorf("seccomp: filter has %d instructions, over the kernel's 4096", len(raw))
	}
	return raw, nil
}

// seccompAvailable reports whether the kernel offers filter mode with errno
// returns.
func seccompAvailable() (bool, string) {
	if !seccomp.Supported() {
		return false, "seccomp(2) not supported"
	}
	return true, "filter mode"
}
