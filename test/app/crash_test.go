package app_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentgate/agentgate/test/githubdouble"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// agentgateBinary builds cmd/agentgate once per test run with go build.
func agentgateBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, _ := os.Getwd()
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				buildErr = fmt.Errorf("repository root (go.mod) not found")
				return
			}
			dir = parent
		}
		out, err := os.MkdirTemp("", "agentgate-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(out, "agentgate")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/agentgate")
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, b)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type proc struct {
	cmd *exec.Cmd
	log *os.File
}

func startBinary(t *testing.T, bin string, env map[string]string, logPath string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = f, f
	// Own process group, so kill -9 takes the evaluator child down too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, log: f}
	t.Cleanup(func() { p.kill(); f.Close() })
	return p
}

func (p *proc) kill() {
	if p.cmd.Process != nil && p.cmd.ProcessState == nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

// TestKill9AfterAcceptPostsCheckRunOnceAfterRestart runs the real binary,
// accepts a delivery (202), kills the server with SIGKILL while the job is
// being evaluated, restarts it on the same database, and checks the check
// run is posted after the restart, exactly once.
func TestKill9AfterAcceptPostsCheckRunOnceAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agentgate binary")
	}
	bin := agentgateBinary(t)
	d := githubdouble.New(t)
	d.AddInstallation(installation, repoName)
	repo := newRepo(t, d)
	base := repo.tip("develop")
	head := repo.commit("agent/crash", "success")

	dir := t.TempDir()
	starts, slow := filepath.Join(dir, "starts"), filepath.Join(dir, "slow")
	os.WriteFile(slow, nil, 0o644)
	script := filepath.Join(dir, "evaluate.sh")
	os.WriteFile(script, []byte(fmt.Sprintf(`#!/bin/sh
set -e
echo "$AGENTGATE_HEAD" >> %q
if [ -e %q ]; then sleep 60; fi
v=$(git --git-dir "$AGENTGATE_REPO_DIR" show "$AGENTGATE_HEAD:VERDICT" | head -n1)
printf '{"conclusion":"%%s","title":"verdict %%s","summary":"from the evaluator command"}\n' "$v" "$v"
`, starts, slow)), 0o755)

	env := baseEnv(t, d)
	addr := freeAddr(t)
	env["AGENTGATE_LISTEN"] = addr
	env["AGENTGATE_EVALUATOR_COMMAND"] = script
	env["AGENTGATE_JOB_TIMEOUT"] = "5s"
	env["AGENTGATE_RESCUE_AFTER"] = "6s"
	url := "http://" + addr
	logPath := filepath.Join(dir, "server.log")
	dump := func() {
		b, _ := os.ReadFile(logPath)
		t.Logf("server log:\n%s", b)
	}

	p := startBinary(t, bin, env, logPath)
	waitFor(t, 60*time.Second, "first server ready", func() bool { return httpStatus(url+"/readyz") == 200 })
	if code := deliver(t, url, "push", newDeliveryID(), pushPayload(t, "agent/crash", base, head)); code != 202 {
		dump()
		t.Fatalf("push: %d", code)
	}
	waitFor(t, 30*time.Second, "evaluation to start", func() bool {
		b, _ := os.ReadFile(starts)
		return strings.Count(string(b), "\n") >= 1
	})
	p.kill() // kill -9 between the 202 and the check run
	if n := len(runsOn(d, head)); n != 0 {
		t.Fatalf("a check run was posted before the crash (%d)", n)
	}
	os.Remove(slow)

	startBinary(t, bin, env, logPath)
	waitFor(t, 60*time.Second, "second server ready", func() bool { return httpStatus(url+"/readyz") == 200 })
	deadline := time.Now().Add(150 * time.Second)
	for len(completedOn(d, head)) == 0 {
		if time.Now().After(deadline) {
			dump()
			t.Fatal("no check run after the restart")
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	runs := runsOn(d, head)
	if len(runs) != 1 || runs[0].Conclusion != "success" || runs[0].Name != "agentgate/develop" {
		dump()
		t.Fatalf("check runs after restart = %+v, want exactly one success", runs)
	}
	b, _ := os.ReadFile(starts)
	if n := strings.Count(string(b), "\n"); n != 2 {
		t.Fatalf("evaluator ran %d times, want 2 (killed once, then once after restart)", n)
	}
}
