package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/basecache"
	"github.com/agentgate/agentgate/checks/gopkgs"
	"github.com/agentgate/agentgate/checks/isolate"
	"github.com/agentgate/agentgate/internal/gitcli"
	"github.com/agentgate/agentgate/policies"
)

// Name is the check's name in reports.
const Name = "tests"

// Defaults.
const (
	DefaultTimeout   = 10 * time.Minute
	DefaultMaxOutput = 256 << 20
	maxProfileBytes  = 512 << 20
)

// DefaultCommand is the test command of Go threads without one.
var DefaultCommand = []string{"go", "test", "-json", "./..."}

// Config wires the check.
type Config struct {
	// Runner runs the tests with no network (required).
	Runner isolate.Runner
	// CacheDir is the root cache directory (basecache.DefaultRoot() when
	// empty): base results in CacheDir/tests-base, work trees in
	// CacheDir/work.
	CacheDir string
	// Timeout bounds one test command (DefaultTimeout when 0); the
	// thread's runtime.max_runtime lowers it.
	Timeout time.Duration
	// MaxOutput caps the test command's output (DefaultMaxOutput when 0).
	MaxOutput int64
	// DownloadModules runs `go mod download` on the host for head and base
	// before the isolated runs (which have GOPROXY=off). Without it every
	// dependency must already be in the module cache.
	DownloadModules bool
}

// Check is the tests check.
type Check struct{ cfg Config }

// New returns the check.
func New(cfg Config) *Check { return &Check{cfg: cfg} }

// Name implements checks.Check.
func (c *Check) Name() string { return Name }

// record is one evaluated run of the test command (cached for bases).
type record struct {
	Run      *Run     `json:"run,omitempty"`
	Profile  *Profile `json:"profile,omitempty"`
	ExitCode int      `json:"exit_code"`
	Stderr   string   `json:"stderr,omitempty"`
	Error    string   `json:"error,omitempty"` // the run could not complete
	Missing  bool     `json:"missing,omitempty"`
}

// plan is everything the check needs from the contracts.
type plan struct {
	thread  *policies.ThreadDir
	tests   policies.PlanTests
	frIDs   []string
	command []string
	custom  bool
	timeout time.Duration
	// hasPlan: the subject has a WORK_PLAN; without one no coverage
	// tolerance was declared and total coverage is only reported.
	hasPlan bool
}

func (c *Check) resolvePlan(s *checks.Subject) (plan, error) {
	p := plan{command: DefaultCommand}
	if s.Plan != nil {
		p.hasPlan = true
		p.tests = s.Plan.Tests
		p.frIDs = s.Plan.FRIDs
	}
	if s.Tree != nil {
		for _, td := range s.Tree.Threads {
			if s.Plan != nil && s.Plan.Thread != "" && (td.Dir == s.Plan.Thread || td.Config.Name == s.Plan.Thread) {
				p.thread = td
				break
			}
		}
		if p.thread == nil && s.PlanPath != "" {
			dir := path.Dir(s.PlanPath)
			for _, td := range s.Tree.Threads {
				if td.Dir == dir {
					p.thread = td
				}
			}
		}
	}
	if len(p.tests.Command) > 0 {
		p.command = p.tests.Command
		p.custom = !sameArgv(p.command, DefaultCommand)
		if p.custom {
			if p.thread == nil {
				return p, fmt.Errorf("the plan names test command %q but no thread on base allowlists tools for it", p.command[0])
			}
			tool := path.Base(p.command[0])
			ok := false
			for _, t := range p.thread.Config.Tools {
				if path.Base(t) == tool {
					ok = true
				}
			}
			if !ok {
				return p, fmt.Errorf("test command %q is not in thread %s's tools allowlist %v", p.command[0], p.thread.Dir, p.thread.Config.Tools)
			}
		}
	}
	p.timeout = c.cfg.Timeout
	if p.timeout <= 0 {
		p.timeout = DefaultTimeout
	}
	if p.thread != nil && p.thread.Config.Runtime.MaxRuntime != "" {
		if d, err := time.ParseDuration(string(p.thread.Config.Runtime.MaxRuntime)); err == nil && d > 0 && d < p.timeout {
			p.timeout = d
		}
	}
	return p, nil
}

func sameArgv(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Run implements checks.Check.
func (c *Check) Run(ctx context.Context, s *checks.Subject) (res checks.Result) {
	start := time.Now()
	res = checks.Result{Name: Name, Status: checks.StatusError, Findings: []checks.Finding{}, Details: map[string]any{}}
	defer func() { res.Duration = checks.Duration(time.Since(start)) }()
	errorf := func(format string, a ...any) checks.Result {
		res.Status = checks.StatusError
		res.Reason = fmt.Sprintf(format, a...)
		return res
	}
	if c.cfg.Runner == nil {
		return errorf("tests check misconfigured: no runner for untrusted code")
	}
	p, err := c.resolvePlan(s)
	if err != nil {
		res.Status = checks.StatusFail
		res.Reason = err.Error()
		res.Findings = append(res.Findings, checks.Finding{
			Rule: "tests.command-not-allowed", Severity: checks.SeverityHigh, Path: s.PlanPath,
			Message: err.Error(), Fingerprint: "tests:command-not-allowed:" + strings.Join(p.command, " "),
		})
		return res
	}
	res.Details["command"] = strings.Join(p.command, " ")

	changes, err := gitcli.Diff(ctx, s.Repo, s.Base, s.Head)
	if err != nil {
		return errorf("list changed files: %v", err)
	}

	root := c.cacheRoot()
	head, err := gopkgs.Export(ctx, root, s.Repo, "tests-head", s.Head)
	if err != nil {
		return errorf("%v", err)
	}
	defer head.Release()

	mods, err := gopkgs.Modules(head.Dir)
	if err != nil {
		return errorf("%v", err)
	}
	threadDir := "."
	if p.thread != nil {
		threadDir = p.thread.Dir
	}
	mod, hasMod := gopkgs.ModuleOf(mods, threadDir)
	if !hasMod && !p.custom {
		res.Status = checks.StatusSkipped
		res.Reason = "no Go module contains the thread " + threadDir + " on head, and the plan names no test command"
		return res
	}

	// The package graph on head: for selection, ownership of changed files
	// and mapping coverage profile entries to repository paths.
	var graph *gopkgs.Graph
	modAbs := filepath.Join(head.Dir, filepath.FromSlash(mod))
	if hasMod && c.cfg.DownloadModules {
		if err := gopkgs.DownloadModules(ctx, modAbs); err != nil {
			return errorf("%v", err)
		}
	}
	if hasMod {
		pkgs, iso, err := gopkgs.ListCommit(ctx, c.cfg.Runner, root, s.Head, head.Dir, mod)
		res.Details["isolation"] = iso
		if err != nil {
			if isRunnerErr(err) {
				return errorf("go list on head: %v", err)
			}
			res.Status = checks.StatusFail
			res.Reason = "go list failed on head: the module does not load"
			res.Findings = append(res.Findings, checks.Finding{Rule: "tests.build", Severity: checks.SeverityHigh, Path: path.Join(mod, "go.mod"),
				Message: "go list failed on head: " + err.Error(), Fingerprint: "tests:build:" + mod})
			return res
		}
		graph = gopkgs.NewGraph(pkgs)
	}

	// Which packages must run on head.
	accept := c.acceptanceTests(s, p)
	selection := "command"
	var headPkgs, affected []string
	if graph != nil {
		changedPkgs, all := gopkgs.ChangedPackages(graph, changedPaths(changes), head.Dir, mod)
		if all {
			affected = graph.All()
		} else {
			affected = graph.Affected(changedPkgs)
		}
		if !p.custom {
			selection = "affected"
			if all {
				selection = "all"
			}
			set := map[string]bool{}
			for _, ip := range affected {
				set[ip] = true
			}
			for _, a := range accept {
				if pk := resolvePackage(graph, a.Test.Package, head.Dir); pk != nil {
					set[pk.ImportPath] = true
				}
			}
			for ip := range set {
				headPkgs = append(headPkgs, ip)
			}
			sort.Strings(headPkgs)
			res.Details["packages_tested"] = len(headPkgs)
		}
		res.Details["packages_total"] = len(graph.Pkgs)
	}

	// Base results: the full suite, once per base commit and command. An
	// uncached base runs alongside the head run.
	baseSHA := s.MergeBase
	if baseSHA == "" {
		baseSHA = s.Base
	}
	store := basecache.Store{Dir: filepath.Join(root, "tests-base")}
	key := basecache.Key(baseSHA, mod, strings.Join(p.command, "\x00"), gopkgs.GoVersion())
	var base record
	cached := store.Get(key, &base)
	baseCh := make(chan record, 1)
	baseCtx, cancelBase := context.WithCancel(ctx)
	if cached {
		baseCh <- base
	} else {
		go func() { baseCh <- c.runBase(baseCtx, root, s.Repo, baseSHA, mod, p) }()
	}
	baseDone := false
	awaitBase := func() record {
		if !baseDone {
			base, baseDone = <-baseCh, true
		}
		return base
	}
	// On an early return: stop the base's tests, then wait for them.
	defer awaitBase()
	defer cancelBase()

	// Head run.
	runHead := func(pkgs []string, all bool) (ranRecord, error) {
		argv := p.command
		if !p.custom {
			argv = append(append([]string{}, DefaultCommand[:len(DefaultCommand)-1]...), pkgs...)
			if all {
				argv = DefaultCommand
			}
		}
		runDir := head.Dir
		if !p.custom {
			runDir = modAbs
		}
		return c.runTests(ctx, head, runDir, argv, p.timeout)
	}
	gopkgs.Logf(ctx, "selection %s: %d package(s) to test on head: %s", selection, len(headPkgs), summarizeArgv(headPkgs))
	var headRec ranRecord
	if selection == "affected" && len(headPkgs) == 0 {
		headRec.record = record{Run: &Run{Packages: map[string]*PackageResult{}}, Profile: &Profile{Mode: "set", Files: map[string]Counts{}}}
	} else {
		headRec, err = runHead(headPkgs, selection == "all")
		if err != nil {
			return errorf("run tests on head: %v", err)
		}
		res.Details["isolation"] = headRec.isolation
	}

	base = awaitBase()
	if ctx.Err() != nil {
		return errorf("interrupted while running the tests: %v", ctx.Err())
	}
	if !cached && base.Error == "" {
		_ = store.Put(key, base) // a failed cache write only costs time
	}
	res.Details["base_cached"] = cached
	gopkgs.Logf(ctx, "base %s: cached=%v error=%q missing=%v", baseSHA, cached, base.Error, base.Missing)
	if selection == "affected" && base.Run == nil {
		// Without the base's results the unaffected packages have none:
		// test the rest on head too instead of trusting nothing.
		tested := map[string]bool{}
		for _, ip := range headPkgs {
			tested[ip] = true
		}
		var rest []string
		for _, ip := range graph.All() {
			if !tested[ip] {
				rest = append(rest, ip)
			}
		}
		if len(rest) > 0 {
			more, err := runHead(rest, false)
			if err != nil {
				return errorf("run the remaining tests on head: %v", err)
			}
			mergeRecord(&headRec, more)
		}
		selection = "all"
		headPkgs = graph.All()
		res.Details["packages_tested"] = len(headPkgs)
		res.Details["selection_note"] = "the base's results are unavailable; every package was tested on head"
	}
	res.Details["selection"] = selection

	// A plan's own command may test less than the change can break: the
	// gate also runs `go test` on every affected package the command did
	// not cover (dependents in other threads included).
	var extraCover map[string]Counts
	if p.custom && headRec.Run != nil && len(affected) > 0 {
		var missing []string
		for _, ip := range affected {
			if _, ok := headRec.Run.Packages[ip]; !ok {
				missing = append(missing, ip)
			}
		}
		res.Details["packages_extra"] = len(missing)
		if len(missing) > 0 {
			argv := append(append([]string{}, DefaultCommand[:len(DefaultCommand)-1]...), missing...)
			extra, err := c.runTests(ctx, head, modAbs, argv, p.timeout)
			if err != nil {
				return errorf("run tests of affected packages outside the plan's command: %v", err)
			}
			for ip, pr := range extra.Run.Packages {
				if _, ok := headRec.Run.Packages[ip]; !ok {
					headRec.Run.Packages[ip] = pr
				}
			}
			if extra.ExitCode != 0 && !extra.Run.Red() {
				headRec.Stderr += "\n" + extra.Stderr
				if headRec.ExitCode == 0 {
					headRec.ExitCode = extra.ExitCode
				}
			}
			if extra.Profile != nil {
				extraCover = extra.Profile.Files
			}
		}
	}

	ev := evaluate(evalInput{
		plan: p, head: headRec.record, base: base, graph: graph, headDir: head.Dir, mod: mod,
		selection: selection, tested: headPkgs, changes: changes, accept: accept, extraCover: extraCover,
	})
	res.Findings = append(res.Findings, ev.findings...)
	for k, v := range ev.details {
		res.Details[k] = v
	}
	res.Status = checks.StatusPass
	if ev.failed {
		res.Status = checks.StatusFail
		res.Reason = ev.reason
	}
	return res
}

func isRunnerErr(err error) bool {
	return errors.Is(err, isolate.ErrTimeout) || errors.Is(err, isolate.ErrUnavailable) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func (c *Check) cacheRoot() string {
	if c.cfg.CacheDir != "" {
		return c.cfg.CacheDir
	}
	if d, err := basecache.DefaultRoot(); err == nil {
		return d
	}
	return filepath.Join(os.TempDir(), "agentgate-cache")
}

// runBase runs the full command on the base commit.
func (c *Check) runBase(ctx context.Context, root, repo, sha, mod string, p plan) record {
	if sha == "" {
		return record{Error: "no base commit"}
	}
	w, err := gopkgs.Export(ctx, root, repo, "tests-base", sha)
	if err != nil {
		return record{Error: err.Error()}
	}
	defer w.Release()
	runDir := w.Dir
	modDir := filepath.Join(w.Dir, filepath.FromSlash(mod))
	_, modErr := os.Stat(filepath.Join(modDir, "go.mod"))
	if !p.custom {
		runDir = modDir
		if modErr != nil {
			return record{Missing: true}
		}
	}
	if c.cfg.DownloadModules && modErr == nil {
		if err := gopkgs.DownloadModules(ctx, modDir); err != nil {
			return record{Error: err.Error()}
		}
	}
	r, err := c.runTests(ctx, w, runDir, p.command, p.timeout)
	if err != nil {
		return record{Error: err.Error()}
	}
	return r.record
}

type ranRecord struct {
	record
	isolation string
}

// runTests runs argv in dir (inside the exported tree w) and parses the
// results and the coverage profile.
func (c *Check) runTests(ctx context.Context, w *gopkgs.WorkTree, dir string, argv []string, timeout time.Duration) (ranRecord, error) {
	prog, err := resolveProgram(argv[0], w.Dir)
	if err != nil {
		return ranRecord{}, err
	}
	profile := filepath.Join(w.Scratch, "cover.out")
	_ = os.Remove(profile)
	if strings.ContainsAny(profile, " \t\n") {
		return ranRecord{}, fmt.Errorf("work directory %q contains whitespace; configure a cache dir without spaces", w.Scratch)
	}
	maxOut := c.cfg.MaxOutput
	if maxOut <= 0 {
		maxOut = DefaultMaxOutput
	}
	r, err := c.cfg.Runner.Run(ctx, isolate.Cmd{
		Path: prog, Args: argv[1:], Dir: dir, Timeout: timeout, MaxOutput: maxOut,
		Writable: []string{w.Dir, w.Scratch}, // Landlock: the tree and its scratch, nothing else of the host
		// A stable HOME/TMPDIR keeps results of tests that read them
		// (t.TempDir) in Go's test cache across evaluations.
		ScratchDir:   filepath.Join(w.Scratch, "run"),
		TestBinaries: true,
		// GOFLAGS reaches go test through wrappers too.
		Env: []string{"GOFLAGS=" + gopkgs.ModFlag(dir) + " -coverprofile=" + profile},
	})
	gopkgs.Logf(ctx, "ran %s in %s: exit %d, %s, %d bytes of output, isolation %q, err %v", summarizeArgv(argv), dir, r.ExitCode, r.Duration.Round(time.Millisecond), len(r.Stdout), r.Isolation, err)
	if len(r.Stderr) > 0 {
		gopkgs.Logf(ctx, "stderr (tail):\n%s", gopkgs.Tail(r.Stderr, 4000))
	}
	if err != nil {
		return ranRecord{isolation: r.Isolation}, err
	}
	if r.StdoutTruncated {
		return ranRecord{isolation: r.Isolation}, fmt.Errorf("test output exceeded %d bytes", maxOut)
	}
	run, err := ParseTestJSON(bytes.NewReader(r.Stdout))
	if err != nil {
		return ranRecord{isolation: r.Isolation}, err
	}
	rec := record{Run: run, ExitCode: r.ExitCode, Stderr: gopkgs.Tail(r.Stderr, 4000)}
	if b, err := gopkgs.ReadFileBounded(profile, maxProfileBytes); err == nil {
		prof, err := ParseProfile(bytes.NewReader(b))
		if err != nil {
			return ranRecord{isolation: r.Isolation}, fmt.Errorf("coverage profile: %w", err)
		}
		rec.Profile = prof
	}
	return ranRecord{record: rec, isolation: r.Isolation}, nil
}

// mergeRecord adds the packages and coverage of more to r.
func mergeRecord(r *ranRecord, more ranRecord) {
	if r.Run == nil {
		r.Run = &Run{Packages: map[string]*PackageResult{}}
	}
	if more.Run != nil {
		for ip, pr := range more.Run.Packages {
			if _, ok := r.Run.Packages[ip]; !ok {
				r.Run.Packages[ip] = pr
			}
		}
		r.Run.NonJSON += more.Run.NonJSON
	}
	if more.Profile != nil {
		if r.Profile == nil {
			r.Profile = &Profile{Mode: more.Profile.Mode, Files: map[string]Counts{}}
		}
		for f, c := range more.Profile.Files {
			if _, ok := r.Profile.Files[f]; !ok {
				r.Profile.Files[f] = c
			}
		}
	}
	if more.ExitCode != 0 && r.ExitCode == 0 {
		r.ExitCode = more.ExitCode
		r.Stderr += "\n" + more.Stderr
	}
}

// summarizeArgv shortens long package lists for the log.
func summarizeArgv(argv []string) string {
	if len(argv) <= 12 {
		return strings.Join(argv, " ")
	}
	return strings.Join(argv[:10], " ") + fmt.Sprintf(" … (%d more)", len(argv)-10)
}

// resolveProgram maps the command's first word to a program: "go" is the
// toolchain on the runner's PATH; a name or path found in the exported
// tree is that file; anything else is looked up on the runner's PATH.
func resolveProgram(name, tree string) (string, error) {
	if name == "go" {
		return "go", nil
	}
	rel := path.Clean(strings.TrimPrefix(filepath.ToSlash(name), "./"))
	if strings.HasPrefix(rel, "../") || rel == ".." || path.IsAbs(rel) {
		return "", fmt.Errorf("test command %q must be a tool name or a path inside the repository", name)
	}
	p := filepath.Join(tree, filepath.FromSlash(rel))
	if st, err := os.Lstat(p); err == nil {
		if !st.Mode().IsRegular() {
			return "", fmt.Errorf("test command %q is not a regular file in the repository", name)
		}
		return p, nil
	}
	if strings.Contains(rel, "/") {
		return "", fmt.Errorf("test command %q does not exist in the repository", name)
	}
	return name, nil
}

// changedPaths lists every path a change touches (renames: both sides).
func changedPaths(changes []gitcli.Change) []string {
	out := make([]string, 0, len(changes))
	for _, ch := range changes {
		out = append(out, ch.Path)
		if ch.OldPath != "" {
			out = append(out, ch.OldPath)
		}
	}
	return out
}

// acceptanceTests lists the acceptance tests the check must see pass: those
// of the plan's FRs (all FRs of the thread when the plan names none).
func (c *Check) acceptanceTests(s *checks.Subject, p plan) []policies.Acceptance {
	if p.thread == nil || p.thread.Requirements == nil {
		return nil
	}
	want := map[string]bool{}
	for _, id := range p.frIDs {
		want[id] = true
	}
	var out []policies.Acceptance
	for _, fr := range p.thread.Requirements.Requirements {
		if len(want) > 0 && !want[fr.ID] {
			continue
		}
		for _, a := range fr.Acceptance {
			a.ID = fr.ID + "/" + a.ID
			out = append(out, a)
		}
	}
	return out
}

// resolvePackage finds an acceptance test's package: "./dir" relative to
// the repository root, or an import path (exact, or a "/"-suffix of one).
func resolvePackage(g *gopkgs.Graph, spec, headDir string) *gopkgs.Package {
	if g == nil || spec == "" {
		return nil
	}
	if spec == "." || strings.HasPrefix(spec, "./") {
		want := filepath.Join(headDir, filepath.FromSlash(path.Clean(spec)))
		for i := range g.Pkgs {
			if filepath.Clean(g.Pkgs[i].Dir) == want {
				return &g.Pkgs[i]
			}
		}
		return nil
	}
	if pk, ok := g.Package(spec); ok {
		return pk
	}
	var found *gopkgs.Package
	for i := range g.Pkgs {
		if strings.HasSuffix(g.Pkgs[i].ImportPath, "/"+spec) {
			if found != nil {
				return nil // ambiguous
			}
			found = &g.Pkgs[i]
		}
	}
	return found
}
