package basecache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxEntryBytes bounds an entry read back from disk.
const maxEntryBytes = 256 << 20

// DefaultRoot is $XDG_CACHE_HOME/agentgate (or the platform's user cache
// directory followed by agentgate).
func DefaultRoot() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find a cache directory: %w (set XDG_CACHE_HOME or configure a cache dir)", err)
	}
	return filepath.Join(base, "agentgate"), nil
}

// Store is one cache namespace (a directory).
type Store struct {
	Dir string
}

// Key derives a file-safe key from its parts (a SHA, versions, a command).
func Key(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s\n", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (s Store) path(key string) (string, error) {
	if s.Dir == "" {
		return "", errors.New("basecache: no directory configured")
	}
	if key == "" || strings.ContainsAny(key, `/\.`) {
		return "", fmt.Errorf("basecache: bad key %q (use Key)", key)
	}
	return filepath.Join(s.Dir, key+".json"), nil
}

// Get loads the entry for key into v. It reports false when there is none
// or it cannot be read (a damaged entry is treated as missing).
func (s Store) Get(key string, v any) bool {
	p, err := s.path(key)
	if err != nil {
		return false
	}
	st, err := os.Stat(p)
	if err != nil || !st.Mode().IsRegular() || st.Size() > maxEntryBytes {
		return false
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return false
	}
	return json.Unmarshal(b, v) == nil
}

// Put stores v under key, atomically.
func (s Store) Put(key string, v any) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("basecache: encode: %w", err)
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("basecache: create %s: %w", s.Dir, err)
	}
	f, err := os.CreateTemp(s.Dir, ".tmp-")
	if err != nil {
		return fmt.Errorf("basecache: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("basecache: write: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("basecache: write: %w", err)
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return fmt.Errorf("basecache: %w", err)
	}
	return nil
}

// Has reports whether an entry exists for key.
func (s Store) Has(key string) bool {
	p, err := s.path(key)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return !errors.Is(err, fs.ErrNotExist) && err == nil
}
