//go:build unix

package gopkgs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// lockedWorkTree takes an exclusive, non-blocking lock on base.lock and
// returns the work tree under base; released by w.release.
func lockedWorkTree(base string) (*WorkTree, error) {
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(base+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, errors.New("work dir busy")
	}
	return &WorkTree{
		Dir:     filepath.Join(base, "tree"),
		Scratch: filepath.Join(base, "scratch"),
		release: func() {
			_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			f.Close()
		},
	}, nil
}
