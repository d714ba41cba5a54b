//go:build linux

package isolate

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// TestExecEnv carries the inner policy to the test-binary wrapper (see
// Options.TestExec). Its presence is what turns a program into the
// wrapper: IsTestExec.
const TestExecEnv = "AGENTGATE_ISOLATE_TESTEXEC"

// testExecPolicy is the inner domain of a test binary.
type testExecPolicy struct {
	ABI     int      `json:"abi"`
	RODirs  []string `json:"ro_dirs"`
	ROFiles []string `json:"ro_files"`
	RWDirs  []string `json:"rw_dirs"`
	RWFiles []string `json:"rw_files"`
	// GoCache is the build cache the test binary (and any go command it
	// runs) gets instead of the shared one.
	GoCache string `json:"gocache"`
}

// IsTestExec reports whether this process was started as the test-binary
// wrapper (`go test -exec`); main functions call TestExecMain then.
func IsTestExec() bool { return os.Getenv(TestExecEnv) != "" }

// TestExecMain is the test-binary wrapper: `go test` runs it as
// `wrapper TESTBINARY ARGS...`. It confines itself further — a Landlock
// domain nested in the command's, without the shared Go build cache — and
// executes the test binary, which gets a private GOCACHE. It returns only
// on failure (exit code 1, after saying why on stderr): a test binary the
// wrapper cannot confine never runs.
func TestExecMain() int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "agentgate test-binary wrapper: "+format+"\n", a...)
		return 1
	}
	var pol testExecPolicy
	if err := json.Unmarshal([]byte(os.Getenv(TestExecEnv)), &pol); err != nil {
		return fail("bad %s: %v", TestExecEnv, err)
	}
	if len(os.Args) < 2 {
		return fail("no test binary to run")
	}
	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k == TestExecEnv || k == "GOCACHE" || k == "GOFLAGS" {
			continue
		}
		env = append(env, kv)
	}
	if pol.GoCache != "" {
		if err := os.MkdirAll(pol.GoCache, 0o700); err != nil {
			return fail("make the test binary's GOCACHE: %v", err)
		}
		env = append(env, "GOCACHE="+pol.GoCache)
	}
	p := &fsPolicy{abi: pol.ABI, roDirs: pol.RODirs, roFiles: pol.ROFiles, rwDirs: pol.RWDirs, rwFiles: pol.RWFiles}
	fd, flags, err := p.ruleset()
	if err != nil {
		return fail("%v", err)
	}
	// Landlock is per thread and execve keeps the calling thread's domain:
	// restrict this (locked) thread, then exec from it.
	runtime.LockOSThread()
	if err := restrictThread(p, fd, flags); err != nil {
		return fail("%v", err)
	}
	unix.Close(fd)
	err = syscall.Exec(os.Args[1], os.Args[1:], env)
	return fail("exec %s: %v", os.Args[1], err)
}

// testExecSetup returns the environment additions that make `go test`
// run test binaries through the wrapper with the inner policy: the
// command's own policy minus the Go build cache, plus a private GOCACHE in
// the run's scratch dir.
func (n *Netless) testExecSetup(outer *fsPolicy, env []string, scratch, sharedCache string) ([]string, error) {
	pol := testExecPolicy{ABI: outer.abi, GoCache: scratch + "/gocache-tests"}
	drop := func(paths []string) []string {
		var out []string
		for _, p := range paths {
			if p != sharedCache {
				out = append(out, p)
			}
		}
		return out
	}
	pol.RODirs, pol.ROFiles = drop(outer.roDirs), drop(outer.roFiles)
	pol.RWDirs, pol.RWFiles = drop(outer.rwDirs), drop(outer.rwFiles)
	b, err := json.Marshal(pol)
	if err != nil {
		return nil, err
	}
	flags := envValue(env, "GOFLAGS")
	if flags != "" {
		flags += " "
	}
	return []string{TestExecEnv + "=" + string(b), "GOFLAGS=" + flags + "-exec=" + n.opts.TestExec}, nil
}
