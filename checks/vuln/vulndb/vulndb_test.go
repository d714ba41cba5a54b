package vulndb

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeEntry(t *testing.T, dir, id, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, id+".json"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeModule lays out a minimal x/vulndb module with two advisories.
func fakeModule(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	osv := filepath.Join(src, "data", "osv")
	if err := os.MkdirAll(osv, 0o755); err != nil {
		t.Fatal(err)
	}
	writeEntry(t, osv, "GO-2099-0001", `{"id":"GO-2099-0001","modified":"0001-01-01T00:00:00Z","affected":[
	  {"package":{"name":"example.com/a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.2.0"},{"introduced":"1.3.0"},{"fixed":"1.4.1"}]}]},
	  {"package":{"name":"stdlib"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.26.10"}]}]}]}`)
	writeEntry(t, osv, "GO-2099-0002", `{"id":"GO-2099-0002","modified":"2099-01-02T03:04:05Z","affected":[
	  {"package":{"name":"example.com/a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.0"},{"introduced":"2.0.0"}]}]}]}`)
	return src
}

func TestBuildWritesClientLayout(t *testing.T) {
	src := fakeModule(t)
	out := filepath.Join(t.TempDir(), "db")
	info, err := Build(src, out, "v0.0.0-20261105234957-e22db6528018")
	if err != nil {
		t.Fatal(err)
	}
	if info.Entries != 2 {
		t.Fatalf("entries = %d", info.Entries)
	}
	var mods []moduleMeta
	b, _ := os.ReadFile(filepath.Join(out, "index", "modules.json"))
	if err := json.Unmarshal(b, &mods); err != nil {
		t.Fatal(err)
	}
	if len(mods) != 2 || mods[0].Path != "example.com/a" || mods[1].Path != "stdlib" {
		t.Fatalf("modules not sorted by path: %+v", mods)
	}
	a := mods[0].Vulns
	if len(a) != 2 || a[0].ID != "GO-2099-0001" || a[0].Fixed != "1.4.1" {
		t.Fatalf("want latest fix 1.4.1 for GO-2099-0001: %+v", a)
	}
	if a[1].Fixed != "" {
		t.Fatalf("a fix superseded by a later introduction must be empty, got %q", a[1].Fixed)
	}
	commit := time.Date(2026, 11, 5, 23, 49, 57, 0, time.UTC)
	if !a[0].Modified.Equal(commit) {
		t.Fatalf("zero modified time must become the vulndb commit time, got %s", a[0].Modified)
	}
	var db struct{ Modified time.Time }
	b, _ = os.ReadFile(filepath.Join(out, "index", "db.json"))
	if err := json.Unmarshal(b, &db); err != nil || !db.Modified.Equal(time.Date(2099, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("db.json modified = %v (%v)", db.Modified, err)
	}
	orig, _ := os.ReadFile(filepath.Join(src, "data", "osv", "GO-2099-0002.json"))
	copied, _ := os.ReadFile(filepath.Join(out, "ID", "GO-2099-0002.json"))
	if string(orig) != string(copied) {
		t.Fatal("entries must be copied byte for byte")
	}
	loaded, err := Load(out)
	if err != nil || loaded.Version != info.Version || loaded.Entries != 2 {
		t.Fatalf("Load = %+v, %v", loaded, err)
	}
	if !strings.HasPrefix(info.URL(), "file:///") {
		t.Fatalf("URL %q is not an absolute file URL", info.URL())
	}
}

func TestBuildRejectsBadInput(t *testing.T) {
	cases := map[string]func(osv string){
		"no data/osv":     func(osv string) { os.RemoveAll(osv) },
		"empty":           func(osv string) {},
		"malformed json":  func(osv string) { os.WriteFile(filepath.Join(osv, "GO-1.json"), []byte("{"), 0o644) },
		"id mismatch":     func(osv string) { os.WriteFile(filepath.Join(osv, "GO-1.json"), []byte(`{"id":"GO-2"}`), 0o644) },
		"path in id":      func(osv string) { os.WriteFile(filepath.Join(osv, "x.json"), []byte(`{"id":"../x"}`), 0o644) },
		"symlinked entry": func(osv string) { os.Symlink("/etc/passwd", filepath.Join(osv, "GO-3.json")) },
		"oversized entry": func(osv string) { os.WriteFile(filepath.Join(osv, "GO-4.json"), make([]byte, maxEntryBytes+1), 0o644) },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			src := t.TempDir()
			osv := filepath.Join(src, "data", "osv")
			os.MkdirAll(osv, 0o755)
			mutate(osv)
			if _, err := Build(src, filepath.Join(t.TempDir(), "db"), "v1.0.0"); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestLoadRejectsIncompleteDatabase(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); err == nil {
		t.Fatal("empty dir must not load")
	}
	os.WriteFile(filepath.Join(dir, MetaFile), []byte(`{"version":"v1"}`), 0o644)
	if _, err := Load(dir); err == nil {
		t.Fatal("a database without its index must not load")
	}
}

func TestNonSupersededFix(t *testing.T) {
	ev := func(pairs ...string) []osvRange {
		r := osvRange{Type: "SEMVER"}
		for i := 0; i < len(pairs); i += 2 {
			r.Events = append(r.Events, struct {
				Introduced string `json:"introduced,omitempty"`
				Fixed      string `json:"fixed,omitempty"`
			}{Introduced: pairs[i], Fixed: pairs[i+1]})
		}
		return []osvRange{r}
	}
	cases := []struct {
		name   string
		ranges []osvRange
		want   string
	}{
		{"single fix", ev("0", "", "", "1.2.3"), "1.2.3"},
		{"latest of two", ev("0", "", "", "1.2.3", "1.3.0", "", "", "1.3.4"), "1.3.4"},
		{"reintroduced", ev("0", "", "", "1.2.3", "2.0.0", ""), ""},
		{"no fix", ev("0", ""), ""},
		{"go prefix", ev("0", "", "", "go1.26.10"), "go1.26.10"},
		{"ecosystem range ignored", []osvRange{{Type: "ECOSYSTEM"}}, ""},
	}
	for _, c := range cases {
		if got := NonSupersededFix(c.ranges); got != c.want {
			t.Errorf("%s: got %q want %q", c.name, got, c.want)
		}
	}
}

// TestEnsureBuildsPinnedDatabase uses the real x/vulndb module (module
// cache or proxy) once and checks the advisory the vuln tests rely on.
func TestEnsureBuildsPinnedDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads golang.org/x/vulndb")
	}
	cache := t.TempDir()
	info, err := Ensure(context.Background(), cache, "")
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != PinnedVersion || info.Entries < 4000 {
		t.Fatalf("info = %+v", info)
	}
	if _, err := os.Stat(filepath.Join(info.Dir, "ID", "GO-2026-6860.json")); err != nil {
		t.Fatal(err)
	}
	again, err := Ensure(context.Background(), cache, "")
	if err != nil || again.Dir != info.Dir || !again.Built.Equal(info.Built) {
		t.Fatalf("second Ensure must reuse the cache: %+v %v", again, err)
	}
}

func TestDownloadRejectsHostileVersion(t *testing.T) {
	for _, v := range []string{"", "latest extra", "v1@v2", "../x"} {
		if _, err := Download(context.Background(), v); err == nil {
			t.Errorf("version %q accepted", v)
		}
	}
}

func FuzzBuildEntry(f *testing.F) {
	f.Add([]byte(`{"id":"GO-1","affected":[{"package":{"name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.0"}]}]}]}`))
	f.Add([]byte(`{"id":"GO-1","modified":"bad"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		src := t.TempDir()
		osv := filepath.Join(src, "data", "osv")
		os.MkdirAll(osv, 0o755)
		os.WriteFile(filepath.Join(osv, "GO-1.json"), body, 0o644)
		info, err := Build(src, filepath.Join(t.TempDir(), "db"), "v1.0.0")
		if err == nil && info.Entries != 1 {
			t.Fatalf("built %d entries from one file", info.Entries)
		}
	})
}

func TestLoadRejectsDamagedIndex(t *testing.T) {
	good := filepath.Join(t.TempDir(), "db")
	if _, err := Build(fakeModule(t), good, "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(good); err != nil {
		t.Fatalf("good database rejected: %v", err)
	}
	cases := map[string]func(dir string){
		"db.json not json":      func(d string) { os.WriteFile(filepath.Join(d, "index", "db.json"), []byte("{"), 0o644) },
		"db.json zero time":     func(d string) { os.WriteFile(filepath.Join(d, "index", "db.json"), []byte(`{}`), 0o644) },
		"modules.json not json": func(d string) { os.WriteFile(filepath.Join(d, "index", "modules.json"), []byte("["), 0o644) },
		"modules.json empty":    func(d string) { os.WriteFile(filepath.Join(d, "index", "modules.json"), []byte("[]"), 0o644) },
		"entry missing":         func(d string) { os.Remove(filepath.Join(d, "ID", "GO-2099-0001.json")) },
		"hostile id in index": func(d string) {
			os.WriteFile(filepath.Join(d, "index", "modules.json"), []byte(`[{"path":"m","vulns":[{"id":"../x"}]}]`), 0o644)
		},
		"modules.json missing": func(d string) { os.Remove(filepath.Join(d, "index", "modules.json")) },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "db")
			if _, err := Build(fakeModule(t), dir, "v1.0.0"); err != nil {
				t.Fatal(err)
			}
			mutate(dir)
			if _, err := Load(dir); err == nil {
				t.Fatal("damaged database loaded")
			}
		})
	}
}

// BenchmarkBuildPinned builds the real pinned database from the module
// cache (downloaded once).
func BenchmarkBuildPinned(b *testing.B) {
	src, err := Download(context.Background(), PinnedVersion)
	if err != nil {
		b.Skipf("x/vulndb not downloadable: %v", err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Build(src, filepath.Join(b.TempDir(), "db"), PinnedVersion); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadValidates is the per-check cost of opening a built database
// (metadata plus index validation).
func BenchmarkLoadValidates(b *testing.B) {
	src, err := Download(context.Background(), PinnedVersion)
	if err != nil {
		b.Skipf("x/vulndb not downloadable: %v", err)
	}
	dir := filepath.Join(b.TempDir(), "db")
	if _, err := Build(src, dir, PinnedVersion); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Load(dir); err != nil {
			b.Fatal(err)
		}
	}
}
