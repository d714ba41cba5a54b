package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/sandbox"
)

// TestSandboxCommandsEndToEnd builds the real binary (whose hidden
// sandbox-init is the in-sandbox init) and drives `agentgate sandbox` as a
// runner would: probe, run with a JSON result, refusal of a command that
// is not allowlisted, a plan guardrail stop (exit 3) that holds until
// `sandbox resume`, and the kill switch.
// sandboxThread builds the agentgate binary into a temp dir, pins /bin/sh
// as the only wrapper and writes a thread config allowing it; it returns
// the dir, the binary, the pins file, the thread dir and the wrapper name.
func sandboxThread(t *testing.T, name string) (dir, bin, pins, thread, sh string) {
	t.Helper()
	dir = t.TempDir()
	bin = filepath.Join(dir, "agentgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dash, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := sandbox.HashFile(dash)
	if err != nil {
		t.Fatal(err)
	}
	pins = filepath.Join(dir, "wrappers.sha256")
	if err := os.WriteFile(pins, []byte(sum+"  "+dash+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sh = filepath.Base(dash)
	thread = filepath.Join(dir, "thread")
	if err := os.MkdirAll(thread, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`apiVersion: agentgate.dev/v1
kind: Thread
name: %s
owner: alice
runtime:
  max_runtime: 2m
  cpu: 1
  memory: 256Mi
tools: [%s]
`, name, sh)
	if err := os.WriteFile(filepath.Join(thread, "config.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, bin, pins, thread, sh
}

func TestSandboxCommandsEndToEnd(t *testing.T) {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("needs root on Linux: the sandbox mounts images, makes namespaces and switches uid (CI runs as root)")
	}
	dir, bin, pins, thread, name := sandboxThread(t, "clitest")
	plan, err := os.ReadFile(filepath.Join("..", "..", "examples", "payments-repo", "services", "payments", "WORK_PLAN.json"))
	if err != nil {
		t.Fatal(err)
	}
	plan = []byte(strings.Replace(string(plan), `"max_tool_calls": 120`, `"max_tool_calls": 2`, 1))
	os.WriteFile(filepath.Join(thread, "WORK_PLAN.json"), plan, 0o644)
	state := fmt.Sprintf("/var/lib/agentgate-clitest-%d", os.Getpid())
	common := []string{"--thread", thread, "--wrappers", pins, "--state-dir", state, "--size", "32Mi", "--user", "agentgate-clitest", "--group", "agentgate-clitest"}
	// A user of its own: the kill switch sweeps every process of the agent uid,
	// so tests running in parallel must not share one.
	run := func(args ...string) (string, int) {
		cmd := exec.Command(bin, args...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	t.Cleanup(func() {
		if out, code := run(append([]string{"sandbox", "kill", "--detach"}, common...)...); code != 0 {
			t.Errorf("kill --detach: exit %d: %s", code, out)
			return
		}
		os.RemoveAll(state)
	})

	if out, code := run("sandbox", "probe"); code != 0 {
		t.Fatalf("probe: exit %d\n%s", code, out)
	}
	result := filepath.Join(dir, "run.json")
	out, code := run(append(append([]string{"sandbox", "run"}, common...), "--result", result, "--", name, "-c", "echo hello > greeting; cat greeting; id -u")...)
	if code != 0 || !strings.Contains(out, "hello") {
		t.Fatalf("run: exit %d\n%s", code, out)
	}
	var res struct {
		ExitCode     int    `json:"exit_code"`
		FilesWritten int    `json:"files_written"`
		Wrapper      string `json:"wrapper"`
	}
	b, _ := os.ReadFile(result)
	if err := json.Unmarshal(b, &res); err != nil || res.Wrapper != name || res.FilesWritten != 1 {
		t.Fatalf("result %s (%v)", b, err)
	}
	if out, code := run(append(append([]string{"sandbox", "run"}, common...), "--", "bash", "-c", "id")...); code != exitInvalid || !strings.Contains(out, "not an allowlisted wrapper") {
		t.Fatalf("non-allowlisted: exit %d\n%s", code, out)
	}
	// The refused call counted as the plan's second tool call (attempts
	// count); the third stops the run.
	if out, code := run(append(append([]string{"sandbox", "run"}, common...), "--", name, "-c", "true")...); code != exitStop || !strings.Contains(out, "STOP_BUDGET_EXCEEDED") {
		t.Fatalf("third call: exit %d, want %d\n%s", code, exitStop, out)
	}
	if out, code := run(append(append([]string{"sandbox", "run"}, common...), "--", name, "-c", "true")...); code != exitStop {
		t.Fatalf("after the stop: exit %d, want %d\n%s", code, exitStop, out)
	}
	if out, code := run(append(append([]string{"sandbox", "resume"}, common...), "--by", "alice", "--reason", "test")...); code != 0 {
		t.Fatalf("resume: exit %d\n%s", code, out)
	}
	if out, code := run(append(append([]string{"sandbox", "run"}, common...), "--", name, "-c", "true")...); code != 0 {
		t.Fatalf("after resume: exit %d\n%s", code, out)
	}
}
