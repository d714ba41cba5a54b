package policies

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path"
	"strings"

	"golang.org/x/mod/modfile"
)

// CheckAcceptanceTests reports every acceptance test named in the tree's
// requirements.yaml files that does not exist as a top-level function in a
// _test.go file of its package. Packages are "./dir" (repository-relative)
// or import paths inside the module declared by the root go.mod; tests in
// other modules are not checked. It reads source only; nothing is run.
//
// This is separate from LoadTree because a plan's acceptance tests may be
// written during the run: the tests gate checks them on the head commit.
func CheckAcceptanceTests(fsys fs.FS, t *Tree) Problems {
	var probs Problems
	module := ""
	if data, p := readContract(fsys, "go.mod"); p == nil {
		module = modfile.ModulePath(data)
	}
	cache := map[string]map[string]bool{} // dir -> test funcs; nil when unreadable
	for _, td := range t.Threads {
		if td.Requirements == nil {
			continue
		}
		l := locator{td.reqPath, td.reqRoot}
		for i, fr := range td.Requirements.Requirements {
			for j, ac := range fr.Acceptance {
				field := fmt.Sprintf("requirements[%d].acceptance[%d].test", i, j)
				loc := []any{"requirements", i, "acceptance", j, "test"}
				dir, ok := packageDir(ac.Test.Package, module)
				if !ok || ac.Test.Name == "" {
					continue
				}
				funcs, seen := cache[dir]
				if !seen {
					funcs = testFuncs(fsys, dir)
					cache[dir] = funcs
				}
				name, _, _ := strings.Cut(ac.Test.Name, "/")
				switch {
				case funcs == nil:
					l.add(&probs, field+".package", append(loc, "package"), "package %s: no directory %s with _test.go files in the repository", ac.Test.Package, dir)
				case !funcs[name]:
					l.add(&probs, field+".name", append(loc, "name"), "%s (%s %s) does not exist: no func %s in %s/*_test.go", ac.ID, fr.ID, ac.Test.Name, name, dir)
				}
			}
		}
	}
	return probs.Sort()
}

// packageDir maps an acceptance test package to a repository directory.
func packageDir(pkg, module string) (string, bool) {
	if pkg == "." {
		return ".", true
	}
	if rel, ok := strings.CutPrefix(pkg, "./"); ok {
		return rel, checkRepoPath(rel, false) == ""
	}
	if module == "" {
		return "", false
	}
	if pkg == module {
		return ".", true
	}
	if rel, ok := strings.CutPrefix(pkg, module+"/"); ok && checkRepoPath(rel, false) == "" {
		return rel, true
	}
	return "", false
}

// testFuncs returns the names of the top-level functions in dir's
// _test.go files, or nil when dir has none.
func testFuncs(fsys fs.FS, dir string) map[string]bool {
	if _, err := resolve(fsys, dir); err != nil {
		return nil
	}
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil
	}
	var funcs map[string]bool
	fset := token.NewFileSet()
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		name := path.Join(dir, e.Name())
		src, p := readContract(fsys, name)
		if p != nil {
			continue
		}
		if funcs == nil {
			funcs = map[string]bool{}
		}
		f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
		if err != nil && f == nil {
			continue
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil {
				funcs[fd.Name.Name] = true
			}
		}
	}
	return funcs
}
