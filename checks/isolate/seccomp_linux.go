//go:build linux

package isolate

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Seccomp return values.
const (
	secRetAllow = uint32(unix.SECCOMP_RET_ALLOW)
	secRetKill  = uint32(unix.SECCOMP_RET_KILL_PROCESS)
	secRetEPERM = uint32(unix.SECCOMP_RET_ERRNO) | uint32(unix.EPERM)
	x32Bit      = 0x40000000
)

// littleEndian lists the architectures whose syscall argument words the
// filter reads at the little-endian offset.
var littleEndian = map[string]bool{"amd64": true, "arm64": true, "riscv64": true, "ppc64le": true, "loong64": true, "mips64le": true}

// unixSocketFilter is the seccomp program that keeps commands away from
// the host's unix sockets (a Docker or systemd socket is root on the host,
// and Landlock before ABI 9 does not govern connecting to them; a network
// namespace does not hide pathname sockets): socket(AF_UNIX, …) fails with
// EPERM, and so does io_uring, whose IORING_OP_SOCKET would go around the
// socket rule, and socketpair(AF_UNIX, SOCK_DGRAM), whose sockets can be
// pointed at a path; stream and seqpacket pairs stay allowed: they are
// connected to each other and reach nothing outside.
// Calls of a foreign architecture (or amd64's x32 ABI) kill the process:
// the numbers checked here would not mean the same there.
func unixSocketFilter() ([]bpf.RawInstruction, error) {
	if !littleEndian[runtime.GOARCH] {
		return nil, fmt.Errorf("no unix-socket filter for %s", runtime.GOARCH)
	}
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp: unsupported architecture: %w", err)
	}
	socketNr, ok := info.SyscallNames["socket"]
	if !ok {
		return nil, errors.New("seccomp: this architecture has no socket(2) (socketcall only)")
	}
	var uring []uint32
	for _, n := range []string{"io_uring_setup", "io_uring_enter", "io_uring_register"} {
		if nr, ok := info.SyscallNames[n]; ok {
			uring = append(uring, uint32(nr))
		}
	}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(info.ID), SkipTrue: 1},
		bpf.RetConstant{Val: secRetKill},
		bpf.LoadAbsolute{Off: 0, Size: 4}, // syscall number
	}
	if runtime.GOARCH == "amd64" {
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: x32Bit, SkipFalse: 1},
			bpf.RetConstant{Val: secRetKill},
		)
	}
	for _, nr := range uring {
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: 1},
			bpf.RetConstant{Val: secRetEPERM},
		)
	}
	// socketpair(AF_UNIX, SOCK_DGRAM): a datagram socket can still be
	// pointed at any path with sendto or connect.
	if pairNr, ok := info.SyscallNames["socketpair"]; ok {
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(pairNr), SkipFalse: 7},
			bpf.LoadAbsolute{Off: 16, Size: 4}, // args[0], low word
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AF_UNIX, SkipFalse: 4},
			bpf.LoadAbsolute{Off: 24, Size: 4}, // args[1], low word: the type and its flags
			bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.SOCK_DGRAM, SkipFalse: 1},
			bpf.RetConstant{Val: secRetEPERM},
			bpf.RetConstant{Val: secRetAllow},
		)
	}
	prog = append(prog,
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(socketNr), SkipFalse: 3},
		bpf.LoadAbsolute{Off: 16, Size: 4}, // args[0], low word: the kernel truncates int arguments
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AF_UNIX, SkipFalse: 1},
		bpf.RetConstant{Val: secRetEPERM},
		bpf.RetConstant{Val: secRetAllow},
	)
	return bpf.Assemble(prog)
}
