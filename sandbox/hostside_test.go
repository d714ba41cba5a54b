package sandbox

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestHostCodeNeverTreatsVolumeFilesAsConfig is test 35, a static check of
// the host code path: the only host git call is SafeGit (in harvest.go),
// nothing sets safe.directory, and no host code reads tool configuration
// files an agent could plant (.envrc, .mcp.json, .gitconfig, .claude/,
// .vscode/).
func TestHostCodeNeverTreatsVolumeFilesAsConfig(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	gitCall := regexp.MustCompile(`exec\.Command(Context)?\([^)]*"git"`)
	configNames := []string{".envrc", ".mcp.json", ".gitconfig", ".claude/", ".vscode/", "fsmonitor="}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src := string(b)
		checked++
		if gitCall.MatchString(src) && f != "harvest.go" {
			t.Errorf("%s runs git on the host outside SafeGit", f)
		}
		if strings.Contains(src, `Path: "git"`) {
			t.Errorf("%s plans a host git command", f)
		}
		for _, n := range configNames {
			if strings.Contains(src, `"`+n) && !(f == "harvest.go" && n == "fsmonitor=") {
				t.Errorf("%s refers to %q: host code must not read agent-writable configuration", f, n)
			}
		}
		if f != "harvest.go" && strings.Contains(src, "safe.directory") {
			t.Errorf("%s mentions safe.directory", f)
		}
	}
	if checked < 5 {
		t.Fatalf("checked only %d files: the test is not looking at the package", checked)
	}
}
