// Package isolate runs repository code (`go list`, `go test`, `go vet`,
// govulncheck's package loading) for the checks: with no network, a hard
// time limit that kills every process the command started, a clean
// environment built from an allowlist, bounded output, and (with Landlock)
// a filesystem allowlist.
//
// Runner is the seam: the default Linux implementation (Netless) puts the
// command in new network and PID namespaces (plus a user namespace when not
// root). The sandbox driver plugs a real sandbox behind the same interface.
// When isolation is not available Netless refuses to run (fail closed)
// unless the caller explicitly allowed unisolated runs, and every Result
// says which isolation the command actually had.
//
// # Filesystem confinement (Landlock)
//
// On kernels with Landlock ABI 2 or later (Linux 5.19+) every command runs
// in its own Landlock domain, built at the kernel's exact ABI (never best
// effort), so any filesystem right not granted below is denied (EACCES):
//
//   - read and execute: /usr, /bin, /sbin, /lib*, /proc, a few /sys
//     subtrees (cgroup, CPU and NUMA topology, transparent huge pages),
//     /dev/random and /dev/urandom, a short list of /etc files (passwd,
//     group, hosts, nsswitch.conf, resolv.conf, localtime, services,
//     ld.so.cache, gitconfig, ssl/certs and the other CA bundles — never
//     /etc as a whole), GOROOT and the go command's directory, GOMODCACHE,
//     the program itself (the vuln check's scanner is the agentgate binary)
//     and Cmd.ReadOnly (the vulnerability database, the exported tree for
//     go list, go vet and the scan);
//   - read and write: Cmd.Dir, Cmd.Writable (the tests check's tree and
//     scratch dir), the per-run HOME and TMPDIR, GOCACHE, and /dev/null,
//     /dev/zero, /dev/full. Write rights never include making device
//     nodes, ioctl on devices or (ABI 9+) connecting to pathname sockets
//     outside the domain.
//
// # Unix sockets (seccomp)
//
// A network namespace does not hide pathname unix sockets, and Landlock
// before ABI 9 does not govern connecting to them: on a root gate the
// Docker or systemd socket is root on the host. So, wherever Landlock
// confines a command, the same thread also installs a small seccomp filter
// (per thread, inherited by the child): socket(AF_UNIX, …) and io_uring
// (whose IORING_OP_SOCKET would go around the rule) fail with EPERM,
// socketpair(2) stays allowed, and calls of a foreign architecture (or
// amd64's x32 ABI) kill the process. The go command, go vet, cgo builds
// and govulncheck need no unix sockets (tested); tests that listen on one
// need Options.AllowUnixSockets (`agentgate check --allow-unix-sockets`).
// Isolation ends in "+no-unix-sockets" when the filter is on.
//
// Everything else is denied: the gate's keys and store, other repositories
// and other work trees, the rest of ~/.cache/agentgate, the repository
// being evaluated (only its export is visible), /root, /home, /var, /srv,
// /tmp. Symbolic links and hard links do not help: Landlock judges the
// file reached, not the name used. A root runner's commands also get
// no_new_privs and empty capability sets (bounding, inheritable, ambient),
// so uid 0 inside cannot use capabilities (CAP_SYS_RAWIO on /proc/kcore,
// CAP_MKNOD, module loading) around the rules. Isolation then ends in
// "+landlock-abiN". Without Landlock, Netless keeps running without
// filesystem confinement and says so in Isolation ("... (no filesystem
// confinement: why)"); Options.RequireLandlock refuses instead.
//
// How it is applied: os/exec cannot run code between fork and exec (Go
// 1.28 adds SysProcAttr.UseLandlock; this module is on 1.26), and Landlock
// is a property of a thread that its clones inherit. Netless therefore
// starts each command from a goroutine locked to its own OS thread
// (runtime.LockOSThread, never unlocked): that thread alone gets
// no_new_privs, the capability drop and landlock_restrict_self — the
// per-thread system calls, never go-landlock's all-threads variants —
// then clones the child, which inherits the domain, and waits for it
// (Pdeathsig fires when the starting thread ends). When the goroutine
// returns, the runtime ends the locked thread instead of reusing it; the
// runtime never clones new threads from a locked one, and the main thread
// (which cannot end) is never used. The alternative, re-executing the
// agentgate binary as a trampoline that restricts itself and then execs
// the command, costs a Go process start per command and needs a hook in
// every main and TestMain that uses the runner; the locked thread costs a
// thread and about 0.4 ms per command. Tests prove the runner's process
// keeps no confined thread and full access while its children are denied.
//
// # Residual risks
//
//   - GOCACHE is shared and writable by the go command, and so by the test
//     binaries it starts: test code can write build- and test-cache entries
//     that a later evaluation (of any repository) trusts, and read other
//     repositories' compiled packages. Options.TestExec closes this for Go
//     test binaries (below) at the price of Go's test-result cache.
//
// # Test binaries in their own domain (Options.TestExec)
//
// With Options.TestExec (`agentgate check --seal-test-binaries`) a Cmd with
// TestBinaries runs `go test` with GOFLAGS=-exec=TestExec: the go command
// (trusted toolchain, which writes the shared cache) starts every test
// binary through the wrapper, which restricts its own thread to a Landlock
// domain nested in the command's — the same rules without the shared
// GOCACHE, neither readable nor writable — sets a private GOCACHE in the
// run's scratch dir and execs the test binary from that thread (execve
// keeps the calling thread's domain). A test that tries to plant a cache
// entry gets EACCES (tested, with a control run that shows the same test
// succeeding without the wrapper). The cost: `go test -exec` does not
// cache test results, so every test runs every time, and tests that run
// the go command themselves start from an empty cache. Custom test
// commands that are not `go test` get no inner domain.
//
// Cmd.ScratchDir gives HOME and TMPDIR a stable path (emptied before each
// run): Go's test cache keys on the values of the variables a test reads
// and t.TempDir reads TMPDIR, so a fresh temp dir per run made every such
// test miss the cache. The tests check passes one per work tree.
//   - /proc is the host's (no mount namespace): other processes' command
//     lines and status are readable. Their memory, open files, root and
//     cwd are not (Landlock denies attaching across domains and judges the
//     file reached); their environment is protected by the capability drop
//     (root) or the user namespace, not by Landlock, so an explicitly
//     unisolated non-root run could read it.
//     In the unprivileged user-namespace mode /proc is also writable,
//     because the runner writes the child's uid_map from the confined
//     thread; a command could then raise the OOM score of the gate's own
//     processes.
//   - With Options.AllowUnixSockets, below Landlock ABI 9 (no
//     resolve_unix right), a command can connect to host pathname unix
//     sockets it can reach by DAC (a Docker, systemd or database socket).
//   - The command runs as the gate's uid (files it creates are the gate's)
//     and may read everything under GOMODCACHE, including private modules
//     other evaluations downloaded.
//
// Use the sandbox runner (dedicated uid, fresh /proc, seccomp, a volume)
// where those matter.
package isolate
