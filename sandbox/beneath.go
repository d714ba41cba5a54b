//go:build unix

package sandbox

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// openBeneath opens rel under root one component at a time with
// O_NOFOLLOW, so no symlink anywhere on the path is followed (ELOOP), and
// '..' is refused. On Linux the harvest view is also mounted nosymfollow:
// two independent guards.
func openBeneath(root, rel string) (*os.File, error) {
	clean := filepath.Clean(rel)
	if filepath.IsAbs(rel) || clean == ".." || strings.HasPrefix(clean, "../") {
		return nil, fmt.Errorf("%q: path must stay beneath the volume", rel)
	}
	dirfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", root, err)
	}
	parts := strings.Split(clean, "/")
	for i, p := range parts {
		if p == "" || p == "." || p == ".." {
			unix.Close(dirfd)
			return nil, fmt.Errorf("%q: bad path component %q", rel, p)
		}
		flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
		if i < len(parts)-1 {
			flags |= unix.O_DIRECTORY
		}
		fd, err := unix.Openat(dirfd, p, flags, 0)
		if err == unix.ENOTDIR {
			// O_DIRECTORY|O_NOFOLLOW on a symlink says ENOTDIR; call it what it is.
			var st unix.Stat_t
			if unix.Fstatat(dirfd, p, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP
			}
		}
		unix.Close(dirfd)
		if err != nil {
			return nil, fmt.Errorf("opening %s beneath %s without following links: %w", rel, root, err)
		}
		dirfd = fd
	}
	return os.NewFile(uintptr(dirfd), filepath.Join(root, clean)), nil
}

// copyBeneath copies the regular file rel (beneath root, no links
// followed) to dst, refusing more than max bytes.
func copyBeneath(root, rel, dst string, max int64) (int64, error) {
	f, err := openBeneath(root, rel)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("%s is not a regular file (%v)", rel, fi.Mode().Type())
	}
	if fi.Size() > max {
		return 0, fmt.Errorf("%s is %d bytes, over the %d-byte limit", rel, fi.Size(), max)
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, io.LimitReader(f, max+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > max {
		err = fmt.Errorf("%s grew past the %d-byte limit while copying", rel, max)
	}
	if err != nil {
		os.Remove(dst)
		return 0, err
	}
	return n, nil
}
