package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Harvest is what HarvestBundle brought out of the sandbox.
type Harvest struct {
	// Bundle is the host copy of the agent's bundle.
	Bundle string `json:"bundle"`
	// Repo is a fresh bare repository holding the agent's branches as
	// refs/heads/agent/<branch>.
	Repo  string            `json:"repo"`
	Refs  map[string]string `json:"refs"` // bundle ref -> object id
	Bytes int64             `json:"bytes"`
}

// DefaultBundlePath is where the agent writes its bundle, relative to the
// volume root.
const DefaultBundlePath = "out/agent.bundle"

// MaxBundleBytes caps a harvested bundle by default (512 MiB).
const MaxBundleBytes = 512 << 20

var refNameRE = regexp.MustCompile(`^refs/heads/[A-Za-z0-9._/-]+$`)

// ExportSpec is the run that makes the bundle inside the sandbox, with the
// sandbox's own (allowlisted) git: the only export path. The agent's git
// configuration runs, if at all, in there.
func ExportSpec(volume, repoRel string) RunSpec {
	return RunSpec{Wrapper: "git", Dir: ".", Args: []string{
		"-C", filepath.Join(volume, repoRel), "bundle", "create",
		filepath.Join(volume, DefaultBundlePath), "--branches",
	}}
}

// SafeGitEnv is the environment of every host git call: no system or global
// configuration, no prompts, a neutral HOME.
func SafeGitEnv(home string) []string {
	return []string{
		"PATH=/usr/bin:/bin", "HOME=" + home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0", "GIT_ATTR_NOSYSTEM=1", "LC_ALL=C",
	}
}

// SafeGit returns a host git command that ignores every configuration the
// agent could have written: fsmonitor off, hooks pointed at /dev/null, no
// external diff or pager. It refuses safe.directory overrides: a repository
// the host does not own stays "dubious" and git runs nothing in it.
func SafeGit(ctx context.Context, home, dir string, args ...string) (*exec.Cmd, error) {
	for _, a := range args {
		if strings.Contains(strings.ToLower(a), "safe.directory") {
			return nil, errors.New("host git: safe.directory overrides are refused: they let git run an agent repository's fsmonitor and hooks on the host")
		}
	}
	full := append([]string{
		"-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-c", "core.pager=cat",
		"-c", "diff.external=", "-c", "core.sshCommand=false", "-c", "protocol.ext.allow=never",
		"--no-pager",
	}, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Dir = dir
	cmd.Env = SafeGitEnv(home)
	return cmd, nil
}

func runSafeGit(ctx context.Context, home, dir string, args ...string) ([]byte, error) {
	cmd, err := SafeGit(ctx, home, dir, args...)
	if err != nil {
		return nil, err
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(limitString(errb.String(), 2000)))
	}
	return out.Bytes(), nil
}

// HarvestBundle copies the agent's bundle out of the volume through the
// read-only harvest view without following any symlink (the whole path is
// resolved beneath the view, links refused), then imports its branches into
// a fresh bare repository in destDir. Nothing in the volume is ever run or
// read as configuration: the bundle is data.
func HarvestBundle(ctx context.Context, view, rel, destDir string, maxBytes int64) (Harvest, error) {
	if maxBytes <= 0 {
		maxBytes = MaxBundleBytes
	}
	var h Harvest
	if err := os.MkdirAll(destDir, 0o700); err != nil {
		return h, fmt.Errorf("harvest: %w", err)
	}
	h.Bundle = filepath.Join(destDir, "agent.bundle")
	n, err := copyBeneath(view, rel, h.Bundle, maxBytes)
	if err != nil {
		return h, fmt.Errorf("harvest: %w", err)
	}
	h.Bytes = n
	home := filepath.Join(destDir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return h, fmt.Errorf("harvest: %w", err)
	}
	heads, err := runSafeGit(ctx, home, destDir, "bundle", "list-heads", h.Bundle)
	if err != nil {
		return h, fmt.Errorf("harvest: not a readable git bundle: %w", err)
	}
	h.Refs = map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(heads))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		if f[1] == "HEAD" {
			continue
		}
		if !refNameRE.MatchString(f[1]) || strings.Contains(f[1], "..") {
			return h, fmt.Errorf("harvest: bundle ref %q: only branches (refs/heads/...) are harvested", f[1])
		}
		h.Refs[f[1]] = f[0]
	}
	if len(h.Refs) == 0 {
		return h, errors.New("harvest: the bundle has no branches")
	}
	h.Repo = filepath.Join(destDir, "agent.git")
	if _, err := runSafeGit(ctx, home, destDir, "init", "--quiet", "--bare", h.Repo); err != nil {
		return h, fmt.Errorf("harvest: %w", err)
	}
	if _, err := runSafeGit(ctx, home, h.Repo, "fetch", "--quiet", "--no-tags", h.Bundle, "refs/heads/*:refs/heads/agent/*"); err != nil {
		return h, fmt.Errorf("harvest: importing the bundle: %w", err)
	}
	return h, nil
}
