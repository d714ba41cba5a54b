package vuln

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestParseStreamKeepsHighestLevelPerAdvisory(t *testing.T) {
	f, err := os.Open("testdata/govulncheck.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc, err := ParseStream(f, "")
	if err != nil {
		t.Fatal(err)
	}
	if sc.GoVersion != "go1.26.8" || sc.ScanLevel != "symbol" {
		t.Fatalf("config not read: %+v", sc)
	}
	got := map[string]Vuln{}
	for _, v := range sc.Vulns {
		got[v.ID+"|"+v.Module] = v
	}
	net := got["GO-2026-6860|golang.org/x/net"]
	if net.Level != LevelCalled || net.Symbol != "Parse" || net.Package != "golang.org/x/net/html" ||
		net.Path != "main.go" || net.Line != 11 || net.FixedVersion != "v0.62.0" || net.Version != "v0.57.0" {
		t.Fatalf("GO-2026-6860 = %+v", net)
	}
	if !strings.Contains(net.Summary, "quadratic") {
		t.Errorf("summary from the osv message missing: %q", net.Summary)
	}
	if v := got["GO-2026-6604|stdlib"]; v.Level != LevelImported || !v.Stdlib() {
		t.Errorf("GO-2026-6604 = %+v", v)
	}
	// The same advisory in two modules stays two findings.
	if _, ok := got["GO-2026-6603|stdlib"]; !ok {
		t.Error("stdlib half of GO-2026-6603 lost")
	}
	if _, ok := got["GO-2026-6603|golang.org/x/net"]; !ok {
		t.Error("x/net half of GO-2026-6603 lost")
	}
}

func TestParseStreamRejectsBrokenOutput(t *testing.T) {
	cases := map[string]string{
		"empty":               "",
		"no config":           `{"progress":{"message":"x"}}`,
		"truncated":           `{"config":{"go_version":"go1.26.8"}} {"finding":{"osv":"GO-1","trace":[{"module":"m"`,
		"finding without id":  `{"config":{}} {"finding":{"trace":[{"module":"m"}]}}`,
		"finding no trace":    `{"config":{}} {"finding":{"osv":"GO-1"}}`,
		"not json":            `govulncheck: loading packages: err`,
		"wrong type of trace": `{"config":{}} {"finding":{"osv":"GO-1","trace":"x"}}`,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseStream(strings.NewReader(in), ""); err == nil {
				t.Fatal("want an error, a broken stream must never read as 'no vulnerabilities'")
			}
		})
	}
}

func TestParseStreamCleanScanHasNoVulns(t *testing.T) {
	sc, err := ParseStream(strings.NewReader(`{"config":{"go_version":"go1.26.8"}}{"progress":{"message":"No vulnerabilities found."}}`), "")
	if err != nil || len(sc.Vulns) != 0 {
		t.Fatalf("%+v %v", sc, err)
	}
}

func TestParseStreamRejectsHugeTrace(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(`{"config":{}}{"finding":{"osv":"GO-1","trace":[`)
	for i := 0; i <= maxTrace; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"module":"m"}`)
	}
	b.WriteString(`]}}`)
	if _, err := ParseStream(&b, ""); err == nil {
		t.Fatal("oversized trace accepted")
	}
}

func TestParseStreamTrimsRootFromPositions(t *testing.T) {
	in := `{"config":{}}{"finding":{"osv":"GO-1","trace":[{"module":"x","package":"x/p","function":"F"},{"module":"m","function":"main","position":{"filename":"/tmp/w/head/cmd/main.go","line":3}}]}}`
	sc, err := ParseStream(strings.NewReader(in), "/tmp/w/head")
	if err != nil {
		t.Fatal(err)
	}
	if v := sc.Vulns[0]; v.Path != "cmd/main.go" || v.Line != 3 {
		t.Fatalf("got %s:%d", v.Path, v.Line)
	}
}

func FuzzParseStream(f *testing.F) {
	seed, _ := os.ReadFile("testdata/govulncheck.json")
	f.Add(seed)
	f.Add([]byte(`{"config":{}}{"finding":{"osv":"GO-1","trace":[{"module":"m","receiver":"*T","function":"F"}]}}`))
	f.Add([]byte(`{"config":{}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		sc, err := ParseStream(bytes.NewReader(in), "/root")
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, v := range sc.Vulns {
			k := v.ID + "|" + v.Module
			if seen[k] {
				t.Fatalf("duplicate advisory %s", k)
			}
			seen[k] = true
			if v.Level < LevelRequired || v.Level > LevelCalled {
				t.Fatalf("bad level %d", v.Level)
			}
		}
	})
}
