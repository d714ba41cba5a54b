package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/agentgate/agentgate/gate/budget"
	"github.com/agentgate/agentgate/policies"
	"github.com/agentgate/agentgate/sandbox"
)

func init() {
	register(newSandboxCmd)
	register(newSandboxInitCmd)
	register(newSandboxRlimitsCmd)
}

// newSandboxRlimitsCmd is the hidden launcher of the macOS driver: it sets
// rlimits and execs the rest of its argv.
func newSandboxRlimitsCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "sandbox-rlimits -cpu N -fsize N -nofile N -nproc N -core 0 -- PROGRAM [ARGS]",
		Short:              "Internal: set rlimits and exec a program (macOS sandbox launcher)",
		Long:               "Internal: the macOS sandbox driver runs this as the agent user to set RLIMIT_CPU, FSIZE, NOFILE, NPROC and CORE before exec'ing env -i and sandbox-exec.",
		Example:            "  agentgate sandbox-rlimits -cpu 600 -fsize 1073741824 -nofile 1024 -nproc 512 -core 0 -- /usr/bin/env -i ...",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			sandbox.RlimitsMain(args) // never returns
			return nil
		},
	}
}

// sandboxFlags are shared by every sandbox subcommand: they locate the
// thread (whose config.yaml gives the policy) and the runner's setup.
type sandboxFlags struct {
	thread   string
	image    string
	stateDir string
	pins     string
	name     string
	user     string
	group    string
	size     string
	uid, gid int
}

const defaultPinsFile = "/etc/agentgate/wrappers.sha256"

func (f *sandboxFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.thread, "thread", "", "thread directory whose config.yaml (and WORK_PLAN.json, when present) sets the policy (required)")
	fl.StringVar(&f.image, "image", "", "volume image path (default STATE-DIR/NAME/volume.img)")
	fl.StringVar(&f.stateDir, "state-dir", sandbox.DefaultStateDir, "where volumes, mount points, snapshots and state live (root-owned)")
	fl.StringVar(&f.pins, "wrappers", defaultPinsFile, "root-owned pin file of allowlisted wrappers, sha256sum format: \"<sha256>  <path>\"")
	fl.StringVar(&f.name, "name", "", "sandbox name (default: the thread's name)")
	fl.StringVar(&f.user, "user", sandbox.DefaultUser, "dedicated system user the agent runs as")
	fl.StringVar(&f.group, "group", sandbox.DefaultGroup, "dedicated system group")
	fl.StringVar(&f.size, "size", "2Gi", "volume size when the image is created")
	fl.IntVar(&f.uid, "uid", 480, "macOS only: UniqueID of the hidden sandbox user (below 500)")
	fl.IntVar(&f.gid, "gid", 480, "macOS only: PrimaryGroupID of the hidden sandbox group (below 500)")
}

var sandboxNameRE = regexp.MustCompile(`[^a-z0-9-]+`)

// load builds the policy and the Linux driver from the thread directory.
func (f *sandboxFlags) load() (sandbox.Policy, *policies.WorkPlan, *policies.Thread, sandboxDriver, error) {
	var zero sandbox.Policy
	if f.thread == "" {
		return zero, nil, nil, nil, withCode(exitInvalid, errors.New("sandbox: --thread DIR is required (the thread's config.yaml sets the policy)"))
	}
	data, err := os.ReadFile(filepath.Join(f.thread, policies.ThreadFile))
	if err != nil {
		return zero, nil, nil, nil, withCode(exitInvalid, fmt.Errorf("sandbox: reading the thread config: %w", err))
	}
	th, err := policies.LoadThread(filepath.Join(f.thread, policies.ThreadFile), data)
	if err != nil {
		return zero, nil, nil, nil, withCode(exitInvalid, fmt.Errorf("sandbox: %w", err))
	}
	var plan *policies.WorkPlan
	if data, err := os.ReadFile(filepath.Join(f.thread, policies.WorkPlanFile)); err == nil {
		plan, err = policies.LoadWorkPlan(filepath.Join(f.thread, policies.WorkPlanFile), data)
		if err != nil {
			return zero, nil, nil, nil, withCode(exitInvalid, fmt.Errorf("sandbox: %w", err))
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return zero, nil, nil, nil, withCode(exitInvalid, fmt.Errorf("sandbox: %w", err))
	}
	pins, err := sandbox.LoadPins(f.pins)
	if err != nil {
		return zero, nil, nil, nil, withCode(exitInvalid, fmt.Errorf("sandbox: %w (install wrappers as root and list them in %s)", err, f.pins))
	}
	size, err := sandbox.ParseMemory(f.size)
	if err != nil {
		return zero, nil, nil, nil, withCode(exitInvalid, fmt.Errorf("sandbox: --size: %w", err))
	}
	name := f.name
	if name == "" {
		name = strings.Trim(sandboxNameRE.ReplaceAllString(strings.ToLower(th.Name), "-"), "-")
		if len(name) > 31 {
			name = name[:31]
		}
		if name == "" || name[0] < 'a' || name[0] > 'z' {
			name = "t-" + name
		}
	}
	pol, err := sandbox.FromThread(name, *th, plan, sandbox.Host{
		StateDir: f.stateDir, Wrappers: pins, User: f.user, Group: f.group, VolumeSize: size,
	})
	if err != nil {
		return zero, nil, nil, nil, withCode(exitInvalid, fmt.Errorf("sandbox: %w", err))
	}
	if runtime.GOOS == "darwin" {
		pol.Volume.FS = "apfs"
		pol.Volume.Image = strings.TrimSuffix(pol.Volume.Image, ".img") + ".sparseimage"
	}
	if f.image != "" {
		pol.Volume.Image = filepath.Clean(f.image)
	}
	if err := pol.Validate(); err != nil {
		return zero, nil, nil, nil, withCode(exitInvalid, fmt.Errorf("sandbox: %w", err))
	}
	var d sandboxDriver
	if runtime.GOOS == "darwin" {
		exe, err := os.Executable()
		if err != nil {
			return zero, nil, nil, nil, withCode(exitFail, err)
		}
		d, err = sandbox.NewDarwin(pol, sandbox.DarwinOptions{UID: f.uid, GID: f.gid, Launcher: exe})
		if err != nil {
			return zero, nil, nil, nil, withCode(exitFail, err)
		}
	} else {
		ld, err := sandbox.NewLinux(pol, sandbox.LinuxOptions{})
		if err != nil {
			return zero, nil, nil, nil, withCode(exitFail, err)
		}
		d = ld
	}
	return pol, plan, th, d, nil
}

// sandboxDriver is what the commands use of a driver.
type sandboxDriver = sandbox.Driver

func newSandboxCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Run agent and test commands in the OS sandbox (runner side)",
		Long: `Run agent and test commands confined by the operating system. On Linux (as root):
a loop-mounted ext4 image is the only writable place; the command runs as a dedicated
system user in new mount, network, pid, ipc and uts namespaces, under Landlock
(writes only to the volume, reads only an allowlist, no TCP), a seccomp filter (no
unix sockets, io_uring, new namespaces, mount, ptrace, …), rlimits and cgroup limits,
with no capabilities, no_new_privs and a clean environment. A missing layer refuses
the run; nothing is ever silently weakened.

The policy comes from the thread's config.yaml (tools, runtime limits) and its
WORK_PLAN.json (max_runtime); every tool must be an allowlisted wrapper: a root-owned
file outside the volume, pinned by SHA-256 in the runner's pin file
(` + defaultPinsFile + ` by default, "sha256sum" format).

Results leave the sandbox only as data: have the agent run ` + "`git bundle create`" + `
inside the sandbox and harvest the bundle; never run host tools in the volume.

See docs/runners.md for runner set-up.`,
		Example: `  agentgate sandbox probe
  agentgate sandbox run --thread services/payments -- go test ./...
  agentgate sandbox snapshot --thread services/payments before-refactor
  agentgate sandbox rollback --thread services/payments before-refactor
  agentgate sandbox kill --thread services/payments`,
	}
	cmd.AddCommand(newSandboxProbeCmd(), newSandboxRunCmd(), newSandboxKillCmd(), newSandboxSnapshotCmd(),
		newSandboxRollbackCmd(), newSandboxProvisionCmd(), newSandboxDetachCmd(), newSandboxResumeCmd())
	return cmd
}

func newSandboxProbeCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "probe",
		Short: "Report which confinement layers this machine offers",
		Long: `Report which confinement layers this machine offers (root, namespaces, Landlock ABI,
seccomp, cgroup version and controllers, loop devices, mkfs.ext4). Every layer is
required: the exit status is 1 when one is missing, and "sandbox run" would refuse.`,
		Example: "  agentgate sandbox probe\n  agentgate sandbox probe --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			caps := sandbox.ProbeLinux()
			if runtime.GOOS == "darwin" {
				exe, _ := os.Executable()
				caps = sandbox.ProbeDarwin(cmd.Context(), exe)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(caps); err != nil {
					return err
				}
			} else {
				fmt.Fprint(cmd.OutOrStdout(), caps.String())
			}
			if err := caps.Refuse(); err != nil {
				return withCode(exitFail, err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func newSandboxRunCmd() *cobra.Command {
	var f sandboxFlags
	var bf gatewayStoreFlags
	var resultPath, dir string
	var unsupervised bool
	cmd := &cobra.Command{
		Use:   "run --thread DIR [--image PATH] -- CMD [ARGS]",
		Short: "Run one allowlisted wrapper in the sandbox",
		Long: `Run one allowlisted wrapper in the sandbox and wait for it. CMD is a wrapper name
from the pin file that the thread's config.yaml lists under tools; anything else is
refused before anything starts. Arguments are passed as data (no shell).

The volume is created on first use and attached; the dedicated user and group are
created if missing. Standard input, output and error are the command's.

When the thread has a WORK_PLAN.json, every run is one tool call of the plan's run
and the plan's guardrails apply across runs: max_runtime (STOP_RUNTIME_EXCEEDED),
max_tool_calls (STOP_BUDGET_EXCEEDED) and max_files_changed
(STOP_SECURITY_VIOLATION). On a stop the sandbox is killed, the volume is
snapshotted (quarantine) and rolled back to the run's baseline, the stop is appended
to STATE-DIR/NAME/stops.jsonl, and every later run is refused until a human runs
"agentgate sandbox resume". --unsupervised skips this (for test commands).

With --budget-db (or --gateway-config, whose store is used) the run also stops
when the LLM gateway stops its plan at 100 % of its budget: the plan's stop latch
in the budget ledger is checked before every tool call and every second while one
runs; a stopped plan kills the running call and stops the run with
STOP_BUDGET_EXCEEDED, like a guardrail. A ledger that cannot be read, or that has
no budget for the plan, refuses the tool call (fail closed).

The JSON result (exit code, signal, limits hit, duration, files written, the
capabilities report) is written to --result, or to standard error when --result is
not given. Exit codes: the command's own 0; 1 the command failed or the run was
refused (a missing layer, a tampered wrapper); 2 invalid input or a command that is
not allowlisted; 3 a limit or a guardrail stopped it (wall clock, memory, pids, CPU
time, file size, disk, or a plan stop).`,
		Example: `  agentgate sandbox run --thread services/payments -- go test ./...
  agentgate sandbox run --thread services/payments --result run.json -- git -C work/repo status`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 0 {
				return withCode(exitInvalid, errors.New("sandbox run: put the command after --, e.g. agentgate sandbox run --thread DIR -- go test ./... (see --help)"))
			}
			pol, plan, th, d, err := f.load()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := d.Provision(ctx); err != nil {
				return withCode(exitFail, err)
			}
			if _, err := d.Attach(ctx); err != nil {
				return withCode(exitFail, err)
			}
			spec := sandbox.RunSpec{
				Wrapper: args[0], Args: args[1:], Dir: dir,
				Stdin: cmd.InOrStdin(), Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr(),
			}
			var res sandbox.Result
			var runErr error
			if plan != nil && !unsupervised {
				// The plan's guardrails span every `sandbox run` of the plan.
				var src sandbox.StopSource
				if bf.dsn != "" || bf.config != "" {
					bs, closeStore, err := openBudgetStopSource(ctx, &bf, plan.PlanID)
					if err != nil {
						return err
					}
					defer closeStore()
					src = bs
				}
				sup, err := newSupervisor(pol, plan, th, d, src)
				if err != nil {
					return withCode(exitFail, err)
				}
				defer sup.Close()
				if err := sup.Start(ctx); err != nil {
					if errors.Is(err, sandbox.ErrStopped) {
						return withCode(exitStop, err)
					}
					return withCode(exitFail, err)
				}
				res, runErr = sup.Run(ctx, spec)
			} else {
				res, runErr = d.Run(ctx, spec)
			}
			if err := writeResult(cmd.ErrOrStderr(), resultPath, res, runErr); err != nil {
				return withCode(exitFail, err)
			}
			switch {
			case errors.Is(runErr, sandbox.ErrStopped):
				return withCode(exitStop, runErr)
			case errors.Is(runErr, sandbox.ErrNotAllowlisted):
				return withCode(exitInvalid, runErr)
			case runErr != nil:
				return withCode(exitFail, runErr)
			case len(res.LimitsHit) > 0:
				return withCode(exitStop, fmt.Errorf("sandbox run: stopped by limit(s) %s", strings.Join(res.LimitsHit, ", ")))
			case res.ExitCode != 0:
				return withCode(exitFail, nil)
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&resultPath, "result", "", "write the JSON result to this file (default: standard error)")
	cmd.Flags().StringVar(&dir, "dir", "", "working directory, relative to the volume root (default work)")
	cmd.Flags().BoolVar(&unsupervised, "unsupervised", false, "run without the plan's guardrails (max_runtime, max_tool_calls, max_files_changed); for test commands outside an agent run")
	cmd.Flags().StringVar(&bf.dsn, "budget-db", "", "the LLM gateway's database, whose budget stop of the plan stops the run: "+dbFlagHelp)
	cmd.Flags().StringVar(&bf.config, "gateway-config", "", "gateway.yaml whose store is the budget database (instead of --budget-db)")
	return cmd
}

// newSupervisor wires the plan's guardrails around the driver; stops are
// recorded in STATE-DIR/NAME/stops.jsonl and persist across processes. src,
// when not nil, reports stops decided outside (the budget ledger).
func newSupervisor(pol sandbox.Policy, plan *policies.WorkPlan, th *policies.Thread, d sandbox.Driver, src sandbox.StopSource) (*sandbox.Supervisor, error) {
	g, err := sandbox.GuardrailsFromPlan(plan, *th)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(pol.Volume.MountPoint)
	rec := &sandbox.FileStopRecorder{Path: filepath.Join(dir, "stops.jsonl")}
	return sandbox.NewSupervisor(d, pol.Name, g, rec, sandbox.SupervisorOptions{
		StopFile:   filepath.Join(dir, "stopped.json"),
		StateFile:  filepath.Join(dir, "supervisor.json"),
		StopSource: src,
	})
}

// budgetStopSource is the budget ledger's stop latch of the run's plan: the
// LLM gateway latches it when a call would cross the plan's stop ratio.
type budgetStopSource struct {
	l    *budget.StoreLedger
	plan string
}

func openBudgetStopSource(ctx context.Context, f *gatewayStoreFlags, planID string) (*budgetStopSource, func() error, error) {
	l, closeStore, err := f.openLedger(ctx)
	if err != nil {
		return nil, nil, err
	}
	return &budgetStopSource{l: l, plan: planID}, closeStore, nil
}

// StopRequested implements sandbox.StopSource.
func (b *budgetStopSource) StopRequested(ctx context.Context) (policies.StopReason, string, error) {
	p, err := b.l.Status(ctx, b.plan)
	if errors.Is(err, budget.ErrUnknownPlan) {
		return "", "", fmt.Errorf("plan %s has no budget in the budget database (issue its run key first: agentgate gateway keys issue --work-plan)", b.plan)
	}
	if err != nil {
		return "", "", err
	}
	if p.Stopped {
		return policies.StopBudgetExceeded, fmt.Sprintf("the LLM gateway stopped plan %s at its budget (%s): %s", b.plan, budget.FormatUSD(p.Limit), p.StopReason), nil
	}
	return "", "", nil
}

func newSandboxResumeCmd() *cobra.Command {
	var f sandboxFlags
	var by, reason string
	cmd := &cobra.Command{
		Use:   "resume --thread DIR --by NAME --reason TEXT",
		Short: "Re-authorize a stopped run (a human decision)",
		Long: `Re-authorize a run that a guardrail stopped (STOP_RUNTIME_EXCEEDED, STOP_BUDGET_EXCEEDED
for tool calls, STOP_SECURITY_VIOLATION for files changed). Until this is done every
"sandbox run" of the plan is refused with exit code 3. The re-authorization names the
human who gives it and is appended to STATE-DIR/NAME/stops.jsonl; the run's counters,
clock and baseline start over.`,
		Example: "  agentgate sandbox resume --thread services/payments --by alice --reason \"limit raised in WORK_PLAN.json\"",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			pol, plan, th, d, err := f.load()
			if err != nil {
				return err
			}
			if plan == nil {
				return withCode(exitInvalid, errors.New("sandbox resume: the thread has no WORK_PLAN.json, so nothing is supervised"))
			}
			sup, err := newSupervisor(pol, plan, th, d, nil)
			if err != nil {
				return withCode(exitFail, err)
			}
			ev := sup.Stopped()
			if ev == nil {
				return withCode(exitInvalid, errors.New("sandbox resume: the run is not stopped"))
			}
			if err := sup.Reauthorize(cmd.Context(), sandbox.Authorization{By: by, Reason: reason}); err != nil {
				return withCode(exitInvalid, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sandbox: %s re-authorized the run stopped with %s\n", by, ev.Reason)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&by, "by", "", "the human who re-authorizes (required)")
	cmd.Flags().StringVar(&reason, "reason", "", "why the run may go on")
	return cmd
}

// runResult is the JSON document of one run, for the execution manifest.
type runResult struct {
	sandbox.Result
	Error string `json:"error,omitempty"`
}

func writeResult(stderr io.Writer, path string, res sandbox.Result, runErr error) error {
	r := runResult{Result: res}
	if runErr != nil {
		r.Error = runErr.Error()
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "" {
		_, err = stderr.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

func newSandboxKillCmd() *cobra.Command {
	var f sandboxFlags
	var detach bool
	cmd := &cobra.Command{
		Use:   "kill --thread DIR",
		Short: "Kill switch: end every sandbox process and confirm none is left",
		Long: `Kill switch: SIGKILL the sandbox's pid-namespace init (the kernel ends every process
in it), confirm that its cgroups are empty and that no process of the agent user is
left anywhere. With --detach, then unmount the volume (never lazily) and detach the
loop device; an unmount that would leave a live writer is reported as a failure.`,
		Example: "  agentgate sandbox kill --thread services/payments --detach",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, _, _, d, err := f.load()
			if err != nil {
				return err
			}
			if detach {
				err = d.Detach(cmd.Context())
			} else {
				err = d.Kill(cmd.Context())
			}
			if err != nil {
				return withCode(exitFail, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "sandbox: no process left")
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&detach, "detach", false, "also unmount the volume and detach the loop device")
	return cmd
}

func newSandboxDetachCmd() *cobra.Command {
	var f sandboxFlags
	cmd := &cobra.Command{
		Use:     "detach --thread DIR",
		Short:   "Kill, then unmount the volume and detach the loop device",
		Long:    `Kill every sandbox process, confirm none is left, unmount the volume (never lazily) and detach its loop device.`,
		Example: "  agentgate sandbox detach --thread services/payments",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, _, _, d, err := f.load()
			if err != nil {
				return err
			}
			if err := d.Detach(cmd.Context()); err != nil {
				return withCode(exitFail, err)
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func newSandboxProvisionCmd() *cobra.Command {
	var f sandboxFlags
	cmd := &cobra.Command{
		Use:   "provision --thread DIR",
		Short: "Create the dedicated user and group and attach the volume",
		Long: `Create the dedicated system group and user (no home, no shell, no login) if missing,
then create the volume image if missing and attach it. Idempotent.`,
		Example: "  agentgate sandbox provision --thread services/payments",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, _, _, d, err := f.load()
			if err != nil {
				return err
			}
			if err := d.Provision(cmd.Context()); err != nil {
				return withCode(exitFail, err)
			}
			v, err := d.Attach(cmd.Context())
			if err != nil {
				return withCode(exitFail, err)
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(v)
		},
	}
	f.register(cmd)
	return cmd
}

func newSandboxSnapshotCmd() *cobra.Command {
	var f sandboxFlags
	cmd := &cobra.Command{
		Use:   "snapshot --thread DIR NAME",
		Short: "Snapshot the volume (freeze, sparse copy, thaw)",
		Long: `Snapshot the volume: freeze the filesystem when attached, make a sparse copy of the
image under STATE-DIR/NAME/snapshots, thaw. Names are letters, digits, '.', '_', '-'.`,
		Example: "  agentgate sandbox snapshot --thread services/payments before-refactor",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, _, _, d, err := f.load()
			if err != nil {
				return err
			}
			id, err := d.Snapshot(cmd.Context(), args[0])
			if err != nil {
				return withCode(exitFail, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func newSandboxRollbackCmd() *cobra.Command {
	var f sandboxFlags
	cmd := &cobra.Command{
		Use:   "rollback --thread DIR SNAPSHOT",
		Short: "Kill, detach, restore a snapshot and attach again",
		Long: `Roll the volume back to a snapshot in one command: kill every sandbox process,
unmount and detach, copy the snapshot over the image, attach again.`,
		Example: "  agentgate sandbox rollback --thread services/payments before-refactor",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, _, _, d, err := f.load()
			if err != nil {
				return err
			}
			if err := d.Rollback(cmd.Context(), sandbox.SnapshotID(args[0])); err != nil {
				return withCode(exitFail, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "sandbox: rolled back to", args[0])
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

// newSandboxInitCmd is the hidden in-sandbox init: the driver re-executes
// this binary as `agentgate sandbox-init` in the new namespaces.
func newSandboxInitCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "sandbox-init",
		Short:              "Internal: the sandbox's pid-namespace init",
		Long:               "Internal: the sandbox's pid-namespace init, started only by the sandbox driver. It refuses to run otherwise.",
		Example:            "  (started by agentgate sandbox run)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			sandbox.InitMain() // never returns
			return nil
		},
	}
}

var _ = context.Background
