package gopkgs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/agentgate/agentgate/checks/isolate"
)

// MaxModules bounds how many go.mod files a tree may hold before the
// checks refuse it (an agent could otherwise multiply the work).
const MaxModules = 64

// Modules returns the repo-relative directories ("." for the root) of the
// Go modules in the tree at root, skipping what the go command ignores
// (vendor, testdata, directories starting with "." or "_").
func Modules(root string) ([]string, error) {
	return ModulesFS(os.DirFS(root))
}

// ModulesFS is Modules over any file system, e.g. a commit's tree
// (gitcli.CommitFS), so that the modules of a commit are known before (or
// without) exporting it. Links are never followed: a go.mod that is a link
// does not make a module.
func ModulesFS(fsys fs.FS) ([]string, error) {
	var mods []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if p != "." && (name == "vendor" || name == "testdata" || name == "node_modules" ||
				strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return fs.SkipDir
			}
			return nil
		}
		if d.Name() == "go.mod" && d.Type().IsRegular() {
			mods = append(mods, path.Dir(p))
			if len(mods) > MaxModules {
				return fmt.Errorf("more than %d Go modules in the tree", MaxModules)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find Go modules: %w", err)
	}
	sort.Strings(mods)
	return mods, nil
}

// ModuleOf returns the module directory (from mods) that contains the
// repo-relative path p, the deepest one winning; ok is false when none does.
func ModuleOf(mods []string, p string) (string, bool) {
	best, bestLen, found := "", -1, false
	for _, m := range mods {
		n := len(m)
		if m == "." {
			n = 0
		} else if p != m && !strings.HasPrefix(p, m+"/") {
			continue
		}
		if n > bestLen {
			best, bestLen, found = m, n, true
		}
	}
	return best, found
}

// PackageError is an error go list reported for a package.
type PackageError struct {
	Err string `json:"Err"`
}

// Module is the module a package belongs to.
type Module struct {
	Path string `json:"Path"`
	Dir  string `json:"Dir"`
	Main bool   `json:"Main"`
}

// Package is the subset of `go list -json` the checks use.
type Package struct {
	ImportPath   string          `json:"ImportPath"`
	Dir          string          `json:"Dir"`
	Name         string          `json:"Name"`
	Standard     bool            `json:"Standard"`
	Module       *Module         `json:"Module"`
	GoFiles      []string        `json:"GoFiles"`
	CgoFiles     []string        `json:"CgoFiles"`
	TestGoFiles  []string        `json:"TestGoFiles"`
	XTestGoFiles []string        `json:"XTestGoFiles"`
	Imports      []string        `json:"Imports"`
	TestImports  []string        `json:"TestImports"`
	XTestImports []string        `json:"XTestImports"`
	Deps         []string        `json:"Deps"`
	Error        *PackageError   `json:"Error"`
	DepsErrors   []*PackageError `json:"DepsErrors"`
}

// HasTests reports whether the package has test files.
func (p *Package) HasTests() bool { return len(p.TestGoFiles)+len(p.XTestGoFiles) > 0 }

// listFields keeps go list's output small.
const listFields = "ImportPath,Dir,Name,Standard,Module,GoFiles,CgoFiles,TestGoFiles,XTestGoFiles,Imports,TestImports,XTestImports,Deps,Error,DepsErrors"

// List runs `go list -e -json ./...` in the module at dir under r and
// returns the module's packages. Packages that fail to load are returned
// with Error set; a go list that cannot run at all is an error. tree is
// the exported tree dir is in (readable by go list, for replacements by
// sibling modules); "" means dir alone.
func List(ctx context.Context, r isolate.Runner, tree, dir string) ([]Package, isolate.Result, error) {
	res, err := r.Run(ctx, isolate.Cmd{Path: "go", Args: []string{"list", "-e", "-json=" + listFields, "./..."}, Dir: dir,
		ReadOnly: nonEmpty(tree), Env: []string{"GOFLAGS=" + ModFlag(dir)}})
	if err != nil {
		return nil, res, fmt.Errorf("go list in %s: %w", dir, err)
	}
	if res.StdoutTruncated {
		return nil, res, errors.New("go list output exceeded the output limit")
	}
	if res.ExitCode != 0 {
		return nil, res, fmt.Errorf("go list failed (exit %d): %s%s", res.ExitCode, Tail(res.Stderr, 2000), Hint(res.Stderr))
	}
	pkgs, err := ParseList(bytes.NewReader(res.Stdout))
	return pkgs, res, err
}

// ParseList decodes a stream of `go list -json` objects.
func ParseList(r io.Reader) ([]Package, error) {
	dec := json.NewDecoder(r)
	var out []Package
	for {
		var p Package
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("parse go list output: %w", err)
		}
		if p.ImportPath == "" {
			return nil, errors.New("parse go list output: package without an import path")
		}
		out = append(out, p)
	}
}

// Hint explains go command errors caused by the isolated environment.
func Hint(stderr []byte) string {
	if bytes.Contains(stderr, []byte("GOPROXY=off")) || bytes.Contains(stderr, []byte("module lookup disabled")) {
		return " (isolated runs cannot download modules: enable module downloads for the checks or fill the module cache with `go mod download` first)"
	}
	return ""
}

// Tail returns at most n bytes of the end of b, as text.
func Tail(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// Graph is a module's package graph.
type Graph struct {
	Pkgs   []Package
	byPath map[string]*Package
	byDir  map[string]*Package
}

// NewGraph indexes pkgs.
func NewGraph(pkgs []Package) *Graph {
	g := &Graph{Pkgs: pkgs, byPath: map[string]*Package{}, byDir: map[string]*Package{}}
	for i := range pkgs {
		p := &g.Pkgs[i]
		g.byPath[p.ImportPath] = p
		if p.Dir != "" {
			g.byDir[filepath.Clean(p.Dir)] = p
		}
	}
	return g
}

// Package returns the package with import path ip.
func (g *Graph) Package(ip string) (*Package, bool) {
	p, ok := g.byPath[ip]
	return p, ok
}

// OwnerOf returns the package owning the file at absolute path f: the
// package in f's directory or, for non-Go files in subdirectories
// (testdata, embedded assets), the nearest ancestor package below stop.
func (g *Graph) OwnerOf(f, stop string) (*Package, bool) {
	stop = filepath.Clean(stop)
	for d := filepath.Dir(filepath.Clean(f)); ; d = filepath.Dir(d) {
		if p, ok := g.byDir[d]; ok {
			return p, true
		}
		if d == stop || d == filepath.Dir(d) || !strings.HasPrefix(d, stop) {
			return nil, false
		}
	}
}

// Affected returns the import paths (sorted) of the packages whose build
// or tests can change when the packages in changed change: the changed
// packages, every package that depends on one of them (transitively),
// every package whose tests import one of them or a dependent, and every
// package that failed to load (its errors must surface).
func (g *Graph) Affected(changed map[string]bool) []string {
	hit := func(ip string) bool {
		if changed[ip] {
			return true
		}
		p, ok := g.byPath[ip]
		if !ok {
			return false
		}
		for _, d := range p.Deps {
			if changed[d] {
				return true
			}
		}
		return false
	}
	var out []string
	for i := range g.Pkgs {
		p := &g.Pkgs[i]
		aff := p.Error != nil || len(p.DepsErrors) > 0 || hit(p.ImportPath)
		for _, lists := range [][]string{p.TestImports, p.XTestImports} {
			for _, ti := range lists {
				if aff {
					break
				}
				aff = hit(ti)
			}
		}
		if aff {
			out = append(out, p.ImportPath)
		}
	}
	sort.Strings(out)
	return out
}

// All returns every package's import path, sorted.
func (g *Graph) All() []string {
	out := make([]string, 0, len(g.Pkgs))
	for _, p := range g.Pkgs {
		out = append(out, p.ImportPath)
	}
	sort.Strings(out)
	return out
}

// ReadFileBounded reads a regular file of at most max bytes.
func ReadFileBounded(p string, max int64) ([]byte, error) {
	st, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s is %d bytes, over the %d limit", p, st.Size(), max)
	}
	return os.ReadFile(p)
}

// nonEmpty is the paths that are not "".
func nonEmpty(paths ...string) []string {
	var out []string
	for _, p := range paths {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}
