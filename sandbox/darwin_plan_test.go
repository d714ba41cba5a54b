package sandbox

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if string(want) != got {
		t.Fatalf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", p, got, want)
	}
}

const attachPlist = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>system-entities</key>
	<array>
		<dict>
			<key>content-hint</key><string>GUID_partition_scheme</string>
			<key>dev-entry</key><string>/dev/disk4</string>
		</dict>
		<dict>
			<key>content-hint</key><string>41504653-0000-11AA-AA11-00306543ECAC</string>
			<key>dev-entry</key><string>/dev/disk4s1</string>
			<key>mount-point</key><string>/private/var/agentgate/sandbox/demo/mnt</string>
		</dict>
	</array>
</dict>
</plist>`

func darwinPolicy() Policy {
	return Policy{
		Name: "demo",
		Volume: Volume{Image: "/var/agentgate/sandbox/demo/volume.sparseimage", SizeBytes: 4 << 30, FS: "apfs",
			MountPoint: "/var/agentgate/sandbox/demo/mnt"},
		Identity:  Identity{User: "_agentsbx", Group: "_agentsbx"},
		Wrappers:  map[string]Wrapper{"run_tests.sh": {Path: "/usr/local/libexec/agentgate/wrappers/run_tests.sh", SHA256: strings.Repeat("ab", 32)}},
		Env:       map[string]string{"CI": "true"},
		ReadPaths: []string{"/usr", "/etc", "/opt/homebrew/opt/go"},
		Network:   Network{Mode: NetworkDeny},
		Limits: Limits{Wall: 30 * time.Minute, CPUTime: 30 * time.Minute, MemoryBytes: 2 << 30, Pids: 512,
			OpenFiles: 1024, FileSizeBytes: 1 << 30},
	}
}

// newPlanner returns a macOS driver over a Recorder. pgrep answers "none
// left" (exit 1) unless busy says otherwise.
func newPlanner(t *testing.T, exists bool, answer func(Cmd) (Output, error)) (*Darwin, *Recorder) {
	t.Helper()
	rec := &Recorder{Answer: func(c Cmd) (Output, error) {
		if c.Path == darwinHdiutil && len(c.Args) > 0 && c.Args[0] == "create" {
			exists = true // the image now exists on the (fake) disk
		}
		if answer != nil {
			if o, err := answer(c); o.Stdout != nil || err != nil {
				return o, err
			}
		}
		switch {
		case c.Path == darwinHdiutil && len(c.Args) > 0 && c.Args[0] == "attach":
			return Output{Stdout: []byte(attachPlist)}, nil
		case c.Path == darwinPgrep:
			return Output{ExitCode: 1}, errors.New("exit status 1")
		case c.Path == darwinDscl && len(c.Args) > 1 && c.Args[1] == "-read":
			switch c.Args[len(c.Args)-1] {
			case "UniqueID":
				return Output{Stdout: []byte("UniqueID: 480\n")}, nil
			case "PrimaryGroupID":
				return Output{Stdout: []byte("PrimaryGroupID: 480\n")}, nil
			}
		}
		return Output{}, nil
	}}
	d, err := NewDarwin(darwinPolicy(), DarwinOptions{
		Exec: rec, UID: 480, GID: 480, Launcher: "/usr/local/libexec/agentgate/agentgate",
		Toolchain: "/usr/local/go", RunnerUser: "runner",
		Exists: func(string) bool { return exists }, Sleep: func(time.Duration) {},
		Rename: func(string, string) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return d, rec
}

// Test 36: the rendered profile.
func TestSBPLProfileDeniesByDefaultAndTakesPathsOnlyAsParams(t *testing.T) {
	d, _ := newPlanner(t, true, nil)
	prof, params, err := d.RenderSBPL()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "darwin_profile.sb", prof)
	golden(t, "darwin_profile_params", strings.Join(params, "\n")+"\n")
	if !strings.HasPrefix(prof, "(version 1)\n(deny default)\n") {
		t.Fatal("the profile does not start with (version 1)(deny default)")
	}
	for _, bad := range []string{"(allow network", "network-outbound", "network-inbound", "lsopen", "appleevent-send",
		"launchservicesd", "coreservices", "dnssd", "mDNSResponder", "(allow default)", "/var/agentgate", "/opt/homebrew"} {
		if strings.Contains(prof, bad) {
			t.Errorf("the profile contains %q", bad)
		}
	}
	// Writes only under the volume parameter (and /dev/null).
	w := prof[strings.Index(prof, "(allow file-write*"):]
	w = w[:strings.Index(w, ")\n(")+1]
	if strings.Count(w, "(subpath") != 1 || !strings.Contains(w, `(subpath (param "VOLUME"))`) || strings.Count(w, "(literal") != 1 {
		t.Fatalf("file-write rule %q", w)
	}
	if params[0] != "VOLUME=/private/var/agentgate/sandbox/demo/mnt" {
		t.Fatalf("volume param %q is not canonical", params[0])
	}
}

func TestSBPLRefusesHostilePaths(t *testing.T) {
	for _, p := range []string{`/tmp/a"b`, "/tmp/a\nb", "/tmp/a)(allow default)", `/tmp/a\b`, "/tmp/a/../b", "relative"} {
		pol := darwinPolicy()
		pol.ReadPaths = append(pol.ReadPaths, p)
		d := &Darwin{pol: pol, opts: DarwinOptions{}}
		if _, _, err := d.RenderSBPL(); err == nil {
			t.Errorf("read path %q was accepted", p)
		}
	}
	pol := darwinPolicy()
	if _, err := NewDarwin(pol, DarwinOptions{UID: 480, GID: 480, Launcher: "/x", Toolchain: `/opt/"go`}); err == nil {
		t.Error("a hostile toolchain path was accepted")
	}
	if _, err := NewDarwin(pol, DarwinOptions{UID: 501, GID: 480, Launcher: "/x"}); err == nil {
		t.Error("a UID of 501 (a visible, login-window user) was accepted")
	}
}

// Test 37: the run argv.
func TestDarwinRunArgv(t *testing.T) {
	d, _ := newPlanner(t, true, nil)
	c, err := d.RunPlan(RunSpec{Wrapper: "run_tests.sh", Args: []string{"./...", "; rm -rf /"}}, "/private/var/agentgate/sandbox/demo/profile.sb")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "darwin_run.argv", c.String()+"\n")
	if c.Path != "/usr/bin/sudo" || strings.Join(c.Args[:4], " ") != "-n -u _agentsbx --" {
		t.Fatalf("argv starts %s %v", c.Path, c.Args[:4])
	}
	i := indexOf(c.Args, "/usr/bin/env")
	if i < 0 || c.Args[i+1] != "-i" {
		t.Fatal("env -i missing")
	}
	j := indexOf(c.Args, "/usr/bin/sandbox-exec")
	if j < i {
		t.Fatal("sandbox-exec by absolute path missing, or before env -i")
	}
	env := c.Args[i+2 : j]
	want := []string{"CI=true", "GOCACHE=/private/var/agentgate/sandbox/demo/mnt/.cache/go-build",
		"GOPATH=/private/var/agentgate/sandbox/demo/mnt/go", "HOME=/private/var/agentgate/sandbox/demo/mnt/home",
		"LANG=en_US.UTF-8", "PATH=/usr/local/go/bin:/usr/bin:/bin:/usr/sbin:/sbin",
		"TMPDIR=/private/var/agentgate/sandbox/demo/mnt/.tmp", "USER=_agentsbx",
		"npm_config_cache=/private/var/agentgate/sandbox/demo/mnt/.npm"}
	if strings.Join(env, " ") != strings.Join(want, " ") {
		t.Fatalf("env allowlist\n got %v\nwant %v", env, want)
	}
	if indexOf(c.Args, "-D") < 0 || indexOf(c.Args, "VOLUME=/private/var/agentgate/sandbox/demo/mnt") < 0 {
		t.Fatal("-D VOLUME=... missing")
	}
	if c.Args[len(c.Args)-1] != "; rm -rf /" {
		t.Fatal("arguments were not passed as data")
	}
	if _, err := d.RunPlan(RunSpec{Wrapper: "bash"}, "/p"); !errors.Is(err, ErrNotAllowlisted) {
		t.Fatalf("non-allowlisted wrapper: %v", err)
	}
	if _, err := d.RunPlan(RunSpec{Wrapper: "run_tests.sh", Env: map[string]string{"DYLD_INSERT_LIBRARIES": "/x"}}, "/p"); err == nil {
		t.Fatal("DYLD_INSERT_LIBRARIES was accepted")
	}
}

func indexOf(xs []string, x string) int {
	for i, y := range xs {
		if y == x {
			return i
		}
	}
	return -1
}

// Test 38: hdiutil argv; detach -force only after the kill step.
func TestDarwinImageLifecycleArgv(t *testing.T) {
	ctx := context.Background()
	d, rec := newPlanner(t, false, nil)
	if _, err := d.Attach(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Snapshot(ctx, "before"); err != nil {
		t.Fatal(err)
	}
	if err := d.Rollback(ctx, "before"); err != nil {
		t.Fatal(err)
	}
	if err := d.Detach(ctx); err != nil {
		t.Fatal(err)
	}
	golden(t, "darwin_lifecycle", rec.Transcript())
	for i, c := range rec.Cmds {
		if c.Path == darwinHdiutil && c.Args[0] == "detach" {
			if i < 2 || rec.Cmds[i-1].Path != darwinPgrep || rec.Cmds[i-2].Path != darwinSudo {
				t.Fatalf("detach at step %d does not follow the kill -1 / pgrep check", i)
			}
			if strings.Join(c.Args, " ") != "detach -force /var/agentgate/sandbox/demo/mnt" {
				t.Fatalf("detach argv %v", c.Args)
			}
		}
		if c.Path == darwinCp && c.Args[0] != "-c" {
			t.Fatalf("cp without -c (clonefile): %v", c.Args)
		}
	}
	create := rec.Cmds[0]
	if strings.Join(create.Args[:7], " ") != "create -size 4096m -type SPARSE -fs APFS" {
		t.Fatalf("create argv %v", create.Args)
	}
	attach := rec.Cmds[1]
	if strings.Join(attach.Args, " ") != "attach -nobrowse -noautoopen -owners on -mountpoint /var/agentgate/sandbox/demo/mnt -plist /var/agentgate/sandbox/demo/volume.sparseimage" {
		t.Fatalf("attach argv %v", attach.Args)
	}
}

func TestDarwinRetriesResourceBusy(t *testing.T) {
	busy := 2
	d, rec := newPlanner(t, true, func(c Cmd) (Output, error) {
		if c.Path == darwinHdiutil && c.Args[0] == "attach" && busy > 0 {
			busy--
			return Output{Stdout: []byte{}, Stderr: []byte("hdiutil: attach failed - Resource busy")}, errors.New("exit status 1")
		}
		return Output{}, nil
	})
	if _, err := d.Attach(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range rec.Cmds {
		if c.Path == darwinHdiutil {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d attach attempts, want 3", n)
	}
}

func TestDarwinKillFailsWhileProcessesSurvive(t *testing.T) {
	d, _ := newPlanner(t, true, func(c Cmd) (Output, error) {
		if c.Path == darwinPgrep {
			return Output{Stdout: []byte("4242\n")}, nil
		}
		return Output{}, nil
	})
	d.opts.KillAttempts = 3
	if err := d.Kill(context.Background()); !errors.Is(err, ErrLiveWriter) {
		t.Fatalf("kill with survivors: %v", err)
	}
	if err := d.Detach(context.Background()); err == nil {
		t.Fatal("detach went ahead with survivors")
	}
}

// Test 39: dscl sequence and the ACL.
func TestDarwinProvisionAndACL(t *testing.T) {
	d, rec := newPlanner(t, true, nil)
	if err := d.Provision(context.Background()); err != nil {
		t.Fatal(err)
	}
	golden(t, "darwin_provision", rec.Transcript())
	tr := rec.Transcript()
	for _, want := range []string{`"UniqueID" "480"`, `"IsHidden" "1"`, `"UserShell" "/usr/bin/false"`, `"NFSHomeDirectory" "/var/empty"`, `"Password" "*"`} {
		if !strings.Contains(tr, want) {
			t.Errorf("provisioning lacks %s", want)
		}
	}
	ace := d.groupACE()
	if !strings.Contains(ace, "file_inherit,directory_inherit") || strings.Contains(ace, "writesecurity") || strings.Contains(ace, "chown") {
		t.Fatalf("ACE %q", ace)
	}
	// A read-back that does not match fails provisioning.
	d2, _ := newPlanner(t, true, func(c Cmd) (Output, error) {
		if c.Path == darwinDscl && c.Args[len(c.Args)-1] == "UniqueID" && c.Args[1] == "-read" {
			return Output{Stdout: []byte("UniqueID: 501\n")}, nil
		}
		return Output{}, nil
	})
	if err := d2.Provision(context.Background()); err == nil {
		t.Fatal("a wrong UniqueID read-back was accepted")
	}
}

func TestDarwinSampleRSS(t *testing.T) {
	d, _ := newPlanner(t, true, func(c Cmd) (Output, error) {
		if c.Path == darwinPs {
			return Output{Stdout: []byte("  1024\n 2048\n")}, nil
		}
		return Output{}, nil
	})
	rss, err := d.SampleRSS(context.Background())
	if err != nil || rss != 3072<<10 {
		t.Fatalf("rss %d err %v", rss, err)
	}
}
