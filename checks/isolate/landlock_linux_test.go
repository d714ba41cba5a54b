//go:build linux

package isolate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fsProbeArg makes the test binary a file-access prober: each argument
// "op:path" is tried and reported as "op:path ok" or "op:path ERRNO".
const fsProbeArg = "__isolate_fsprobe__"

// fsProbeHook is called by TestMain: the prober never runs tests.
func fsProbeHook() {
	if len(os.Args) > 1 && os.Args[1] == fsProbeArg {
		os.Exit(fsProbeMain(os.Args[2:]))
	}
}

func fsProbeMain(ops []string) int {
	for _, op := range ops {
		kind, path, _ := strings.Cut(op, ":")
		var err error
		switch kind {
		case "read": // open and read up to 64 bytes
			var f *os.File
			if f, err = os.Open(path); err == nil {
				_, err = f.Read(make([]byte, 64))
				f.Close()
			}
		case "list":
			_, err = os.ReadDir(path)
		case "write": // create (or truncate) a file and write to it
			err = os.WriteFile(path, []byte("x"), 0o600)
		case "append": // open an existing file for writing
			var f *os.File
			if f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0); err == nil {
				f.Close()
			}
		case "mkdir":
			err = os.Mkdir(path, 0o700)
		case "link": // link:old=new
			oldp, newp, _ := strings.Cut(path, "=")
			err = os.Link(oldp, newp)
		case "rename": // rename:old=new
			oldp, newp, _ := strings.Cut(path, "=")
			err = os.Rename(oldp, newp)
		case "unix-listen": // bind and listen on a unix socket at path
			var ln net.Listener
			if ln, err = net.Listen("unix", path); err == nil {
				ln.Close()
			}
		case "unix-connect":
			var c net.Conn
			if c, err = net.Dial("unix", path); err == nil {
				c.Close()
			}
		case "socketpair":
			var fds [2]int
			if fds, err = unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0); err == nil {
				unix.Close(fds[0])
				unix.Close(fds[1])
			}
		case "dgram-pair": // a datagram pair, which sendto can point anywhere
			var fds [2]int
			if fds, err = unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err == nil {
				unix.Close(fds[0])
				unix.Close(fds[1])
			}
		case "inet-socket": // create (not connect) an IPv4 socket
			var fd int
			if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0); err == nil {
				unix.Close(fd)
			}
		case "mknod":
			err = unix.Mknod(path, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3)))
		case "status": // the confinement the kernel reports for this process
			b, rerr := os.ReadFile("/proc/self/status")
			if rerr != nil {
				err = rerr
				break
			}
			for _, l := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(l, ":"); ok && (k == "NoNewPrivs" || k == "CapBnd" || k == "CapEff") {
					fmt.Printf("status.%s=%s\n", k, strings.TrimSpace(v))
				}
			}
		default:
			err = fmt.Errorf("unknown op %q", kind)
		}
		fmt.Printf("%s %s\n", op, errName(err))
	}
	return 0
}

func errName(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	return strings.ReplaceAll(err.Error(), " ", "_")
}

// landlockRunner returns a runner that confines with Landlock, or skips.
func landlockRunner(t testing.TB, opts Options) *Netless {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Minute
	}
	r := NewNetless(opts)
	iso, err := r.Isolation()
	if err != nil {
		t.Skipf("namespaces unavailable on this machine: %v", err)
	}
	if !strings.Contains(iso, "+landlock-abi") {
		t.Skipf("this kernel cannot confine with Landlock: %s", iso)
	}
	return r
}

// probeFS runs the test binary as a prober under r and returns op → result.
func probeFS(t *testing.T, r Runner, c Cmd, ops ...string) map[string]string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c.Path, c.Args = self, append([]string{fsProbeArg}, ops...)
	res, err := r.Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("prober exit %d: %s", res.ExitCode, res.Stderr)
	}
	got := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(res.Stdout)))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "status."); ok {
			k, v, _ := strings.Cut(rest, "=")
			got[k] = v
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			got[line[:i]] = line[i+1:]
		}
	}
	return got
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// homeSecretDir makes a directory with a secret under the gate user's
// home, as a gate host keeps keys there.
func homeSecretDir(t *testing.T) string {
	t.Helper()
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skip("no home directory")
	}
	d, err := os.MkdirTemp(home, ".agentgate-isolate-test-")
	if err != nil {
		t.Skipf("cannot write to the home directory: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	writeFile(t, filepath.Join(d, "signing.key"), "PRIVATE KEY")
	return d
}

func TestLandlockDeniesReadsOutsideTheAllowlist(t *testing.T) {
	r := landlockRunner(t, Options{})
	secretDir := t.TempDir()
	secret := filepath.Join(secretDir, "app.pem")
	writeFile(t, secret, "PRIVATE KEY")
	homeKey := filepath.Join(homeSecretDir(t), "signing.key")
	wd, err := os.Getwd() // this package's sources: the repository checkout
	if err != nil {
		t.Fatal(err)
	}
	tree := t.TempDir()

	denied := []string{
		"read:" + secret, "list:" + secretDir, "read:" + homeKey, "list:" + filepath.Dir(homeKey),
		"read:" + filepath.Join(wd, "doc.go"), "list:" + wd,
	}
	// Host places that must stay dark when they exist here.
	if _, err := os.Stat("/etc/shadow"); err == nil {
		denied = append(denied, "read:/etc/shadow")
	}
	home, _ := os.UserHomeDir()
	for _, d := range []string{"/root", "/home", "/var", "/srv", "/work", "/etc", "/tmp", home, filepath.Join(home, ".cache", "agentgate")} {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			denied = append(denied, "list:"+d)
		}
	}
	// Control: the test process itself reads everything it asks about.
	for _, op := range denied {
		kind, p, _ := strings.Cut(op, ":")
		var err error
		if kind == "read" {
			_, err = os.ReadFile(p)
		} else {
			_, err = os.ReadDir(p)
		}
		if err != nil {
			t.Fatalf("control: the test process cannot %s %s (%v); the test proves nothing", kind, p, err)
		}
	}
	allowed := []string{"read:/etc/passwd", "read:/etc/hosts", "list:/usr/bin", "read:/proc/self/status", "read:/dev/urandom"}
	got := probeFS(t, r, Cmd{Dir: tree}, append(denied, allowed...)...)
	for _, op := range denied {
		if got[op] != "EACCES" {
			t.Errorf("%s: got %q, want EACCES", op, got[op])
		}
	}
	for _, op := range allowed {
		if got[op] != "ok" {
			t.Errorf("%s: got %q, want ok", op, got[op])
		}
	}
}

func TestLandlockConfinesWritesToTreeScratchAndCaches(t *testing.T) {
	r := landlockRunner(t, Options{})
	root := t.TempDir()
	tree := filepath.Join(root, "tree")
	scratch := filepath.Join(root, "scratch")
	mod := filepath.Join(tree, "sub")
	for _, d := range []string{mod, scratch} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(tree, "go.mod"), "module example.com/x\n")
	roDir := t.TempDir()
	writeFile(t, filepath.Join(roDir, "db.json"), "{}")
	outside := t.TempDir()
	beside := filepath.Join(root, "beside") // next to the tree, as ~/.cache/agentgate/work/<repo>/<role>.lock is
	if err := os.Mkdir(beside, 0o755); err != nil {
		t.Fatal(err)
	}
	goenv, _, err := hostGo()
	if err != nil {
		t.Fatal(err)
	}
	modcache, gocache, goroot := goenv["GOMODCACHE"], goenv["GOCACHE"], goenv["GOROOT"]
	probeName := fmt.Sprintf("agentgate-isolate-probe-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		os.Remove(filepath.Join(gocache, probeName))
		os.Remove(filepath.Join(modcache, probeName))
	})

	allowed := []string{
		"write:" + filepath.Join(mod, "out.txt"),
		"write:" + filepath.Join(tree, "top.txt"),
		"mkdir:" + filepath.Join(tree, "newdir"),
		"write:" + filepath.Join(scratch, "cover.out"),
		"rename:" + filepath.Join(tree, "top.txt") + "=" + filepath.Join(mod, "moved.txt"),
		"write:" + filepath.Join(gocache, probeName),
		"read:" + filepath.Join(roDir, "db.json"),
	}
	denied := []string{
		"write:" + filepath.Join(outside, "x"),
		"mkdir:" + filepath.Join(outside, "d"),
		"write:" + filepath.Join(beside, "x"),
		"write:" + filepath.Join(modcache, probeName),
		"write:" + filepath.Join(goroot, probeName),
		"write:" + filepath.Join(roDir, "new.json"),
		"append:" + filepath.Join(roDir, "db.json"),
		"write:" + filepath.Join(os.TempDir(), probeName),
	}
	if os.Geteuid() == 0 {
		// A device node in the tree would open the host's devices (or raw disk).
		denied = append(denied, "mknod:"+filepath.Join(tree, "mem"))
	}
	got := probeFS(t, r, Cmd{Dir: mod, Writable: []string{tree, scratch}, ReadOnly: []string{roDir}}, append(allowed, denied...)...)
	for _, op := range allowed {
		if got[op] != "ok" {
			t.Errorf("%s: got %q, want ok", op, got[op])
		}
	}
	for _, op := range denied {
		if got[op] != "EACCES" && got[op] != "EPERM" {
			t.Errorf("%s: got %q, want EACCES", op, got[op])
		}
	}
	if _, err := os.Stat(filepath.Join(mod, "moved.txt")); err != nil {
		t.Errorf("the rename inside the tree did not happen: %v", err)
	}

	// HOME and TMPDIR are the per-run scratch dirs: writable.
	res, err := r.Run(context.Background(), Cmd{Path: "sh", Args: []string{"-c", `echo hi > "$HOME/h" && echo hi > "$TMPDIR/t" && mkdir "$TMPDIR/d" && cat "$HOME/h" "$TMPDIR/t"`}, Dir: mod})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || string(res.Stdout) != "hi\nhi\n" {
		t.Fatalf("HOME/TMPDIR not writable: exit %d stdout %q stderr %q", res.ExitCode, res.Stdout, res.Stderr)
	}
}

func TestLandlockSymlinksAndLinksInTheTreeDoNotEscape(t *testing.T) {
	r := landlockRunner(t, Options{})
	secretDir := t.TempDir()
	secret := filepath.Join(secretDir, "key")
	writeFile(t, secret, "PRIVATE KEY")
	tree := t.TempDir()
	for _, l := range [][2]string{{secret, "key-link"}, {secretDir, "dir-link"}, {"/etc/shadow", "shadow-link"}} {
		if err := os.Symlink(l[0], filepath.Join(tree, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	ops := []string{
		"read:" + filepath.Join(tree, "key-link"),
		"append:" + filepath.Join(tree, "key-link"),
		"list:" + filepath.Join(tree, "dir-link"),
		"read:" + filepath.Join(tree, "dir-link", "key"),
		"write:" + filepath.Join(tree, "dir-link", "planted"),
		"read:" + filepath.Join(tree, "shadow-link"),
	}
	got := probeFS(t, r, Cmd{Dir: tree}, ops...)
	for _, op := range ops {
		if op == "read:"+filepath.Join(tree, "shadow-link") {
			if _, err := os.Stat("/etc/shadow"); err != nil {
				continue
			}
		}
		if got[op] != "EACCES" {
			t.Errorf("%s: got %q, want EACCES", op, got[op])
		}
	}
	// A hard link from the tree to the secret, then read through it.
	link := filepath.Join(tree, "hard")
	got = probeFS(t, r, Cmd{Dir: tree}, "link:"+secret+"="+link, "read:"+link)
	if got["link:"+secret+"="+link] == "ok" || got["read:"+link] == "ok" {
		t.Errorf("a hard link reached the secret: %v", got)
	}
	if _, err := os.Lstat(filepath.Join(secretDir, "planted")); err == nil {
		t.Error("a file was planted outside the tree through a symlink")
	}
}

func TestLandlockDeniesTheRunnersProcessFiles(t *testing.T) {
	r := landlockRunner(t, Options{})
	secret := filepath.Join(t.TempDir(), "key")
	writeFile(t, secret, "PRIVATE KEY")
	t.Setenv("AGENTGATE_TEST_TOKEN", "hunter2")
	pid := os.Getpid()
	f, err := os.Open(secret) // an open descriptor of the runner
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ops := []string{
		fmt.Sprintf("read:/proc/%d/environ", pid),
		fmt.Sprintf("read:/proc/%d/mem", pid),
		fmt.Sprintf("read:/proc/%d/fd/%d", pid, f.Fd()),
		fmt.Sprintf("read:/proc/%d/root%s", pid, secret),
		fmt.Sprintf("read:/proc/%d/cwd/doc.go", pid),
	}
	if os.Geteuid() == 0 {
		// Kernel memory: root's CAP_SYS_RAWIO would read it through the
		// read-only /proc rule; the child has no capabilities.
		if f, err := os.Open("/proc/kcore"); err == nil {
			f.Close()
			ops = append(ops, "read:/proc/kcore")
		}
	}
	got := probeFS(t, r, Cmd{Dir: t.TempDir()}, ops...)
	for _, op := range ops {
		if got[op] == "ok" {
			t.Errorf("%s: the confined command reached the runner's process (%s)", op, got[op])
		}
	}

	// The unprivileged mode (a user namespace): the environment is
	// protected by the namespace there, the rest by Landlock.
	old := probeFunc
	probeFunc = func() (string, error) { return "userns+netns+pidns", nil }
	defer func() { probeFunc = old }()
	u := NewNetless(Options{})
	self, _ := os.Executable()
	res, err := u.Run(context.Background(), Cmd{Path: self, Args: append([]string{fsProbeArg}, ops[:5]...), Dir: t.TempDir()})
	if err != nil {
		t.Skipf("user namespaces not permitted here: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(res.Stdout)), "\n") {
		if strings.HasSuffix(line, " ok") {
			t.Errorf("in a user namespace: %s", line)
		}
	}
	if !strings.Contains(res.Isolation, "userns") || len(strings.Split(strings.TrimSpace(string(res.Stdout)), "\n")) != 5 {
		t.Fatalf("isolation %q, prober output %q %q", res.Isolation, res.Stdout, res.Stderr)
	}
}

// TestLandlockConfinesTheChildNotTheRunner proves the design: the
// confinement is applied to one locked OS thread that starts the command
// and dies with it; the child is confined, no thread of the runner's
// process stays confined, and the runner keeps reading what it must.
func TestLandlockConfinesTheChildNotTheRunner(t *testing.T) {
	r := landlockRunner(t, Options{})
	secret := filepath.Join(t.TempDir(), "key")
	writeFile(t, secret, "PRIVATE KEY")

	// The child: no_new_privs, no capabilities (as root), and Landlock.
	got := probeFS(t, r, Cmd{Dir: t.TempDir()}, "status", "read:"+secret)
	if got["NoNewPrivs"] != "1" || got["read:"+secret] != "EACCES" {
		t.Fatalf("child not confined: %v", got)
	}
	if os.Geteuid() == 0 && (strings.Trim(got["CapBnd"], "0") != "" || strings.Trim(got["CapEff"], "0") != "") {
		t.Fatalf("a root runner's child kept capabilities: %v", got)
	}

	// While a command runs, exactly its starting thread is confined.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = r.Run(ctx, Cmd{Path: "sleep", Args: []string{"30"}, Dir: t.TempDir()})
	}()
	waitFor(t, func() bool { return len(confinedThreads(t)) == 1 }, "one confined thread while a command runs")
	cancel()
	wg.Wait()

	// Many commands, concurrently, then: no confined thread left.
	var runs sync.WaitGroup
	for range 16 {
		runs.Add(1)
		go func() {
			defer runs.Done()
			if _, err := r.Run(context.Background(), Cmd{Path: "true", Dir: t.TempDir()}); err != nil {
				t.Error(err)
			}
		}()
	}
	runs.Wait()
	waitFor(t, func() bool { return len(confinedThreads(t)) == 0 }, "no confined thread after the commands ended")

	// And the runner reads and starts unconfined programs from any thread.
	var reads sync.WaitGroup
	for range 4 * runtime.GOMAXPROCS(0) {
		reads.Add(1)
		go func() {
			defer reads.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if _, err := os.ReadFile(secret); err != nil {
				t.Errorf("the runner lost access to its own files: %v", err)
			}
		}()
	}
	reads.Wait()
	if out, err := exec.Command("cat", secret).Output(); err != nil || string(out) != "PRIVATE KEY" {
		t.Fatalf("a plain child of the runner is confined: %v %q", err, out)
	}
}

// confinedThreads lists the threads of this process with no_new_privs set
// (the first step of the confinement, visible in /proc).
func confinedThreads(t *testing.T) []string {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "status"))
		if err != nil {
			continue // the thread just ended
		}
		if strings.Contains(string(b), "\nNoNewPrivs:\t1\n") {
			out = append(out, task.Name())
		}
	}
	return out
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGoToolchainWorksUnderLandlock runs go list, go vet and go test of a
// small module that depends on a module from the module cache; its test
// writes temp files and reads testdata.
func TestGoToolchainWorksUnderLandlock(t *testing.T) {
	r := landlockRunner(t, Options{})
	goenv, _, err := hostGo()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(goenv["GOMODCACHE"], "golang.org/x/sys@v0.50.0", "unix")); err != nil {
		t.Skipf("golang.org/x/sys v0.50.0 is not in the module cache: %v", err)
	}
	root := t.TempDir()
	tree, scratch := filepath.Join(root, "tree"), filepath.Join(root, "scratch")
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(tree, "go.mod"), "module example.com/ll\n\ngo 1.26.0\n\nrequire golang.org/x/sys v0.50.0\n")
	writeFile(t, filepath.Join(tree, "go.sum"), "golang.org/x/sys v0.50.0 h1:dkKZEFTEKaLr1sjhs0WiKqoi8Jj5nHbS3Njmx1UoMJs=\n"+
		"golang.org/x/sys v0.50.0/go.mod h1:hNLxWAXmnKAxqDtdwIYC4bM9oQPEecfsnNMuSxOs3og=\n")
	writeFile(t, filepath.Join(tree, "ll.go"), "package ll\n\nimport \"golang.org/x/sys/unix\"\n\n// Pid is the process id.\nfunc Pid() int { return unix.Getpid() }\n")
	writeFile(t, filepath.Join(tree, "testdata", "input.txt"), "hello\n")
	writeFile(t, filepath.Join(tree, "ll_test.go"), `package ll

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPidAndFiles(t *testing.T) {
	if Pid() <= 0 {
		t.Fatal("no pid")
	}
	b, err := os.ReadFile(filepath.Join("testdata", "input.txt"))
	if err != nil || string(b) != "hello\n" {
		t.Fatalf("testdata: %v %q", err, b)
	}
	f, err := os.CreateTemp("", "ll-*")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile(filepath.Join(t.TempDir(), "out"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}
`)
	if _, err := exec.LookPath("gcc"); err == nil && os.Getenv("CGO_ENABLED") != "0" {
		// cgo: gcc, its headers and helpers, and temp files under TMPDIR.
		writeFile(t, filepath.Join(tree, "cgo", "cgo.go"), "package cgo\n\n// int twice(int x) { return 2 * x; }\nimport \"C\"\n\n// Twice doubles x in C.\nfunc Twice(x int) int { return int(C.twice(C.int(x))) }\n")
		writeFile(t, filepath.Join(tree, "cgo", "cgo_test.go"), "package cgo\n\nimport \"testing\"\n\nfunc TestTwice(t *testing.T) {\n\tif Twice(21) != 42 {\n\t\tt.Fatal(Twice(21))\n\t}\n}\n")
	}
	c := Cmd{Dir: tree, Writable: []string{tree, scratch}, Path: "go"}
	for _, args := range [][]string{
		{"list", "-json", "-deps", "./..."},
		{"vet", "./..."},
		{"test", "-count=1", "-coverprofile=" + filepath.Join(scratch, "cover.out"), "./..."},
	} {
		c.Args = args
		res, err := r.Run(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != 0 {
			t.Fatalf("go %s under %s: exit %d\n%s\n%s", args[0], res.Isolation, res.ExitCode, gopkgsTail(res.Stdout), gopkgsTail(res.Stderr))
		}
	}
	prof, err := os.ReadFile(filepath.Join(scratch, "cover.out"))
	if err != nil {
		t.Fatalf("go test wrote no coverage profile to the scratch dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tree, "cgo")); err == nil && !strings.Contains(string(prof), "example.com/ll/cgo/") {
		t.Fatalf("the cgo package was not tested:\n%s", prof)
	}
}

func gopkgsTail(b []byte) string {
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

func TestWithoutLandlockTheRunnerSaysSoOrRefuses(t *testing.T) {
	old := landlockProbeFunc
	landlockProbeFunc = func() (int, error) { return 0, errors.New("the kernel has no Landlock") }
	defer func() { landlockProbeFunc = old }()

	strict := NewNetless(Options{RequireLandlock: true})
	if _, err := strict.Run(context.Background(), Cmd{Path: "true", Dir: t.TempDir()}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("RequireLandlock without Landlock: want ErrUnavailable, got %v", err)
	}

	r := newRunner(t)
	secret := filepath.Join(t.TempDir(), "key")
	writeFile(t, secret, "PRIVATE KEY")
	res, err := r.Run(context.Background(), Cmd{Path: "cat", Args: []string{secret}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(res.Isolation, "landlock-abi") || !strings.Contains(res.Isolation, "no filesystem confinement") {
		t.Fatalf("an unconfined run must say so, got Isolation %q", res.Isolation)
	}
	// What it says is true: the command read the file.
	if string(res.Stdout) != "PRIVATE KEY" {
		t.Fatalf("stdout %q", res.Stdout)
	}
}

func TestLandlockRequiredAndAvailableRuns(t *testing.T) {
	r := landlockRunner(t, Options{RequireLandlock: true})
	res, err := r.Run(context.Background(), Cmd{Path: "true", Dir: t.TempDir()})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("err %v exit %d", err, res.ExitCode)
	}
	if !strings.Contains(res.Isolation, fmt.Sprintf("+landlock-abi%d", r.llABI)) {
		t.Fatalf("Isolation %q does not name Landlock and its ABI", res.Isolation)
	}
}

// A network namespace does not hide the host's pathname sockets and
// Landlock before ABI 9 does not govern connecting to them: without the
// seccomp filter a command reaches a socket the gate's user can reach
// (Docker's or systemd's, on a root gate, are root on the host).
func TestHostUnixSocketsAreUnreachableUnlessAllowed(t *testing.T) {
	host := filepath.Join(t.TempDir(), "host.sock")
	ln, err := net.Listen("unix", host)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go acceptAndClose(ln)
	// Control: the socket answers outside the runner.
	if c, err := net.Dial("unix", host); err != nil {
		t.Fatalf("control dial failed, the test cannot prove anything: %v", err)
	} else {
		c.Close()
	}
	tree := t.TempDir()
	ops := []string{"unix-connect:" + host, "unix-listen:" + filepath.Join(tree, "own.sock"), "socketpair:", "inet-socket:", "dgram-pair:"}

	r := landlockRunner(t, Options{})
	iso, _ := r.Isolation()
	if !strings.HasSuffix(iso, "+no-unix-sockets") {
		t.Fatalf("Isolation %q does not say unix sockets are blocked", iso)
	}
	got := probeFS(t, r, Cmd{Dir: tree}, ops...)
	want := map[string]string{ops[0]: "EPERM", ops[1]: "EPERM", ops[2]: "ok", ops[3]: "ok", ops[4]: "EPERM"}
	for op, w := range want {
		if got[op] != w {
			t.Errorf("default runner: %s = %q, want %s", op, got[op], w)
		}
	}

	allow := landlockRunner(t, Options{AllowUnixSockets: true})
	if iso, _ := allow.Isolation(); strings.Contains(iso, "+no-unix-sockets") || !strings.Contains(iso, "unix sockets allowed") {
		t.Fatalf("Isolation %q with unix sockets allowed", iso)
	}
	got = probeFS(t, allow, Cmd{Dir: tree}, ops...)
	for _, op := range ops {
		if got[op] != "ok" {
			t.Errorf("unix sockets allowed: %s = %q, want ok", op, got[op])
		}
	}
	// The filter stays on the children: the runner's own threads still
	// make unix sockets.
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := net.Listen("unix", filepath.Join(tree, fmt.Sprintf("runner-%d.sock", i)))
			if err != nil {
				t.Errorf("the runner itself lost unix sockets: %v", err)
				return
			}
			l.Close()
		}()
	}
	wg.Wait()
}

func TestRelativeWritablePathIsRefused(t *testing.T) {
	r := landlockRunner(t, Options{})
	if _, err := r.Run(context.Background(), Cmd{Path: "true", Dir: t.TempDir(), Writable: []string{"tree"}}); err == nil {
		t.Fatal("a relative Writable path must be refused")
	}
}
