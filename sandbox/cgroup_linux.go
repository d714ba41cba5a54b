//go:build linux

package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const cgroupRoot = "/sys/fs/cgroup"

// cgroupSet is the sandbox's cgroups: one directory per v1 hierarchy
// (memory, pids, cpu, freezer) or a single v2 directory.
type cgroupSet struct {
	Version int               `json:"version"`
	Dirs    map[string]string `json:"dirs"` // controller (or "unified") -> directory
}

// cgroupInfo detects the cgroup layout: 2 for a pure v2 host, 1 when the
// v1 memory and pids hierarchies are mounted (hybrid hosts use v1 for
// limits), 0 when neither is usable.
func cgroupInfo() (version int, controllers []string) {
	if b, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		return 2, strings.Fields(string(b))
	}
	for _, c := range []string{"memory", "pids", "cpu", "freezer"} {
		if _, err := os.Stat(filepath.Join(cgroupRoot, c, "cgroup.procs")); err == nil {
			controllers = append(controllers, c)
		}
	}
	if contains(controllers, "memory") && contains(controllers, "pids") {
		return 1, controllers
	}
	return 0, controllers
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// ownCgroup returns this process's cgroup path in a v1 hierarchy (by
// controller) or in v2 (controller "").
func ownCgroup(controller string) string {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "/"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if controller == "" && parts[0] == "0" && parts[1] == "" {
			return parts[2]
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller && controller != "" {
				return parts[2]
			}
		}
	}
	return "/"
}

// newCgroups makes the run's cgroups under this process's own and writes
// the limits. A limit that cannot be written is an error: the run is
// refused rather than started without it.
func newCgroups(name string, l Limits) (*cgroupSet, error) {
	version, ctrls := cgroupInfo()
	leaf := "agentgate-" + name
	cs := &cgroupSet{Version: version, Dirs: map[string]string{}}
	write := func(dir, file, val string) error {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(val), 0o644); err != nil {
			return fmt.Errorf("cgroup %s/%s = %s: %w", dir, file, val, err)
		}
		return nil
	}
	switch version {
	case 1:
		for _, c := range ctrls {
			dir := filepath.Join(cgroupRoot, c, ownCgroup(c), leaf)
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				cs.remove()
				return nil, fmt.Errorf("cgroup: %w", err)
			}
			cs.Dirs[c] = dir
		}
		mem := strconv.FormatInt(l.MemoryBytes, 10)
		if err := write(cs.Dirs["memory"], "memory.limit_in_bytes", mem); err != nil {
			cs.remove()
			return nil, err
		}
		if _, err := os.Stat(filepath.Join(cs.Dirs["memory"], "memory.memsw.limit_in_bytes")); err == nil {
			if err := write(cs.Dirs["memory"], "memory.memsw.limit_in_bytes", mem); err != nil {
				cs.remove()
				return nil, err
			}
		}
		if err := write(cs.Dirs["pids"], "pids.max", strconv.Itoa(l.Pids)); err != nil {
			cs.remove()
			return nil, err
		}
		if d, ok := cs.Dirs["cpu"]; ok && l.CPUs > 0 {
			const period = 100000
			if err := write(d, "cpu.cfs_period_us", strconv.Itoa(period)); err != nil {
				cs.remove()
				return nil, err
			}
			if err := write(d, "cpu.cfs_quota_us", strconv.Itoa(int(l.CPUs*period))); err != nil {
				cs.remove()
				return nil, err
			}
		}
	case 2:
		parent := filepath.Join(cgroupRoot, ownCgroup(""))
		dir := filepath.Join(parent, leaf)
		// Controllers must be enabled in the parent's subtree; with processes
		// in the parent this fails (no internal processes): the runner must
		// be started in a delegated cgroup (docs/runners.md).
		for _, c := range []string{"memory", "pids", "cpu"} {
			if contains(ctrls, c) {
				_ = write(parent, "cgroup.subtree_control", "+"+c)
			}
		}
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		cs.Dirs["unified"] = dir
		mem := strconv.FormatInt(l.MemoryBytes, 10)
		if err := write(dir, "memory.max", mem); err != nil {
			cs.remove()
			return nil, fmt.Errorf("%w; run the runner in a cgroup with the memory controller delegated", err)
		}
		_ = write(dir, "memory.swap.max", "0")
		if err := write(dir, "pids.max", strconv.Itoa(l.Pids)); err != nil {
			cs.remove()
			return nil, err
		}
		if l.CPUs > 0 {
			if err := write(dir, "cpu.max", fmt.Sprintf("%d 100000", int(l.CPUs*100000))); err != nil {
				cs.remove()
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("%w: no usable cgroup memory and pids controllers", ErrLayerMissing)
	}
	return cs, nil
}

// add puts pid in every cgroup of the set.
func (cs *cgroupSet) add(pid int) error {
	for c, d := range cs.Dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("cgroup %s: adding pid %d: %w", c, pid, err)
		}
	}
	return nil
}

// procs lists every pid left in any cgroup of the set.
func (cs *cgroupSet) procs() []int {
	seen := map[int]bool{}
	var out []int
	for _, d := range cs.Dirs {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(f); err == nil && !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// killAll ends every process of the set: cgroup.kill on v2; on v1 freeze,
// SIGKILL each, thaw. It then waits until the set is empty.
func (cs *cgroupSet) killAll(wait time.Duration) error {
	if d, ok := cs.Dirs["unified"]; ok {
		_ = os.WriteFile(filepath.Join(d, "cgroup.kill"), []byte("1"), 0o644)
	}
	fz, hasFreezer := cs.Dirs["freezer"]
	deadline := time.Now().Add(wait)
	for {
		pids := cs.procs()
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %d process(es) still in the sandbox cgroup after SIGKILL: %v", ErrLiveWriter, len(pids), pids)
		}
		if hasFreezer {
			_ = os.WriteFile(filepath.Join(fz, "freezer.state"), []byte("FROZEN"), 0o644)
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		if hasFreezer {
			_ = os.WriteFile(filepath.Join(fz, "freezer.state"), []byte("THAWED"), 0o644)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// limitsHit reads the kernel's own counters of limit breaches.
func (cs *cgroupSet) limitsHit() []string {
	var hit []string
	if d, ok := cs.Dirs["memory"]; ok {
		if kv := readKV(filepath.Join(d, "memory.oom_control")); kv["oom_kill"] > 0 {
			hit = append(hit, LimitMemory)
		}
	}
	if d, ok := cs.Dirs["unified"]; ok {
		if kv := readKV(filepath.Join(d, "memory.events")); kv["oom_kill"] > 0 || kv["max"] > 0 && kv["oom"] > 0 {
			hit = append(hit, LimitMemory)
		}
		if kv := readKV(filepath.Join(d, "pids.events")); kv["max"] > 0 {
			hit = append(hit, LimitPids)
		}
	}
	if d, ok := cs.Dirs["pids"]; ok {
		if kv := readKV(filepath.Join(d, "pids.events")); kv["max"] > 0 {
			hit = append(hit, LimitPids)
		}
	}
	return hit
}

func readKV(path string) map[string]int64 {
	out := map[string]int64{}
	b, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 {
			if v, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				out[f[0]] = v
			}
		}
	}
	return out
}

// remove deletes the (empty) cgroup directories.
func (cs *cgroupSet) remove() error {
	var errs []error
	for c, d := range cs.Dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("cgroup %s: %w", c, err))
		}
	}
	return errors.Join(errs...)
}
