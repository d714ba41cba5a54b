package gopkgs

import (
	"context"
	"errors"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/mod/modfile"

	"github.com/agentgate/agentgate/checks/basecache"
	"github.com/agentgate/agentgate/checks/isolate"
	"github.com/agentgate/agentgate/internal/gitcli"
)

// listCacheVersion changes whenever the cached listing's shape or the go
// list fields change.
const listCacheVersion = "golist-v1"

// Listing is `go list` of one module of one commit, with package
// directories relative to the exported tree so that any export of the
// same commit can use it.
type Listing struct {
	Pkgs      []Package `json:"pkgs"`
	Isolation string    `json:"isolation"`
}

type listCall struct {
	done chan struct{}
	l    *Listing
	err  error
}

var (
	listMu    sync.Mutex
	listCalls = map[string]*listCall{}
)

// ListCommit returns the packages of module mod (repo-relative, "." for the
// root) of commit sha, listed in tree, an export of sha (Export), with
// directories rebased onto tree. A commit's listing depends only on its
// content and the toolchain, so it is kept in cacheRoot/golist by commit:
// the checks of one evaluation share one `go list` (concurrent callers wait
// for the first), and a re-check of the same commit runs none. A failed
// listing is not cached.
func ListCommit(ctx context.Context, r isolate.Runner, cacheRoot, sha, tree, mod string) ([]Package, string, error) {
	modAbs := filepath.Join(tree, filepath.FromSlash(mod))
	if !gitcli.IsSHA(sha) || cacheRoot == "" {
		pkgs, res, err := List(ctx, r, tree, modAbs)
		return pkgs, res.Isolation, err
	}
	key := basecache.Key(listCacheVersion, sha, mod, GoVersion(), ModFlag(modAbs))
	store := basecache.Store{Dir: filepath.Join(cacheRoot, "golist")}
	for {
		listMu.Lock()
		call, running := listCalls[key]
		if !running {
			call = &listCall{done: make(chan struct{})}
			listCalls[key] = call
		}
		listMu.Unlock()
		if running {
			select {
			case <-call.done:
			case <-ctx.Done():
				return nil, "", ctx.Err()
			}
			if call.err != nil && isInterrupted(call.err) {
				continue // the first caller was cancelled; list again
			}
			if call.err != nil {
				return nil, "", call.err
			}
			return rebase(call.l.Pkgs, tree), call.l.Isolation, nil
		}
		var l Listing
		if store.Get(key, &l) && len(l.Pkgs) > 0 {
			call.l = &l
		} else {
			pkgs, res, err := List(ctx, r, tree, modAbs)
			if err == nil {
				call.l = &Listing{Pkgs: relativize(pkgs, tree), Isolation: res.Isolation}
				if !lookupErrors(pkgs) {
					_ = store.Put(key, call.l) // a failed cache write only costs time
				}
			} else {
				call.err = err
			}
		}
		listMu.Lock()
		delete(listCalls, key)
		listMu.Unlock()
		close(call.done)
		if call.err != nil {
			return nil, "", call.err
		}
		return rebase(call.l.Pkgs, tree), call.l.Isolation, nil
	}
}

// lookupErrors reports package errors that depend on the machine, not on
// the commit (a dependency missing from the module cache): such a listing
// is used once but not cached, or it would outlive the fix.
func lookupErrors(pkgs []Package) bool {
	for _, p := range pkgs {
		errs := p.DepsErrors
		if p.Error != nil {
			errs = append(errs, p.Error)
		}
		for _, e := range errs {
			if e == nil {
				continue
			}
			for _, s := range []string{"GOPROXY=off", "module lookup disabled", "missing go.sum entry", "cannot find module", "no required module provides", "is not in std", "updates to go.mod needed"} {
				if strings.Contains(e.Err, s) {
					return true
				}
			}
		}
	}
	return false
}

func isInterrupted(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, isolate.ErrTimeout) || errors.Is(err, isolate.ErrUnavailable)
}

// relativize makes the directories inside tree relative to it (slash
// separated, prefixed "./"); others (none for `go list ./...`) stay as
// they are.
func relativize(pkgs []Package, tree string) []Package {
	return mapDirs(pkgs, func(d string) string {
		if d == "" {
			return d
		}
		r, err := filepath.Rel(tree, d)
		if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) || filepath.IsAbs(r) {
			return d
		}
		return "./" + filepath.ToSlash(r)
	})
}

// rebase is the inverse of relativize onto tree.
func rebase(pkgs []Package, tree string) []Package {
	return mapDirs(pkgs, func(d string) string {
		if r, ok := strings.CutPrefix(d, "./"); ok {
			return filepath.Join(tree, filepath.FromSlash(r))
		}
		return d
	})
}

// mapDirs copies pkgs with f applied to every package and module directory.
func mapDirs(pkgs []Package, f func(string) string) []Package {
	out := make([]Package, len(pkgs))
	copy(out, pkgs)
	for i := range out {
		out[i].Dir = f(out[i].Dir)
		if m := out[i].Module; m != nil {
			mc := *m
			mc.Dir = f(mc.Dir)
			out[i].Module = &mc
		}
	}
	return out
}

// ChangedPackages maps changed repo-relative paths to the import paths of
// the packages of the module at mod (in the export tree) that own them.
// all is true whenever the change can alter packages the listing does not
// show as their owners, so that only "every package" is safe: the
// module's go.mod, go.sum or a go.work; anything under its vendor
// directory; a Go build input (.go, .s, .c, …, outside testdata) in a
// directory that is not a listed package (an ignored _dir or .dir, a
// nested module, a path a replace directive names); and any change under
// a directory a local replace directive of the module's go.mod points to,
// inside the module or not.
func ChangedPackages(g *Graph, paths []string, tree, mod string) (changed map[string]bool, all bool) {
	out := map[string]bool{}
	modAbs := filepath.Join(tree, filepath.FromSlash(mod))
	prefix := ""
	if mod != "." {
		prefix = mod + "/"
	}
	replaced := localReplaces(tree, mod)
	for _, p := range paths {
		if p == "" {
			continue
		}
		for _, r := range replaced {
			if p == r || strings.HasPrefix(p, r+"/") {
				return out, true
			}
		}
		if prefix != "" && !strings.HasPrefix(p, prefix) {
			continue
		}
		rel := strings.TrimPrefix(p, prefix)
		if rel == "go.mod" || rel == "go.sum" || rel == "go.work" || rel == "go.work.sum" || strings.HasPrefix(rel, "vendor/") {
			return out, true
		}
		abs := filepath.Join(tree, filepath.FromSlash(p))
		if isBuildInput(rel) {
			if _, listed := g.byDir[filepath.Dir(abs)]; !listed {
				return out, true
			}
		}
		if pk, ok := g.OwnerOf(abs, modAbs); ok {
			out[pk.ImportPath] = true
		}
	}
	return out, false
}

// buildExts are the file extensions the go command compiles or links.
var buildExts = map[string]bool{".go": true, ".s": true, ".S": true, ".sx": true, ".c": true, ".h": true,
	".cc": true, ".cpp": true, ".cxx": true, ".hh": true, ".hpp": true, ".hxx": true, ".m": true,
	".f": true, ".F": true, ".for": true, ".f90": true, ".syso": true, ".swig": true, ".swigcxx": true}

// isBuildInput reports whether the module-relative path p is a file the
// go command may build (testdata is never built).
func isBuildInput(p string) bool {
	if p == "testdata" || strings.HasPrefix(p, "testdata/") || strings.Contains(p, "/testdata/") {
		return false
	}
	return buildExts[path.Ext(p)]
}

// localReplaces returns the repo-relative directories that local replace
// directives (=> ./x, ../x) of the module's go.mod point to and that lie
// inside the tree.
func localReplaces(tree, mod string) []string {
	gomod := path.Join(mod, "go.mod")
	data, err := ReadFileBounded(filepath.Join(tree, filepath.FromSlash(gomod)), 16<<20)
	if err != nil {
		return nil
	}
	f, err := modfile.Parse(gomod, data, nil)
	if err != nil {
		return nil
	}
	var out []string
	for _, r := range f.Replace {
		if r.New.Version != "" || !modfile.IsDirectoryPath(r.New.Path) || filepath.IsAbs(r.New.Path) {
			continue
		}
		dir := path.Clean(path.Join(mod, filepath.ToSlash(r.New.Path)))
		if dir == ".." || strings.HasPrefix(dir, "../") {
			continue // outside the repository: not part of any change
		}
		out = append(out, dir)
	}
	return out
}
