//go:build !linux

package sandbox

import (
	"fmt"
	"os"
	"runtime"
)

// InitEnv marks a process as the sandbox init (Linux only).
const InitEnv = "AGENTGATE_SANDBOX_INIT"

// IsInit reports whether this process was started as the sandbox init.
func IsInit() bool { return os.Getenv(InitEnv) == "1" }

// InitMain exists on Linux only; elsewhere it refuses.
func InitMain() {
	fmt.Fprintln(os.Stderr, "agentgate sandbox-init: the Linux sandbox init does not run on", runtime.GOOS)
	os.Exit(125)
}

// LinuxOptions configure the Linux driver (Linux only).
type LinuxOptions struct {
	Exec     Executor
	InitPath string
	InitArgs []string
}

// Linux is the Linux driver; on other systems it cannot be built.
type Linux struct{ Driver }

// NewLinux fails on systems other than Linux.
func NewLinux(p Policy, o LinuxOptions) (*Linux, error) {
	return nil, fmt.Errorf("%w: the Linux driver runs on Linux, not %s", ErrLayerMissing, runtime.GOOS)
}

// ProbeLinux reports that no Linux layer exists here.
func ProbeLinux() Capabilities {
	return Capabilities{OS: runtime.GOOS, Root: os.Geteuid() == 0, Layers: []Layer{{Name: "linux", Available: false, Required: true, Detail: "not Linux"}}}
}
