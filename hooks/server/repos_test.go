package server

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bradleyfalzon/ghinstallation/v2"
	github88 "github.com/google/go-github/v88/github"

	"github.com/agentgate/agentgate/test/githubdouble"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=a", "GIT_AUTHOR_EMAIL=a@x", "GIT_COMMITTER_NAME=a", "GIT_COMMITTER_EMAIL=a@x")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func fixture(t *testing.T) (*githubdouble.Double, string, map[string]string) {
	d := githubdouble.New(t)
	d.AddInstallation(5, "octo/app")
	bare := d.AddRepo("octo/app")
	work := t.TempDir()
	git(t, work, "init", "-q", "-b", "develop")
	git(t, work, "commit", "-q", "--allow-empty", "-m", "base")
	git(t, work, "checkout", "-q", "-b", "agent/x")
	git(t, work, "commit", "-q", "--allow-empty", "-m", "head")
	git(t, work, "checkout", "-q", "-b", "unrelated")
	git(t, work, "commit", "-q", "--allow-empty", "-m", "other")
	git(t, work, "push", "-q", bare, "develop", "agent/x", "unrelated")
	return d, work, map[string]string{"develop": git(t, work, "rev-parse", "develop"), "agent/x": git(t, work, "rev-parse", "agent/x"), "unrelated": git(t, work, "rev-parse", "unrelated")}
}

func token(t *testing.T, d *githubdouble.Double) string {
	tr, err := ghinstallation.New(http.DefaultTransport, d.AppID, 5, d.PrivateKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	tr.BaseURL = strings.TrimSuffix(d.APIURL, "/")
	tr.InstallationTokenOptions = &github88.InstallationTokenOptions{}
	tok, err := tr.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestFetchOnlyNeededRefsWithToken(t *testing.T) {
	d, _, shas := fixture(t)
	rc, err := newRepoCache(t.TempDir(), d.GitURL)
	if err != nil {
		t.Fatal(err)
	}
	dir, got, err := rc.Fetch(context.Background(), "octo/app", token(t, d), []string{"agent/x", "develop"}, shas["agent/x"])
	if err != nil {
		t.Fatal(err)
	}
	if got["develop"] != shas["develop"] || got["agent/x"] != shas["agent/x"] {
		t.Fatalf("shas = %v", got)
	}
	if err := exec.Command("git", "--git-dir", dir, "cat-file", "-e", shas["unrelated"]+"^{commit}").Run(); err == nil {
		t.Fatal("an unrequested branch was fetched")
	}
	// Nothing persisted the token.
	filepath.Walk(filepath.Dir(dir), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && info.Size() < 1<<20 {
			b, _ := os.ReadFile(p)
			if strings.Contains(string(b), "ghs_") {
				t.Errorf("token written to %s", p)
			}
		}
		return nil
	})
}

func TestFetchErrorsNeverContainTheToken(t *testing.T) {
	d, _, shas := fixture(t)
	rc, _ := newRepoCache(t.TempDir(), d.GitURL)
	bad := "ghs_this_is_not_a_valid_token_0123456789"
	_, _, err := rc.Fetch(context.Background(), "octo/app", bad, []string{"agent/x"}, shas["agent/x"])
	if err == nil {
		t.Fatal("fetch with an invalid token succeeded")
	}
	if strings.Contains(err.Error(), bad) || strings.Contains(err.Error(), "this_is_not") {
		t.Fatalf("error leaks the token: %v", err)
	}
}

func TestFetchRefusesHostileInput(t *testing.T) {
	d, _, shas := fixture(t)
	rc, _ := newRepoCache(t.TempDir(), d.GitURL)
	ctx := context.Background()
	tok := token(t, d)
	for _, tc := range []struct {
		repo     string
		branches []string
		head     string
	}{
		{"../etc", []string{"develop"}, shas["develop"]},
		{"octo/app/../../x", []string{"develop"}, shas["develop"]},
		{"octo/app", []string{"--upload-pack=touch /tmp/x"}, shas["develop"]},
		{"octo/app", []string{"a..b"}, shas["develop"]},
		{"octo/app", []string{"develop"}, "HEAD"},
		{"octo/app", []string{"develop"}, "--all"},
	} {
		if _, _, err := rc.Fetch(ctx, tc.repo, tok, tc.branches, tc.head); err == nil {
			t.Errorf("Fetch(%q, %q, %q) accepted", tc.repo, tc.branches, tc.head)
		}
	}
	// A head that is not in the repository is reported as gone.
	_, _, err := rc.Fetch(ctx, "octo/app", tok, []string{"develop"}, strings.Repeat("1", 40))
	if !errors.Is(err, ErrCommitGone) {
		t.Fatalf("missing head: %v", err)
	}
}
