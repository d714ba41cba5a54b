package isolate

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// configure sets the namespaces and the process group of cmd.
func configure(cmd *exec.Cmd, mode string) {
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	switch mode {
	case "netns+pidns":
		attr.Cloneflags = syscall.CLONE_NEWNET | syscall.CLONE_NEWPID
	case "userns+netns+pidns":
		attr.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET | syscall.CLONE_NEWPID
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getuid(), HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getgid(), HostID: os.Getgid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	cmd.SysProcAttr = attr
}

// killTree kills the command's process group; when the command is the
// init of its own PID namespace, that also ends every process in it, even
// ones that left the group with setsid.
func killTree(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Process.Kill()
}

// probe finds the strongest isolation this process can create by starting
// a trivial command in it.
func probe() (string, error) {
	// Prefer a program that does nothing; our own binary is the fallback
	// (the probe kills it right after the clone succeeded).
	self, err := exec.LookPath("true")
	if err != nil {
		if self, err = os.Executable(); err != nil {
			return "", fmt.Errorf("find a program to probe with: %w", err)
		}
	}
	modes := []string{"userns+netns+pidns"}
	if os.Geteuid() == 0 {
		modes = []string{"netns+pidns", "userns+netns+pidns"}
	}
	var lastErr error
	for _, m := range modes {
		cmd := exec.Command(self)
		cmd.Env = []string{"AGENTGATE_ISOLATE_PROBE=1"}
		configure(cmd, m)
		if err := cmd.Start(); err != nil {
			lastErr = err
			continue
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return m, nil
	}
	return "", lastErr
}
