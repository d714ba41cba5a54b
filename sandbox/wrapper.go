package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// VerifyWrapper checks that a wrapper may be run: the file and every
// directory above it are owned by root and writable by no one else (so the
// agent cannot swap it), it is a regular executable file outside the
// volume, and its content hashes to the pinned SHA-256. It hashes through
// the opened descriptor, so the bytes checked are the bytes of the file
// that was opened.
func VerifyWrapper(name string, w Wrapper, volume string) error {
	if under(w.Path, volume) {
		return fmt.Errorf("%w: %s: %s lies inside the volume", ErrWrapperTampered, name, w.Path)
	}
	f, err := os.OpenFile(w.Path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("%w: %s: %v (wrappers must be regular files, not symlinks)", ErrWrapperTampered, name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrWrapperTampered, name, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%w: %s: %s is not an executable regular file", ErrWrapperTampered, name, w.Path)
	}
	if err := rootOnly(fi, w.Path); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrWrapperTampered, name, err)
	}
	for dir := filepath.Dir(w.Path); ; dir = filepath.Dir(dir) {
		di, err := os.Lstat(dir)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrWrapperTampered, name, err)
		}
		if di.Mode()&os.ModeSymlink != 0 {
			// A symlinked ancestor (e.g. /lib -> usr/lib) is fine only if
			// root owns it; links' own permission bits mean nothing.
			if st, ok := di.Sys().(*syscall.Stat_t); !ok || st.Uid != 0 {
				return fmt.Errorf("%w: %s: ancestor %s is a symlink not owned by root", ErrWrapperTampered, name, dir)
			}
		} else if err := rootOnly(di, dir); err != nil {
			return fmt.Errorf("%w: %s: ancestor %v", ErrWrapperTampered, name, err)
		}
		if dir == "/" {
			break
		}
	}
	got, err := hashReader(f)
	if err != nil {
		return fmt.Errorf("%w: %s: reading: %v", ErrWrapperTampered, name, err)
	}
	if got != strings.ToLower(w.SHA256) {
		return fmt.Errorf("%w: %s: %s has SHA-256 %s, pinned %s; someone changed the wrapper: reinstall it and re-pin only after review",
			ErrWrapperTampered, name, w.Path, got, w.SHA256)
	}
	return nil
}

func rootOnly(fi os.FileInfo, path string) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: cannot read owner", path)
	}
	if st.Uid != 0 {
		return fmt.Errorf("%s is owned by uid %d, not root", path, st.Uid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is writable by group or others (mode %v)", path, fi.Mode().Perm())
	}
	return nil
}

func hashReader(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// HashFile returns the hex SHA-256 of a file (for pinning wrappers).
func HashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// LoadPins reads a wrapper pin file in sha256sum format ("<hex>  <path>"
// per line); the wrapper's name is the file's base name. The pin file must
// itself be root-owned and not writable by others.
func LoadPins(path string) (map[string]Wrapper, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("wrapper pins: %w", err)
	}
	if err := rootOnly(fi, path); err != nil {
		return nil, fmt.Errorf("wrapper pins: %v: make it root-owned, mode 0644", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("wrapper pins: %w", err)
	}
	if len(data) > 1<<20 {
		return nil, fmt.Errorf("wrapper pins %s: larger than 1 MiB", path)
	}
	return ParsePins(string(data), filepath.Dir(path))
}

// ParsePins parses sha256sum-format lines; relative paths resolve against dir.
func ParsePins(data, dir string) (map[string]Wrapper, error) {
	out := map[string]Wrapper{}
	for i, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("wrapper pins line %d: want \"<sha256>  <path>\"", i+1)
		}
		sum, p := strings.ToLower(fields[0]), strings.TrimPrefix(fields[1], "*")
		if !hexSHA256RE.MatchString(sum) {
			return nil, fmt.Errorf("wrapper pins line %d: %q is not a SHA-256", i+1, fields[0])
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		name := filepath.Base(p)
		if !wrapperNameRE.MatchString(name) {
			return nil, fmt.Errorf("wrapper pins line %d: wrapper name %q: use letters, digits, '.', '_', '+' and '-'", i+1, name)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("wrapper pins line %d: %s pinned twice", i+1, name)
		}
		out[name] = Wrapper{Path: filepath.Clean(p), SHA256: sum}
	}
	return out, nil
}
