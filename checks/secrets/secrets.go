package secrets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gitleaks/go-gitdiff/gitdiff"
	"github.com/zricethezav/gitleaks/v8/detect"
	"github.com/zricethezav/gitleaks/v8/report"
	"github.com/zricethezav/gitleaks/v8/sources"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/internal/gitcli"
	"github.com/agentgate/agentgate/policies"
)

// Name is the check's name in reports.
const Name = "secrets"

// Files read from the base commit.
const (
	ConfigFile = ".gitleaks.toml"
	IgnoreFile = ".gitleaksignore"
)

// maxPolicyFile caps the base's gitleaks config and ignore file.
const maxPolicyFile = 4 << 20

// Check is the secret-scanning check.
type Check struct{}

// New returns the secrets check.
func New() checks.Check { return &Check{} }

// Name implements checks.Check.
func (*Check) Name() string { return Name }

// Run implements checks.Check.
func (*Check) Run(ctx context.Context, s *checks.Subject) checks.Result {
	res := checks.Result{Name: Name, Findings: []checks.Finding{}}
	findings, stats, err := Scan(ctx, s.Repo, s.Base, s.MergeBase, s.Head)
	res.Details = map[string]any{
		"files_scanned": stats.Files, "added_lines": stats.Lines, "bytes_scanned": stats.Bytes,
		"commit_messages": stats.Messages, "history_added_lines": stats.HistoryLines, "rules": stats.Rules, "repo_config": stats.RepoConfig,
		"ignore_entries_from_base": stats.IgnoreFile,
	}
	if err != nil {
		res.Status = checks.StatusError
		res.Reason = err.Error()
		return res
	}
	res.Findings = findings
	res.Status = checks.StatusPass
	if len(findings) > 0 {
		res.Status = checks.StatusFail
		res.Reason = fmt.Sprintf("%d possible secret%s in the change; the run stops until a human rotates them and re-authorizes", len(findings), plural(len(findings)))
	}
	return res
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// Stats describes what a scan covered.
type Stats struct {
	Files, Lines, Messages int
	// HistoryLines is how many lines the branch's commits add in total
	// (each commit's patch); those not in the net diff are scanned too.
	HistoryLines           int
	Bytes                  uint64
	Rules                  int
	RepoConfig, IgnoreFile bool
}

// Scan runs gitleaks over the lines added by mergeBase..head and the
// messages of its commits, with the rules and ignore file of the policy
// commit base. Findings carry no secret material.
func Scan(ctx context.Context, repo, base, mergeBase, head string) ([]checks.Finding, Stats, error) {
	var st Stats
	for _, sha := range []string{base, mergeBase, head} {
		if !gitcli.IsSHA(sha) {
			return nil, st, fmt.Errorf("commit %q is not a resolved SHA; the engine must verify the range first", sha)
		}
	}
	if err := gitcli.VerifyCommits(ctx, repo, base, mergeBase, head); err != nil {
		return nil, st, err
	}
	// What git says was added, and the commits, are read while the scan
	// runs; the scan must then account for every added line.
	var (
		changes  []gitcli.Change
		diffErr  error
		commits  []gitcli.Commit
		logErr   error
		logDone  = make(chan struct{})
		diffDone = make(chan struct{})
	)
	go func() {
		defer close(diffDone)
		changes, diffErr = gitcli.Diff(ctx, repo, mergeBase, head)
	}()
	go func() {
		defer close(logDone)
		commits, logErr = gitcli.Log(ctx, repo, mergeBase, head)
	}()
	var (
		histAdded int
		histErr   error
		histDone  = make(chan struct{})
	)
	go func() {
		defer close(histDone)
		histAdded, histErr = historyAddedLines(ctx, repo, mergeBase, head)
	}()
	wait := func() { <-diffDone; <-logDone; <-histDone }

	// Policy from the base commit only.
	files, err := gitcli.ReadFiles(ctx, repo, base, []string{ConfigFile, IgnoreFile}, maxPolicyFile)
	if err != nil {
		wait()
		return nil, st, fmt.Errorf("read the gitleaks config from base: %w", err)
	}
	repoTOML, hasConfig := files[ConfigFile]
	st.RepoConfig = hasConfig
	if !hasConfig {
		repoTOML = nil
	}
	cfg, err := Config(repoTOML)
	if err != nil {
		wait()
		return nil, st, fmt.Errorf("load the gitleaks rules (fix %s on the base branch): %w", ConfigFile, err)
	}
	st.Rules = len(cfg.Rules)
	d := detect.NewDetectorContext(ctx, *cfg)
	d.MaxDecodeDepth = 5
	d.Redact = 100
	d.IgnoreGitleaksAllow = true
	d.MaxArchiveDepth = 0
	if ignore, ok := files[IgnoreFile]; ok {
		st.IgnoreFile = true
		if err := addIgnore(d, ignore); err != nil {
			wait()
			return nil, st, err
		}
	}

	src := &changeSource{repo: repo, from: mergeBase, head: head, commits: func() ([]gitcli.Commit, error) {
		<-logDone
		return commits, logErr
	}}
	found, err := d.DetectSource(ctx, src)
	wait()
	if err == nil && logErr != nil {
		err = logErr
	}
	if err == nil && diffErr != nil {
		err = diffErr
	}
	if err == nil && histErr != nil {
		err = histErr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, st, fmt.Errorf("secret scan: %w", err)
	}
	want := map[string]int{}
	for _, c := range changes {
		if c.Status != 'D' && !c.Binary && c.Added > 0 && c.NewMode != gitcli.ModeSubmodule {
			want[c.Path] = c.Added
		}
	}
	st.Files, st.Lines, st.Messages, st.Bytes = len(src.seen), src.lines(), len(commits), d.TotalBytes.Load()

	// Fail closed on anything the parser did not account for.
	for p, n := range want {
		if got := src.seen[p]; got != n {
			return nil, st, fmt.Errorf("secret scan covered %d of the %d added lines of %s; refusing to report no secrets", got, n, p)
		}
	}
	st.HistoryLines = src.historyLines
	if src.historyLines != histAdded {
		return nil, st, fmt.Errorf("secret scan covered %d of the %d lines the branch's commits add; refusing to report no secrets", src.historyLines, histAdded)
	}
	if (len(want) > 0 || len(commits) > 0) && st.Bytes == 0 {
		return nil, st, errors.New("secret scan read nothing from a non-empty change; refusing to report no secrets")
	}
	return convert(found, head), st, nil
}

// addIgnore hands the base's ignore file to gitleaks, which only reads
// files from disk.
func addIgnore(d *detect.Detector, data []byte) error {
	dir, err := os.MkdirTemp("", "agentgate-gitleaksignore-")
	if err != nil {
		return fmt.Errorf("stage %s: %w", IgnoreFile, err)
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, IgnoreFile)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		return fmt.Errorf("stage %s: %w", IgnoreFile, err)
	}
	if err := d.AddGitleaksIgnore(p); err != nil {
		return fmt.Errorf("read %s from base: %w", IgnoreFile, err)
	}
	return nil
}

// convert maps gitleaks findings to check findings, copying only fields
// that cannot hold the secret.
func convert(found []report.Finding, head string) []checks.Finding {
	out := make([]checks.Finding, 0, len(found))
	for _, f := range found {
		cf := checks.Finding{
			Rule:     f.RuleID,
			Severity: checks.SeverityCritical,
			Stop:     policies.StopSecretExposure,
		}
		where := ""
		switch {
		case strings.HasPrefix(f.File, messagePrefix):
			where = "in the commit message of " + shortSHA(f.Commit)
		case f.Commit != head:
			cf.Path, cf.Line = f.File, f.StartLine
			where = "added in commit " + shortSHA(f.Commit) + " and gone from the final change, but still in the branch's history"
		default:
			cf.Path, cf.Line = f.File, f.StartLine
			where = "added by the change"
		}
		cf.Message = fmt.Sprintf("possible secret (gitleaks rule %s) %s; the value is redacted. Rotate the credential, remove it from the branch history and ask a human to re-authorize the run",
			f.RuleID, where)
		// gitleaks' fingerprint (commit:file:rule:line) holds no secret and
		// is what a base .gitleaksignore line would name.
		cf.Fingerprint = f.Fingerprint
		out = append(out, cf)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		if out[i].Line != out[j].Line {
			return out[i].Line < out[j].Line
		}
		return out[i].Fingerprint < out[j].Fingerprint
	})
	return out
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// messagePrefix marks fragments that are commit messages, not files.
const messagePrefix = "(commit message) "

// changeSource yields the added lines of from..head (one fragment per
// hunk) and the commit messages, scanning files in parallel.
type changeSource struct {
	repo, from, head string
	commits          func() ([]gitcli.Commit, error) // waits for the log

	netLines     map[string]struct{} // every line the net diff adds
	historyLines int                 // added lines parsed from the branch history

	mu    sync.Mutex
	seen  map[string]int // added lines parsed per path
	total atomic.Int64
}

func (s *changeSource) lines() int { return int(s.total.Load()) }

// Fragments implements sources.Source.
func (s *changeSource) Fragments(ctx context.Context, yield sources.FragmentsFunc) error {
	s.seen = map[string]int{}
	s.netLines = map[string]struct{}{}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	history := s.startHistory(ctx)
	cmd, err := gitcli.Command(ctx, s.repo, "diff", "-U0", "-M", "--no-color", "--no-ext-diff", "--no-textconv",
		"--ignore-submodules=none", "--src-prefix=a/", "--dst-prefix=b/", "--end-of-options", s.from+".."+s.head, "--")
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &limited{w: &stderr, n: 4096}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start git diff: %w", err)
	}
	files, err := gitdiff.Parse(stdout)
	if err != nil {
		cancel()
		_ = cmd.Wait()
		return fmt.Errorf("parse git diff: %w", err)
	}

	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		work     = make(chan *gitdiff.File)
	)
	setErr := func(e error) { errOnce.Do(func() { firstErr = e; cancel() }) }
	workers := max(1, runtime.GOMAXPROCS(0))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				if err := s.file(f, yield); err != nil {
					setErr(err)
				}
			}
		}()
	}
	for f := range files {
		if ctx.Err() != nil {
			continue // drain so the parser goroutine ends
		}
		work <- f
	}
	close(work)
	wg.Wait()
	_, _ = io.Copy(io.Discard, stdout)
	waitErr := cmd.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if waitErr != nil {
		return fmt.Errorf("git diff: %v: %s", waitErr, strings.TrimSpace(stderr.String()))
	}
	if err := s.scanHistory(history, yield); err != nil {
		return err
	}
	commits, err := s.commits()
	if err != nil {
		return err
	}
	for _, c := range commits {
		frag := sources.Fragment{Raw: c.Message, FilePath: messagePrefix + c.SHA, CommitSHA: c.SHA, StartLine: 1}
		if err := yield(frag, nil); err != nil {
			return err
		}
	}
	return nil
}

func (s *changeSource) file(f *gitdiff.File, yield sources.FragmentsFunc) error {
	if f.IsDelete || f.IsBinary {
		return nil
	}
	n := 0
	var lines []string
	for _, tf := range f.TextFragments {
		if tf == nil {
			continue
		}
		raw := tf.Raw(gitdiff.OpAdd)
		n += int(tf.LinesAdded)
		for _, l := range tf.Lines {
			if l.Op == gitdiff.OpAdd {
				lines = append(lines, l.Line)
			}
		}
		if raw == "" {
			continue
		}
		frag := sources.Fragment{Raw: raw, FilePath: f.NewName, StartLine: int(tf.NewPosition), CommitSHA: s.head}
		if err := yield(frag, nil); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.seen[f.NewName] += n
	for _, l := range lines {
		s.netLines[l] = struct{}{}
	}
	s.mu.Unlock()
	s.total.Add(int64(n))
	return nil
}

type limited struct {
	w io.Writer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

// historyResult is the branch's per-commit patches, parsed while the net
// diff is scanned.
type historyResult struct {
	files []*gitdiff.File
	err   error
}

// startHistory runs `git log -p -U0` over from..head (no merges) and
// parses it in the background.
func (s *changeSource) startHistory(ctx context.Context) <-chan historyResult {
	out := make(chan historyResult, 1)
	go func() {
		var res historyResult
		defer func() { out <- res }()
		cmd, err := gitcli.Command(ctx, s.repo, "log", "-p", "-U0", "-M", "--no-merges", "--format=medium", "--no-decorate",
			"--no-color", "--no-ext-diff", "--no-textconv", "--ignore-submodules=none", "--src-prefix=a/", "--dst-prefix=b/",
			"--end-of-options", s.from+".."+s.head, "--")
		if err != nil {
			res.err = err
			return
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			res.err = err
			return
		}
		var stderr strings.Builder
		cmd.Stderr = &limited{w: &stderr, n: 4096}
		if err := cmd.Start(); err != nil {
			res.err = fmt.Errorf("start git log: %w", err)
			return
		}
		files, err := gitdiff.Parse(stdout)
		if err != nil {
			_ = cmd.Wait()
			res.err = fmt.Errorf("parse git log: %w", err)
			return
		}
		for f := range files {
			res.files = append(res.files, f)
		}
		_, _ = io.Copy(io.Discard, stdout)
		if err := cmd.Wait(); err != nil {
			res.err = fmt.Errorf("git log: %v: %s", err, strings.TrimSpace(stderr.String()))
		}
	}()
	return out
}

// scanHistory yields the lines some commit of the branch added that the
// net diff does not: a secret added and removed again within the branch
// is still in its history (and on the remote), so it counts.
func (s *changeSource) scanHistory(history <-chan historyResult, yield sources.FragmentsFunc) error {
	res := <-history
	if res.err != nil {
		return res.err
	}
	for _, f := range res.files {
		if f.IsDelete || f.IsBinary {
			continue
		}
		sha := s.head
		if f.PatchHeader != nil && f.PatchHeader.SHA != "" {
			sha = f.PatchHeader.SHA
		}
		for _, tf := range f.TextFragments {
			if tf == nil {
				continue
			}
			// With -U0 a hunk's added lines are consecutive on the new
			// side, starting at NewPosition.
			line := int(tf.NewPosition)
			var run []string
			runStart := 0
			flush := func() error {
				if len(run) == 0 {
					return nil
				}
				frag := sources.Fragment{Raw: strings.Join(run, ""), FilePath: f.NewName, StartLine: runStart, CommitSHA: sha}
				run = run[:0]
				return yield(frag, nil)
			}
			for _, l := range tf.Lines {
				if l.Op != gitdiff.OpAdd {
					continue
				}
				s.historyLines++
				if _, scanned := s.netLines[l.Line]; scanned {
					if err := flush(); err != nil {
						return err
					}
				} else {
					if len(run) == 0 {
						runStart = line
					}
					run = append(run, l.Line)
				}
				line++
			}
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// historyAddedLines sums the lines each commit of from..head (no merges)
// adds to text files, as git counts them.
func historyAddedLines(ctx context.Context, repo, from, head string) (int, error) {
	out, err := gitcli.Run(ctx, repo, "log", "--no-merges", "--format=", "--numstat", "-z", "-M", "--no-ext-diff", "--no-textconv",
		"--ignore-submodules=none", "--end-of-options", from+".."+head, "--")
	if err != nil {
		return 0, fmt.Errorf("count the lines of the branch's commits: %w", err)
	}
	// Commits are separated by empty records in some git versions.
	out = bytes.ReplaceAll(out, []byte{0, 0}, []byte{0})
	out = bytes.TrimLeft(out, "\x00\n")
	entries, err := gitcli.ParseNumstat(out)
	if err != nil {
		return 0, fmt.Errorf("count the lines of the branch's commits: %w", err)
	}
	n := 0
	for _, e := range entries {
		if !e.Binary {
			n += e.Added
		}
	}
	return n, nil
}
