package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// Driver confines processes with one operating system's mechanisms. Every
// method is idempotent where that makes sense; Kill is always safe to call
// and runs first inside Detach and Rollback.
type Driver interface {
	// Probe reports which confinement layers this machine offers.
	Probe(ctx context.Context) (Capabilities, error)
	// Provision creates the dedicated user and group (once; idempotent).
	Provision(ctx context.Context) error
	// Attach creates the volume image on first use and mounts it.
	Attach(ctx context.Context) (AttachedVolume, error)
	// Run runs one allowlisted wrapper in the sandbox and waits for it.
	// A command that ran and failed is a Result with a non-zero exit, not
	// an error; an error means the run was refused or could not start.
	Run(ctx context.Context, spec RunSpec) (Result, error)
	// Kill ends every process of the sandbox and confirms none is left.
	Kill(ctx context.Context) error
	// Detach kills, unmounts (never lazily) and releases the volume.
	Detach(ctx context.Context) error
	// Snapshot copies the volume at a consistent point.
	Snapshot(ctx context.Context, name string) (SnapshotID, error)
	// Rollback kills, detaches, restores the snapshot and attaches again.
	Rollback(ctx context.Context, id SnapshotID) error
}

// SnapshotID names a snapshot; it is the snapshot file's base name.
type SnapshotID string

// AttachedVolume describes a mounted volume.
type AttachedVolume struct {
	MountPoint string `json:"mount_point"`
	// HarvestView is a second, read-only, nosymfollow view of the volume
	// through which the host reads results.
	HarvestView string `json:"harvest_view,omitempty"`
	Device      string `json:"device,omitempty"` // loop device or /dev/diskN
	Image       string `json:"image"`
	Created     bool   `json:"created"` // the image was made by this Attach
}

// RunSpec is one command to run in the sandbox.
type RunSpec struct {
	// Wrapper names an allowlisted wrapper of the policy.
	Wrapper string
	Args    []string
	// Dir is the working directory relative to the volume root ("" = "work").
	Dir    string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Env adds variables on top of the policy's; forbidden names are refused.
	Env map[string]string
	// Timeout tightens the policy's wall clock for this run (0 = policy).
	Timeout time.Duration
	// InheritExtraFiles is for tests only: it hands these host files to the
	// launcher to prove the wrapper never sees them (only fds 0-2 survive).
	InheritExtraFiles []*os.File
}

// Limit names, as they appear in Result.LimitsHit.
const (
	LimitWall     = "wall"
	LimitMemory   = "memory"
	LimitPids     = "pids"
	LimitCPUTime  = "cpu_time"
	LimitFileSize = "file_size"
	LimitDisk     = "disk"
)

// Result is the outcome of one Run, shaped for the execution manifest.
type Result struct {
	Wrapper  string   `json:"wrapper"`
	Args     []string `json:"args"`
	ExitCode int      `json:"exit_code"`
	// Signal is the signal that ended the wrapper ("" when it exited).
	Signal    string        `json:"signal,omitempty"`
	LimitsHit []string      `json:"limits_hit,omitempty"`
	Duration  time.Duration `json:"duration_ns"`
	// FilesWritten counts regular files in the volume created or changed
	// during the run (by ctime, which the agent cannot forge).
	FilesWritten int          `json:"files_written"`
	Killed       bool         `json:"killed,omitempty"`
	Capabilities Capabilities `json:"capabilities"`
}

// Hit reports whether limit was hit.
func (r Result) Hit(limit string) bool {
	for _, l := range r.LimitsHit {
		if l == limit {
			return true
		}
	}
	return false
}

// Layer is one confinement mechanism.
type Layer struct {
	Name      string `json:"name"`
	Available bool   `json:"available"`
	Detail    string `json:"detail,omitempty"`
	// Required layers refuse the run when unavailable.
	Required bool `json:"required"`
}

// Capabilities is what Probe found; it is logged with every run and goes
// into the execution manifest.
type Capabilities struct {
	OS     string  `json:"os"`
	Kernel string  `json:"kernel,omitempty"`
	Root   bool    `json:"root"`
	Layers []Layer `json:"layers"`
	// LandlockABI is the kernel's Landlock ABI version (0 = none).
	LandlockABI   int      `json:"landlock_abi,omitempty"`
	CgroupVersion int      `json:"cgroup_version,omitempty"`
	Controllers   []string `json:"cgroup_controllers,omitempty"`
	MacOSVersion  string   `json:"macos_version,omitempty"`
}

// Layer returns the named layer.
func (c Capabilities) Layer(name string) (Layer, bool) {
	for _, l := range c.Layers {
		if l.Name == name {
			return l, true
		}
	}
	return Layer{}, false
}

// ErrLayerMissing is returned (wrapped) when a required layer is absent:
// the run is refused, never silently weakened.
var ErrLayerMissing = errors.New("required sandbox layer missing")

// ErrNotAllowlisted is returned when a command is not an allowlisted wrapper.
var ErrNotAllowlisted = errors.New("command is not an allowlisted wrapper")

// ErrWrapperTampered is returned when a wrapper fails its pin or ownership check.
var ErrWrapperTampered = errors.New("wrapper failed verification")

// ErrLiveWriter is returned when a volume could not be released because a
// sandbox process may still write to it.
var ErrLiveWriter = errors.New("sandbox process still alive")

// Refuse returns an error naming every required layer that is missing, or
// nil when all are present.
func (c Capabilities) Refuse() error {
	var missing []string
	for _, l := range c.Layers {
		if l.Required && !l.Available {
			d := l.Name
			if l.Detail != "" {
				d += " (" + l.Detail + ")"
			}
			missing = append(missing, d)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	return fmt.Errorf("%w: %s; the run is refused rather than weakened: fix the host (see docs/runners.md) and run `agentgate sandbox probe`",
		ErrLayerMissing, strings.Join(missing, ", "))
}

// String renders the report for humans.
func (c Capabilities) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "os: %s", c.OS)
	if c.Kernel != "" {
		fmt.Fprintf(&b, " (kernel %s)", c.Kernel)
	}
	fmt.Fprintf(&b, "\nroot: %v\n", c.Root)
	for _, l := range c.Layers {
		state := "ok"
		if !l.Available {
			state = "MISSING"
		}
		req := ""
		if l.Required {
			req = " [required]"
		}
		fmt.Fprintf(&b, "  %-12s %-7s %s%s\n", l.Name, state, l.Detail, req)
	}
	return b.String()
}
