package gopkgs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// DownloadModules fills the module cache with the dependencies of the
// module at dir by running `go mod download` on the host, with the
// network as the gate's own environment configures it (module proxy and
// checksum database), so that isolated runs (GOPROXY=off) find them.
//
// It runs no repository code: go mod download reads go.mod and go.sum and
// verifies every download against go.sum and the checksum database. The
// repository's toolchain line and go.work are ignored (GOTOOLCHAIN=local,
// GOWORK=off). What it cannot bound is which module paths are requested
// from the proxy; the scope check reports new dependencies for review.
//
// Within one process a module whose go.mod and go.sum were downloaded
// before (the checks of one evaluation share head and base) is not
// downloaded again.
func DownloadModules(ctx context.Context, dir string) error {
	key, keyErr := moduleKey(dir)
	if keyErr == nil {
		if _, ok := downloaded.Load(key); ok {
			return nil
		}
		mu, _ := downloading.LoadOrStore(key, &sync.Mutex{})
		mu.(*sync.Mutex).Lock()
		defer mu.(*sync.Mutex).Unlock()
		if _, ok := downloaded.Load(key); ok {
			return nil
		}
	}
	if err := downloadModules(ctx, dir); err != nil {
		return err
	}
	if keyErr == nil {
		downloaded.Store(key, true)
	}
	return nil
}

var downloaded, downloading sync.Map // module key -> true / *sync.Mutex

// moduleKey identifies what go mod download fetches for the module at
// dir: its go.mod and go.sum.
func moduleKey(dir string) (string, error) {
	h := sha256.New()
	for _, name := range []string{"go.mod", "go.sum"} {
		b, err := ReadFileBounded(filepath.Join(dir, name), 16<<20)
		if err != nil && !(name == "go.sum" && errors.Is(err, fs.ErrNotExist)) {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func downloadModules(ctx context.Context, dir string) error {
	cmd := exec.CommandContext(ctx, "go", "mod", "download")
	cmd.Dir = dir
	env := make([]string, 0, len(os.Environ())+3)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k == "GOFLAGS" || k == "GOWORK" || k == "GOTOOLCHAIN" || k == "GOVCS" {
			continue
		}
		env = append(env, kv)
	}
	// GOVCS=*:off: a module the proxy does not have is an error, never a
	// version-control fetch (git, hg, …) from a URL the change chose, run
	// on this host outside any sandbox.
	cmd.Env = append(env, "GOFLAGS=-mod=readonly", "GOWORK=off", "GOTOOLCHAIN=local", "GOVCS=*:off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go mod download in %s: %w: %s (the module's dependencies must be downloadable through the Go module proxy)", dir, err, Tail(stderr.Bytes(), 1500))
	}
	return nil
}

var (
	goVersionOnce sync.Once
	goVersion     string
)

// GoVersion is the version of the go command on PATH (`go env GOVERSION`),
// part of every cache key whose results depend on the toolchain.
func GoVersion() string {
	goVersionOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOVERSION").Output()
		goVersion = strings.TrimSpace(string(out))
		if err != nil || goVersion == "" {
			goVersion = "unknown"
		}
	})
	return goVersion
}

// ModFlag is the -mod setting for isolated go commands in the module at
// dir: -mod=vendor when the module vendors its dependencies (the go
// command's own default then), else -mod=readonly.
func ModFlag(dir string) string {
	if st, err := os.Stat(filepath.Join(dir, "vendor", "modules.txt")); err == nil && st.Mode().IsRegular() {
		return "-mod=vendor"
	}
	return "-mod=readonly"
}
