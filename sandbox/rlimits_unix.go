//go:build unix

package sandbox

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// RlimitsMain is the launcher the macOS driver runs as the agent user
// (`agentgate sandbox-rlimits -cpu N -fsize N -nofile N -nproc N -core 0 --
// PROGRAM ARGS`): it sets the limits, which the program and its children
// inherit, then execs the program. It never returns.
func RlimitsMain(args []string) {
	fs := flag.NewFlagSet("sandbox-rlimits", flag.ContinueOnError)
	cpu := fs.Uint64("cpu", 0, "RLIMIT_CPU seconds")
	fsize := fs.Uint64("fsize", 0, "RLIMIT_FSIZE bytes")
	nofile := fs.Uint64("nofile", 0, "RLIMIT_NOFILE")
	nproc := fs.Uint64("nproc", 0, "RLIMIT_NPROC (per uid: meaningful because the uid is dedicated)")
	core := fs.Uint64("core", 0, "RLIMIT_CORE")
	if err := fs.Parse(args); err != nil {
		os.Exit(125)
	}
	rest := fs.Args()
	if *cpu == 0 || *fsize == 0 || *nofile == 0 || *nproc == 0 || len(rest) == 0 {
		fmt.Fprintln(os.Stderr, "sandbox-rlimits: -cpu, -fsize, -nofile, -nproc and a program are required")
		os.Exit(125)
	}
	for _, r := range []struct {
		res int
		v   uint64
	}{{unix.RLIMIT_CPU, *cpu}, {unix.RLIMIT_FSIZE, *fsize}, {unix.RLIMIT_NOFILE, *nofile}, {unix.RLIMIT_NPROC, *nproc}, {unix.RLIMIT_CORE, *core}} {
		if err := unix.Setrlimit(r.res, &unix.Rlimit{Cur: r.v, Max: r.v}); err != nil {
			fmt.Fprintf(os.Stderr, "sandbox-rlimits: setrlimit %d: %v\n", r.res, err)
			os.Exit(125)
		}
	}
	prog, err := exec.LookPath(rest[0])
	if err != nil || prog != rest[0] {
		fmt.Fprintln(os.Stderr, "sandbox-rlimits: the program must be an absolute path")
		os.Exit(125)
	}
	err = syscall.Exec(prog, rest, os.Environ())
	fmt.Fprintln(os.Stderr, "sandbox-rlimits:", err)
	os.Exit(126)
}
