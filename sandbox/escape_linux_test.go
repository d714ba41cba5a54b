//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestEscapeSuite runs every in-sandbox escape attempt of the notes' L list
// in one sandboxed run (one probe, many attempts) and asserts the errno of
// each. Numbers in the case names refer to ../shared/notes/sandbox.md §9.
func TestEscapeSuite(t *testing.T) {
	f := getFixture(t)

	// Host-side bait.
	ln4, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln4.Close()
	ln6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln6.Close()
	unixTmp := filepath.Join(os.TempDir(), fmt.Sprintf("agentgate-probe-%d.sock", os.Getpid()))
	lu1, err := net.Listen("unix", unixTmp)
	if err != nil {
		t.Fatal(err)
	}
	defer lu1.Close()
	os.Chmod(unixTmp, 0o777)
	unixRun := fmt.Sprintf("/run/agentgate-probe-%d.sock", os.Getpid())
	lu2, err := net.Listen("unix", unixRun)
	if err != nil {
		t.Fatal(err)
	}
	defer lu2.Close()
	os.Chmod(unixRun, 0o777)
	abstract := fmt.Sprintf("agentgate-probe-%d", os.Getpid())
	lu3, err := net.Listen("unix", "@"+abstract)
	if err != nil {
		t.Fatal(err)
	}
	defer lu3.Close()
	host := exec.Command("sleep", "120")
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { host.Process.Kill(); host.Wait() }()
	// An outside file held open by the launcher (test 6).
	held, err := os.Open(f.secret)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	heldSock, err := ln4.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer heldSock.Close()
	releaseAgent := "/sys/fs/cgroup/memory/release_agent"
	if _, err := os.Stat(releaseAgent); err != nil {
		releaseAgent = "/sys/fs/cgroup/release_agent"
	}

	env := probeEnv{
		Volume: f.pol.Volume.MountPoint, WWFile: f.wwFile, WWDir: f.wwDir, Secret: f.secret,
		TCP4: ln4.Addr().String(), TCP6: ln6.Addr().String(), UnixTmp: unixTmp, UnixRun: unixRun,
		Abstract: abstract, HostPid: host.Process.Pid, SuidProbe: f.suid, Wrapper: f.probe,
		ReleaseAgent: releaseAgent,
	}
	envJSON, _ := json.Marshal(env)
	var out, errb bytes.Buffer
	res, err := f.d.Run(context.Background(), RunSpec{
		Wrapper: "probe", Args: []string{probeArg, "suite", string(envJSON)},
		Stdout: &out, Stderr: &errb, InheritExtraFiles: []*os.File{held, heldSock},
	})
	if err != nil {
		t.Fatalf("suite run: %v\nstderr: %s", err, errb.String())
	}
	if res.ExitCode != 0 {
		t.Fatalf("suite exit %d signal %s\nstderr: %s", res.ExitCode, res.Signal, errb.String())
	}
	var got map[string]probeOutcome
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("suite output %q: %v", out.String(), err)
	}
	t.Logf("files written: %d", res.FilesWritten)

	// expect: the errno (or errnos, '|'-separated) the attempt must fail
	// with; "ok" means it must succeed.
	cases := []struct{ name, key, expect string }{
		{"01 write inside the volume works", "write_inside_volume", "ok"},
		{"02 /tmp is the volume's", "write_tmp_is_volume", "ok"},
		{"01 append to a world-writable host file", "append_ww_file", "EACCES"},
		{"01 truncate a world-writable host file", "truncate_ww_file", "EACCES"},
		{"02 create in a 0777 host dir", "create_in_ww_dir", "EACCES"},
		{"02 create in /var/tmp", "create_in_var_tmp", "EACCES"},
		{"02 create in /dev/shm (hidden read-only)", "create_in_dev_shm", "EROFS|EACCES"},
		{"03 write through a volume symlink", "symlink_write_out", "EACCES"},
		{"03 read a secret through a symlink", "symlink_read_secret", "EACCES"},
		{"03 create through a dangling symlink", "symlink_dangling_create", "EACCES"},
		{"03 create through an intermediate-ancestor symlink", "symlink_ancestor_create", "EACCES"},
		{"04 hard-link a host file into the volume", "hardlink_in", "EXDEV"},
		{"04 rename from the volume to the outside", "rename_out", "EXDEV"},
		{"04 rename between volume directories works", "rename_within_volume", "ok"},
		{"05 read a planted world-readable secret", "read_secret", "EACCES"},
		{"05 read root's home", "read_root_home", "EACCES|ENOENT"},
		{"26 write the wrapper", "write_wrapper", "EACCES"},
		{"07 /proc/1/environ (init is root, hidepid=2)", "proc_1_environ", "ENOENT|EACCES"},
		{"07 /proc/<host pid>/root", "proc_host_root", "ENOENT"},
		{"08 mknod in the volume", "mknod", "EPERM"},
		{"09 mount", "mount_tmpfs", "EPERM"},
		{"09 umount /proc", "umount_proc", "EPERM"},
		{"09 pivot_root", "pivot_root", "EPERM"},
		{"09 unshare user namespace", "unshare_user", "EPERM"},
		{"09 unshare mount namespace", "unshare_mount", "EPERM"},
		{"09 clone with CLONE_NEWUSER", "clone_newuser", "EPERM|error: fork/exec /bin/true: operation not permitted"},
		{"09 clone3 falls back", "clone3", "ENOSYS"},
		{"10 write cgroup release_agent", "write_release_agent", "EACCES"},
		{"10 write /proc/sys", "write_proc_sys", "EACCES"},
		{"12 TCP to host 127.0.0.1", "tcp4_host_listener", "EACCES"},
		{"12 TCP to host ::1", "tcp6_host_listener", "EACCES"},
		{"13 TCP to an external literal IP", "tcp_external", "EACCES"},
		{"14 UDP DNS to an external address", "udp_external_dns", "ENETUNREACH"},
		{"14 UDP DNS to the host resolver", "udp_resolver", "ENETUNREACH"},
		{"15 bind TCP", "listen_tcp", "EACCES"},
		{"16 pathname unix socket in host /tmp", "unix_socket_tmp", "EPERM"},
		{"16 pathname unix socket in /run", "unix_socket_run", "EPERM"},
		{"17 abstract unix socket of the host", "unix_abstract", "EPERM"},
		{"18 raw ICMP socket", "raw_socket", "EPERM"},
		{"18 ping socket", "ping_socket", "EACCES|EPERM"},
		{"18 netlink socket", "netlink_socket", "EPERM"},
		{"18 MPTCP socket (not covered by Landlock TCP)", "mptcp_socket", "EPERM"},
		{"18 socket(AF_UNIX) with high-word garbage", "unix_socket_highbits", "EPERM"},
		{"18 io_uring", "io_uring_setup", "EPERM"},
		{"21 signal a host process", "kill_host_pid", "ESRCH"},
		{"21 ptrace the init", "ptrace_init", "EPERM"},
		{"22 TIOCSTI", "tiocsti", "EPERM"},
		{"22 open /dev/tty", "open_dev_tty", "EACCES|ENXIO"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, ok := got[c.key]
			if !ok {
				if c.key == "tcp_external" || c.key == "udp_external_dns" || c.key == "udp_resolver" {
					if _, notEmpty := got["netns_not_empty"]; notEmpty {
						t.Fatalf("the sandbox's network namespace has interfaces besides lo")
					}
					if c.key == "udp_resolver" {
						t.Skip("no IPv4 nameserver in /etc/resolv.conf")
					}
				}
				t.Fatalf("probe did not report %s", c.key)
			}
			if c.expect == "ok" {
				if !o.OK {
					t.Fatalf("%s failed with %s; it must work", c.key, o.Errno)
				}
				return
			}
			if o.OK {
				t.Fatalf("ESCAPE: %s succeeded; want %s", c.key, c.expect)
			}
			for _, e := range strings.Split(c.expect, "|") {
				if o.Errno == e {
					return
				}
			}
			t.Fatalf("%s failed with %s; want %s (a different errno means a different layer stopped it)", c.key, o.Errno, c.expect)
		})
	}

	t.Run("02 the sandbox's /tmp file is in the volume, not host /tmp", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(f.pol.Volume.MountPoint, ".tmp", "probe-tmp.txt")); err != nil {
			t.Fatalf("not in the volume: %v", err)
		}
		if _, err := os.Stat("/tmp/probe-tmp.txt"); err == nil {
			t.Fatal("landed in host /tmp")
		}
	})
	t.Run("01 host file unchanged", func(t *testing.T) {
		b, _ := os.ReadFile(f.wwFile)
		if string(b) != "host data\n" {
			t.Fatalf("host file changed: %q", b)
		}
	})
	t.Run("06 only fds 0-2 reach the wrapper", func(t *testing.T) {
		fds := strings.Split(got["fds"].Detail, ",")
		// ReadDir's own descriptor is the one extra entry.
		if len(fds) > 4 {
			t.Fatalf("fds %v: an inherited descriptor leaked", fds)
		}
		for _, fd := range fds {
			if strings.Contains(fd, "secret") || strings.Contains(fd, "socket:") {
				t.Fatalf("fds %v: the launcher's descriptor reached the wrapper", fds)
			}
		}
	})
	t.Run("07 only the sandbox's own processes are visible", func(t *testing.T) {
		pids := strings.Split(got["proc_pids"].Detail, ",")
		if contains(pids, "1") {
			t.Fatalf("pid 1 (root init) is visible despite hidepid=2: %v", pids)
		}
		if contains(pids, strconv.Itoa(host.Process.Pid)) {
			t.Fatalf("host pid visible: %v", pids)
		}
	})
	t.Run("08 volume mounted nosuid,nodev", func(t *testing.T) {
		opts := got["volume_mount_opts"].Detail
		if !strings.Contains(opts, "nosuid") || !strings.Contains(opts, "nodev") {
			t.Fatalf("volume mount options %q", opts)
		}
	})
	t.Run("20 a setuid-root binary does not give root", func(t *testing.T) {
		o := got["setuid_exec"]
		want := fmt.Sprintf("%d %d", f.uid, f.uid)
		if !o.OK || o.Detail != want {
			t.Fatalf("setuid probe printed %q, want %q (no_new_privs must ignore the setuid bit)", o.Detail, want)
		}
	})
	t.Run("19 status: no caps, no_new_privs, seccomp filter, exact ids", func(t *testing.T) {
		s := got["status"].Detail
		for _, want := range []string{
			fmt.Sprintf("Uid: %d %d %d %d", f.uid, f.uid, f.uid, f.uid),
			fmt.Sprintf("Gid: %d %d %d %d", f.gid, f.gid, f.gid, f.gid),
			"NoNewPrivs: 1", "CapEff: 0000000000000000", "CapBnd: 0000000000000000",
			"CapPrm: 0000000000000000", "CapAmb: 0000000000000000", "Seccomp: 2",
		} {
			if !strings.Contains(s, want) {
				t.Errorf("status %q lacks %q", s, want)
			}
		}
		if !strings.Contains(s, "Groups:;") {
			t.Errorf("status %q: want no supplementary groups", s)
		}
	})
	t.Run("14 name lookups fail", func(t *testing.T) {
		if o, ok := got["dns_lookup"]; ok && o.OK {
			t.Fatal("DNS lookup succeeded inside the sandbox")
		}
	})
}

// TestCommandAllowlist covers tests 24-26: unknown commands are refused
// before anything starts, arguments and environment cannot inject, and a
// tampered wrapper is refused.
func TestCommandAllowlist(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	t.Run("24 a command not on the allowlist is refused before launch", func(t *testing.T) {
		for _, name := range []string{"bash", "/bin/sh", "../probe", "python3", ""} {
			_, err := f.d.Run(ctx, RunSpec{Wrapper: name})
			if err == nil || !errorsIs(err, ErrNotAllowlisted) {
				t.Errorf("%q: err %v, want ErrNotAllowlisted", name, err)
			}
		}
	})
	t.Run("25 arguments are data, not shell", func(t *testing.T) {
		args := []string{probeArg, "echo-args", "; touch /tmp/pwned", "$(id)", "`id`", "a b", "--x=$HOME"}
		_, out, _ := f.run(t, nil, "probe", args...)
		var got struct {
			Args []string `json:"args"`
			Env  []string `json:"env"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		if strings.Join(got.Args, "\x00") != strings.Join(args[2:], "\x00") {
			t.Fatalf("args arrived as %q", got.Args)
		}
		for _, kv := range got.Env {
			k := strings.SplitN(kv, "=", 2)[0]
			if ForbiddenEnvName(k) && k != "PATH" && k != "HOME" && k != "TMPDIR" && k != "GOFLAGS" && k != "GOTOOLCHAIN" {
				t.Errorf("wrapper env has %s", kv)
			}
			if k == "PATH" && kv != "PATH="+SandboxPath {
				t.Errorf("PATH is %q, want the root-owned %q", kv, SandboxPath)
			}
		}
		if _, err := os.Stat(filepath.Join(f.pol.Volume.MountPoint, ".tmp", "pwned")); err == nil {
			t.Fatal("argument was run as a shell command")
		}
	})
	t.Run("25 environment injection is refused", func(t *testing.T) {
		for _, k := range []string{"LD_PRELOAD", "BASH_ENV", "ENV", "PYTHONSTARTUP", "GIT_DIR", "GIT_CONFIG_PARAMETERS", "DYLD_INSERT_LIBRARIES", "PATH", "ld_preload"} {
			_, err := f.d.Run(ctx, RunSpec{Wrapper: "probe", Args: []string{probeArg, "echo-args"}, Env: map[string]string{k: "/x"}})
			if err == nil || !strings.Contains(err.Error(), "refused") {
				t.Errorf("%s: err %v, want refusal", k, err)
			}
		}
		p := f.pol
		p.Env = map[string]string{"LD_PRELOAD": "/x"}
		if err := p.Validate(); err == nil {
			t.Error("a policy with LD_PRELOAD validated")
		}
	})
	t.Run("26 a wrapper whose content changed is refused", func(t *testing.T) {
		d := f.driverWith(t, func(p *Policy) {
			w := p.Wrappers["probe"]
			w.SHA256 = strings.Repeat("0", 64)
			p.Wrappers["probe"] = w
		})
		_, err := d.Run(ctx, RunSpec{Wrapper: "probe", Args: []string{probeArg, "whoami"}})
		if !errorsIs(err, ErrWrapperTampered) {
			t.Fatalf("err %v, want ErrWrapperTampered", err)
		}
	})
	t.Run("26 a group-writable wrapper is refused", func(t *testing.T) {
		dir := filepath.Join(f.base, "bin2")
		os.MkdirAll(dir, 0o755)
		p := filepath.Join(dir, "w")
		os.WriteFile(p, []byte("#!/bin/sh\n"), 0o775)
		os.Chmod(p, 0o775)
		sum, _ := HashFile(p)
		err := VerifyWrapper("w", Wrapper{Path: p, SHA256: sum}, f.pol.Volume.MountPoint)
		if !errorsIs(err, ErrWrapperTampered) {
			t.Fatalf("err %v, want ErrWrapperTampered", err)
		}
		os.Chmod(p, 0o755)
		if err := VerifyWrapper("w", Wrapper{Path: p, SHA256: sum}, f.pol.Volume.MountPoint); err != nil {
			t.Fatalf("a root-owned 0755 wrapper was refused: %v", err)
		}
		os.Chown(p, f.uid, 0)
		if err := VerifyWrapper("w", Wrapper{Path: p, SHA256: sum}, f.pol.Volume.MountPoint); !errorsIs(err, ErrWrapperTampered) {
			t.Fatalf("an agent-owned wrapper: err %v", err)
		}
	})
}

func errorsIs(err, target error) bool {
	for e := err; e != nil; {
		if e == target {
			return true
		}
		switch x := e.(type) {
		case interface{ Unwrap() error }:
			e = x.Unwrap()
		case interface{ Unwrap() []error }:
			for _, inner := range x.Unwrap() {
				if errorsIs(inner, target) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

// TestTIOCSTIUnderAPty covers test 22 with a real terminal: the wrapper's
// standard input is a pty slave, and injecting input into it (TIOCSTI)
// fails; nothing reaches the terminal's input queue.
func TestTIOCSTIUnderAPty(t *testing.T) {
	f := getFixture(t)
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	var out bytes.Buffer
	res, err := f.d.Run(context.Background(), RunSpec{Wrapper: "probe", Args: []string{probeArg, "tiocsti"}, Stdin: slave, Stdout: &out})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("%v %+v", err, res)
	}
	var o probeOutcome
	if err := json.Unmarshal(out.Bytes(), &o); err != nil {
		t.Fatalf("%q: %v", out.String(), err)
	}
	if o.OK || o.Errno != "EPERM" {
		t.Fatalf("TIOCSTI on a real tty: %+v, want EPERM", o)
	}
	if !strings.Contains(o.Detail, "isatty=true") {
		t.Fatalf("the wrapper's stdin was not the pty: %s", o.Detail)
	}
	// Nothing was queued as terminal input.
	fd := int(slave.Fd())
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if k, _ := unix.Read(fd, buf); k > 0 {
		t.Fatalf("injected input reached the terminal: %q", buf[:k])
	}
}
