//go:build unix

package repogen

import (
	"syscall"
	"time"
)

// CPUTime is the user+system CPU time used so far by this process and
// its waited-for children (git, gitleaks...). Benchmarks report its delta
// per operation: on a shared, loaded machine wall time says little.
func CPUTime() time.Duration {
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}
