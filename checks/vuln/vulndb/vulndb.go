package vulndb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// ModulePath is the module the database is built from.
const ModulePath = "golang.org/x/vulndb"

// PinnedVersion is the x/vulndb pseudo-version agentgate builds by default.
// Refresh: `go list -m -json golang.org/x/vulndb@latest`, then update this
// constant (and the notes) and rebuild.
const PinnedVersion = "v0.0.0-20261105234957-e22db6528018"

// MetaFile is written into every built database; x/vuln ignores it.
const MetaFile = "agentgate-vulndb.json"

// maxEntryBytes bounds one OSV entry; the largest real ones are ~200 KB.
const maxEntryBytes = 8 << 20

// Info describes a built database.
type Info struct {
	Version  string    `json:"version"`  // x/vulndb module version
	Dir      string    `json:"dir"`      // absolute database directory
	Entries  int       `json:"entries"`  // OSV entries
	Modified time.Time `json:"modified"` // newest entry modification
	Built    time.Time `json:"built"`
}

// URL is the govulncheck -db value for the database.
func (i Info) URL() string { return URL(i.Dir) }

// URL turns an absolute directory into a file:// URL govulncheck accepts.
func URL(dir string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir)}).String()
}

// osvEntry mirrors the fields of an OSV entry the index needs.
type osvEntry struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Affected []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
		Ranges []osvRange `json:"ranges"`
	} `json:"affected"`
}

type osvRange struct {
	Type   string `json:"type"`
	Events []struct {
		Introduced string `json:"introduced,omitempty"`
		Fixed      string `json:"fixed,omitempty"`
	} `json:"events"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Fixed    string    `json:"fixed,omitempty"`
}

type moduleMeta struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

// Build writes a database built from the x/vulndb module extracted at src
// (the directory holding data/osv) into out, which must not exist yet or be
// empty. version is the module version; a pseudo-version also supplies the
// modification time of entries that have none.
func Build(src, out, version string) (Info, error) {
	osvDir := filepath.Join(src, "data", "osv")
	names, err := os.ReadDir(osvDir)
	if err != nil {
		return Info{}, fmt.Errorf("read OSV entries: %w (pass the directory of the golang.org/x/vulndb module, the one holding data/osv)", err)
	}
	var fallback time.Time
	if module.IsPseudoVersion(version) {
		if t, err := module.PseudoVersionTime(version); err == nil {
			fallback = t.UTC()
		}
	}
	idDir := filepath.Join(out, "ID")
	indexDir := filepath.Join(out, "index")
	for _, d := range []string{idDir, indexDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return Info{}, fmt.Errorf("create database directory: %w", err)
		}
	}
	modules := map[string]*moduleMeta{}
	var newest time.Time
	count := 0
	for _, de := range names {
		name := de.Name()
		if de.IsDir() || !strings.HasSuffix(name, ".json") {
			continue
		}
		b, err := readBounded(filepath.Join(osvDir, name))
		if err != nil {
			return Info{}, err
		}
		var e osvEntry
		if err := json.Unmarshal(b, &e); err != nil {
			return Info{}, fmt.Errorf("parse OSV entry %s: %w", name, err)
		}
		if e.ID == "" || name != e.ID+".json" || strings.ContainsAny(e.ID, `/\`) {
			return Info{}, fmt.Errorf("OSV entry %s: id %q does not match its file name", name, e.ID)
		}
		mod := e.Modified.UTC()
		if mod.IsZero() || mod.Year() <= 1 {
			mod = fallback
		}
		if mod.After(newest) {
			newest = mod
		}
		for _, a := range e.Affected {
			p := a.Package.Name
			m := modules[p]
			if m == nil {
				m = &moduleMeta{Path: p, Vulns: []moduleVuln{}}
				modules[p] = m
			}
			m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: mod, Fixed: NonSupersededFix(a.Ranges)})
		}
		if err := os.WriteFile(filepath.Join(idDir, name), b, 0o644); err != nil {
			return Info{}, fmt.Errorf("write database entry: %w", err)
		}
		count++
	}
	if count == 0 {
		return Info{}, fmt.Errorf("no OSV entries in %s: not a golang.org/x/vulndb module", osvDir)
	}
	list := make([]*moduleMeta, 0, len(modules))
	for _, m := range modules {
		sort.SliceStable(m.Vulns, func(i, j int) bool { return m.Vulns[i].ID < m.Vulns[j].ID })
		list = append(list, m)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	if err := writeJSON(filepath.Join(indexDir, "modules.json"), list); err != nil {
		return Info{}, err
	}
	if err := writeJSON(filepath.Join(indexDir, "db.json"), map[string]time.Time{"modified": newest}); err != nil {
		return Info{}, err
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return Info{}, err
	}
	info := Info{Version: version, Dir: abs, Entries: count, Modified: newest, Built: time.Now().UTC()}
	if err := writeJSON(filepath.Join(out, MetaFile), info); err != nil {
		return Info{}, err
	}
	return info, nil
}

// NonSupersededFix is the latest fixed version over the SEMVER ranges,
// or "" when a later introduction re-opens the vulnerability (the rule of
// x/vuln's client, which skips a module version >= this fix: an earlier
// fix here would hide vulnerabilities).
func NonSupersededFix(ranges []osvRange) string {
	var latest string
	for _, r := range ranges {
		if r.Type != "SEMVER" {
			continue
		}
		for _, e := range r.Events {
			if e.Fixed != "" && less(latest, e.Fixed) {
				latest = e.Fixed
			}
		}
		for _, e := range r.Events {
			if e.Introduced != "" && e.Introduced != "0" && less(latest, e.Introduced) {
				latest = ""
				break
			}
		}
	}
	return latest
}

func canon(v string) string {
	switch {
	case strings.HasPrefix(v, "go"):
		return "v" + v[2:]
	case strings.HasPrefix(v, "v"):
		return v
	}
	return "v" + v
}

func less(a, b string) bool { return semver.Compare(canon(a), canon(b)) < 0 }

func readBounded(path string) ([]byte, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("read OSV entry: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("OSV entry %s is not a regular file", path)
	}
	if st.Size() > maxEntryBytes {
		return nil, fmt.Errorf("OSV entry %s is %d bytes, over the %d limit", path, st.Size(), maxEntryBytes)
	}
	return os.ReadFile(path)
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// Load reads the metadata of a database built by Build and checks that the
// files govulncheck needs are there.
func Load(dir string) (Info, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Info{}, err
	}
	b, err := os.ReadFile(filepath.Join(abs, MetaFile))
	if err != nil {
		return Info{}, fmt.Errorf("vulnerability database %s: %w (build one with `agentgate vulndb build --out DIR`)", abs, err)
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil {
		return Info{}, fmt.Errorf("vulnerability database %s: bad %s: %w (rebuild it)", abs, MetaFile, err)
	}
	// govulncheck reads a damaged index as "no vulnerabilities" and exits
	// 0, so the database is validated here before any scan uses it.
	if err := validate(abs); err != nil {
		return Info{}, fmt.Errorf("vulnerability database %s is damaged: %w (rebuild it with `agentgate vulndb build`)", abs, err)
	}
	info.Dir = abs
	return info, nil
}

// validate checks index/db.json and index/modules.json parse, are not
// empty, and that every advisory the index names has its entry file.
func validate(dir string) error {
	b, err := readBounded(filepath.Join(dir, "index", "db.json"))
	if err != nil {
		return err
	}
	var db struct {
		Modified time.Time `json:"modified"`
	}
	if err := json.Unmarshal(b, &db); err != nil {
		return fmt.Errorf("index/db.json: %w", err)
	}
	if db.Modified.IsZero() {
		return errors.New("index/db.json has no modification time")
	}
	b, err = os.ReadFile(filepath.Join(dir, "index", "modules.json"))
	if err != nil {
		return err
	}
	var mods []moduleMeta
	if err := json.Unmarshal(b, &mods); err != nil {
		return fmt.Errorf("index/modules.json: %w", err)
	}
	if len(mods) == 0 {
		return errors.New("index/modules.json lists no modules")
	}
	seen := map[string]bool{}
	for _, m := range mods {
		for _, v := range m.Vulns {
			if seen[v.ID] {
				continue
			}
			seen[v.ID] = true
			if v.ID == "" || strings.ContainsAny(v.ID, `/\`) {
				return fmt.Errorf("index/modules.json: bad id %q", v.ID)
			}
			if st, err := os.Stat(filepath.Join(dir, "ID", v.ID+".json")); err != nil || !st.Mode().IsRegular() {
				return fmt.Errorf("entry %s named by the index is missing", v.ID)
			}
		}
	}
	return nil
}

// DefaultCacheDir is $XDG_CACHE_HOME/agentgate/vulndb (or the platform's
// user cache directory).
func DefaultCacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find a cache directory: %w (set XDG_CACHE_HOME or pass a directory)", err)
	}
	return filepath.Join(base, "agentgate", "vulndb"), nil
}

// Download fetches golang.org/x/vulndb@version into the module cache with
// `go mod download` and returns the extracted module directory.
func Download(ctx context.Context, version string) (string, error) {
	if version == "" || strings.ContainsAny(version, " \t\n/@") {
		return "", fmt.Errorf("bad x/vulndb version %q", version)
	}
	tmp, err := os.MkdirTemp("", "agentgate-vulndb-dl-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", ModulePath+"@"+version)
	cmd.Dir = tmp // outside any module, so no go.mod is consulted or changed
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var res struct {
		Dir   string
		Error string
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || res.Error != "" || runErr != nil {
		msg := strings.TrimSpace(res.Error)
		if msg == "" {
			msg = strings.TrimSpace(stderr.String())
		}
		return "", fmt.Errorf("go mod download %s@%s: %s (needs the Go module proxy or a module cache that has it; or build from a directory with --from)", ModulePath, version, firstNonEmpty(msg, fmt.Sprint(runErr)))
	}
	if res.Dir == "" {
		return "", errors.New("go mod download printed no module directory")
	}
	return res.Dir, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Ensure returns the database for version under cacheDir/<version>,
// downloading and building it first when it is not there. Concurrent
// callers may both build; the rename makes the result whole either way.
func Ensure(ctx context.Context, cacheDir, version string) (Info, error) {
	if version == "" {
		version = PinnedVersion
	}
	if cacheDir == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return Info{}, err
		}
		cacheDir = d
	}
	final := filepath.Join(cacheDir, version)
	if info, err := Load(final); err == nil && info.Version == version {
		return info, nil
	}
	src, err := Download(ctx, version)
	if err != nil {
		return Info{}, err
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return Info{}, fmt.Errorf("create vulndb cache: %w", err)
	}
	tmp, err := os.MkdirTemp(cacheDir, ".build-")
	if err != nil {
		return Info{}, fmt.Errorf("create vulndb cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := Build(src, tmp, version); err != nil {
		return Info{}, err
	}
	if err := os.Rename(tmp, final); err != nil {
		// Another builder won the race; use its result.
		if info, lerr := Load(final); lerr == nil && info.Version == version {
			return info, nil
		}
		if errors.Is(err, fs.ErrExist) || isNotEmpty(err) {
			_ = os.RemoveAll(final)
			if err2 := os.Rename(tmp, final); err2 != nil {
				return Info{}, fmt.Errorf("install vulndb into cache: %w", err2)
			}
		} else {
			return Info{}, fmt.Errorf("install vulndb into cache: %w", err)
		}
	}
	// The meta file recorded the temp dir; rewrite it for the final place.
	info, err := Load(final)
	if err != nil {
		return Info{}, err
	}
	if err := writeJSON(filepath.Join(final, MetaFile), info); err != nil {
		return Info{}, err
	}
	return info, nil
}

func isNotEmpty(err error) bool {
	return err != nil && strings.Contains(err.Error(), "not empty")
}
