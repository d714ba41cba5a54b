package sandbox

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The macOS driver plans commands and runs them through an Executor: hdiutil
// for the APFS image, dscl for the hidden user, chmod +a for ACLs, sudo +
// env -i + sandbox-exec for runs, kill -1 as the agent uid for the kill
// switch, cp -c for snapshots. It is golden-tested on Linux through a
// Recorder; real runs happen only on a macOS runner (darwin build tag
// tests).

// Absolute paths of every macOS tool: never looked up in PATH.
const (
	darwinSandboxExec = "/usr/bin/sandbox-exec"
	darwinSudo        = "/usr/bin/sudo"
	darwinEnv         = "/usr/bin/env"
	darwinHdiutil     = "/usr/bin/hdiutil"
	darwinDscl        = "/usr/bin/dscl"
	darwinChmod       = "/bin/chmod"
	darwinChown       = "/usr/sbin/chown"
	darwinKill        = "/bin/kill"
	darwinPgrep       = "/usr/bin/pgrep"
	darwinPs          = "/bin/ps"
	darwinCp          = "/bin/cp"
	darwinBash        = "/bin/bash"
	darwinSwVers      = "/usr/bin/sw_vers"
	darwinTrue        = "/usr/bin/true"
)

// DarwinOptions configure the macOS driver.
type DarwinOptions struct {
	Exec Executor
	// UID and GID of the hidden user and group; both must be below 500
	// (hidden from the login window, no GUI session).
	UID, GID int
	// Launcher is the root-owned binary that applies rlimits and execs the
	// rest of the argv (agentgate's hidden `sandbox-rlimits`).
	Launcher string
	// Toolchain is a read-only, executable directory (Go, Node) outside /usr.
	Toolchain string
	// RunnerUser gets a read-only ACE on the volume for harvesting.
	RunnerUser string
	// Stat reports whether a path exists (os.Stat by default; tests fake the disk).
	Exists func(string) bool
	// Sleep is used for retries and the watchdog (time.Sleep by default).
	Sleep func(time.Duration)
	// KillAttempts bounds the kill -1 loop (default 50).
	KillAttempts int
	// Rename replaces the image on rollback (os.Rename by default).
	Rename func(oldpath, newpath string) error
}

// Darwin is the macOS driver.
type Darwin struct {
	pol  Policy
	opts DarwinOptions
}

// NewDarwin returns the macOS driver for a validated policy.
func NewDarwin(p Policy, o DarwinOptions) (*Darwin, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("sandbox policy: %w", err)
	}
	if p.Volume.FS != "apfs" {
		return nil, fmt.Errorf("sandbox policy: the macOS driver uses APFS images, not %q", p.Volume.FS)
	}
	if o.UID <= 0 || o.UID >= 500 || o.GID <= 0 || o.GID >= 500 {
		return nil, fmt.Errorf("sandbox: macOS uid/gid %d/%d: pick values in 1-499 so the account stays hidden", o.UID, o.GID)
	}
	if err := cleanAbs(o.Launcher); err != nil {
		return nil, fmt.Errorf("sandbox: launcher: %w", err)
	}
	if o.Toolchain != "" {
		if err := sbplPathOK(o.Toolchain); err != nil {
			return nil, fmt.Errorf("sandbox: toolchain: %w", err)
		}
	}
	if o.Exec == nil {
		o.Exec = OSExecutor{}
	}
	if o.Exists == nil {
		o.Exists = func(p string) bool { _, err := os.Stat(p); return err == nil }
	}
	if o.Sleep == nil {
		o.Sleep = time.Sleep
	}
	if o.Rename == nil {
		o.Rename = os.Rename
	}
	if o.KillAttempts == 0 {
		o.KillAttempts = 50
	}
	return &Darwin{pol: p, opts: o}, nil
}

// canonicalDarwin maps the firmlinked /tmp, /var and /etc to /private/...,
// the form Seatbelt matches.
func canonicalDarwin(p string) string {
	for _, pre := range []string{"/tmp", "/var", "/etc"} {
		if p == pre || strings.HasPrefix(p, pre+"/") {
			return "/private" + p
		}
	}
	return p
}

// sbplPathOK refuses paths that could break out of an SBPL string or
// param: quotes, backslashes, parentheses, control characters, '..'.
func sbplPathOK(p string) error {
	if err := cleanAbs(p); err != nil {
		return err
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(`"\()';`, r) {
			return fmt.Errorf("%q: character %q is not allowed in a sandbox path", p, r)
		}
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return fmt.Errorf("%q: '..' is not allowed", p)
		}
	}
	return nil
}

// darwinSysctls are the sysctl names Go, Node and common tools read.
var darwinSysctls = []string{
	"hw.activecpu", "hw.cachelinesize", "hw.l1dcachesize", "hw.l2cachesize", "hw.logicalcpu",
	"hw.logicalcpu_max", "hw.memsize", "hw.ncpu", "hw.optional.arm64", "hw.pagesize",
	"hw.physicalcpu", "kern.argmax", "kern.hostname", "kern.osproductversion", "kern.osrelease",
	"kern.ostype", "kern.osversion", "kern.version", "sysctl.proc_cputype",
}

// RenderSBPL renders the Seatbelt profile. It contains no path taken from
// the policy: the volume, the toolchain and extra read paths arrive as
// parameters (-D NAME=VALUE), so nothing in a path can change the profile.
// It returns the profile and the parameters in argv order.
func (d *Darwin) RenderSBPL() (string, []string, error) {
	mp := canonicalDarwin(d.pol.Volume.MountPoint)
	if err := sbplPathOK(mp); err != nil {
		return "", nil, fmt.Errorf("volume: %w", err)
	}
	params := []string{"VOLUME=" + mp}
	var b strings.Builder
	b.WriteString("(version 1)\n(deny default)\n")
	b.WriteString("(allow process-fork)\n")
	exec := []string{`(subpath "/usr/bin")`, `(subpath "/bin")`, `(subpath "/usr/libexec")`, `(subpath (param "VOLUME"))`}
	read := []string{`(subpath "/usr")`, `(subpath "/System")`, `(subpath "/Library/Developer/CommandLineTools")`,
		`(subpath "/private/etc")`, `(literal "/dev/null")`, `(literal "/dev/urandom")`, `(literal "/dev/random")`,
		`(literal "/dev/zero")`, `(subpath (param "VOLUME"))`}
	if d.opts.Toolchain != "" {
		params = append(params, "TOOLCHAIN="+canonicalDarwin(d.opts.Toolchain))
		exec = append(exec, `(subpath (param "TOOLCHAIN"))`)
		read = append(read, `(subpath (param "TOOLCHAIN"))`)
	}
	extra := map[string]bool{}
	for _, r := range d.pol.ReadPaths {
		c := canonicalDarwin(r)
		if err := sbplPathOK(c); err != nil {
			return "", nil, fmt.Errorf("read path: %w", err)
		}
		switch {
		case c == "/usr" || strings.HasPrefix(c, "/usr/") || c == "/private/etc" || strings.HasPrefix(c, "/dev/"),
			c == "/bin" || c == "/sbin" || strings.HasPrefix(c, "/lib"):
			continue // covered by the fixed rules, or Linux-only
		}
		extra[c] = true
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		name := "READ_" + strconv.Itoa(i)
		params = append(params, name+"="+k)
		read = append(read, `(subpath (param "`+name+`"))`)
	}
	fmt.Fprintf(&b, "(allow process-exec\n  %s)\n", strings.Join(exec, "\n  "))
	b.WriteString("(allow signal (target same-sandbox))\n")
	b.WriteString("(allow process-info* (target same-sandbox))\n")
	b.WriteString("(allow sysctl-read\n")
	for _, s := range darwinSysctls {
		fmt.Fprintf(&b, "  (sysctl-name %q)\n", s)
	}
	b.WriteString(")\n")
	fmt.Fprintf(&b, "(allow file-read*\n  %s)\n", strings.Join(read, "\n  "))
	// Path resolution needs metadata of the ancestors of allowed paths only.
	b.WriteString("(allow file-read-metadata\n  (literal \"/\")\n  (literal \"/private\")\n  (literal \"/private/var\")\n  (literal \"/Library\")\n  (literal \"/Library/Developer\"))\n")
	b.WriteString("(allow file-write*\n  (subpath (param \"VOLUME\"))\n  (literal \"/dev/null\"))\n")
	b.WriteString("(allow file-ioctl (literal \"/dev/null\"))\n")
	b.WriteString("(allow mach-lookup\n  (global-name \"com.apple.system.opendirectoryd.libinfo\"))\n")
	return b.String(), params, nil
}

func (d *Darwin) user() string  { return d.pol.Identity.User }
func (d *Darwin) group() string { return d.pol.Identity.Group }

func (d *Darwin) rename(a, b string) error { return d.opts.Rename(a, b) }

func (d *Darwin) run(ctx context.Context, c Cmd) (Output, error) { return d.opts.Exec.Run(ctx, c) }

// retryBusy retries create/attach/detach on "Resource busy" (XProtect
// scans images as they appear) with backoff.
func (d *Darwin) retryBusy(ctx context.Context, c Cmd) (Output, error) {
	var out Output
	var err error
	for i := 0; i < 5; i++ {
		out, err = d.run(ctx, c)
		if err == nil || !strings.Contains(string(out.Stderr)+err.Error(), "Resource busy") {
			return out, err
		}
		d.opts.Sleep(time.Duration(1<<i) * 500 * time.Millisecond)
	}
	return out, err
}

// Probe implements Driver.
func (d *Darwin) Probe(ctx context.Context) (Capabilities, error) {
	c := Capabilities{OS: "darwin", Root: os.Geteuid() == 0}
	if out, err := d.run(ctx, Cmd{Path: darwinSwVers, Args: []string{"-productVersion"}}); err == nil {
		c.MacOSVersion = strings.TrimSpace(string(out.Stdout))
	}
	_, err := d.run(ctx, Cmd{Path: darwinSandboxExec, Args: []string{"-p", "(version 1)(allow default)", darwinTrue}})
	detail := "trivial profile ran"
	if err != nil {
		detail = err.Error()
	}
	c.Layers = append(c.Layers,
		Layer{Name: "root", Available: c.Root, Required: true, Detail: "provisioning and hdiutil need root"},
		Layer{Name: "seatbelt", Available: err == nil, Required: true, Detail: detail},
		Layer{Name: "hdiutil", Available: d.opts.Exists(darwinHdiutil), Required: true, Detail: darwinHdiutil},
		Layer{Name: "launcher", Available: d.opts.Exists(d.opts.Launcher), Required: true, Detail: d.opts.Launcher},
	)
	return c, nil
}

// ProvisionPlan returns the dscl commands that create the hidden group and
// user, one attribute per command (dscl writes one per process and can
// stop half-way, so each is checked), followed by read-backs.
func (d *Darwin) ProvisionPlan() []Cmd {
	g, u := "/Groups/"+d.group(), "/Users/"+d.user()
	dscl := func(args ...string) Cmd { return Cmd{Path: darwinDscl, Args: append([]string{"."}, args...)} }
	return []Cmd{
		dscl("-create", g),
		dscl("-create", g, "PrimaryGroupID", strconv.Itoa(d.opts.GID)),
		dscl("-create", g, "Password", "*"),
		dscl("-create", u),
		dscl("-create", u, "UniqueID", strconv.Itoa(d.opts.UID)),
		dscl("-create", u, "PrimaryGroupID", strconv.Itoa(d.opts.GID)),
		dscl("-create", u, "UserShell", "/usr/bin/false"),
		dscl("-create", u, "NFSHomeDirectory", "/var/empty"),
		dscl("-create", u, "Password", "*"),
		dscl("-create", u, "IsHidden", "1"),
		dscl("-read", u, "UniqueID"),
		dscl("-read", u, "PrimaryGroupID"),
		dscl("-read", g, "PrimaryGroupID"),
	}
}

// Provision implements Driver.
func (d *Darwin) Provision(ctx context.Context) error {
	plan := d.ProvisionPlan()
	want := map[int]string{len(plan) - 3: strconv.Itoa(d.opts.UID), len(plan) - 2: strconv.Itoa(d.opts.GID), len(plan) - 1: strconv.Itoa(d.opts.GID)}
	for i, c := range plan {
		out, err := d.run(ctx, c)
		if err != nil {
			return fmt.Errorf("provision: %w (dscl can stop half-way: re-run provision, it is idempotent)", err)
		}
		if w, ok := want[i]; ok {
			f := strings.Fields(string(out.Stdout))
			if len(f) < 2 || f[len(f)-1] != w {
				return fmt.Errorf("provision: %s read back %q, want %s", c.String(), strings.TrimSpace(string(out.Stdout)), w)
			}
		}
	}
	return nil
}

// groupACE is the volume ACL entry of the agent group: everything needed to
// work in the volume, inherited; never writesecurity or chown.
func (d *Darwin) groupACE() string {
	return "group:" + d.group() + " allow list,add_file,search,add_subdirectory,delete_child,readattr,writeattr,readextattr,writeextattr,readsecurity,file_inherit,directory_inherit"
}

type hdiPlist struct {
	Dict struct {
		Items []hdiNode `xml:",any"`
	} `xml:"dict"`
}

type hdiNode struct {
	XMLName xml.Name
	Content string    `xml:",chardata"`
	Items   []hdiNode `xml:",any"`
}

// parseAttachPlist finds dev-entry and mount-point in hdiutil attach -plist.
func parseAttachPlist(data []byte) (dev, mount string, err error) {
	var p hdiPlist
	if err := xml.Unmarshal(data, &p); err != nil {
		return "", "", fmt.Errorf("hdiutil attach plist: %w", err)
	}
	var walk func(ns []hdiNode)
	walk = func(ns []hdiNode) {
		for i := 0; i < len(ns); i++ {
			n := ns[i]
			if n.XMLName.Local == "key" && i+1 < len(ns) && ns[i+1].XMLName.Local == "string" {
				switch n.Content {
				case "dev-entry":
					if dev == "" {
						dev = ns[i+1].Content
					}
				case "mount-point":
					mount = ns[i+1].Content
				}
			}
			walk(n.Items)
		}
	}
	walk(p.Dict.Items)
	if mount == "" {
		return "", "", errors.New("hdiutil attach plist: no mount-point")
	}
	return dev, mount, nil
}

// Attach implements Driver.
func (d *Darwin) Attach(ctx context.Context) (AttachedVolume, error) {
	img, mp := d.pol.Volume.Image, d.pol.Volume.MountPoint
	v := AttachedVolume{Image: img, MountPoint: mp}
	if !d.opts.Exists(img) {
		base := strings.TrimSuffix(img, ".sparseimage")
		size := fmt.Sprintf("%dm", max(1, d.pol.Volume.SizeBytes>>20))
		if _, err := d.retryBusy(ctx, Cmd{Path: darwinHdiutil, Args: []string{"create", "-size", size, "-type", "SPARSE", "-fs", "APFS", "-volname", "agentgate-" + d.pol.Name, base}}); err != nil {
			return v, fmt.Errorf("attach: %w", err)
		}
		v.Created = true
	}
	out, err := d.retryBusy(ctx, Cmd{Path: darwinHdiutil, Args: []string{"attach", "-nobrowse", "-noautoopen", "-owners", "on", "-mountpoint", mp, "-plist", img}})
	if err != nil {
		return v, fmt.Errorf("attach: %w", err)
	}
	dev, got, err := parseAttachPlist(out.Stdout)
	if err != nil {
		return v, fmt.Errorf("attach: %w", err)
	}
	if canonicalDarwin(got) != canonicalDarwin(mp) {
		return v, fmt.Errorf("attach: hdiutil mounted at %s, not %s", got, mp)
	}
	v.Device = dev
	steps := []Cmd{
		{Path: darwinChown, Args: []string{"root:" + d.group(), mp}},
		{Path: darwinChmod, Args: []string{"0770", mp}},
		{Path: darwinChmod, Args: []string{"+a", d.groupACE(), mp}},
	}
	if d.opts.RunnerUser != "" {
		steps = append(steps, Cmd{Path: darwinChmod, Args: []string{"+a", "user:" + d.opts.RunnerUser + " allow list,search,readattr,readextattr,readsecurity,read,file_inherit,directory_inherit", mp}})
	}
	for _, c := range steps {
		if _, err := d.run(ctx, c); err != nil {
			return v, fmt.Errorf("attach: %w", err)
		}
	}
	return v, nil
}

// RunPlan returns the argv of one run: sudo to the hidden user, the
// root-owned launcher applying rlimits, env -i with exactly the allowlist,
// sandbox-exec by absolute path with the rendered profile, and the wrapper
// under bash without profile or rc files.
func (d *Darwin) RunPlan(spec RunSpec, profilePath string) (Cmd, error) {
	w, ok := d.pol.Wrappers[spec.Wrapper]
	if !ok {
		return Cmd{}, fmt.Errorf("%w: %q", ErrNotAllowlisted, spec.Wrapper)
	}
	_, params, err := d.RenderSBPL()
	if err != nil {
		return Cmd{}, err
	}
	env, err := d.env(spec.Env)
	if err != nil {
		return Cmd{}, err
	}
	l := d.pol.Limits
	args := []string{"-n", "-u", d.user(), "--", d.opts.Launcher, "sandbox-rlimits",
		"-cpu", strconv.FormatInt(int64(max(1, l.CPUTime/time.Second)), 10),
		"-fsize", strconv.FormatInt(l.FileSizeBytes, 10),
		"-nofile", strconv.Itoa(l.OpenFiles),
		"-nproc", strconv.Itoa(l.Pids),
		"-core", "0", "--", darwinEnv, "-i"}
	args = append(args, env...)
	args = append(args, darwinSandboxExec, "-f", profilePath)
	for _, p := range params {
		args = append(args, "-D", p)
	}
	args = append(args, "--", darwinBash, "--noprofile", "--norc", w.Path)
	args = append(args, spec.Args...)
	dir := path.Join(canonicalDarwin(d.pol.Volume.MountPoint), "work")
	if spec.Dir != "" {
		dir = path.Join(canonicalDarwin(d.pol.Volume.MountPoint), path.Clean(spec.Dir))
	}
	return Cmd{Path: darwinSudo, Args: args, Dir: dir}, nil
}

func (d *Darwin) env(extra map[string]string) ([]string, error) {
	mp := canonicalDarwin(d.pol.Volume.MountPoint)
	m := map[string]string{
		"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HOME": mp + "/home", "TMPDIR": mp + "/.tmp",
		"GOCACHE": mp + "/.cache/go-build", "GOPATH": mp + "/go", "npm_config_cache": mp + "/.npm",
		"LANG": "en_US.UTF-8", "USER": d.user(),
	}
	if d.opts.Toolchain != "" {
		m["PATH"] = canonicalDarwin(d.opts.Toolchain) + "/bin:" + m["PATH"]
	}
	for k, v := range d.pol.Env {
		m[k] = v
	}
	for k, v := range extra {
		if !envNameRE.MatchString(k) || ForbiddenEnvName(k) {
			return nil, fmt.Errorf("sandbox run: environment variable %s is refused", k)
		}
		m[k] = v
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out, nil
}

// Run implements Driver. The watchdog (memory and wall clock; macOS has no
// cgroups and RLIMIT_RSS is only a hint) samples the agent uid's RSS and
// runs the kill switch on a breach.
func (d *Darwin) Run(ctx context.Context, spec RunSpec) (Result, error) {
	res := Result{Wrapper: spec.Wrapper, Args: spec.Args}
	caps, _ := d.Probe(ctx)
	res.Capabilities = caps
	if err := caps.Refuse(); err != nil {
		return res, err
	}
	w, ok := d.pol.Wrappers[spec.Wrapper]
	if !ok {
		return res, fmt.Errorf("%w: %q", ErrNotAllowlisted, spec.Wrapper)
	}
	if err := VerifyWrapper(spec.Wrapper, w, d.pol.Volume.MountPoint); err != nil {
		return res, err
	}
	profile, _, err := d.RenderSBPL()
	if err != nil {
		return res, err
	}
	pf, err := os.CreateTemp("", "agentgate-*.sb")
	if err != nil {
		return res, err
	}
	defer os.Remove(pf.Name())
	if _, err := pf.WriteString(profile); err != nil {
		pf.Close()
		return res, err
	}
	pf.Close()
	c, err := d.RunPlan(spec, pf.Name())
	if err != nil {
		return res, err
	}
	wall := d.pol.Limits.Wall
	if spec.Timeout > 0 && spec.Timeout < wall {
		wall = spec.Timeout
	}
	rctx, cancel := context.WithTimeout(ctx, wall)
	defer cancel()
	type done struct {
		out Output
		err error
	}
	ch := make(chan done, 1)
	start := time.Now()
	go func() { o, e := d.run(rctx, c); ch <- done{o, e} }()
	var r done
	for {
		select {
		case r = <-ch:
		case <-time.After(time.Second):
			if rss, err := d.SampleRSS(ctx); err == nil && rss > d.pol.Limits.MemoryBytes {
				res.LimitsHit = append(res.LimitsHit, LimitMemory)
				_ = d.Kill(ctx)
			}
			continue
		}
		break
	}
	res.Duration = time.Since(start)
	if rctx.Err() == context.DeadlineExceeded {
		res.LimitsHit = append(res.LimitsHit, LimitWall)
		res.Killed = true
	}
	if err := d.Kill(ctx); err != nil {
		return res, err
	}
	res.ExitCode = r.out.ExitCode
	if spec.Stdout != nil {
		spec.Stdout.Write(r.out.Stdout)
	}
	if spec.Stderr != nil {
		spec.Stderr.Write(r.out.Stderr)
	}
	return res, nil
}

// SampleRSS returns the total resident memory, in bytes, of the agent uid.
func (d *Darwin) SampleRSS(ctx context.Context) (int64, error) {
	out, err := d.run(ctx, Cmd{Path: darwinPs, Args: []string{"-U", d.user(), "-o", "rss="}})
	if err != nil && len(out.Stdout) == 0 {
		return 0, nil // no process
	}
	var total int64
	for _, f := range strings.Fields(string(out.Stdout)) {
		kb, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("ps rss %q: %w", f, err)
		}
		total += kb << 10
	}
	return total, nil
}

// Kill implements Driver: kill -KILL -1 as the agent uid (a non-root
// process cannot change its uid, so this reaches daemons and launchd
// surrogates too) until pgrep finds nothing.
func (d *Darwin) Kill(ctx context.Context) error {
	for i := 0; i < d.opts.KillAttempts; i++ {
		_, _ = d.run(ctx, Cmd{Path: darwinSudo, Args: []string{"-n", "-u", d.user(), darwinKill, "-KILL", "-1"}})
		out, err := d.run(ctx, Cmd{Path: darwinPgrep, Args: []string{"-U", d.user()}})
		if err != nil && len(strings.TrimSpace(string(out.Stdout))) == 0 {
			return nil // pgrep exits 1: nothing left
		}
		d.opts.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%w: processes of %s survive kill -1", ErrLiveWriter, d.user())
}

// Detach implements Driver: kill first, then hdiutil detach -force (which
// ignores open files but kills nothing).
func (d *Darwin) Detach(ctx context.Context) error {
	if err := d.Kill(ctx); err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	if _, err := d.retryBusy(ctx, Cmd{Path: darwinHdiutil, Args: []string{"detach", "-force", d.pol.Volume.MountPoint}}); err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	return nil
}

func (d *Darwin) snapshotPath(name string) (string, error) {
	if !snapNameRE.MatchString(name) || strings.Contains(name, "..") {
		return "", fmt.Errorf("snapshot name %q: use letters, digits, '.', '_' and '-'", name)
	}
	return path.Join(path.Dir(d.pol.Volume.Image), "snapshots", name+".sparseimage"), nil
}

// Snapshot implements Driver: APFS has no scriptable point-in-time copy of
// an arbitrary volume, so: kill, detach, clone the image (cp -c, instant
// copy-on-write), attach.
func (d *Darwin) Snapshot(ctx context.Context, name string) (SnapshotID, error) {
	dst, err := d.snapshotPath(name)
	if err != nil {
		return "", err
	}
	if err := d.Detach(ctx); err != nil {
		return "", err
	}
	if _, err := d.run(ctx, Cmd{Path: darwinCp, Args: []string{"-c", d.pol.Volume.Image, dst}}); err != nil {
		return "", fmt.Errorf("snapshot: %w", err)
	}
	if _, err := d.Attach(ctx); err != nil {
		return "", err
	}
	return SnapshotID(name), nil
}

// Rollback implements Driver: kill, detach, clone the snapshot back, attach.
func (d *Darwin) Rollback(ctx context.Context, id SnapshotID) error {
	src, err := d.snapshotPath(string(id))
	if err != nil {
		return err
	}
	if err := d.Detach(ctx); err != nil {
		return err
	}
	tmp := d.pol.Volume.Image + ".rollback"
	if _, err := d.run(ctx, Cmd{Path: darwinCp, Args: []string{"-c", src, tmp}}); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	if err := d.rename(tmp, d.pol.Volume.Image); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	_, err = d.Attach(ctx)
	return err
}

var _ Driver = (*Darwin)(nil)

// ProbeDarwin reports the macOS layers without a policy (for `agentgate
// sandbox probe`).
func ProbeDarwin(ctx context.Context, launcher string) Capabilities {
	d := &Darwin{opts: DarwinOptions{Exec: OSExecutor{}, Launcher: launcher,
		Exists: func(p string) bool { _, err := os.Stat(p); return err == nil }}}
	c, _ := d.Probe(ctx)
	return c
}
