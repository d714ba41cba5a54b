package githubdouble

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// SharedTestdata returns the absolute path of the shared GitHub corpus
// (<root>/../shared/testdata/github). It walks up from the working directory
// (a test's package directory) and looks, at every level, for
// shared/testdata/github beside the directory. CI places shared/ beside the
// checkout exactly as in development (/work/shared next to /work/main).
func SharedTestdata() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("githubdouble: cannot read the working directory: %w", err)
	}
	for {
		cand := filepath.Join(dir, "shared", "testdata", "github")
		if st, err := os.Stat(filepath.Join(cand, "openapi", "api.github.com.subset.json")); err == nil && !st.IsDir() {
			return cand, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("githubdouble: shared/testdata/github not found in any parent directory of the test; " +
				"place the shared corpus beside the checkout (../shared/testdata/github relative to the repository root)")
		}
		dir = parent
	}
}

// MustSharedTestdata is SharedTestdata for tests: it fails the test with a
// clear message when the corpus is missing.
func MustSharedTestdata(t interface {
	Helper()
	Fatalf(string, ...any)
}) string {
	t.Helper()
	p, err := SharedTestdata()
	if err != nil {
		t.Fatalf("%v", err)
	}
	return p
}
