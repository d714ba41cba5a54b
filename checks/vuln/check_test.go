package vuln

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/internal/fixture"
	"github.com/agentgate/agentgate/checks/isolate"
	"github.com/agentgate/agentgate/checks/vuln/vulndb"
	"github.com/agentgate/agentgate/policies"
)

const scanChildArg = "__agentgate_vulnscan__"

// The check starts its scanner as a child of "our own binary"; in tests
// that binary is the test binary, which becomes the scanner here.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == scanChildArg {
		os.Exit(ScanMain(context.Background(), os.Args[2:], os.Stdout, os.Stderr))
	}
	code := m.Run()
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

var (
	dbOnce    sync.Once
	sharedDir string
	sharedDB  vulndb.Info
	dbErr     error
)

// testDB builds the real pinned database once per test binary.
func testDB(t testing.TB) vulndb.Info {
	t.Helper()
	dbOnce.Do(func() {
		sharedDir, dbErr = os.MkdirTemp("", "agentgate-vuln-test-")
		if dbErr != nil {
			return
		}
		var src string
		src, dbErr = vulndb.Download(context.Background(), vulndb.PinnedVersion)
		if dbErr != nil {
			return
		}
		sharedDB, dbErr = vulndb.Build(src, filepath.Join(sharedDir, "db"), vulndb.PinnedVersion)
	})
	if dbErr != nil {
		t.Skipf("cannot build the vulnerability database (needs the Go module proxy for golang.org/x/vulndb): %v", dbErr)
	}
	return sharedDB
}

var netOnce sync.Once
var netErr error

// needXNet makes sure golang.org/x/net v0.57.0 is in the module cache, as
// the isolated scan runs with GOPROXY=off.
func needXNet(t testing.TB) {
	t.Helper()
	netOnce.Do(func() {
		cmd := exec.Command("go", "mod", "download", "golang.org/x/net@v0.57.0")
		cmd.Dir = os.TempDir()
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			netErr = err
			_ = out
		}
	})
	if netErr != nil {
		t.Skipf("golang.org/x/net@v0.57.0 not downloadable (needs the Go module proxy): %v", netErr)
	}
}

func newCheck(t *testing.T, db string) *Check {
	t.Helper()
	runner := isolate.NewNetless(isolate.Options{})
	if _, err := runner.Isolation(); err != nil {
		t.Skipf("namespaces unavailable (needs root or unprivileged user namespaces): %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{
		Runner:   runner,
		ScanArgv: []string{self, scanChildArg},
		DB:       db,
		CacheDir: t.TempDir(),
		Timeout:  3 * time.Minute,
		Now:      func() time.Time { return time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC) },
	})
}

const goMod = "module example.com/app\n\ngo 1.26\n"
const goModNet = goMod + "\nrequire golang.org/x/net v0.57.0\n"
const goSumNet = `golang.org/x/net v0.57.0 h1:K5+3DljvIuDG9/Jv9rvyMywYNFCQ9RSUY6OOTTkT+tE=
golang.org/x/net v0.57.0/go.mod h1:KpXc8iv+r3XplLAG/f7Jsf9RPszJzdR0f58q9vGOuEU=
`

const mainPlain = `package main

import "fmt"

func main() { fmt.Println("hello") }
`

const mainCallsParse = `package main

import (
	"fmt"
	"strings"

	"golang.org/x/net/html"
)

func main() {
	n, err := html.Parse(strings.NewReader("<p>x"))
	fmt.Println(n, err)
}
`

const mainImportsOnly = `package main

import (
	"fmt"

	"golang.org/x/net/html"
)

func main() { fmt.Println(html.EscapeString("<p>")) }
`

// vulnRepo has a clean base on main and one branch per head variant.
type vulnRepo struct {
	repo                           *fixture.Repo
	base, called, imported, unused string
	calledAgain                    string // on top of called: an unrelated change
}

func makeRepo(t *testing.T) vulnRepo {
	r := fixture.NewRepo(t)
	var v vulnRepo
	v.repo = r
	r.Write(map[string]string{"go.mod": goMod, "main.go": mainPlain})
	v.base = r.Commit("base")

	r.Checkout("called", true)
	r.Write(map[string]string{"go.mod": goModNet, "go.sum": goSumNet, "main.go": mainCallsParse})
	v.called = r.Commit("parse html")
	r.Write(map[string]string{"README.md": "docs\n"})
	v.calledAgain = r.Commit("docs")

	r.Checkout("main", false)
	r.Checkout("imported", true)
	r.Write(map[string]string{"go.mod": goModNet, "go.sum": goSumNet, "main.go": mainImportsOnly})
	v.imported = r.Commit("escape html")

	r.Checkout("main", false)
	r.Checkout("unused", true)
	r.Write(map[string]string{"go.mod": goModNet, "go.sum": goSumNet})
	v.unused = r.Commit("require x/net, use nothing")
	return v
}

func findingIDs(res checks.Result) []string {
	var out []string
	for _, f := range res.Findings {
		out = append(out, f.Fingerprint)
	}
	return out
}

func hasModuleFinding(res checks.Result, id string) *checks.Finding {
	for i, f := range res.Findings {
		if strings.HasPrefix(f.Fingerprint, "vuln:"+id+":golang.org/x/net:") {
			return &res.Findings[i]
		}
	}
	return nil
}

func TestVulnCheck(t *testing.T) {
	db := testDB(t)
	needXNet(t)
	v := makeRepo(t)
	c := newCheck(t, db.Dir)
	ctx := context.Background()

	t.Run("CalledVulnerableDependencyFails", func(t *testing.T) {
		res := c.Run(ctx, v.repo.Subject(v.base, v.called))
		if res.Status != checks.StatusFail {
			t.Fatalf("status %s (%s), findings %v", res.Status, res.Reason, findingIDs(res))
		}
		f := hasModuleFinding(res, "GO-2026-6860")
		if f == nil {
			t.Fatalf("GO-2026-6860 not reported: %v", findingIDs(res))
		}
		if f.Rule != "vuln.called" || f.Severity != checks.SeverityHigh || f.Path != "main.go" || f.Line != 11 {
			t.Fatalf("finding %+v", f)
		}
		if res.Details["db_version"] != vulndb.PinnedVersion {
			t.Errorf("db version not recorded: %v", res.Details["db_version"])
		}
		if iso, _ := res.Details["isolation"].(string); iso == "" || iso == "none" {
			t.Errorf("scan was not isolated: %q", iso)
		}
	})

	t.Run("ImportedButNotCalledPassesByDefault", func(t *testing.T) {
		res := c.Run(ctx, v.repo.Subject(v.base, v.imported))
		if res.Status != checks.StatusPass {
			t.Fatalf("status %s (%s) %v", res.Status, res.Reason, findingIDs(res))
		}
	})

	t.Run("UnusedVulnerableDependencyPassesByDefault", func(t *testing.T) {
		res := c.Run(ctx, v.repo.Subject(v.base, v.unused))
		if res.Status != checks.StatusPass {
			t.Fatalf("status %s (%s) %v", res.Status, res.Reason, findingIDs(res))
		}
	})

	t.Run("PolicyFailOnImportedFailsImportedDependency", func(t *testing.T) {
		s := v.repo.Subject(v.base, v.imported)
		s.Tree = &policies.Tree{Policy: policies.Policy{Vuln: policies.VulnPolicy{FailOn: "imported"}}}
		res := c.Run(ctx, s)
		if res.Status != checks.StatusFail || hasModuleFinding(res, "GO-2026-6860") == nil {
			t.Fatalf("status %s (%s) %v", res.Status, res.Reason, findingIDs(res))
		}
	})

	t.Run("PreexistingVulnerabilityDoesNotFail", func(t *testing.T) {
		res := c.Run(ctx, v.repo.Subject(v.called, v.calledAgain))
		if res.Status != checks.StatusPass {
			t.Fatalf("status %s (%s) %v", res.Status, res.Reason, findingIDs(res))
		}
		if n, _ := res.Details["preexisting"].(int); n == 0 {
			t.Fatalf("the called vulnerability should be counted as preexisting: %v", res.Details)
		}
	})

	t.Run("AllowEntryAcceptsUntilExpiry", func(t *testing.T) {
		for _, tc := range []struct {
			expires string
			want    checks.Status
		}{{"2026-12-31", checks.StatusPass}, {"2026-11-26", checks.StatusPass}, {"2026-11-25", checks.StatusFail}} {
			s := v.repo.Subject(v.base, v.called)
			s.Tree = &policies.Tree{Policy: policies.Policy{Vuln: policies.VulnPolicy{Allow: []policies.VulnAllow{{ID: "GO-2026-6860", Reason: "triaged", Expires: tc.expires}}}}}
			res := c.Run(ctx, s)
			if res.Status != tc.want {
				t.Errorf("expires %s: status %s (%s) %v", tc.expires, res.Status, res.Reason, findingIDs(res))
			}
			if tc.want == checks.StatusFail {
				if f := hasModuleFinding(res, "GO-2026-6860"); f == nil || !strings.Contains(f.Message, "expired on 2026-11-25") {
					t.Errorf("expired allow entry not explained: %+v", f)
				}
			}
		}
	})

	t.Run("BadDatabasePathIsAnError", func(t *testing.T) {
		bad := newCheck(t, filepath.Join(t.TempDir(), "nope"))
		res := bad.Run(ctx, v.repo.Subject(v.base, v.called))
		if res.Status != checks.StatusError || res.Reason == "" {
			t.Fatalf("status %s reason %q", res.Status, res.Reason)
		}
	})

	t.Run("CorruptDatabaseIsAnErrorNotAPass", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "db")
		os.MkdirAll(filepath.Join(dir, "index"), 0o755)
		os.WriteFile(filepath.Join(dir, vulndb.MetaFile), []byte(`{"version":"v1"}`), 0o644)
		os.WriteFile(filepath.Join(dir, "index", "db.json"), []byte(`{`), 0o644)
		os.WriteFile(filepath.Join(dir, "index", "modules.json"), []byte(`[`), 0o644)
		res := newCheck(t, dir).Run(ctx, v.repo.Subject(v.base, v.called))
		if res.Status != checks.StatusError {
			t.Fatalf("status %s (%s)", res.Status, res.Reason)
		}
	})

	t.Run("UnknownHeadIsAnError", func(t *testing.T) {
		s := v.repo.Subject(v.base, v.called)
		s.Head = strings.Repeat("d", 40)
		if res := c.Run(ctx, s); res.Status != checks.StatusError {
			t.Fatalf("status %s", res.Status)
		}
	})

	t.Run("DownloadModulesRefusesTamperedGoSum", func(t *testing.T) {
		v.repo.Checkout(v.base, false)
		v.repo.Checkout("tampered", true)
		v.repo.Write(map[string]string{"go.mod": goModNet, "main.go": mainCallsParse,
			"go.sum": strings.Replace(goSumNet, "K5+3DljvIuDG9", "AAAADljvIuDG9", 1)})
		head := v.repo.Commit("tampered go.sum")
		dl := newCheck(t, db.Dir)
		dl.cfg.DownloadModules = true
		res := dl.Run(ctx, v.repo.Subject(v.base, head))
		if res.Status != checks.StatusError || !strings.Contains(res.Reason, "go mod download") {
			t.Fatalf("status %s reason %q", res.Status, res.Reason)
		}
		dl.cfg.DownloadModules = true
		if res := dl.Run(ctx, v.repo.Subject(v.base, v.called)); res.Status != checks.StatusFail {
			t.Fatalf("with downloads on, an intact module still fails on its vulnerability: %s %q", res.Status, res.Reason)
		}
	})

	t.Run("NoGoModuleIsSkipped", func(t *testing.T) {
		r := fixture.NewRepo(t)
		r.Write(map[string]string{"README.md": "x"})
		a := r.Commit("a")
		r.Write(map[string]string{"README.md": "y"})
		b := r.Commit("b")
		if res := c.Run(ctx, r.Subject(a, b)); res.Status != checks.StatusSkipped {
			t.Fatalf("status %s (%s)", res.Status, res.Reason)
		}
	})
}

func TestScanTimesOutFailsClosed(t *testing.T) {
	db := testDB(t)
	needXNet(t)
	v := makeRepo(t)
	c := newCheck(t, db.Dir)
	c.cfg.Timeout = time.Millisecond
	res := c.Run(context.Background(), v.repo.Subject(v.base, v.called))
	if res.Status != checks.StatusError || !strings.Contains(res.Reason, "time limit") {
		t.Fatalf("status %s reason %q", res.Status, res.Reason)
	}
}

func TestMisconfiguredCheckErrors(t *testing.T) {
	res := New(Config{}).Run(context.Background(), &checks.Subject{})
	if res.Status != checks.StatusError {
		t.Fatalf("status %s", res.Status)
	}
	s := &checks.Subject{Tree: &policies.Tree{Policy: policies.Policy{Vuln: policies.VulnPolicy{Stdlib: "ignore"}}}}
	res = New(Config{Runner: isolate.NewNetless(isolate.Options{AllowUnisolated: true})}).Run(context.Background(), s)
	if res.Status != checks.StatusError || !strings.Contains(res.Reason, "stdlib") {
		t.Fatalf("invalid policy must error: %s %q", res.Status, res.Reason)
	}
}

const webEscape = `package web

import "golang.org/x/net/html"

func Render(s string) string { return html.EscapeString(s) }
`

const webParse = `package web

import (
	"strings"

	"golang.org/x/net/html"
)

func Render(s string) string {
	n, err := html.Parse(strings.NewReader(s))
	if err != nil || n == nil {
		return ""
	}
	return html.EscapeString(s)
}
`

const mainUsesWeb = `package main

import (
	"fmt"

	"example.com/app/web"
)

func main() { fmt.Println(web.Render("<p>")) }
`

const otherPkg = `package other

func Two() int { return 2 }
`

// Once the base's scan is known, head is scanned only where the change
// reaches; a dependency edit that makes a dependent call a vulnerable
// symbol must still fail, and a change touching no package carries the
// base's findings over without a scan.
func TestHeadScanCoversOnlyAffectedPackagesAndStillCatchesNewCalls(t *testing.T) {
	db := testDB(t)
	needXNet(t)
	r := fixture.NewRepo(t)
	r.Write(map[string]string{"go.mod": goModNet, "go.sum": goSumNet, "cmd/app/main.go": mainUsesWeb,
		"web/web.go": webEscape, "other/other.go": otherPkg})
	base := r.Commit("base: imports x/net/html, calls nothing vulnerable")
	r.Checkout("docs", true)
	r.Write(map[string]string{"README.md": "docs\n"})
	docs := r.Commit("docs only")
	r.Checkout("main", false)
	r.Checkout("calls", true)
	r.Write(map[string]string{"web/web.go": webParse})
	calls := r.Commit("web calls html.Parse")
	r.Checkout("main", false)
	r.Checkout("docs2", true)
	r.Write(map[string]string{"NOTES.md": "notes\n"})
	docs2 := r.Commit("notes only")

	c := newCheck(t, db.Dir)
	ctx := context.Background()
	scope := func(res checks.Result) string {
		s, _ := res.Details["head_scope"].([]string)
		return strings.Join(s, "; ")
	}
	// First evaluation of this base: it is scanned (and cached), head fully.
	res := c.Run(ctx, r.Subject(base, docs))
	if res.Status != checks.StatusPass {
		t.Fatalf("docs change: status %s (%s) %v", res.Status, res.Reason, findingIDs(res))
	}
	if !strings.Contains(scope(res), "every package") {
		t.Fatalf("without the base's results head must be scanned whole, scope %q", scope(res))
	}

	res = c.Run(ctx, r.Subject(base, calls))
	if res.Status != checks.StatusFail {
		t.Fatalf("a dependency now calling html.Parse: status %s (%s) %v", res.Status, res.Reason, findingIDs(res))
	}
	if got := scope(res); !strings.Contains(got, "2 of 3 packages") {
		t.Errorf("scope = %q, want web and its dependent main (2 of 3 packages)", got)
	}
	f := hasModuleFinding(res, "GO-2026-6860")
	if f == nil || f.Rule != "vuln.called" {
		t.Fatalf("the new call is not reported as called: %+v (%v)", f, findingIDs(res))
	}

	res = c.Run(ctx, r.Subject(base, docs2))
	if res.Status != checks.StatusPass {
		t.Fatalf("notes change: status %s (%s) %v", res.Status, res.Reason, findingIDs(res))
	}
	if got := scope(res); !strings.Contains(got, "no package affected") {
		t.Errorf("scope = %q, want no package affected", got)
	}
	if n, _ := res.Details["preexisting"].(int); n == 0 {
		t.Errorf("the base's imported-level finding should be carried over as preexisting: %v", res.Details)
	}
}
