//go:build linux

package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestHarvestNeverFollowsAgentSymlinks covers test 33: a bundle path that
// is, or passes through, an agent-made symlink is refused with ELOOP.
func TestHarvestNeverFollowsAgentSymlinks(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	f.run(t, nil, "sh", "-c", "cd "+f.pol.Volume.MountPoint+" && rm -rf out/* && ln -s "+f.secret+" out/agent.bundle && ln -s /etc out/etc")
	for _, rel := range []string{DefaultBundlePath, "out/etc/passwd"} {
		_, err := HarvestBundle(ctx, f.d.HarvestView(), rel, t.TempDir(), 0)
		if err == nil || !errorsIs(err, syscall.ELOOP) {
			t.Errorf("%s: err %v, want ELOOP", rel, err)
		}
	}
	// The same path through the read-write mount would have followed the
	// link: the view's nosymfollow is what stops a naive reader.
	if _, err := os.ReadFile(filepath.Join(f.d.HarvestView(), "out", "etc", "hostname")); !errorsIs(err, syscall.ELOOP) {
		t.Errorf("reading through the harvest view followed a link: %v", err)
	}
	if _, err := HarvestBundle(ctx, f.d.HarvestView(), "../state.json", t.TempDir(), 0); err == nil {
		t.Error("a path leaving the volume was accepted")
	}
}

// TestHarvestRunsNothingFromAgentRepo covers test 34: an agent repository
// with core.fsmonitor, hooks, core.hooksPath, a clean/smudge filter and an
// embedded bare repository is exported as a bundle made inside the sandbox;
// harvesting and using it on the host runs none of them. A control shows
// that the marker mechanism works (a naive host `git status` with
// safe.directory=* does run the agent's fsmonitor).
func TestHarvestRunsNothingFromAgentRepo(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	marks := filepath.Join(f.base, "marks")
	if err := os.MkdirAll(marks, 0o755); err != nil {
		t.Fatal(err)
	}
	hook := "#!/bin/sh\ntouch " + marks + "/hook-$(basename $0)\n"
	script := strings.Join([]string{
		"set -e", "cd " + f.pol.Volume.MountPoint, "rm -rf out/* work/repo", "cd work", "git init -q repo", "cd repo",
		"echo hello > a.txt", "git init -q --bare sub.git", "git -C sub.git config core.fsmonitor 'touch " + marks + "/embedded'",
		"git add -A", "git -c user.name=agent -c user.email=agent@example.invalid commit -qm 'agent work'",
		"git checkout -q -b feature",
		"git config core.fsmonitor 'touch " + marks + "/fsmonitor'",
		"mkdir -p .git/hooks .githooks",
		"for h in post-checkout post-merge post-rewrite pre-push reference-transaction post-index-change; do printf '" + hook + "' > .git/hooks/$h; cp .git/hooks/$h .githooks/$h; chmod +x .git/hooks/$h .githooks/$h; done",
		"git config core.hooksPath .githooks",
		"echo '* filter=evil diff=evil' > .gitattributes",
		"git config filter.evil.clean 'touch " + marks + "/clean'",
		"git config filter.evil.smudge 'touch " + marks + "/smudge'",
		"git config diff.evil.textconv 'touch " + marks + "/textconv'",
		"git config core.pager 'touch " + marks + "/pager'",
	}, "\n")
	res, _, stderr := f.run(t, nil, "sh", "-c", script)
	if res.ExitCode != 0 {
		t.Fatalf("making the agent repo: exit %d: %s", res.ExitCode, stderr)
	}
	spec := ExportSpec(f.pol.Volume.MountPoint, "work/repo")
	var errb strings.Builder
	spec.Stderr = &errb
	res, err := f.d.Run(ctx, spec)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("bundle export: %v exit %d: %s", err, res.ExitCode, errb.String())
	}

	dest := t.TempDir()
	h, err := HarvestBundle(ctx, f.d.HarvestView(), DefaultBundlePath, dest, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Refs) != 2 || h.Refs["refs/heads/feature"] == "" {
		t.Fatalf("refs %v, want the agent's two branches", h.Refs)
	}
	// Use the result the way the gate would: log, diff, check out.
	for _, args := range [][]string{
		{"-C", h.Repo, "log", "--oneline", "agent/feature"},
		{"-C", h.Repo, "diff", "--stat", "agent/feature~0", "agent/feature"},
		{"clone", "-q", "--branch", "agent/feature", h.Repo, filepath.Join(dest, "wt")},
		{"-C", filepath.Join(dest, "wt"), "status", "--short"},
	} {
		if _, err := runSafeGit(ctx, filepath.Join(dest, "home"), dest, args...); err != nil {
			t.Fatal(err)
		}
	}
	if ents, _ := os.ReadDir(marks); len(ents) > 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("agent git configuration ran on the host: %v", names)
	}
	if _, err := SafeGit(ctx, dest, dest, "-c", "safe.directory=*", "status"); err == nil {
		t.Fatal("SafeGit accepted a safe.directory override")
	}

	t.Run("control: a naive host git in the volume runs the agent's fsmonitor", func(t *testing.T) {
		cmd, _ := SafeGit(ctx, dest, dest)
		naive := append([]string{"git", "-c", "safe.directory=*", "-C", filepath.Join(f.pol.Volume.MountPoint, "work", "repo"), "status"}, []string{}...)
		cmd.Path, cmd.Args = "/usr/bin/git", naive
		_ = cmd.Run()
		if _, err := os.Stat(filepath.Join(marks, "fsmonitor")); err != nil {
			t.Fatalf("the control did not trigger the fsmonitor marker (%v): the test above would prove nothing", err)
		}
	})
}
