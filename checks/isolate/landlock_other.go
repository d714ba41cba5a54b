//go:build !linux

package isolate

import (
	"errors"
	"os/exec"
)

func probeLandlock() (int, error) {
	return 0, errors.New("Landlock is Linux-only")
}

func capLastCap() (int, error) { return 0, nil }

// fsPolicy is the filesystem confinement of one command (Linux only).
type fsPolicy struct {
	abi       int
	lastCap   int
	dropCap   bool
	roDirs    []string
	roFiles   []string
	rwDirs    []string
	rwFiles   []string
	procWrite bool
	// socketFilter is unused off Linux.
	socketFilter []struct{}
}

func socketFilterFor() ([]struct{}, error) { return nil, errors.New("seccomp is Linux-only") }

func startConfined(cmd *exec.Cmd, p *fsPolicy) (<-chan error, error) {
	return nil, errors.New("Landlock is Linux-only")
}
