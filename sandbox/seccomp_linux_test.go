//go:build linux

package sandbox

import (
	"encoding/binary"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// seccompData builds struct seccomp_data as the x/net/bpf VM reads it:
// the kernel loads 32-bit words in native (little-endian) order, the VM in
// network order, so each 32-bit word is written big-endian at the offset a
// little-endian kernel would have it (the low word of an argument first).
func seccompData(nr, archID uint32, args ...uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], nr)
	binary.BigEndian.PutUint32(b[4:], archID)
	for i, a := range args {
		binary.BigEndian.PutUint32(b[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(b[16+8*i+4:], uint32(a>>32))
	}
	return b
}

// TestSeccompFilterDecisions runs the real filter in x/net/bpf's VM: no
// root needed, and every decision is checked, including the ones
// go-seccomp-bpf alone would get wrong (foreign architecture, high-word
// garbage in socket's int domain).
func TestSeccompFilterDecisions(t *testing.T) {
	raw, err := SeccompProgram(false)
	if err != nil {
		t.Fatal(err)
	}
	insts, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("filter does not disassemble")
	}
	vm, err := bpf.NewVM(insts)
	if err != nil {
		t.Fatal(err)
	}
	info, err := arch.GetInfo("")
	if err != nil {
		t.Fatal(err)
	}
	nr := func(name string) uint32 {
		n, ok := info.SyscallNames[name]
		if !ok {
			t.Fatalf("no syscall %s", name)
		}
		return uint32(n)
	}
	allow := uint32(unix.SECCOMP_RET_ALLOW)
	eperm := retErrnoEPERM
	cases := []struct {
		name string
		data []byte
		want uint32
	}{
		{"read is allowed", seccompData(nr("read"), uint32(info.ID)), allow},
		{"socket(AF_INET) is allowed", seccompData(nr("socket"), uint32(info.ID), unix.AF_INET, unix.SOCK_STREAM, 0), allow},
		{"socket(AF_UNIX) is EPERM", seccompData(nr("socket"), uint32(info.ID), unix.AF_UNIX, unix.SOCK_STREAM, 0), eperm},
		{"socket(AF_UNIX) with high-word garbage is EPERM", seccompData(nr("socket"), uint32(info.ID), 1<<32|unix.AF_UNIX), eperm},
		{"socket(AF_NETLINK) is EPERM", seccompData(nr("socket"), uint32(info.ID), unix.AF_NETLINK), eperm},
		{"MPTCP is EPERM", seccompData(nr("socket"), uint32(info.ID), unix.AF_INET, unix.SOCK_STREAM, ipprotoMPTCP), eperm},
		{"clone3 is ENOSYS", seccompData(nr("clone3"), uint32(info.ID)), retErrnoENOSYS},
		{"clone(CLONE_NEWUSER) is EPERM", seccompData(nr("clone"), uint32(info.ID), unix.CLONE_NEWUSER|uint64(unix.SIGCHLD)), eperm},
		{"clone(CLONE_NEWNET) is EPERM", seccompData(nr("clone"), uint32(info.ID), unix.CLONE_NEWNET), eperm},
		{"plain clone (fork) is allowed", seccompData(nr("clone"), uint32(info.ID), uint64(unix.SIGCHLD)), allow},
		{"io_uring_setup is EPERM", seccompData(nr("io_uring_setup"), uint32(info.ID)), eperm},
		{"ptrace is EPERM", seccompData(nr("ptrace"), uint32(info.ID)), eperm},
		{"mount is EPERM", seccompData(nr("mount"), uint32(info.ID)), eperm},
		{"unshare is EPERM", seccompData(nr("unshare"), uint32(info.ID)), eperm},
		{"bpf is EPERM", seccompData(nr("bpf"), uint32(info.ID)), eperm},
		{"ioctl TIOCSTI is EPERM", seccompData(nr("ioctl"), uint32(info.ID), 0, unix.TIOCSTI), eperm},
		{"ioctl TCGETS is allowed", seccompData(nr("ioctl"), uint32(info.ID), 0, unix.TCGETS), allow},
		{"a foreign architecture is killed", seccompData(nr("read"), 0x40000003 /* AUDIT_ARCH_I386 */), retKill},
	}
	if info.ID == arch.X86_64.ID {
		cases = append(cases, struct {
			name string
			data []byte
			want uint32
		}{"x32 ABI is ENOSYS", seccompData(nr("read")|0x40000000, uint32(info.ID)), retErrnoENOSYS})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := vm.Run(c.data)
			if err != nil {
				t.Fatal(err)
			}
			if uint32(got) != c.want {
				t.Fatalf("filter returned %#x, want %#x", uint32(got), c.want)
			}
		})
	}
	rawUnix, err := SeccompProgram(true)
	if err != nil {
		t.Fatal(err)
	}
	insts, _ = bpf.Disassemble(rawUnix)
	vm2, _ := bpf.NewVM(insts)
	if got, _ := vm2.Run(seccompData(nr("socket"), uint32(info.ID), unix.AF_UNIX)); uint32(got) != allow {
		t.Fatalf("AllowUnixSockets: socket(AF_UNIX) got %#x", uint32(got))
	}
}
