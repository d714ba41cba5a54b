package scope

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/mod/modfile"
)

// Manifest kinds whose dependencies the scope check compares.
const (
	KindGoMod        = "go.mod"
	KindPackageJSON  = "package.json"
	KindRequirements = "requirements.txt"
	KindCargo        = "Cargo.toml"
)

// ManifestKind returns the manifest kind of a path, or "".
func ManifestKind(p string) string {
	switch b := path.Base(p); b {
	case KindGoMod, KindPackageJSON, KindRequirements, KindCargo:
		return b
	}
	return ""
}

// NewDependencies lists the dependencies declared in newData but not in
// oldData (nil for a new file). go.mod replace directives count too: they
// can point a dependency at other code.
func NewDependencies(kind string, oldData, newData []byte) ([]string, error) {
	parse := map[string]func([]byte) (map[string]bool, error){
		KindGoMod: goModDeps, KindPackageJSON: packageJSONDeps,
		KindRequirements: requirementsDeps, KindCargo: cargoDeps,
	}[kind]
	if parse == nil {
		return nil, fmt.Errorf("unknown manifest kind %q", kind)
	}
	before := map[string]bool{}
	if oldData != nil {
		var err error
		if before, err = parse(oldData); err != nil {
			// The base's manifest is trusted but may be unparseable; then
			// every dependency on head counts as new (fail closed).
			before = map[string]bool{}
		}
	}
	after, err := parse(newData)
	if err != nil {
		return nil, err
	}
	var added []string
	for d := range after {
		if !before[d] {
			added = append(added, d)
		}
	}
	sort.Strings(added)
	return added, nil
}

func goModDeps(data []byte) (map[string]bool, error) {
	f, err := modfile.Parse("go.mod", data, nil)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, r := range f.Require {
		out[r.Mod.Path] = true
	}
	for _, r := range f.Replace {
		out["replace "+r.Old.Path+" => "+r.New.Path] = true
	}
	return out, nil
}

func packageJSONDeps(data []byte) (map[string]bool, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, sec := range []string{"dependencies", "devDependencies", "peerDependencies", "optionalDependencies", "bundledDependencies", "bundleDependencies"} {
		raw, ok := doc[sec]
		if !ok {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err == nil {
			for k := range m {
				out[k] = true
			}
			continue
		}
		var list []string
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("%s is neither an object nor a list", sec)
		}
		for _, k := range list {
			out[k] = true
		}
	}
	return out, nil
}

var reqNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*`)

func requirementsDeps(data []byte) (map[string]bool, error) {
	out := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxManifest)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "-") || strings.Contains(line, "://") {
			out[line] = true // options, includes, URLs, editable installs
			continue
		}
		name := reqNameRE.FindString(line)
		if name == "" {
			out[line] = true
			continue
		}
		out[normalizePyName(name)] = true
	}
	return out, sc.Err()
}

func normalizePyName(n string) string {
	n = strings.ToLower(n)
	return strings.NewReplacer("_", "-", ".", "-").Replace(n)
}

var cargoSectionRE = regexp.MustCompile(`^\[\s*([^\]]+?)\s*\]$`)

func cargoDeps(data []byte) (map[string]bool, error) {
	out := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxManifest)
	inDeps := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if m := cargoSectionRE.FindStringSubmatch(line); m != nil {
			sec := strings.Trim(m[1], "[] ")
			parts := strings.Split(sec, ".")
			inDeps = false
			for i, p := range parts {
				if isDepTable(p) {
					if i == len(parts)-1 {
						inDeps = true
					} else { // [dependencies.foo]
						out[strings.Trim(parts[i+1], `"' `)] = true
					}
					break
				}
			}
			continue
		}
		if inDeps {
			k, _, ok := strings.Cut(line, "=")
			if !ok {
				return nil, fmt.Errorf("unexpected line in a dependency table: %q", line)
			}
			out[strings.Trim(strings.TrimSpace(k), `"'`)] = true
		}
	}
	return out, sc.Err()
}

func isDepTable(s string) bool {
	switch s {
	case "dependencies", "dev-dependencies", "build-dependencies", "workspace.dependencies":
		return true
	}
	return false
}
