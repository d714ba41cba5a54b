package policies

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const exampleRepo = "../examples/payments-repo"

func readExample(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(exampleRepo, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// copyExample copies the example repository into a temp dir so a test can
// break it.
func copyExample(t testing.TB) string {
	t.Helper()
	dst := t.TempDir()
	err := os.CopyFS(dst, os.DirFS(exampleRepo))
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func writeFile(t testing.TB, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func editFile(t testing.TB, root, rel, old, new string) {
	t.Helper()
	p := filepath.Join(root, rel)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not contain %q", rel, old)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func asProblems(t testing.TB, err error) Problems {
	t.Helper()
	if err == nil {
		return nil
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error is %T, want Problems: %v", err, err)
	}
	return ps
}

// findProblem returns the first problem on field whose message contains
// substr.
func findProblem(ps Problems, field, substr string) (Problem, bool) {
	for _, p := range ps {
		if p.Field == field && strings.Contains(p.Message, substr) {
			return p, true
		}
	}
	return Problem{}, false
}

func mustFind(t testing.TB, ps Problems, field, substr string) Problem {
	t.Helper()
	p, ok := findProblem(ps, field, substr)
	if !ok {
		t.Fatalf("no problem on field %q containing %q; got:\n%v", field, substr, ps)
	}
	return p
}
