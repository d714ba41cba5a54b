package policies

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func TestMatchGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"services/payments/**", "services/payments/a.go", true},
		{"services/payments/**", "services/payments/x/y/z.go", true},
		{"services/payments/**", "services/payments", true},
		{"services/payments/**", "services/paymentsX/a.go", false},
		{"services/payments/**", "services/ledger/a.go", false},
		{"services/payments/**/*.go", "services/payments/a.go", true},
		{"services/payments/**/*.go", "services/payments/x/y/a.go", true},
		{"services/payments/**/*.go", "services/payments/a.md", false},
		{"**/go.mod", "go.mod", true},
		{"**/go.mod", "a/b/go.mod", true},
		{"**/go.mod", "a/b/go.mod.bak", false},
		{"*.go", "a.go", true},
		{"*.go", "a/b.go", false},
		{"services/*", "services/a", true},
		{"services/*", "services/a/b", false},
		{"{api,web}/**", "web/x.ts", true},
		{"{api,web}/**", "cli/x.go", false},
		{"a/?.go", "a/b.go", true},
		{"a/[bc].go", "a/c.go", true},
		{"[", "[", false}, // malformed matches nothing
		{"**", "anything/at/all", true},
		{"internal/money/money.go", "internal/money/money.go", true},
		{"internal/money/money.go", "internal/money/money_test.go", false},
		// Exponential in doublestar; refused outright.
		{strings.Repeat("{a,**}/", 40) + "x", strings.Repeat("a/", 40) + "y", false},
		{strings.Repeat("{a,**}/", 4) + "x", "a/a/a/a/x", true},
	} {
		if got := MatchGlob(tc.pattern, tc.path); got != tc.want {
			t.Errorf("MatchGlob(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}

func TestCheckRepoPath(t *testing.T) {
	for _, tc := range []struct {
		p    string
		glob bool
		want string // substring of the reason; "" = acceptable
	}{
		{"services/payments/**", true, ""},
		{"a.go", false, ""},
		{".", false, ""},
		{"", false, "empty"},
		{"/etc/passwd", false, "absolute"},
		{"C:/x", false, "drive letter"},
		{"c:x", false, "drive letter"},
		{"..", false, "'..'"},
		{"a/../b", false, "'..'"},
		{"a/..", true, "'..'"},
		{"./a", false, "not clean"},
		{"a//b", false, "not clean"},
		{"a/", false, "not clean"},
		{`a\b`, false, "backslash"},
		{`a\*`, true, "backslash"},
		{"a\x00b", false, "NUL"},
		{"a/[b", true, "malformed"},
		{"a..b/c", false, ""}, // '..' inside a name is fine
		{strings.Repeat("{a,**}/", 5) + "x", true, "at most 4"},
		{strings.Repeat("a", 513), true, "longer than 512"},
	} {
		got := checkRepoPath(tc.p, tc.glob)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("checkRepoPath(%q, %v) = %q, want %q", tc.p, tc.glob, got, tc.want)
		}
	}
}

func TestStaticPrefixAndCoverage(t *testing.T) {
	for in, want := range map[string]string{
		"services/payments/**/*.go": "services/payments",
		"services/payments/**":      "services/payments",
		"services/*/x.go":           "services",
		"**/go.mod":                 ".",
		"go.mod":                    "go.mod",
		"a/b/c.go":                  "a/b/c.go",
		"{a,b}/x":                   ".",
	} {
		if got := staticPrefix(in); got != want {
			t.Errorf("staticPrefix(%q) = %q, want %q", in, got, want)
		}
	}
	for _, tc := range []struct {
		pattern, cover string
		want           bool
	}{
		{"internal/money/money.go", "internal/money/money.go", true},
		{"internal/money/money.go", "internal/money/**", true},
		{"internal/money/**/*.go", "internal/money/**", true},
		{"internal/money/**", "internal/money/money.go", false},
		{"internal/**", "internal/money/**", false},
		{"internal/other.go", "internal/money/**", false},
		{"x/**", "**", true},
	} {
		if got := globCoveredBy(tc.pattern, tc.cover); got != tc.want {
			t.Errorf("globCoveredBy(%q, %q) = %v, want %v", tc.pattern, tc.cover, got, tc.want)
		}
	}
}

// symlinkRepo builds a real directory with links in every shape.
func symlinkRepo(t *testing.T) (repo, outside string) {
	t.Helper()
	base := t.TempDir()
	repo = filepath.Join(base, "repo")
	outside = filepath.Join(base, "outside")
	writeFile(t, outside, "secret.yaml", "apiVersion: agentgate.dev/v1\nkind: Thread\nname: x\nowner: y\n")
	writeFile(t, repo, "a/real/file.go", "package real\n")
	writeFile(t, repo, "a/real/sub/keep", "")
	links := map[string]string{
		"a/inrepo":   "real",                  // stays inside
		"a/up":       "../a/real",             // climbs but stays inside
		"a/escape":   "../../outside",         // leaves the repo
		"a/absolute": outside,                 // absolute
		"a/chain":    "inrepo",                // link to a link
		"a/l3":       "real/sub",              // ".." after it climbs from real/sub, not from a
		"a/dotdot":   "l3/../file.go",         // kernel semantics: a/real/file.go
		"a/loop1":    "loop2",                 // loop
		"a/loop2":    "loop1",                 // loop
		"a/via":      "escape/secret.yaml",    // through an escaping link
		"a/deep":     "real/../../../outside", // climbs out after a real element
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(repo, name)); err != nil {
			t.Skipf("symlinks unavailable: %v", err)
		}
	}
	return repo, outside
}

func TestResolveRefusesSymlinkEscapes(t *testing.T) {
	repo, _ := symlinkRepo(t)
	fsys := DirFS(repo)
	for _, tc := range []struct {
		in, want string
		escapes  bool
		err      string
	}{
		{in: "a/real/file.go", want: "a/real/file.go"},
		{in: "a/inrepo/file.go", want: "a/real/file.go"},
		{in: "a/up/file.go", want: "a/real/file.go"},
		{in: "a/chain/file.go", want: "a/real/file.go"},
		{in: "a/dotdot", want: "a/real/file.go"},
		{in: "a/missing/x", want: "a/missing/x"},
		{in: "a/escape/secret.yaml", escapes: true},
		{in: "a/escape", escapes: true},
		{in: "a/absolute/secret.yaml", escapes: true},
		{in: "a/via", escapes: true},
		{in: "a/deep", escapes: true},
		{in: "a/loop1/x", err: "too many levels"},
	} {
		got, err := resolve(fsys, tc.in)
		switch {
		case tc.escapes:
			if !errors.Is(err, errEscapes) {
				t.Errorf("resolve(%q) = %q, %v; want an escape error", tc.in, got, err)
			}
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("resolve(%q) error = %v, want %q", tc.in, err, tc.err)
			}
		default:
			if err != nil || got != tc.want {
				t.Errorf("resolve(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		}
	}
}

func TestResolveWorksOnAnyReadLinkFS(t *testing.T) {
	fsys := fstest.MapFS{
		"a/real/x.go": {Data: []byte("package x")},
		"a/ok":        {Mode: fs.ModeSymlink, Data: []byte("real")},
		"a/bad":       {Mode: fs.ModeSymlink, Data: []byte("../../etc")},
	}
	if got, err := resolve(fsys, "a/ok/x.go"); err != nil || got != "a/real/x.go" {
		t.Errorf("resolve in-repo link = %q, %v", got, err)
	}
	if _, err := resolve(fsys, "a/bad/passwd"); !errors.Is(err, errEscapes) {
		t.Errorf("resolve escaping link error = %v", err)
	}
}

func TestReadContractRefusesEscapesAndOversizedFiles(t *testing.T) {
	repo, _ := symlinkRepo(t)
	writeFile(t, repo, "big.yaml", strings.Repeat("#", MaxFileSize+1))
	if err := os.Mkdir(filepath.Join(repo, "dir.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	fsys := DirFS(repo)
	for name, want := range map[string]string{
		"a/escape/secret.yaml":   "refusing to read",
		"a/absolute/secret.yaml": "absolute path",
		"a/via":                  "refusing to read",
		"big.yaml":               "limit is 1048576 bytes",
		"dir.yaml":               "not a regular file",
		"nope.yaml":              "cannot open",
	} {
		_, p := readContract(fsys, name)
		if p == nil || !strings.Contains(p.Message, want) || p.File != name {
			t.Errorf("readContract(%q) problem = %+v, want %q", name, p, want)
		}
	}
	if data, p := readContract(fsys, "a/inrepo/file.go"); p != nil || string(data) != "package real\n" {
		t.Errorf("in-repo symlink: %q, %+v", data, p)
	}
}
