package gopkgs

import (
	"bytes"
	"context"
	"fmt"
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
func DownloadModules(ctx context.Context, dir string) error {
	cmd := exec.CommandContext(ctx, "go", "mod", "download")
	cmd.Dir = dir
	env := make([]string, 0, len(os.Environ())+3)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k == "GOFLAGS" || k == "GOWORK" || k == "GOTOOLCHAIN" {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = append(env, "GOFLAGS=-mod=readonly", "GOWORK=off", "GOTOOLCHAIN=local")
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
