package gopkgs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAffectedFollowsReverseAndTestDependencies(t *testing.T) {
	g := NewGraph([]Package{
		{ImportPath: "m/money", Dir: "/r/money"},
		{ImportPath: "m/cart", Dir: "/r/cart", Imports: []string{"m/money"}, Deps: []string{"m/money"}},
		{ImportPath: "m/shop", Dir: "/r/shop", Imports: []string{"m/cart"}, Deps: []string{"m/cart", "m/money"}},
		{ImportPath: "m/report", Dir: "/r/report", XTestImports: []string{"m/cart"}},
		{ImportPath: "m/util", Dir: "/r/util"},
		{ImportPath: "m/broken", Dir: "/r/broken", Error: &PackageError{Err: "no Go files"}},
	})
	got := strings.Join(g.Affected(map[string]bool{"m/money": true}), " ")
	want := "m/broken m/cart m/money m/report m/shop"
	if got != want {
		t.Fatalf("Affected = %q want %q", got, want)
	}
	if got := strings.Join(g.Affected(map[string]bool{"m/util": true}), " "); got != "m/broken m/util" {
		t.Fatalf("Affected(util) = %q", got)
	}
}

func TestOwnerOfWalksUpToThePackage(t *testing.T) {
	g := NewGraph([]Package{{ImportPath: "m/a", Dir: "/r/a"}, {ImportPath: "m", Dir: "/r"}})
	cases := map[string]string{
		"/r/a/a.go":             "m/a",
		"/r/a/testdata/x/y.txt": "m/a",
		"/r/README.md":          "m",
		"/r/docs/x.md":          "m",
	}
	for f, want := range cases {
		p, ok := g.OwnerOf(f, "/r")
		if !ok || p.ImportPath != want {
			t.Errorf("OwnerOf(%s) = %v %v, want %s", f, p, ok, want)
		}
	}
	g2 := NewGraph([]Package{{ImportPath: "m/a", Dir: "/r/a"}})
	if _, ok := g2.OwnerOf("/r/docs/x.md", "/r"); ok {
		t.Error("a file outside every package has no owner")
	}
	if _, ok := g2.OwnerOf("/elsewhere/x.go", "/r"); ok {
		t.Error("a file outside the module has no owner")
	}
}

func TestModulesSkipsWhatGoIgnores(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"go.mod", "tools/go.mod", "vendor/x/go.mod", "a/testdata/go.mod", ".git/go.mod", "_old/go.mod"} {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, []byte("module x\n"), 0o644)
	}
	mods, err := Modules(root)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(mods, ",") != ".,tools" {
		t.Fatalf("Modules = %v", mods)
	}
}

func TestModuleOfPicksDeepest(t *testing.T) {
	mods := []string{".", "tools", "tools/sub"}
	cases := map[string]string{"x/y.go": ".", "tools/a.go": "tools", "tools/sub/b": "tools/sub", "toolsx/a": ".", "tools": "tools"}
	for p, want := range cases {
		if got, ok := ModuleOf(mods, p); !ok || got != want {
			t.Errorf("ModuleOf(%s) = %q, want %q", p, got, want)
		}
	}
	if _, ok := ModuleOf([]string{"tools"}, "x.go"); ok {
		t.Error("no module contains x.go")
	}
}

func TestParseListRejectsGarbage(t *testing.T) {
	for _, in := range []string{`{"ImportPath":`, `{"Dir":"/x"}`, `[1]`} {
		if _, err := ParseList(strings.NewReader(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	pk, err := ParseList(strings.NewReader(`{"ImportPath":"a","Deps":["b"]}{"ImportPath":"b"}`))
	if err != nil || len(pk) != 2 || pk[0].Deps[0] != "b" {
		t.Fatalf("%+v %v", pk, err)
	}
}

func FuzzParseList(f *testing.F) {
	f.Add([]byte(`{"ImportPath":"a","Deps":["b"],"TestImports":["c"]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		pkgs, err := ParseList(strings.NewReader(string(in)))
		if err != nil {
			return
		}
		g := NewGraph(pkgs)
		changed := map[string]bool{}
		for _, p := range pkgs {
			changed[p.ImportPath] = true
			break
		}
		for _, ip := range g.Affected(changed) {
			if _, ok := g.Package(ip); !ok {
				t.Fatalf("Affected returned unknown package %q", ip)
			}
		}
	})
}

func TestHintExplainsDisabledModuleLookups(t *testing.T) {
	if h := Hint([]byte("go: example.com/x@v1.0.0: module lookup disabled by GOPROXY=off")); !strings.Contains(h, "go mod download") {
		t.Fatalf("hint %q", h)
	}
	if h := Hint([]byte("a.go:1:1: syntax error")); h != "" {
		t.Fatalf("unexpected hint %q", h)
	}
}
