//go:build linux

package isolate

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The module's test asserts, from inside the test binary, that the shared
// build cache (its path is in shared.txt) can be neither written nor
// listed, that its own GOCACHE is another, writable directory, and that
// its tree and temp dirs still work.
const sealedTest = `package p

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealed(t *testing.T) {
	b, err := os.ReadFile("testdata/shared.txt")
	if err != nil {
		t.Fatal(err)
	}
	shared := strings.TrimSpace(string(b))
	if err := os.WriteFile(filepath.Join(shared, "planted"), []byte("x"), 0o644); err == nil {
		os.Remove(filepath.Join(shared, "planted"))
		t.Fatal("wrote into the shared build cache")
	}
	if _, err := os.ReadDir(shared); err == nil {
		t.Fatal("listed the shared build cache")
	}
	own := os.Getenv("GOCACHE")
	if own == "" || own == shared {
		t.Fatalf("GOCACHE = %q, want a private cache", own)
	}
	if err := os.WriteFile(filepath.Join(own, "x"), []byte("x"), 0o644); err != nil {
		t.Fatalf("private cache not writable: %v", err)
	}
	if err := os.WriteFile(filepath.Join(t.TempDir(), "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("out.txt", []byte("x"), 0o644); err != nil {
		t.Fatalf("the tree is not writable: %v", err)
	}
}
`

func TestTestBinariesRunWithoutTheSharedBuildCache(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if self, err = filepath.EvalSymlinks(self); err != nil {
		t.Fatal(err)
	}
	r := landlockRunner(t, Options{TestExec: self})
	shared := envValue(r.env, "GOCACHE")
	if shared == "" {
		t.Fatal("the runner has no GOCACHE")
	}
	mod := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":              "module example.com/p\n\ngo 1.26\n",
		"p.go":                "package p\n\nfunc P() int { return 1 }\n",
		"p_test.go":           sealedTest,
		"testdata/shared.txt": shared + "\n",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(mod, name)), 0o755)
		if err := os.WriteFile(filepath.Join(mod, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := Cmd{Path: "go", Args: []string{"test", "-count=1", "./..."}, Dir: mod, Writable: []string{mod}, TestBinaries: true,
		ScratchDir: filepath.Join(t.TempDir(), "scratch")}
	res, err := r.Run(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || !strings.Contains(string(res.Stdout), "ok") {
		t.Fatalf("sealed test binary: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if !strings.Contains(res.Isolation, "+test-binary-domain") {
		t.Errorf("Isolation %q does not name the test-binary domain", res.Isolation)
	}
	// Control: without the wrapper the same test binary writes into the
	// shared cache, so the test fails — the domain is what stops it.
	plain := landlockRunner(t, Options{})
	cmd.Args = []string{"test", "-count=1", "./..."}
	res, err = plain.Run(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode == 0 {
		t.Fatalf("control: the test passed without the test-binary domain, so the test proves nothing:\n%s", res.Stdout)
	}
	if !strings.Contains(string(res.Stdout), "wrote into the shared build cache") {
		t.Errorf("control failed for another reason:\n%s\n%s", res.Stdout, res.Stderr)
	}
}

// Go's test cache keys on the values of the environment variables a test
// reads; t.TempDir reads TMPDIR. A stable ScratchDir keeps such results
// cacheable, a fresh temp dir per run does not.
func TestStableScratchDirKeepsTempDirTestsCacheable(t *testing.T) {
	r := landlockRunner(t, Options{})
	mod := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":    "module example.com/tmp\n\ngo 1.26\n",
		"t_test.go": "package tmp\n\nimport \"testing\"\n\nfunc TestTemp(t *testing.T) { _ = t.TempDir() }\n",
	} {
		if err := os.WriteFile(filepath.Join(mod, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(scratch string) string {
		t.Helper()
		res, err := r.Run(context.Background(), Cmd{Path: "go", Args: []string{"test", "./..."}, Dir: mod, ScratchDir: scratch})
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("go test: %v exit %d %s", err, res.ExitCode, res.Stderr)
		}
		return string(res.Stdout)
	}
	stable := filepath.Join(t.TempDir(), "scratch")
	run(stable)
	if out := run(stable); !strings.Contains(out, "(cached)") {
		t.Errorf("with a stable scratch dir the result was not cached: %s", out)
	}
	run("")
	if out := run(""); strings.Contains(out, "(cached)") {
		t.Errorf("control: with a fresh scratch dir per run the result was cached, so the test proves nothing: %s", out)
	}
	if _, err := os.Stat(stable); !os.IsNotExist(err) {
		t.Errorf("the scratch dir was left behind: %v", err)
	}
}

// The wrapper refuses to run a test binary it cannot confine: a damaged
// policy or no binary to run is an error (exit 1), never an unconfined run.
func TestTestExecWrapperRefusesBadInput(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  string
		args []string
		want string
	}{
		{"{", []string{"/bin/true"}, "bad " + TestExecEnv},
		{`{"abi": 0}`, []string{"/bin/true"}, "not usable"},
		{`{"abi": 7}`, nil, "no test binary"},
	} {
		cmd := exec.Command(self, tc.args...)
		cmd.Env = append(os.Environ(), TestExecEnv+"="+tc.env)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), tc.want) {
			t.Errorf("policy %q args %v: err %v, output %q; want exit 1 saying %q", tc.env, tc.args, err, out, tc.want)
		}
	}
}
