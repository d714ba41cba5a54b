package isolate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The probe starts our own binary; make that a no-op for the test binary.
func TestMain(m *testing.M) {
	if IsTestExec() { // the test-binary wrapper (Options.TestExec)
		os.Exit(TestExecMain())
	}
	if os.Getenv("AGENTGATE_ISOLATE_PROBE") == "1" {
		os.Exit(0)
	}
	fsProbeHook()
	os.Exit(m.Run())
}

func newRunner(t *testing.T) *Netless {
	t.Helper()
	r := NewNetless(Options{Timeout: time.Minute})
	if _, err := r.Isolation(); err != nil {
		t.Skipf("namespaces unavailable on this machine (needs root or unprivileged user namespaces): %v", err)
	}
	return r
}

func TestNoNetworkInsideRunner(t *testing.T) {
	r := newRunner(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go acceptAndClose(ln)
	port := ln.Addr().(*net.TCPAddr).Port
	script := fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d && echo CONNECTED", port)

	// Control: the same script connects when run directly.
	out, err := exec.Command("bash", "-c", script).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "CONNECTED") {
		t.Fatalf("control connect failed, test cannot prove anything: %v %s", err, out)
	}

	res, err := r.Run(context.Background(), Cmd{Path: "bash", Args: []string{"-c", script}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode == 0 || strings.Contains(string(res.Stdout), "CONNECTED") {
		t.Fatalf("connected to a host listener from inside the runner (isolation %s): %s", res.Isolation, res.Stdout)
	}
	if !strings.Contains(string(res.Stderr), "unreachable") {
		t.Errorf("want 'Network is unreachable', got %q", res.Stderr)
	}
}

func TestTimeoutKillsDetachedGrandchildren(t *testing.T) {
	r := newRunner(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "late")
	// The grandchild leaves the process group with setsid; only the PID
	// namespace ends it.
	script := fmt.Sprintf("setsid sh -c 'sleep 2; touch %s' & sleep 60", marker)
	start := time.Now()
	res, err := r.Run(context.Background(), Cmd{Path: "sh", Args: []string{"-c", script}, Dir: dir, Timeout: 500 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v (exit %d)", err, res.ExitCode)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("run took %s after a 0.5 s limit", d)
	}
	time.Sleep(3 * time.Second)
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a detached grandchild survived the time limit and wrote its marker")
	}
}

func TestCancelledContextStopsCommand(t *testing.T) {
	r := newRunner(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := r.Run(ctx, Cmd{Path: "sleep", Args: []string{"60"}, Dir: t.TempDir()})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want a context error, got %v", err)
	}
}

func TestEnvironmentIsAllowlisted(t *testing.T) {
	r := newRunner(t)
	t.Setenv("AGENTGATE_TEST_SECRET", "hunter2")
	t.Setenv("GOPROXY", "https://proxy.example")
	t.Setenv("LD_PRELOAD", "/tmp/evil.so")
	res, err := r.Run(context.Background(), Cmd{Path: "env", Dir: t.TempDir(), Env: []string{"EXTRA=1"}})
	if err != nil {
		t.Fatal(err)
	}
	env := string(res.Stdout)
	for _, bad := range []string{"hunter2", "proxy.example", "LD_PRELOAD"} {
		if strings.Contains(env, bad) {
			t.Errorf("environment leaked %q:\n%s", bad, env)
		}
	}
	for _, want := range []string{"GOPROXY=off\n", "GOTOOLCHAIN=local\n", "GOWORK=off\n", "EXTRA=1\n", "GOCACHE=/"} {
		if !strings.Contains(env, want) {
			t.Errorf("environment lacks %q:\n%s", want, env)
		}
	}
}

func TestGoCommandWorksInside(t *testing.T) {
	r := newRunner(t)
	res, err := r.Run(context.Background(), Cmd{Path: "go", Args: []string{"env", "GOPROXY", "GOTOOLCHAIN"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || string(res.Stdout) != "off\nlocal\n" {
		t.Fatalf("go env inside the runner: exit %d stdout %q stderr %q", res.ExitCode, res.Stdout, res.Stderr)
	}
}

func TestOutputIsCapped(t *testing.T) {
	r := newRunner(t)
	res, err := r.Run(context.Background(), Cmd{Path: "head", Args: []string{"-c", "100000", "/dev/zero"}, Dir: t.TempDir(), MaxOutput: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stdout) != 1000 || !res.StdoutTruncated {
		t.Fatalf("got %d bytes, truncated=%v", len(res.Stdout), res.StdoutTruncated)
	}
}

func TestNonZeroExitIsNotAnError(t *testing.T) {
	r := newRunner(t)
	res, err := r.Run(context.Background(), Cmd{Path: "sh", Args: []string{"-c", "echo oops >&2; exit 7"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 7 || strings.TrimSpace(string(res.Stderr)) != "oops" {
		t.Fatalf("exit %d stderr %q", res.ExitCode, res.Stderr)
	}
}

func TestRefusesWhenIsolationUnavailable(t *testing.T) {
	old := probeFunc
	probeFunc = func() (string, error) { return "", errors.New("operation not permitted") }
	defer func() { probeFunc = old }()

	strict := NewNetless(Options{})
	_, err := strict.Run(context.Background(), Cmd{Path: "true", Dir: t.TempDir()})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("want ErrUnavailable, got %v", err)
	}

	lax := NewNetless(Options{AllowUnisolated: true})
	res, err := lax.Run(context.Background(), Cmd{Path: "true", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(res.Isolation, "netns") || (res.Isolation != "none" && !strings.HasPrefix(res.Isolation, "landlock-abi")) {
		t.Fatalf("a run without namespaces must say so (\"none\", or Landlock alone), got %q", res.Isolation)
	}
}

func TestRejectsRelativeProgramPath(t *testing.T) {
	r := NewNetless(Options{AllowUnisolated: true})
	if _, err := r.Run(context.Background(), Cmd{Path: "./evil", Dir: t.TempDir()}); err == nil {
		t.Fatal("a relative program path must be refused")
	}
}

func TestMergeEnvLaterWins(t *testing.T) {
	got := mergeEnv([]string{"A=1", "B=2"}, []string{"B=3", "C=4"})
	want := "A=1 B=3 C=4"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %v want %s", got, want)
	}
}

func TestDetachedChildHoldingOutputDoesNotHangUnisolatedRun(t *testing.T) {
	old := probeFunc
	probeFunc = func() (string, error) { return "", errors.New("no namespaces") }
	defer func() { probeFunc = old }()
	r := NewNetless(Options{AllowUnisolated: true})
	start := time.Now()
	res, err := r.Run(context.Background(), Cmd{Path: "sh", Args: []string{"-c", "setsid sleep 8 & echo hi"}, Dir: t.TempDir()})
	if d := time.Since(start); d > 7*time.Second {
		t.Fatalf("run waited %s for a detached child's pipe", d)
	}
	if err != nil && !strings.Contains(err.Error(), "I/O") {
		t.Fatalf("unexpected error: %v", err)
	}
	if !strings.Contains(string(res.Stdout), "hi") {
		t.Fatalf("stdout %q", res.Stdout)
	}
}

// TestUserNamespaceModeAlsoHasNoNetwork exercises the non-root
// configuration (a user namespace mapping the caller's own uid).
func TestUserNamespaceModeAlsoHasNoNetwork(t *testing.T) {
	old := probeFunc
	probeFunc = func() (string, error) { return "userns+netns+pidns", nil }
	defer func() { probeFunc = old }()
	r := NewNetless(Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	script := fmt.Sprintf("id -u; exec 3<>/dev/tcp/127.0.0.1/%d && echo CONNECTED", ln.Addr().(*net.TCPAddr).Port)
	res, err := r.Run(context.Background(), Cmd{Path: "bash", Args: []string{"-c", script}, Dir: t.TempDir()})
	if err != nil {
		if strings.Contains(err.Error(), "operation not permitted") || strings.Contains(err.Error(), "invalid argument") {
			t.Skipf("user namespaces not permitted here: %v", err)
		}
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Isolation, "userns+netns+pidns") || strings.Contains(string(res.Stdout), "CONNECTED") || res.ExitCode == 0 {
		t.Fatalf("isolation %s exit %d stdout %q", res.Isolation, res.ExitCode, res.Stdout)
	}
	if got := strings.TrimSpace(strings.SplitN(string(res.Stdout), "\n", 2)[0]); got != fmt.Sprint(os.Getuid()) {
		t.Fatalf("uid inside = %q, want the caller's %d", got, os.Getuid())
	}
}

// acceptAndClose answers every connection to ln by closing it, until ln is
// closed.
func acceptAndClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}
