// Package sandbox is where agent and test processes run: OS drivers (Linux,
// macOS), command allowlist wrappers, limits, the kill switch, checkpoints and
// rollback, and the metered egress to LLM APIs (subpackage gateway).
//
// A Policy (FromThread: the thread's config.yaml plus the plan's limits) says
// what one run may do: the volume that is its only writable place, the
// dedicated identity, the allowlisted wrappers pinned by SHA-256, the
// environment and read allowlists, network deny, and limits. A Driver
// enforces it with the operating system:
//
//   - Linux (NewLinux, root): a loop-mounted ext4 image (nosuid, nodev; /tmp
//     bound from it), a system user and group with a setgid directory and
//     default ACLs, new mount/net/pid/ipc/uts namespaces with a fresh /proc
//     (hidepid=2), Landlock (write only the volume, read only the allowlist,
//     no TCP), a seccomp filter (no unix or netlink sockets, io_uring, new
//     namespaces, mount, ptrace, …; foreign architectures killed), rlimits,
//     cgroup limits, no capabilities and no_new_privs. The in-sandbox init is
//     this binary re-executed (InitMain, `agentgate sandbox-init`).
//   - macOS (NewDarwin): a planner over the Executor seam — dscl, hdiutil,
//     chmod +a, sudo + env -i + sandbox-exec with a rendered SBPL profile,
//     kill -1 as the agent uid, cp -c snapshots — golden-tested on Linux.
//
// Every required layer is probed before a run (Capabilities); a missing one
// refuses the run (ErrLayerMissing), it is never silently weakened. The kill
// switch kills first, confirms that nothing is left, and only then unmounts
// (never lazily) and detaches. Results leave as data: a git bundle made
// inside the sandbox, harvested without following links and imported with
// every agent-controlled git setting ignored (HarvestBundle, SafeGit).
// Supervisor enforces max_runtime, max_tool_calls and max_files_changed,
// records stops through a StopRecorder and refuses to resume until a human
// re-authorizes. CodeRunner runs `go list`/`go test` of untrusted code for
// the checks.
package sandbox
