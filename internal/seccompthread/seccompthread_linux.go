// Package seccompthread installs a seccomp filter on the calling OS thread
// only, the way the sandbox and the checks' isolated runner confine the
// processes they start: the caller locks its goroutine to the thread, sets
// no_new_privs, installs the filter and then forks from that thread, whose
// children inherit it. No TSYNC: the rest of the process is unaffected.
package seccompthread

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Load installs raw on the calling OS thread. no_new_privs must already
// be set on it (or the thread must hold CAP_SYS_ADMIN).
func Load(raw []bpf.RawInstruction) error {
	if len(raw) == 0 {
		return errors.New("seccomp: empty filter")
	}
	filter := make([]syscall.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = syscall.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	prog := syscall.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	_, _, e := syscall.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog)))
	if e != 0 {
		return fmt.Errorf("seccomp: loading the filter: %w", e)
	}
	return nil
}
