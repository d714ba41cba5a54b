package sandbox

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentgate/agentgate/policies"
)

func testHost() Host {
	return Host{
		StateDir: "/var/lib/agentgate/sandbox",
		Wrappers: map[string]Wrapper{
			"go":           {Path: "/usr/local/libexec/agentgate/go", SHA256: strings.Repeat("a", 64)},
			"run_tests.sh": {Path: "/usr/local/libexec/agentgate/run_tests.sh", SHA256: strings.Repeat("b", 64)},
		},
	}
}

func TestPolicyFromThreadAndPlan(t *testing.T) {
	th := policies.Thread{Name: "payments", Tools: []string{"go", "run_tests.sh"},
		Runtime: policies.ThreadRuntime{MaxRuntime: "45m", CPU: 1.5, Memory: "1Gi"}, Network: policies.ThreadNetwork{Allow: []string{"api.openai.com"}}}
	cases := []struct {
		name     string
		plan     *policies.WorkPlan
		wantWall time.Duration
	}{
		{"thread only", nil, 45 * time.Minute},
		{"plan tightens", &policies.WorkPlan{Limits: policies.PlanLimits{MaxRuntime: "10m"}}, 10 * time.Minute},
		{"plan cannot loosen", &policies.WorkPlan{Limits: policies.PlanLimits{MaxRuntime: "3h"}}, 45 * time.Minute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := FromThread("payments", th, c.plan, testHost())
			if err != nil {
				t.Fatal(err)
			}
			if p.Limits.Wall != c.wantWall {
				t.Fatalf("wall %v, want %v", p.Limits.Wall, c.wantWall)
			}
			if p.Limits.MemoryBytes != 1<<30 || p.Limits.CPUs != 1.5 || p.Limits.CPUTime != 2*c.wantWall {
				t.Fatalf("limits %+v", p.Limits)
			}
			if p.Network.Mode != NetworkDeny || p.Network.Requested[0] != "api.openai.com" {
				t.Fatalf("network %+v: requested hosts are recorded, never granted", p.Network)
			}
			if len(p.Wrappers) != 2 || p.Volume.MountPoint != "/var/lib/agentgate/sandbox/payments/mnt" {
				t.Fatalf("policy %+v", p)
			}
		})
	}
}

func TestPolicyRefusals(t *testing.T) {
	good, err := FromThread("payments", policies.Thread{Name: "p", Tools: []string{"go"}}, nil, testHost())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mutate func(*Policy)
		want   string
	}{
		{"root identity", func(p *Policy) { p.Identity.User = "root" }, "never runs as root"},
		{"mount under /tmp", func(p *Policy) { p.Volume.MountPoint = "/tmp/x" }, "/tmp"},
		{"relative image", func(p *Policy) { p.Volume.Image = "img" }, "not absolute"},
		{"unclean path", func(p *Policy) { p.Volume.Image = "/a/../b" }, "not clean"},
		{"wrapper inside the volume", func(p *Policy) {
			p.Wrappers["go"] = Wrapper{Path: p.Volume.MountPoint + "/go", SHA256: strings.Repeat("a", 64)}
		}, "inside the volume"},
		{"bad hash", func(p *Policy) { p.Wrappers["go"] = Wrapper{Path: "/usr/bin/go", SHA256: "abc"} }, "sha256"},
		{"LD_PRELOAD", func(p *Policy) { p.Env = map[string]string{"LD_PRELOAD": "x"} }, "refused"},
		{"GIT_DIR", func(p *Policy) { p.Env = map[string]string{"GIT_DIR": "x"} }, "refused"},
		{"read root", func(p *Policy) { p.ReadPaths = []string{"/"} }, "read-only root"},
		{"network allow", func(p *Policy) { p.Network.Mode = "allow" }, "only"},
		{"no wall", func(p *Policy) { p.Limits.Wall = 0 }, "wall"},
		{"tiny memory", func(p *Policy) { p.Limits.MemoryBytes = 1 }, "8 MiB"},
		{"no wrappers", func(p *Policy) { p.Wrappers = nil }, "no wrappers"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := good
			p.Wrappers = map[string]Wrapper{}
			for k, v := range good.Wrappers {
				p.Wrappers[k] = v
			}
			c.mutate(&p)
			err := p.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want it to mention %q", err, c.want)
			}
		})
	}
	if _, err := FromThread("payments", policies.Thread{Name: "p", Tools: []string{"go", "curl"}}, nil, testHost()); err == nil || !strings.Contains(err.Error(), "curl") {
		t.Fatalf("a tool without a pinned wrapper: %v", err)
	}
	if _, err := FromThread("payments", policies.Thread{Name: "p", Tools: []string{"go"}, Runtime: policies.ThreadRuntime{Memory: "lots"}}, nil, testHost()); err == nil {
		t.Fatal("memory \"lots\" was accepted")
	}
}

func TestParseMemory(t *testing.T) {
	for in, want := range map[string]int64{"2Gi": 2 << 30, "512Mi": 512 << 20, "1G": 1e9, "1048576": 1 << 20, "1.5Gi": 3 << 29, "64MiB": 64 << 20} {
		if got, err := ParseMemory(in); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1Gi", "1Xi", "Gi", "0", "1e400Gi", "99999999999Ti"} {
		if _, err := ParseMemory(in); err == nil {
			t.Errorf("%q was accepted", in)
		}
	}
}

func TestCapabilitiesRefuseNamesEveryMissingLayer(t *testing.T) {
	c := Capabilities{Layers: []Layer{
		{Name: "landlock", Available: false, Required: true, Detail: "ABI 3"},
		{Name: "seccomp", Available: true, Required: true},
		{Name: "cgroups", Available: false, Required: true},
		{Name: "bwrap", Available: false, Required: false},
	}}
	err := c.Refuse()
	if !errors.Is(err, ErrLayerMissing) || !strings.Contains(err.Error(), "landlock (ABI 3)") || !strings.Contains(err.Error(), "cgroups") || strings.Contains(err.Error(), "bwrap") {
		t.Fatalf("refusal %v", err)
	}
	c.Layers[0].Available, c.Layers[2].Available = true, true
	if err := c.Refuse(); err != nil {
		t.Fatalf("all layers present: %v", err)
	}
}

func TestParsePins(t *testing.T) {
	sum := strings.Repeat("c", 64)
	got, err := ParsePins("# wrappers\n"+sum+"  /usr/local/libexec/agentgate/go\n"+sum+" *run_tests.sh\n", "/etc/agentgate")
	if err != nil {
		t.Fatal(err)
	}
	if got["go"].Path != "/usr/local/libexec/agentgate/go" || got["run_tests.sh"].Path != "/etc/agentgate/run_tests.sh" {
		t.Fatalf("pins %+v", got)
	}
	for _, bad := range []string{"zz  /x", sum + "  /a/go\n" + sum + "  /b/go", sum, sum + "  /x/..", sum + "  /x/a b"} {
		if _, err := ParsePins(bad, "/etc"); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}

func FuzzParsePins(f *testing.F) {
	f.Add(strings.Repeat("a", 64) + "  /usr/bin/go\n")
	f.Add("#\n\n")
	f.Add(strings.Repeat("a", 64) + " *../../etc/passwd")
	f.Fuzz(func(t *testing.T, data string) {
		pins, err := ParsePins(data, "/etc/agentgate")
		if err != nil {
			return
		}
		for name, w := range pins {
			if !wrapperNameRE.MatchString(name) || !hexSHA256RE.MatchString(w.SHA256) || cleanAbs(w.Path) != nil {
				t.Fatalf("accepted a bad pin %q -> %+v", name, w)
			}
		}
	})
}

func FuzzParseMemory(f *testing.F) {
	for _, s := range []string{"2Gi", "1", "1.5Mi", "9e9", "  3K  "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := ParseMemory(s); err == nil && v < 1 {
			t.Fatalf("%q parsed to %d", s, v)
		}
	})
}

func FuzzSBPLPaths(f *testing.F) {
	for _, s := range []string{"/opt/go", "/tmp/x", `/a"b`, "/a)(allow default)(", "/a/../b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		pol := darwinPolicy()
		pol.ReadPaths = []string{p}
		d := &Darwin{pol: pol}
		prof, params, err := d.RenderSBPL()
		if err != nil {
			return
		}
		// Whatever the path, the profile text never contains it and never
		// allows more than the fixed rules: paths travel only as params.
		if strings.Contains(prof, "(allow default)") || strings.Count(prof, "(param \"READ_") > 1 {
			t.Fatalf("path %q changed the profile", p)
		}
		for _, kv := range params {
			if strings.ContainsAny(kv, "\"\n()\\") {
				t.Fatalf("param %q carries a hostile character", kv)
			}
		}
	})
}

func FuzzParseAttachPlist(f *testing.F) {
	f.Add([]byte(attachPlist))
	f.Add([]byte("<plist><dict><key>mount-point</key><string>/x</string></dict></plist>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, mp, err := parseAttachPlist(data)
		if err == nil && mp == "" {
			t.Fatal("no error and no mount point")
		}
	})
}
