//go:build !linux

package isolate

import (
	"errors"
	"os/exec"
)

func configure(cmd *exec.Cmd, mode string) {}

func killTree(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}

func probe() (string, error) {
	return "", errors.New("network isolation is implemented for Linux only; use the sandbox runner")
}
