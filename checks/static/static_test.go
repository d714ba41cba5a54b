package static

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/internal/fixture"
	"github.com/agentgate/agentgate/checks/isolate"
)

func newRunner(t *testing.T) isolate.Runner {
	t.Helper()
	r := isolate.NewNetless(isolate.Options{})
	if _, err := r.Isolation(); err != nil {
		t.Skipf("namespaces unavailable (needs root or unprivileged user namespaces): %v", err)
	}
	return r
}

func TestStaticCheck(t *testing.T) {
	runner := newRunner(t)
	r := fixture.NewRepo(t)
	r.Write(map[string]string{
		"go.mod": "module example.com/m\n\ngo 1.26\n",
		"a/a.go": "package a\n\nimport \"fmt\"\n\nfunc F() { fmt.Println(\"ok\") }\n",
		// A vet problem that predates the change, in a package the change
		// does not touch: not this change's finding.
		"old/old.go": "package old\n\nimport \"fmt\"\n\nfunc G() { fmt.Printf(\"%d\\n\", \"x\") }\n",
	})
	base := r.Commit("base")
	c := New(Config{Runner: runner, CacheDir: t.TempDir()})
	ctx := context.Background()

	branch := func(name string, files map[string]string) string {
		r.Checkout(base, false)
		r.Checkout(name, true)
		r.Write(files)
		return r.Commit(name)
	}

	t.Run("VetProblemInChangedPackageFails", func(t *testing.T) {
		head := branch("printf", map[string]string{"a/a.go": "package a\n\nimport \"fmt\"\n\nfunc F() { fmt.Printf(\"%d\\n\", \"x\") }\n"})
		res := c.Run(ctx, r.Subject(base, head))
		if res.Status != checks.StatusFail || len(res.Findings) != 1 {
			t.Fatalf("status %s (%s) %+v", res.Status, res.Reason, res.Findings)
		}
		f := res.Findings[0]
		if f.Rule != "static.vet" || f.Path != "a/a.go" || f.Line != 5 || !strings.Contains(f.Message, "wrong type") {
			t.Fatalf("finding %+v", f)
		}
		if iso, _ := res.Details["isolation"].(string); iso == "" || iso == "none" {
			t.Fatalf("vet not isolated: %q", iso)
		}
	})

	t.Run("TypeErrorFails", func(t *testing.T) {
		head := branch("typeerr", map[string]string{"a/b.go": "package a\n\nfunc G() int { return \"x\" }\n"})
		res := c.Run(ctx, r.Subject(base, head))
		if res.Status != checks.StatusFail || len(res.Findings) == 0 || res.Findings[0].Path != "a/b.go" {
			t.Fatalf("status %s (%s) %+v", res.Status, res.Reason, res.Findings)
		}
	})

	t.Run("CleanChangePassesAndIgnoresUntouchedPackages", func(t *testing.T) {
		head := branch("clean", map[string]string{"a/a.go": "package a\n\nimport \"fmt\"\n\nfunc F() { fmt.Println(\"still ok\") }\n"})
		res := c.Run(ctx, r.Subject(base, head))
		if res.Status != checks.StatusPass {
			t.Fatalf("status %s (%s) %+v", res.Status, res.Reason, res.Findings)
		}
		if pk, _ := res.Details["packages"].([]string); len(pk) != 1 || pk[0] != "example.com/m/a" {
			t.Fatalf("vetted %v", res.Details["packages"])
		}
	})

	t.Run("NoGoChangeIsSkipped", func(t *testing.T) {
		head := branch("docs", map[string]string{"README.md": "x\n"})
		if res := c.Run(ctx, r.Subject(base, head)); res.Status != checks.StatusSkipped {
			t.Fatalf("status %s", res.Status)
		}
	})

	t.Run("MissingStaticcheckBinaryIsAnError", func(t *testing.T) {
		head := branch("sc", map[string]string{"a/a.go": "package a\n\nfunc F() {}\n"})
		sc := New(Config{Runner: runner, CacheDir: t.TempDir(), Staticcheck: "/nonexistent/staticcheck"})
		if res := sc.Run(ctx, r.Subject(base, head)); res.Status != checks.StatusError {
			t.Fatalf("status %s (%s)", res.Status, res.Reason)
		}
	})

	t.Run("BadRangeIsAnError", func(t *testing.T) {
		s := r.Subject(base, base)
		s.Head = strings.Repeat("a", 40)
		if res := c.Run(ctx, s); res.Status != checks.StatusError {
			t.Fatalf("status %s", res.Status)
		}
	})
}

func TestParseDiagnostics(t *testing.T) {
	out := `# example.com/m/a
a/a.go:5:24: fmt.Printf format %d has arg "x" of wrong type string
vet: a/b.go:3:23: cannot use "x" (untyped string constant) as int value in return statement
/tree/mod/c/c.go:7:2: unreachable code
/elsewhere/x.go:1:1: outside
a/a.go:5:24: fmt.Printf format %d has arg "x" of wrong type string
noise without position
d.go:9: no column (SA4006)
`
	got := ParseDiagnostics("go vet", out, "/tree/mod", "/tree")
	want := []string{"mod/a/a.go:5", "mod/a/b.go:3", "mod/c/c.go:7", "/elsewhere/x.go:1", "mod/d.go:9"}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i, d := range got {
		if s := d.Path + ":" + strconv.Itoa(d.Line); s != want[i] {
			t.Errorf("diag %d = %s, want %s", i, s, want[i])
		}
	}
}

func FuzzParseDiagnostics(f *testing.F) {
	f.Add("a/a.go:5:24: msg\nvet: b.go:1:1: x\n")
	f.Add("../../etc/passwd.go:1:1: escape\n")
	f.Fuzz(func(t *testing.T, out string) {
		for _, d := range ParseDiagnostics("go vet", out, "/tree/mod", "/tree") {
			if d.Line < 0 || d.Message == "" || !strings.HasSuffix(d.Path, ".go") {
				t.Fatalf("bad diagnostic %+v", d)
			}
		}
	})
}
