package forge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentgate/agentgate/gate/ladder"
)

// hookMarker identifies a pre-receive hook written by agentgate.
const hookMarker = "# installed by agentgate hooks install"

// InstallOptions say where the hook finds agentgate and its state.
type InstallOptions struct {
	Binary string   // absolute path of the agentgate binary the hook runs
	Args   []string // extra arguments for `agentgate hooks pre-receive` (e.g. --db)
	Force  bool     // replace a pre-receive hook agentgate did not write
}

// Install writes repo's hooks/pre-receive so that every push is evaluated by
// `agentgate hooks pre-receive --repo REPO`. It refuses to replace a hook it
// did not write unless opts.Force is set.
func Install(repo string, opts InstallOptions) (string, error) {
	abs, err := filepath.Abs(repo)
	if err != nil {
		return "", err
	}
	if st, err := os.Stat(filepath.Join(abs, "objects")); err != nil || !st.IsDir() {
		return "", fmt.Errorf("%s is not a bare git repository (no objects/ directory); pass the server-side PATH.git", repo)
	}
	if !filepath.IsAbs(opts.Binary) {
		return "", fmt.Errorf("the agentgate binary path %q must be absolute", opts.Binary)
	}
	hooks := filepath.Join(abs, "hooks")
	if err := os.MkdirAll(hooks, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(hooks, "pre-receive")
	if old, err := os.ReadFile(path); err == nil && !bytes.Contains(old, []byte(hookMarker)) && !opts.Force {
		return "", fmt.Errorf("%s exists and was not written by agentgate; move it away or pass --force to replace it", path)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	args := append([]string{opts.Binary, "hooks", "pre-receive", "--repo", abs}, opts.Args...)
	var q []string
	for _, a := range args {
		q = append(q, shellQuote(a))
	}
	script := "#!/bin/sh\n" + hookMarker + `
# Every pushed ref update is evaluated by the promotion ladder; a refusal
# rejects the whole push with the reasons. Remove this file to disable.
exec ` + strings.Join(q, " ") + "\n"
	tmp := path + ".agentgate-tmp"
	if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return path, nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Environment variables the hook reads.
const (
	// EnvGHESLogin is set by GitHub Enterprise Server in pre-receive hooks:
	// the authenticated pusher.
	EnvGHESLogin = "GITHUB_USER_LOGIN"
	// EnvPusher and EnvPusherEmail name the pusher on a plain git server
	// (set by the SSH forced command or, locally, by the pusher: a local
	// forge trusts whoever can write to the repository anyway).
	EnvPusher      = "AGENTGATE_PUSHER"
	EnvPusherEmail = "AGENTGATE_PUSHER_EMAIL"
	// EnvQuarantine is where git keeps pushed objects during pre-receive.
	EnvQuarantine = "GIT_QUARANTINE_PATH"
)

// PusherFromEnv identifies the pusher: GHES's authenticated login first.
func PusherFromEnv(getenv func(string) string) ladder.Pusher {
	p := ladder.Pusher{Login: getenv(EnvGHESLogin), Email: getenv(EnvPusherEmail)}
	if p.Login == "" {
		p.Login = getenv(EnvPusher)
	}
	return p
}

// RunHook is the body of `agentgate hooks pre-receive`: read the updates,
// evaluate them, print the decisions. It returns the hook's exit status
// (0 accept, 1 refuse).
func RunHook(ctx context.Context, f *Forge, stdin io.Reader, stderr io.Writer, getenv func(string) string) int {
	updates, err := ParseUpdates(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "agentgate: REFUSED: %v\n", err)
		return 1
	}
	if f.Quarantine == "" {
		f.Quarantine = getenv(EnvQuarantine)
	}
	err = f.PreReceive(ctx, updates, PusherFromEnv(getenv), stderr)
	var re *RefusedError
	switch {
	case errors.As(err, &re):
		fmt.Fprintf(stderr, "agentgate: push refused (%d reason(s) above)\n", len(re.Reasons))
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "agentgate: REFUSED: %v\n", err)
		return 1
	}
	return 0
}
