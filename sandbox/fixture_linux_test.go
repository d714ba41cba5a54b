//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if IsInit() {
		InitMain()
	}
	if len(os.Args) > 1 && os.Args[1] == probeArg {
		probeMain(os.Args[2:])
	}
	code := m.Run()
	teardownFixture()
	os.Exit(code)
}

// fixture is one real sandbox shared by the Linux tests: a dedicated test
// user, a 64 MiB ext4 volume, and root-owned wrappers (the probe — this
// test binary —, dash and git, pinned by hash).
type fixture struct {
	base   string
	pol    Policy
	d      *Linux
	uid    int
	gid    int
	probe  string
	suid   string
	wwDir  string
	wwFile string
	secret string
}

var (
	fxOnce sync.Once
	fx     *fixture
	fxErr  error
)

const testUser = "agentgate-test"

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root on Linux: the sandbox driver mounts images, makes namespaces and switches uid (CI runs as root)")
	}
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}

func pin(path string) (Wrapper, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return Wrapper{}, err
	}
	sum, err := HashFile(real)
	return Wrapper{Path: real, SHA256: sum}, err
}

// cleanStaleFixtures removes what a killed test binary (a go test timeout)
// left behind: mounts, loop devices and directories of dead pids.
func cleanStaleFixtures() {
	dirs, _ := filepath.Glob("/var/lib/agentgate-test-*")
	for _, dir := range dirs {
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(dir), "agentgate-test-%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // still running
		}
		state := filepath.Join(dir, "state")
		for _, m := range []string{"harvest", "mnt"} {
			_ = syscall.Unmount(filepath.Join(state, m), 0)
		}
		if out, err := exec.Command("losetup", "-j", filepath.Join(state, "volume.img")).Output(); err == nil {
			for _, line := range strings.Split(string(out), "\n") {
				if dev, _, ok := strings.Cut(line, ":"); ok {
					_ = exec.Command("losetup", "-d", dev).Run()
				}
			}
		}
		if !isMountPoint(filepath.Join(state, "mnt")) {
			os.RemoveAll(dir)
		}
	}
}

func setupFixture() (*fixture, error) {
	cleanStaleFixtures()
	f := &fixture{base: fmt.Sprintf("/var/lib/agentgate-test-%d", os.Getpid())}
	for _, d := range []string{f.base, filepath.Join(f.base, "bin"), filepath.Join(f.base, "suid"), filepath.Join(f.base, "secret")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, err
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f.probe = filepath.Join(f.base, "bin", "probe")
	if err := copyFile(exe, f.probe, 0o755); err != nil {
		return nil, err
	}
	f.suid = filepath.Join(f.base, "suid", "probe-suid")
	if err := copyFile(exe, f.suid, 0o4755); err != nil {
		return nil, err
	}
	f.wwDir = filepath.Join(f.base, "ww")
	if err := os.MkdirAll(f.wwDir, 0o777); err != nil {
		return nil, err
	}
	if err := os.Chmod(f.wwDir, 0o777); err != nil {
		return nil, err
	}
	f.wwFile = filepath.Join(f.wwDir, "file")
	if err := os.WriteFile(f.wwFile, []byte("host data\n"), 0o666); err != nil {
		return nil, err
	}
	if err := os.Chmod(f.wwFile, 0o666); err != nil {
		return nil, err
	}
	f.secret = filepath.Join(f.base, "secret", "token")
	if err := os.WriteFile(f.secret, []byte("ghp_plantedsecrettoken\n"), 0o644); err != nil {
		return nil, err
	}
	wrappers := map[string]Wrapper{}
	tools := map[string]string{"probe": f.probe, "sh": "/bin/sh", "git": "/usr/bin/git", "true": "/bin/true"}
	goRoot := "/usr/local/go"
	if goBin, err := exec.LookPath("go"); err == nil {
		tools["go"] = goBin
		if out, err := exec.Command(goBin, "env", "GOROOT").Output(); err == nil {
			goRoot = strings.TrimSpace(string(out))
		}
	}
	for name, path := range tools {
		w, err := pin(path)
		if err != nil {
			return nil, fmt.Errorf("pinning %s: %w", name, err)
		}
		wrappers[name] = w
	}
	state := filepath.Join(f.base, "state")
	f.pol = Policy{
		Name: "agtest",
		Volume: Volume{Image: filepath.Join(state, "volume.img"), SizeBytes: 64 << 20, FS: "ext4",
			MountPoint: filepath.Join(state, "mnt")},
		Identity:  Identity{User: testUser, Group: testUser},
		Wrappers:  wrappers,
		ReadPaths: append(append([]string{}, DefaultReadPaths...), filepath.Join(f.base, "suid"), goRoot),
		Network:   Network{Mode: NetworkDeny},
		Limits: Limits{Wall: 60 * time.Second, CPUTime: 60 * time.Second, MemoryBytes: 512 << 20,
			Pids: 256, OpenFiles: 1024, FileSizeBytes: 64 << 20},
	}
	f.d, err = NewLinux(f.pol, LinuxOptions{InitPath: exe, InitArgs: []string{}})
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := f.d.Provision(ctx); err != nil {
		return nil, err
	}
	f.uid, f.gid, err = f.d.identity()
	if err != nil {
		return nil, err
	}
	if _, err := f.d.Attach(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

func getFixture(t testing.TB) *fixture {
	t.Helper()
	needRoot(t)
	fxOnce.Do(func() { fx, fxErr = setupFixture() })
	if fxErr != nil {
		t.Fatalf("sandbox fixture: %v", fxErr)
	}
	return fx
}

func teardownFixture() {
	if fx == nil {
		return
	}
	if err := fx.d.Detach(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "teardown: detach:", err)
		return // leave the files: removing under a live mount would be worse
	}
	os.RemoveAll(fx.base)
}

// driverWith returns a driver on the fixture's volume with changed limits.
func (f *fixture) driverWith(t testing.TB, change func(*Policy)) *Linux {
	t.Helper()
	p := f.pol
	p.Wrappers = map[string]Wrapper{}
	for k, v := range f.pol.Wrappers {
		p.Wrappers[k] = v
	}
	change(&p)
	d, err := NewLinux(p, f.d.opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// run runs a wrapper and returns its result and stdout.
func (f *fixture) run(t testing.TB, d *Linux, wrapper string, args ...string) (Result, string, string) {
	t.Helper()
	if d == nil {
		d = f.d
	}
	var out, errb bytes.Buffer
	res, err := d.Run(context.Background(), RunSpec{Wrapper: wrapper, Args: args, Stdout: &out, Stderr: &errb})
	if err != nil {
		t.Fatalf("run %s %v: %v\nstderr: %s", wrapper, args, err, errb.String())
	}
	return res, out.String(), errb.String()
}

func (f *fixture) probeRun(t testing.TB, d *Linux, args ...string) (Result, probeOutcome) {
	t.Helper()
	res, out, errs := f.run(t, d, "probe", append([]string{probeArg}, args...)...)
	var o probeOutcome
	if err := json.Unmarshal([]byte(out), &o); err != nil {
		t.Fatalf("probe %v: output %q (stderr %q): %v", args, out, errs, err)
	}
	return res, o
}
