//go:build linux

package sandbox

// The probe is the test binary itself, copied to a root-owned wrapper path
// and run inside the sandbox as `probe <command> ...`. Each escape attempt
// reports the errno it got, so the host-side tests assert exact errnos.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const probeArg = "agentgate-probe"

// probeOutcome is one attempt's result: OK when the operation succeeded
// (an escape, for most cases), Errno otherwise.
type probeOutcome struct {
	OK     bool   `json:"ok"`
	Errno  string `json:"errno,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// probeEnv is what the host tells the suite probe (as one JSON argument).
type probeEnv struct {
	Volume       string `json:"volume"`
	WWFile       string `json:"ww_file"`
	WWDir        string `json:"ww_dir"`
	Secret       string `json:"secret"`
	TCP4         string `json:"tcp4"`
	TCP6         string `json:"tcp6"`
	TCP6Addr     string `json:"tcp6_addr"`
	UnixTmp      string `json:"unix_tmp"`
	UnixRun      string `json:"unix_run"`
	Abstract     string `json:"abstract"`
	HostPid      int    `json:"host_pid"`
	SuidProbe    string `json:"suid_probe"`
	Wrapper      string `json:"wrapper"`
	ReleaseAgent string `json:"release_agent"`
}

func errnoName(err error) string {
	var en syscall.Errno
	if errors.As(err, &en) {
		if n := unix.ErrnoName(en); n != "" {
			return n
		}
		return fmt.Sprintf("errno %d", int(en))
	}
	if err == nil {
		return ""
	}
	return "error: " + err.Error()
}

func outcome(err error, detail ...string) probeOutcome {
	o := probeOutcome{OK: err == nil, Errno: errnoName(err)}
	if len(detail) > 0 {
		o.Detail = strings.Join(detail, " ")
	}
	return o
}

// probeMain runs inside the sandbox. It never returns.
func probeMain(args []string) {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "probe: no command")
		os.Exit(2)
	}
	switch args[0] {
	case "suite":
		var env probeEnv
		if err := json.Unmarshal([]byte(args[1]), &env); err != nil {
			fmt.Fprintln(os.Stderr, "probe:", err)
			os.Exit(2)
		}
		out := runSuite(env)
		_ = json.NewEncoder(os.Stdout).Encode(out)
		os.Exit(0)
	case "whoami":
		fmt.Printf("%d %d\n", os.Getuid(), os.Geteuid())
		os.Exit(0)
	case "write": // write PATH CONTENT
		err := os.WriteFile(args[1], []byte(args[2]), 0o644)
		report(outcome(err))
	case "tiocsti":
		_, terr := unix.IoctlGetTermios(0, unix.TCGETS)
		b := byte('x')
		_, _, e := unix.Syscall(unix.SYS_IOCTL, 0, unix.TIOCSTI, uintptr(unsafePointer(&b)))
		o := outcome(errnoOrNil(e))
		o.Detail = fmt.Sprintf("isatty=%v", terr == nil)
		report(o)
	case "echo-args":
		_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"args": args[1:], "env": os.Environ()})
		os.Exit(0)
	case "fill": // fill PATH: write until an error
		f, err := os.Create(args[1])
		if err != nil {
			report(outcome(err))
		}
		buf := make([]byte, 1<<20)
		for {
			if _, err = f.Write(buf); err != nil {
				break
			}
		}
		f.Close()
		report(outcome(err))
	case "memhog": // memhog MiB
		n, _ := strconv.Atoi(args[1])
		var keep [][]byte
		for i := 0; i < n; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			keep = append(keep, b)
		}
		fmt.Println(len(keep))
		os.Exit(0)
	case "forkbomb":
		self, _ := os.Executable()
		var failed int
		var first error
		for i := 0; ; i++ {
			c := exec.Command(self, probeArg, "sleep", "60")
			if err := c.Start(); err != nil {
				failed++
				if first == nil {
					first = err
					fmt.Printf("fork failed after %d children: %s\n", i, errnoName(err))
				}
				time.Sleep(time.Millisecond)
			}
		}
	case "spin":
		var n uint64
		for {
			n++ //nolint:staticcheck // burning CPU is the point
			if n == 0 {
				fmt.Println("wrapped")
			}
		}
	case "sleep":
		d, _ := strconv.Atoi(args[1])
		time.Sleep(time.Duration(d) * time.Second)
		os.Exit(0)
	case "daemonize": // daemonize SECONDS-THE-PARENT-LIVES
		self, _ := os.Executable()
		c := exec.Command(self, probeArg, "sleep", "300")
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := c.Start(); err != nil {
			report(outcome(err))
		}
		_ = c.Process.Release()
		d, _ := strconv.Atoi(args[1])
		fmt.Println("daemon started")
		time.Sleep(time.Duration(d) * time.Second)
		os.Exit(0)
	case "writer": // writer PATH: append a line every 10ms forever
		f, err := os.OpenFile(args[1], os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			report(outcome(err))
		}
		for i := 0; ; i++ {
			fmt.Fprintf(f, "line %d\n", i)
			time.Sleep(10 * time.Millisecond)
		}
	}
	fmt.Fprintln(os.Stderr, "probe: unknown command", args[0])
	os.Exit(2)
}

func report(o probeOutcome) {
	_ = json.NewEncoder(os.Stdout).Encode(o)
	os.Exit(0)
}

func openWrite(path string, flags int) error {
	fd, err := unix.Open(path, flags|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

func tcpConnect(addr string) error {
	host, port, _ := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	p, _ := strconv.Atoi(port)
	var sa unix.Sockaddr
	domain := unix.AF_INET
	if ip.To4() != nil {
		s := &unix.SockaddrInet4{Port: p}
		copy(s.Addr[:], ip.To4())
		sa = s
	} else {
		domain = unix.AF_INET6
		s := &unix.SockaddrInet6{Port: p}
		copy(s.Addr[:], ip.To16())
		sa = s
	}
	fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Connect(fd, sa)
}

func udpSend(addr string) error {
	host, port, _ := net.SplitHostPort(addr)
	ip := net.ParseIP(host).To4()
	p, _ := strconv.Atoi(port)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrInet4{Port: p}
	copy(sa.Addr[:], ip)
	return unix.Sendto(fd, []byte("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"), 0, sa)
}

func unixConnect(path string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Connect(fd, &unix.SockaddrUnix{Name: path})
}

// onlyLoopback reports whether the network namespace has no interface but
// lo. External-address probes run only then, so that even a broken sandbox
// never sends a packet off this machine.
func onlyLoopback() bool {
	// net.Interfaces needs netlink, which the sandbox denies: read names
	// from /proc/net/dev and flags with SIOCGIFFLAGS instead.
	data, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		return false
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	for _, line := range strings.Split(string(data), "\n")[2:] {
		name, _, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return false
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return false
		}
		// Fallback tunnel devices (sit0, tunl0, …) may exist in a new
		// namespace; what matters is that nothing is up.
		if ifr.Uint16()&unix.IFF_UP != 0 {
			return false
		}
	}
	return true
}

func runSuite(env probeEnv) map[string]probeOutcome {
	out := map[string]probeOutcome{}
	work := filepath.Join(env.Volume, "work")

	// Descriptors first, before this program opens any of its own: only
	// 0-2 (plus the one reading the directory) may be there.
	ents, _ := os.ReadDir("/proc/self/fd")
	var fds []string
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fds = append(fds, e.Name()+"="+target)
	}
	out["fds"] = probeOutcome{OK: true, Detail: strings.Join(fds, ",")}

	// Filesystem.
	out["write_inside_volume"] = outcome(os.WriteFile(filepath.Join(work, "inside.txt"), []byte("ok"), 0o644))
	out["write_tmp_is_volume"] = outcome(os.WriteFile("/tmp/probe-tmp.txt", []byte("ok"), 0o644))
	out["append_ww_file"] = outcome(openWrite(env.WWFile, unix.O_APPEND))
	out["truncate_ww_file"] = outcome(unix.Truncate(env.WWFile, 0))
	out["create_in_ww_dir"] = outcome(openWrite(filepath.Join(env.WWDir, "new"), unix.O_CREAT|unix.O_EXCL))
	out["create_in_var_tmp"] = outcome(openWrite("/var/tmp/agentgate-probe", unix.O_CREAT))
	out["create_in_dev_shm"] = outcome(openWrite("/dev/shm/agentgate-probe", unix.O_CREAT))
	_ = os.Symlink(env.WWFile, filepath.Join(work, "l-file"))
	out["symlink_write_out"] = outcome(openWrite(filepath.Join(work, "l-file"), unix.O_APPEND))
	_ = os.Symlink(env.Secret, filepath.Join(work, "l-secret"))
	_, err := os.ReadFile(filepath.Join(work, "l-secret"))
	out["symlink_read_secret"] = outcome(err)
	_ = os.Symlink(filepath.Join(env.WWDir, "dangling"), filepath.Join(work, "l-dangling"))
	out["symlink_dangling_create"] = outcome(openWrite(filepath.Join(work, "l-dangling"), unix.O_CREAT))
	_ = os.Symlink(env.WWDir, filepath.Join(work, "l-dir"))
	out["symlink_ancestor_create"] = outcome(openWrite(filepath.Join(work, "l-dir", "x"), unix.O_CREAT))
	out["hardlink_in"] = outcome(os.Link(env.WWFile, filepath.Join(work, "hl")))
	_ = os.WriteFile(filepath.Join(work, "mv"), []byte("x"), 0o644)
	out["rename_out"] = outcome(os.Rename(filepath.Join(work, "mv"), filepath.Join(env.WWDir, "mv")))
	_ = os.Mkdir(filepath.Join(work, "d1"), 0o755)
	_ = os.Mkdir(filepath.Join(work, "d2"), 0o755)
	_ = os.WriteFile(filepath.Join(work, "d1", "f"), []byte("x"), 0o644)
	out["rename_within_volume"] = outcome(os.Rename(filepath.Join(work, "d1", "f"), filepath.Join(work, "d2", "f")))
	_, err = os.ReadFile(env.Secret)
	out["read_secret"] = outcome(err)
	_, err = os.ReadFile("/root/.bash_history")
	out["read_root_home"] = outcome(err)
	out["write_wrapper"] = outcome(openWrite(env.Wrapper, 0))

	// /proc.
	pents, _ := os.ReadDir("/proc")
	var pids []string
	for _, e := range pents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, e.Name())
		}
	}
	out["proc_pids"] = probeOutcome{OK: true, Detail: strings.Join(pids, ",")}
	_, err = os.ReadFile("/proc/1/environ")
	out["proc_1_environ"] = outcome(err)
	_, err = os.Readlink(fmt.Sprintf("/proc/%d/root", env.HostPid))
	out["proc_host_root"] = outcome(err)

	// Devices, setuid, mounts.
	out["mknod"] = outcome(unix.Mknod(filepath.Join(work, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && f[4] == env.Volume {
			out["volume_mount_opts"] = probeOutcome{OK: true, Detail: f[5]}
		}
	}
	o, err := exec.Command(env.SuidProbe, probeArg, "whoami").Output()
	out["setuid_exec"] = probeOutcome{OK: err == nil, Errno: errnoName(err), Detail: strings.TrimSpace(string(o))}
	out["mount_tmpfs"] = outcome(unix.Mount("tmpfs", work, "tmpfs", 0, ""))
	out["umount_proc"] = outcome(unix.Unmount("/proc", 0))
	out["pivot_root"] = outcome(unix.PivotRoot(work, work))
	out["unshare_user"] = outcome(unix.Unshare(unix.CLONE_NEWUSER))
	out["unshare_mount"] = outcome(unix.Unshare(unix.CLONE_NEWNS))
	c := exec.Command("/bin/true")
	c.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER}
	out["clone_newuser"] = outcome(c.Run())
	_, _, e := unix.Syscall(unix.SYS_CLONE3, 0, 0, 0)
	out["clone3"] = outcome(errnoOrNil(e))
	out["write_release_agent"] = outcome(openWrite(env.ReleaseAgent, 0))
	out["write_proc_sys"] = outcome(openWrite("/proc/sys/kernel/hostname", 0))

	// Network.
	out["tcp4_host_listener"] = outcome(tcpConnect(env.TCP4))
	out["tcp6_host_listener"] = outcome(tcpConnect(env.TCP6))
	if onlyLoopback() {
		out["tcp_external"] = outcome(tcpConnect("192.0.2.1:80"))
		out["udp_external_dns"] = outcome(udpSend("192.0.2.53:53"))
		rc, _ := os.ReadFile("/etc/resolv.conf")
		ns := ""
		for _, line := range strings.Split(string(rc), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "nameserver" && net.ParseIP(f[1]).To4() != nil {
				ns = f[1]
				break
			}
		}
		if ns != "" {
			out["udp_resolver"] = outcome(udpSend(net.JoinHostPort(ns, "53")))
		}
		_, err = net.LookupHost("example.com")
		out["dns_lookup"] = probeOutcome{OK: err == nil}
	} else {
		out["netns_not_empty"] = probeOutcome{OK: true}
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err == nil {
		ln.Close()
	}
	out["listen_tcp"] = outcome(bindTCP())
	out["listen_net_listen_mptcp_default"] = outcome(err)
	out["unix_socket_tmp"] = outcome(unixConnect(env.UnixTmp))
	out["unix_socket_run"] = outcome(unixConnect(env.UnixRun))
	out["unix_abstract"] = outcome(unixConnect("@" + env.Abstract))
	_, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
	out["raw_socket"] = outcome(err)
	_, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, unix.IPPROTO_ICMP)
	out["ping_socket"] = outcome(err)
	_, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE)
	out["netlink_socket"] = outcome(err)
	_, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 262)
	out["mptcp_socket"] = outcome(err)
	// socket(AF_UNIX) with garbage in the high word of the domain argument.
	_, _, e = unix.Syscall(unix.SYS_SOCKET, uintptr(1<<32|unix.AF_UNIX), unix.SOCK_STREAM, 0)
	out["unix_socket_highbits"] = outcome(errnoOrNil(e))
	var params [120]byte
	_, _, e = unix.Syscall(unix.SYS_IO_URING_SETUP, 4, uintptr(unsafePointer(&params)), 0)
	out["io_uring_setup"] = outcome(errnoOrNil(e))

	// Process and privilege.
	st, _ := os.ReadFile("/proc/self/status")
	var fields []string
	for _, line := range strings.Split(string(st), "\n") {
		for _, k := range []string{"Uid:", "Gid:", "Groups:", "NoNewPrivs:", "CapEff:", "CapBnd:", "CapPrm:", "CapAmb:", "Seccomp:"} {
			if strings.HasPrefix(line, k) {
				fields = append(fields, strings.Join(strings.Fields(line), " "))
			}
		}
	}
	out["status"] = probeOutcome{OK: true, Detail: strings.Join(fields, "; ")}
	out["kill_host_pid"] = outcome(unix.Kill(env.HostPid, 0))
	out["ptrace_init"] = outcome(unix.PtraceAttach(1))
	_, err = unix.IoctlGetInt(0, unix.TIOCGPGRP) // just to show fd 0 is not a tty
	out["stdin_tty"] = outcome(err)
	b := byte('x')
	_, _, e = unix.Syscall(unix.SYS_IOCTL, 0, unix.TIOCSTI, uintptr(unsafePointer(&b)))
	out["tiocsti"] = outcome(errnoOrNil(e))
	out["open_dev_tty"] = outcome(openWrite("/dev/tty", 0))
	return out
}

func errnoOrNil(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func bindTCP() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Bind(fd, &unix.SockaddrInet4{Port: 0, Addr: [4]byte{127, 0, 0, 1}})
}

func unsafePointer[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }
