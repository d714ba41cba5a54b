package gitcli_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/agentgate/agentgate/internal/gitcli"
	"github.com/agentgate/agentgate/internal/gitcli/gittest"
)

// fixture: main has f.txt, g.sh, data.bin; the agent branch renames
// f.txt, edits it, makes g.sh executable, changes the binary, adds a
// symlink, a submodule (gitlink) and deletes old.txt.
type fixture struct {
	r          *gittest.Repo
	base, head string
}

func newFixture(t *testing.T) fixture {
	r := gittest.New(t)
	r.Write("f.txt", "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\n")
	r.Write("g.sh", "echo hi\n")
	r.WriteBytes("data.bin", []byte{0, 1, 2, 3}, 0o644)
	r.Write("old.txt", "bye\n")
	r.Write("docs/readme.md", "# docs\n")
	base := r.Commit("base")
	r.Branch("agent/t1")
	r.Git("mv", "f.txt", "moved.txt")
	r.Write("moved.txt", "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\n")
	r.WriteBytes("g.sh", []byte("echo hi\n"), 0o755)
	r.WriteBytes("data.bin", []byte{0, 9, 9, 9}, 0o644)
	r.Symlink("../../etc/passwd", "link")
	r.Remove("old.txt")
	r.Git("add", "-A")
	r.Git("update-index", "--add", "--cacheinfo", "160000,"+base+",vendor/sub")
	r.Git("commit", "-q", "-m", "agent change\n\nPlan-Id: plan-1\nIteration: 3")
	head := r.Git("rev-parse", "HEAD")
	return fixture{r: r, base: base, head: head}
}

func TestVerifyCommit(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	tree := fx.r.Git("rev-parse", "HEAD^{tree}")
	tests := []struct {
		rev  string
		want string // "" = error
	}{
		{"main", fx.base},
		{"agent/t1", fx.head},
		{fx.head, fx.head},
		{fx.head[:10], fx.head},
		{"HEAD~1", fx.base},
		{"no-such-branch", ""},
		{"--output=/tmp/x", ""},
		{"main..agent/t1", ""},
		{tree, ""}, // a tree, not a commit
		{"", ""},
	}
	for _, tt := range tests {
		got, err := gitcli.VerifyCommit(ctx, fx.r.Dir, tt.rev)
		if tt.want == "" {
			if err == nil || !errors.Is(err, gitcli.ErrBadRevision) {
				t.Errorf("VerifyCommit(%q) = %q, %v; want ErrBadRevision", tt.rev, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("VerifyCommit(%q) = %q, %v; want %q", tt.rev, got, err, tt.want)
		}
	}
}

func TestVerifyCommitNotARepository(t *testing.T) {
	_, err := gitcli.VerifyCommit(context.Background(), t.TempDir(), "HEAD")
	if err == nil || !strings.Contains(err.Error(), "not a git repository") {
		t.Fatalf("want a not-a-repository error, got %v", err)
	}
}

func TestMergeBase(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	// main moves on after the branch point.
	fx.r.Checkout("main")
	fx.r.Write("later.txt", "later\n")
	later := fx.r.Commit("later on main")
	mb, err := gitcli.MergeBase(ctx, fx.r.Dir, later, fx.head)
	if err != nil || mb != fx.base {
		t.Fatalf("MergeBase = %q, %v; want %q", mb, err, fx.base)
	}
	// Unrelated history.
	fx.r.Git("checkout", "-q", "--orphan", "lonely")
	fx.r.Git("rm", "-rq", "--cached", ".")
	fx.r.Write("x", "x")
	fx.r.Git("add", "x")
	fx.r.Git("commit", "-qm", "orphan")
	orphan := fx.r.Git("rev-parse", "HEAD")
	if _, err := gitcli.MergeBase(ctx, fx.r.Dir, orphan, fx.head); !errors.Is(err, gitcli.ErrNoMergeBase) {
		t.Fatalf("MergeBase of unrelated histories: want ErrNoMergeBase, got %v", err)
	}
}

func TestDiffReportsRenamesModesBinariesLinksAndSubmodules(t *testing.T) {
	fx := newFixture(t)
	changes, err := gitcli.Diff(context.Background(), fx.r.Dir, fx.base, fx.head)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]gitcli.Change{}
	for _, c := range changes {
		got[c.Path] = c
	}
	type want struct {
		status           byte
		oldPath          string
		oldMode, newMode uint32
		added, deleted   int
		binary           bool
	}
	wants := map[string]want{
		"moved.txt":  {'R', "f.txt", gitcli.ModeFile, gitcli.ModeFile, 1, 0, false},
		"g.sh":       {'M', "g.sh", gitcli.ModeFile, gitcli.ModeExecutable, 0, 0, false},
		"data.bin":   {'M', "data.bin", gitcli.ModeFile, gitcli.ModeFile, 0, 0, true},
		"link":       {'A', "link", gitcli.ModeNone, gitcli.ModeSymlink, 1, 0, false},
		"old.txt":    {'D', "old.txt", gitcli.ModeFile, gitcli.ModeNone, 0, 1, false},
		"vendor/sub": {'A', "vendor/sub", gitcli.ModeNone, gitcli.ModeSubmodule, 1, 0, false},
	}
	if len(got) != len(wants) {
		t.Fatalf("got %d changes %v, want %d", len(got), changes, len(wants))
	}
	for p, w := range wants {
		c, ok := got[p]
		if !ok {
			t.Errorf("%s: missing from diff", p)
			continue
		}
		if c.Status != w.status || c.OldPath != w.oldPath || c.OldMode != w.oldMode || c.NewMode != w.newMode ||
			c.Added != w.added || c.Deleted != w.deleted || c.Binary != w.binary {
			t.Errorf("%s: got %+v, want %+v", p, c, w)
		}
	}
	if !got["moved.txt"].Renamed() || got["moved.txt"].Score < 50 {
		t.Errorf("moved.txt: want a rename with a score, got %+v", got["moved.txt"])
	}

	// Numstat and Raw agree with Diff.
	ns, err := gitcli.Numstat(context.Background(), fx.r.Dir, fx.base, fx.head)
	if err != nil || len(ns) != len(wants) {
		t.Fatalf("Numstat: %v %v", ns, err)
	}
	raw, err := gitcli.Raw(context.Background(), fx.r.Dir, fx.base, fx.head)
	if err != nil || len(raw) != len(wants) {
		t.Fatalf("Raw: %v %v", raw, err)
	}
}

// An agent cannot hide lines from the gate by marking files "-diff" in a
// .gitattributes file in the checkout.
func TestDiffIgnoresWorkTreeAttributes(t *testing.T) {
	r := gittest.New(t)
	r.Write("a.go", "package a\n")
	base := r.Commit("base")
	r.Write("a.go", "package a\n\nconst key = 1\n")
	r.Write(".gitattributes", "*.go -diff\n")
	head := r.Commit("hide")
	changes, err := gitcli.Diff(context.Background(), r.Dir, base, head)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.Path == "a.go" && (c.Binary || c.Added != 2) {
			t.Fatalf("a.go counted as %+v; attributes from the work tree must not apply", c)
		}
	}
}

// Repository-local configuration cannot make the gate's git run code.
func TestHostileRepoConfigRunsNothing(t *testing.T) {
	fx := newFixture(t)
	marker := filepath.Join(t.TempDir(), "pwned")
	cmd := "touch " + marker
	for _, kv := range [][2]string{
		{"core.fsmonitor", cmd},
		{"diff.external", cmd},
		{"core.pager", cmd},
		{"log.showSignature", "true"},
		{"gpg.program", cmd},
		{"filter.x.smudge", cmd},
		{"diff.x.textconv", cmd},
	} {
		fx.r.Git("config", kv[0], kv[1])
	}
	fx.r.Write(".gitattributes", "* filter=x diff=x\n")
	ctx := context.Background()
	if _, err := gitcli.Diff(ctx, fx.r.Dir, fx.base, fx.head); err != nil {
		t.Fatal(err)
	}
	if _, err := gitcli.Log(ctx, fx.r.Dir, fx.base, fx.head); err != nil {
		t.Fatal(err)
	}
	if err := gitcli.Export(ctx, fx.r.Dir, fx.head, t.TempDir(), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := gitcli.ReadFile(ctx, fx.r.Dir, fx.head, "moved.txt", 1<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a command from the repository's config ran")
	}
}

func TestReadFile(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	data, err := gitcli.ReadFile(ctx, fx.r.Dir, fx.base, "f.txt", 1<<20)
	if err != nil || !strings.HasPrefix(string(data), "one\n") {
		t.Fatalf("ReadFile f.txt at base = %q, %v", data, err)
	}
	if _, err := gitcli.ReadFile(ctx, fx.r.Dir, fx.head, "f.txt", 1<<20); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("f.txt was renamed on head: want fs.ErrNotExist, got %v", err)
	}
	if _, err := gitcli.ReadFile(ctx, fx.r.Dir, fx.base, "f.txt", 4); !errors.Is(err, gitcli.ErrTooLarge) {
		t.Errorf("size cap: want ErrTooLarge, got %v", err)
	}
	if _, err := gitcli.ReadFile(ctx, fx.r.Dir, fx.base, "docs", 1<<20); err == nil {
		t.Error("reading a directory must fail")
	}
	for _, p := range []string{"../etc/passwd", "/etc/passwd", "./f.txt", "a\nb", ""} {
		if _, err := gitcli.ReadFile(ctx, fx.r.Dir, fx.base, p, 1<<20); err == nil {
			t.Errorf("ReadFile(%q) must be refused", p)
		}
	}
}

func TestCommitFS(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	base, err := gitcli.CommitFS(ctx, fx.r.Dir, fx.base)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	if err := fstest.TestFS(base, "f.txt", "g.sh", "data.bin", "old.txt", "docs/readme.md"); err != nil {
		t.Fatal(err)
	}

	head, err := gitcli.CommitFS(ctx, fx.r.Dir, fx.head)
	if err != nil {
		t.Fatal(err)
	}
	defer head.Close()
	if _, err := head.Open("link"); !errors.Is(err, gitcli.ErrSymlink) {
		t.Errorf("Open(link): want ErrSymlink, got %v", err)
	}
	if _, err := fs.ReadFile(head, "link"); !errors.Is(err, gitcli.ErrSymlink) {
		t.Errorf("ReadFile(link): want ErrSymlink, got %v", err)
	}
	if target, err := fs.ReadLink(head, "link"); err != nil || target != "../../etc/passwd" {
		t.Errorf("ReadLink(link) = %q, %v", target, err)
	}
	if fi, err := fs.Lstat(head, "link"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Lstat(link) = %v, %v; want a symlink", fi, err)
	}
	if _, err := head.Open("vendor/sub"); !errors.Is(err, gitcli.ErrSubmodule) {
		t.Errorf("Open(submodule): want ErrSubmodule, got %v", err)
	}
	if fi, err := fs.Stat(head, "g.sh"); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("g.sh: want an executable, got %v %v", fi, err)
	}
	head.MaxFileSize = 3
	if _, err := fs.ReadFile(head, "moved.txt"); !errors.Is(err, gitcli.ErrTooLarge) {
		t.Errorf("size cap: want ErrTooLarge, got %v", err)
	}
	if _, err := gitcli.CommitFS(ctx, fx.r.Dir, "main"); err == nil {
		t.Error("CommitFS must insist on a full SHA")
	}
}

// hostileCommit builds a commit whose tree holds one entry with the given
// name (git mktree does not validate names).
func hostileCommit(t *testing.T, r *gittest.Repo, name string) string {
	blob, err := r.GitInput([]byte("evil\n"), "hash-object", "-w", "--stdin")
	if err != nil {
		t.Fatal(err)
	}
	tree, err := r.GitInput([]byte("100644 blob "+blob+"\t"+name+"\n"), "mktree")
	if err != nil {
		t.Skipf("git mktree refused %q: %v", name, err)
	}
	return r.Git("commit-tree", tree, "-m", "hostile")
}

func TestCommitFSAndExportRefuseHostilePaths(t *testing.T) {
	r := gittest.New(t)
	r.Write("ok", "ok\n")
	r.Commit("base")
	for _, name := range []string{"..", ".git", ".GIT", "a\\b"} {
		sha := hostileCommit(t, r, name)
		if _, err := gitcli.CommitFS(context.Background(), r.Dir, sha); err == nil {
			t.Errorf("CommitFS accepted a tree entry named %q", name)
		}
		dst := t.TempDir()
		if err := gitcli.Export(context.Background(), r.Dir, sha, dst, 0); err == nil {
			t.Errorf("Export accepted a tree entry named %q", name)
		}
	}
}

func TestExport(t *testing.T) {
	fx := newFixture(t)
	dst := filepath.Join(t.TempDir(), "out")
	if err := gitcli.Export(context.Background(), fx.r.Dir, fx.head, dst, 0); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dst, "moved.txt"))
	if err != nil || !strings.HasSuffix(string(data), "nine\n") {
		t.Fatalf("moved.txt = %q, %v", data, err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "g.sh")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("g.sh lost its exec bit: %v %v", fi, err)
	}
	if target, err := os.Readlink(filepath.Join(dst, "link")); err != nil || target != "../../etc/passwd" {
		t.Errorf("link = %q, %v", target, err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "vendor/sub")); err != nil || !fi.IsDir() {
		t.Errorf("submodule should be an empty directory: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(dst, ".git")); err == nil {
		t.Error("export must not create .git")
	}
	// A size cap fails the export.
	if err := gitcli.Export(context.Background(), fx.r.Dir, fx.head, t.TempDir(), 2); !errors.Is(err, gitcli.ErrTooLarge) {
		t.Errorf("Export with a 2-byte cap: want ErrTooLarge, got %v", err)
	}
}

// A symlink to a directory outside, followed by a file "through" it, must
// not write outside the destination.
func TestExportDoesNotFollowLinksOutOfDestination(t *testing.T) {
	r := gittest.New(t)
	outside := t.TempDir()
	blob, _ := r.GitInput([]byte("evil\n"), "hash-object", "-w", "--stdin")
	link, _ := r.GitInput([]byte(outside), "hash-object", "-w", "--stdin")
	sub, err := r.GitInput([]byte("100644 blob "+blob+"\tx\n"), "mktree")
	if err != nil {
		t.Fatal(err)
	}
	// Two entries named "a": a link and a tree, so a/x would land in outside/x.
	tree, err := r.GitInput([]byte("120000 blob "+link+"\ta\n040000 tree "+sub+"\ta\n"), "mktree")
	if err != nil {
		t.Skipf("git mktree refused a duplicate name: %v", err)
	}
	sha := r.Git("commit-tree", tree, "-m", "escape")
	_ = gitcli.Export(context.Background(), r.Dir, sha, t.TempDir(), 0)
	if _, err := os.Stat(filepath.Join(outside, "x")); err == nil {
		t.Fatal("Export wrote through a symlink outside the destination")
	}
}

func TestLogParsesTrailers(t *testing.T) {
	fx := newFixture(t)
	commits, err := gitcli.Log(context.Background(), fx.r.Dir, fx.base, fx.head)
	if err != nil {
		t.Fatal(err)
	}
	if len(commits) != 1 {
		t.Fatalf("want 1 commit, got %d", len(commits))
	}
	c := commits[0]
	if c.SHA != fx.head || len(c.Parents) != 1 || c.Parents[0] != fx.base {
		t.Errorf("commit %+v", c)
	}
	if v, ok := c.Trailer("plan-id"); !ok || v != "plan-1" {
		t.Errorf("Plan-Id trailer = %q, %v", v, ok)
	}
	if v, _ := c.Trailer("Iteration"); v != "3" {
		t.Errorf("Iteration trailer = %q", v)
	}
	if c.Author.Email != "agent@example.com" || c.Author.When.Year() != 2026 {
		t.Errorf("author %+v", c.Author)
	}
	all, err := gitcli.Log(context.Background(), fx.r.Dir, "", fx.head)
	if err != nil || len(all) != 2 {
		t.Errorf("Log of all ancestors: %d commits, %v", len(all), err)
	}
}

func TestParseTrailers(t *testing.T) {
	tests := []struct {
		msg  string
		want []gitcli.Trailer
	}{
		{"subject only\n", nil},
		{"Plan-Id: x\n", nil}, // a subject is not a trailer
		{"s\n\nbody text\n\nPlan-Id: p1\nIteration: 2\n", []gitcli.Trailer{{"Plan-Id", "p1"}, {"Iteration", "2"}}},
		{"s\n\nPlan-Id: p1\nnot a trailer line\n", nil},
		{"s\n\nSigned-off-by: A <a@b>\n  continued\n", []gitcli.Trailer{{"Signed-off-by", "A <a@b> continued"}}},
	}
	for _, tt := range tests {
		got := gitcli.ParseTrailers(tt.msg)
		if len(got) != len(tt.want) {
			t.Errorf("ParseTrailers(%q) = %v, want %v", tt.msg, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("ParseTrailers(%q)[%d] = %v, want %v", tt.msg, i, got[i], tt.want[i])
			}
		}
	}
}

func TestParsersRejectMalformedInput(t *testing.T) {
	sha := strings.Repeat("a", 40)
	bad := []string{
		"1\t2\tpath",             // not NUL-terminated
		"x\t2\tpath\x00",         // bad count
		"1\t2\t\x00only-one\x00", // rename with one path... then EOF
		"12345678901\t1\tp\x00",  // overflow-sized count
		"1 2 path\x00",           // no tabs
	}
	for _, in := range bad {
		if _, err := gitcli.ParseNumstat([]byte(in)); err == nil {
			t.Errorf("ParseNumstat(%q) accepted malformed input", in)
		}
	}
	badRaw := []string{
		":100644 100644 " + sha + " " + sha + " M",                  // no path
		":100644 100644 " + sha + " " + sha + " Q\x00p\x00",         // unknown status
		":10064 100644 " + sha + " " + sha + " M\x00p\x00",          // short mode
		":100644 100644 zz " + sha + " M\x00p\x00",                  // bad oid
		":100644 100644 " + sha + " " + sha + " R999\x00a\x00b\x00", // bad score
		":100644 100644 " + sha + " " + sha + " M\x00\x00",          // empty path
	}
	for _, in := range badRaw {
		if _, err := gitcli.ParseRaw([]byte(in)); err == nil {
			t.Errorf("ParseRaw(%q) accepted malformed input", in)
		}
	}
	// numstat for a path the raw list does not have
	mixed := ":100644 100644 " + sha + " " + sha + " M\x00a\x001\t1\tb\x00"
	if _, err := gitcli.ParseRawNumstat([]byte(mixed)); err == nil {
		t.Error("ParseRawNumstat accepted mismatched lists")
	}
	if _, err := gitcli.ParseLsTree([]byte("100644 blob " + sha + " 12\t..\x00")); err != nil {
		t.Errorf("ParseLsTree is a parser; path safety is CommitFS's job: %v", err)
	}
	if _, err := gitcli.ParseLsTree([]byte("100644 tree " + sha + " -\tx\x00")); err == nil {
		t.Error("ParseLsTree accepted a tree with a file mode")
	}
}
