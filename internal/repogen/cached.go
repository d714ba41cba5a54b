package repogen

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

const marker = ".repogen.json"

// Cached returns a repository for o from a cache directory under
// os.TempDir(), generating it on first use. Benchmarks in several packages
// (and repeated `make bench` runs) share it. The repository must be
// treated as read-only.
func Cached(o Options) (*Repo, error) {
	o.defaults()
	key, _ := json.Marshal(o)
	sum := sha256.Sum256(key)
	dir := filepath.Join(os.TempDir(), "agentgate-repogen-"+hex.EncodeToString(sum[:8]))
	if data, err := os.ReadFile(filepath.Join(dir, ".git", marker)); err == nil {
		var r Repo
		if json.Unmarshal(data, &r) == nil && r.Dir == dir {
			return &r, nil
		}
	}
	tmp, err := os.MkdirTemp(os.TempDir(), "agentgate-repogen-tmp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	work := filepath.Join(tmp, "repo")
	r, err := Generate(work, o)
	if err != nil {
		return nil, err
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(work, dir); err != nil {
		return nil, fmt.Errorf("move the generated repository into the cache: %w", err)
	}
	r.Dir = dir
	data, _ := json.Marshal(r)
	if err := os.WriteFile(filepath.Join(dir, ".git", marker), data, 0o644); err != nil {
		return nil, err
	}
	return r, nil
}
