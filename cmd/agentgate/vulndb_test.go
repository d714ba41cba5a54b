package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeVulndb lays out a one-advisory x/vulndb module.
func fakeVulndb(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	osv := filepath.Join(src, "data", "osv")
	if err := os.MkdirAll(osv, 0o755); err != nil {
		t.Fatal(err)
	}
	entry := `{"id":"GO-2099-0001","modified":"2099-01-01T00:00:00Z","affected":[{"package":{"name":"example.com/a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.2.0"}]}]}]}`
	if err := os.WriteFile(filepath.Join(osv, "GO-2099-0001.json"), []byte(entry), 0o644); err != nil {
		t.Fatal(err)
	}
	return src
}

func TestVulndbBuildFromDirectory(t *testing.T) {
	out := filepath.Join(t.TempDir(), "db")
	var stdout bytes.Buffer
	root := newRootCmd()
	root.SetOut(&stdout)
	root.SetArgs([]string{"vulndb", "build", "--out", out, "--from", fakeVulndb(t), "--version", "v0.0.0-20990101000000-abcdefabcdef"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var info struct {
		Version string
		Entries int
		Dir     string
	}
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	if info.Entries != 1 || info.Version != "v0.0.0-20990101000000-abcdefabcdef" || info.Dir != out {
		t.Fatalf("info %+v", info)
	}
	if _, err := os.Stat(filepath.Join(out, "index", "modules.json")); err != nil {
		t.Fatal(err)
	}
}

func TestVulndbBuildUsageErrorsExitInvalid(t *testing.T) {
	nonEmpty := t.TempDir()
	os.WriteFile(filepath.Join(nonEmpty, "x"), []byte("x"), 0o644)
	cases := map[string][]string{
		"from without out": {"vulndb", "build", "--from", t.TempDir()},
		"out not empty":    {"vulndb", "build", "--out", nonEmpty, "--from", fakeVulndb(t)},
	}
	for name, args := range cases {
		if code := run(args); code != exitInvalid {
			t.Errorf("%s: exit %d, want %d", name, code, exitInvalid)
		}
	}
}

func TestVulndbBuildFromBadDirectoryFails(t *testing.T) {
	if code := run([]string{"vulndb", "build", "--out", filepath.Join(t.TempDir(), "db"), "--from", t.TempDir()}); code != exitFail {
		t.Fatalf("exit %d, want %d", code, exitFail)
	}
}

func TestVulndbPathFailsWhenNotBuilt(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	if code := run([]string{"vulndb", "path", "--version", "v0.0.0-20000101000000-000000000000"}); code != exitFail {
		t.Fatalf("exit %d, want %d", code, exitFail)
	}
}

func TestVulndbPathHonoursCacheDir(t *testing.T) {
	cache := t.TempDir()
	version := "v0.0.0-20990101000000-abcdefabcdef"
	dir := filepath.Join(cache, "vulndb", version)
	root := newRootCmd()
	root.SetOut(&bytes.Buffer{})
	root.SetArgs([]string{"vulndb", "build", "--out", dir, "--from", fakeVulndb(t), "--version", version})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	root = newRootCmd()
	root.SetOut(&out)
	root.SetArgs([]string{"vulndb", "path", "--cache-dir", cache, "--version", version})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != dir {
		t.Fatalf("path = %q, want %q", got, dir)
	}
}
