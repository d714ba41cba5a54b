package evidence

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Sink stores evidence artifacts. Put stores one artifact under name (a
// slash-separated relative path) and returns where it went.
type Sink interface {
	Put(ctx context.Context, name string, r io.Reader) (location string, err error)
}

// Dir is a Sink writing files under a local directory. Files are written
// to a temporary name, synced and renamed into place (mode 0644, directories
// 0755), so a reader never sees a partial artifact. An existing file of the
// same name is replaced; Record never reuses a stop-evidence directory.
type Dir string

// Put writes name under the directory.
func (d Dir) Put(ctx context.Context, name string, r io.Reader) (string, error) {
	if err := validName(name); err != nil {
		return "", err
	}
	path := filepath.Join(string(d), filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("evidence: create %s: %w", filepath.Dir(path), err)
	}
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return "", fmt.Errorf("evidence: %s exists and is not a regular file; move it away", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return "", fmt.Errorf("evidence: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return "", fmt.Errorf("evidence: write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("evidence: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("evidence: store %s: %w", path, err)
	}
	return path, nil
}

func validName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.ContainsRune(name, 0) {
		return fmt.Errorf("evidence: invalid artifact name %q", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("evidence: invalid artifact name %q", name)
		}
	}
	return nil
}
