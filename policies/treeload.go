package policies

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// skipDirs are never searched for threads: VCS metadata, vendored and
// installed dependencies, and Go's testdata convention (fixtures there are
// often deliberately broken contracts). Other dot-directories are skipped
// too; .agentgate/policy.yaml is read by name.
var skipDirs = map[string]bool{"node_modules": true, "vendor": true, "testdata": true}

func skipDir(name string) bool {
	return skipDirs[name] || strings.HasPrefix(name, ".")
}

// repoPolicyArtifacts are policy artifacts outside any thread: changing
// them needs promotion approval. Thread config.yaml and requirements.yaml
// files are added per thread.
var repoPolicyArtifacts = []string{
	PolicyFile,
	".agentgate/**",
	".gitleaks.toml",
	".gitleaksignore",
	".github/workflows/**",
	"CODEOWNERS",
	".github/CODEOWNERS",
	"docs/CODEOWNERS",
}

// loaded keeps a thread's parsed files for locating cross-file problems.
type loaded struct {
	td         *ThreadDir
	configPath string
	configRoot *yaml.Node
	planPath   string
	planRoot   *yaml.Node
	reqPath    string
}

// LoadTree discovers and loads every contract file of a repository
// snapshot: the repository policy (defaults when absent), every thread
// directory (a directory whose config.yaml is agentgate's, see
// IsThreadConfig) with its requirements.yaml and WORK_PLAN.json, and runs
// the cross-file rules. fsys is rooted at the repository root: DirFS for a
// work tree (symlinks are then seen and refused when they leave the
// repository), or any fs.FS over a commit.
//
// The tree is returned even when there are problems, so that ownership
// questions can still be answered; callers that gate on it must treat any
// problem as a failure.
func LoadTree(fsys fs.FS) (*Tree, Problems) {
	var probs Problems
	t := &Tree{}

	// Repository policy.
	var policyRoot *yaml.Node
	switch data, perr := readContract(fsys, PolicyFile); {
	case perr != nil && isNotExist(fsys, PolicyFile):
		t.Policy = DefaultPolicy()
	case perr != nil:
		probs = append(probs, *perr)
		t.Policy = DefaultPolicy()
		t.PolicyFound = true
	default:
		t.PolicyFound = true
		p, root, pp := decodePolicy(PolicyFile, data)
		probs = append(probs, pp...)
		policyRoot = root
		if p != nil {
			t.Policy = *p
		} else {
			t.Policy = DefaultPolicy()
		}
	}

	// Discovery.
	var configs, plans, reqs []string
	walkErr := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			probs.add(p, 0, 0, "", "cannot read: %v", err)
			if d != nil && d.IsDir() && p != "." {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if p != "." && skipDir(d.Name()) {
				return fs.SkipDir
			}
			return nil
		}
		switch d.Name() {
		case ThreadFile:
			configs = append(configs, p)
		case WorkPlanFile:
			plans = append(plans, p)
		case RequirementsFile:
			reqs = append(reqs, p)
		}
		return nil
	})
	if walkErr != nil {
		probs.add(".", 0, 0, "", "cannot list the repository: %v", walkErr)
	}

	byDir := map[string]*loaded{}
	for _, cp := range configs {
		data, perr := readContract(fsys, cp)
		if perr != nil {
			probs = append(probs, *perr)
			continue
		}
		if !IsThreadConfig(data) {
			continue // another tool's config.yaml
		}
		cfg, root, pp := decodeThread(cp, data)
		probs = append(probs, pp...)
		if cfg == nil {
			cfg = &Thread{}
		}
		dir := path.Dir(cp)
		cfg.Dir = dir
		td := &ThreadDir{Dir: dir, Config: *cfg, tree: t}
		byDir[dir] = &loaded{td: td, configPath: cp, configRoot: root}
		t.Threads = append(t.Threads, td)
	}
	slices.SortFunc(t.Threads, func(a, b *ThreadDir) int { return strings.Compare(a.Dir, b.Dir) })

	for _, rp := range reqs {
		l := byDir[path.Dir(rp)]
		data, perr := readContract(fsys, rp)
		if perr != nil {
			if l != nil || isOurs(data) {
				probs = append(probs, *perr)
			}
			continue
		}
		if l == nil {
			if isOurs(data) {
				probs.add(rp, 0, 0, "", "requirements.yaml outside a thread directory: add a config.yaml (kind: Thread) next to it or move it")
			}
			continue
		}
		r, root, pp := decodeRequirements(rp, data)
		probs = append(probs, pp...)
		l.td.Requirements, l.reqPath = r, rp
		l.td.reqPath, l.td.reqRoot = rp, root
	}
	for _, pl := range plans {
		l := byDir[path.Dir(pl)]
		if l == nil {
			probs.add(pl, 0, 0, "", "WORK_PLAN.json outside a thread directory: add a config.yaml (kind: Thread) in %s or move the plan into its thread", path.Dir(pl))
			continue
		}
		data, perr := readContract(fsys, pl)
		if perr != nil {
			probs = append(probs, *perr)
			continue
		}
		wp, root, pp := decodeWorkPlan(pl, data)
		probs = append(probs, pp...)
		l.td.Plan, l.planPath, l.planRoot = wp, pl, root
	}

	// Nesting.
	for _, a := range t.Threads {
		for _, b := range t.Threads {
			if a != b && within(b.Dir, a.Dir) {
				a.Nested = append(a.Nested, b.Dir)
			}
		}
	}

	// Repository-level cross checks.
	names := map[string]string{}
	for _, td := range t.Threads {
		l := byDir[td.Dir]
		if n := td.Config.Name; n != "" {
			if other, dup := names[n]; dup {
				lc := locator{l.configPath, l.configRoot}
				lc.add(&probs, "name", []any{"name"}, "thread name %q is also used by %s; names must be unique", n, other)
			}
			names[n] = td.Dir
		}
	}
	if policyRoot != nil && keyAt(policyRoot, "integration_thread") != policyRoot && t.Thread(t.Policy.IntegrationThread) == nil {
		lp := locator{PolicyFile, policyRoot}
		lp.add(&probs, "integration_thread", []any{"integration_thread"}, "no thread at %q (no config.yaml of kind Thread there)", t.Policy.IntegrationThread)
	}

	for _, td := range t.Threads {
		l := byDir[td.Dir]
		t.checkThreadInTree(fsys, l, &probs)
		if td.Plan != nil {
			t.checkPlanInTree(fsys, l, &probs)
		}
	}
	return t, probs.Sort()
}

func isNotExist(fsys fs.FS, name string) bool {
	_, err := fs.Lstat(fsys, name)
	return errors.Is(err, fs.ErrNotExist)
}

// isOurs sniffs an agentgate YAML document by its apiVersion.
func isOurs(data []byte) bool {
	return bytes.Contains(data, []byte("agentgate.dev/"))
}

// Thread returns the thread whose directory is dir, or nil.
func (t *Tree) Thread(dir string) *ThreadDir {
	for _, td := range t.Threads {
		if td.Dir == dir {
			return td
		}
	}
	return nil
}

// Owner returns the thread that owns the repo-relative path p: the
// integration thread for shared dependency files (go.mod, go.sum,
// package.json… per policy), otherwise the deepest thread whose directory
// contains p. It returns nil when no thread contains p or p is not a clean
// repo-relative path.
func (t *Tree) Owner(p string) *ThreadDir {
	if checkRepoPath(p, false) != "" {
		return nil
	}
	for _, g := range t.Policy.SharedDependencyFiles {
		if MatchGlob(g, p) {
			if it := t.Thread(t.Policy.IntegrationThread); it != nil {
				return it
			}
			break
		}
	}
	var best *ThreadDir
	for _, td := range t.Threads {
		if within(p, td.Dir) && (best == nil || len(td.Dir) > len(best.Dir) || best.Dir == ".") {
			best = td
		}
	}
	return best
}

// ThreadForPlan returns the thread of a repo-relative WORK_PLAN.json path,
// or nil when the path is not the plan file of a known thread.
func (t *Tree) ThreadForPlan(planPath string) *ThreadDir {
	if path.Base(planPath) != WorkPlanFile || checkRepoPath(planPath, false) != "" {
		return nil
	}
	return t.Thread(path.Dir(planPath))
}

// PolicyArtifacts lists the paths and globs (MatchGlob syntax) whose change
// is a policy change needing promotion approval: the repository policy and
// everything under .agentgate/, each thread's config.yaml and
// requirements.yaml, .gitleaks.toml, .gitleaksignore, .github/workflows/**
// and CODEOWNERS in every location GitHub reads it from. Sorted.
func (t *Tree) PolicyArtifacts() []string {
	out := slices.Clone(repoPolicyArtifacts)
	for _, td := range t.Threads {
		out = append(out, path.Join(td.Dir, ThreadFile), path.Join(td.Dir, RequirementsFile))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// IsPolicyArtifact reports whether the repo-relative path is a policy
// artifact (see PolicyArtifacts).
func (t *Tree) IsPolicyArtifact(p string) bool {
	for _, g := range t.PolicyArtifacts() {
		if MatchGlob(g, p) {
			return true
		}
	}
	return false
}

// PlanAllows reports whether plan lets its agent change the repo-relative
// path p: p matches one of the plan's target_files and is either owned by
// the thread (inside its directory, not inside a nested thread, not a
// shared dependency file of the integration thread) or matches one of the
// thread's shared_interfaces. Policy artifacts are not special here; the
// scope check reports them separately.
func PlanAllows(plan *WorkPlan, thread *ThreadDir, p string) bool {
	if plan == nil || thread == nil || checkRepoPath(p, false) != "" {
		return false
	}
	if !slices.ContainsFunc(plan.TargetFiles, func(g string) bool { return MatchGlob(g, p) }) {
		return false
	}
	if slices.ContainsFunc(thread.Config.SharedInterfaces, func(g string) bool { return MatchGlob(g, p) }) {
		return true
	}
	if thread.tree != nil {
		return thread.tree.Owner(p) == thread
	}
	return within(p, thread.Dir) && !slices.ContainsFunc(thread.Nested, func(n string) bool { return within(p, n) })
}

// dirArtifactSamples stand for the directory-shaped repository policy
// artifacts: a glob matching one claims the directory's files.
var dirArtifactSamples = []string{PolicyFile, ".agentgate/config.yaml", ".github/workflows/ci.yml"}

// fileArtifacts are single-file repository policy artifacts. A glob claims
// one only by naming it: literally, or with a literal last element equal to
// its name ("**/CODEOWNERS"); "docs/**" does not claim docs/CODEOWNERS, so
// that an ordinary documentation thread is not refused.
var fileArtifacts = []string{".gitleaks.toml", ".gitleaksignore", "CODEOWNERS", ".github/CODEOWNERS", "docs/CODEOWNERS"}

func (t *Tree) checkThreadInTree(fsys fs.FS, l *loaded, probs *Problems) {
	td := l.td
	lc := locator{l.configPath, l.configRoot}
	for i, si := range td.Config.SharedInterfaces {
		field := fmt.Sprintf("shared_interfaces[%d]", i)
		loc := []any{"shared_interfaces", i}
		if checkRepoPath(si, true) != "" {
			continue // reported by the loader
		}
		if td.Dir != "." && globWithin(si, td.Dir) {
			lc.add(probs, field, loc, "%q is inside the thread already; list only paths outside it", si)
		}
		if why := symlinkProblem(fsys, si); why != "" {
			lc.add(probs, field, loc, "%q: %s", si, why)
		}
		if what := t.claimedArtifact(si, td); what != "" {
			lc.add(probs, field, loc, "%q covers %s; policy artifacts cannot be shared interfaces", si, what)
		}
	}
	if td.Plan != nil && td.Requirements == nil {
		lc.add(probs, "", nil, "thread %q has a WORK_PLAN.json but no requirements.yaml; its fr_ids cannot be checked", td.Dir)
	}
}

// symlinkProblem explains why the static part of a glob resolves outside
// the repository, or returns "".
func symlinkProblem(fsys fs.FS, glob string) string {
	prefix := staticPrefix(glob)
	if _, err := resolve(fsys, prefix); err != nil {
		if errors.Is(err, errEscapes) {
			return "goes through a symlink that resolves outside the repository (" + err.Error() + ")"
		}
		return err.Error()
	}
	return ""
}

// claimedArtifact names a policy artifact that glob g can match and that
// the thread own may not claim: another thread's config.yaml or
// requirements.yaml, or a repository-level artifact. "" when none.
func (t *Tree) claimedArtifact(g string, own *ThreadDir) string {
	for _, other := range t.Threads {
		if other == own {
			continue
		}
		for _, f := range []string{ThreadFile, RequirementsFile} {
			if p := path.Join(other.Dir, f); MatchGlob(g, p) {
				return fmt.Sprintf("%s, a policy artifact of thread %q", p, other.Dir)
			}
		}
	}
	for _, p := range dirArtifactSamples {
		if MatchGlob(g, p) || within(staticPrefix(g), path.Dir(p)) {
			return p + ", a repository policy artifact"
		}
	}
	last := g[strings.LastIndexByte(g, '/')+1:]
	for _, p := range fileArtifacts {
		if MatchGlob(g, p) && (isLiteral(g) || last == path.Base(p)) {
			return p + ", a repository policy artifact"
		}
	}
	return ""
}

func (t *Tree) checkPlanInTree(fsys fs.FS, l *loaded, probs *Problems) {
	td, wp := l.td, l.td.Plan
	lp := locator{l.planPath, l.planRoot}

	if wp.Thread != "" && wp.Thread != td.Dir {
		lp.add(probs, "thread", []any{"thread"}, "thread is %q but this WORK_PLAN.json is in %q; they must match", wp.Thread, td.Dir)
	}

	if td.Requirements != nil {
		known := map[string]bool{}
		for _, fr := range td.Requirements.Requirements {
			known[fr.ID] = true
		}
		for i, id := range wp.FRIDs {
			if !known[id] {
				lp.add(probs, fmt.Sprintf("fr_ids[%d]", i), []any{"fr_ids", i}, "%s is not defined in %s", id, l.reqPath)
			}
		}
	}

	for i, tf := range wp.TargetFiles {
		field := fmt.Sprintf("target_files[%d]", i)
		loc := []any{"target_files", i}
		if checkRepoPath(tf, true) != "" {
			continue // reported by the loader
		}
		shared := slices.ContainsFunc(td.Config.SharedInterfaces, func(si string) bool { return globCoveredBy(tf, si) })
		prefix := staticPrefix(tf)
		switch {
		case shared:
		case !globWithin(tf, td.Dir):
			lp.add(probs, field, loc, "%q is outside thread %q and not covered by its shared_interfaces", tf, td.Dir)
		default:
			for _, n := range td.Nested {
				if within(prefix, n) {
					lp.add(probs, field, loc, "%q is inside nested thread %q, which owns it; a handoff to that thread is needed", tf, n)
					break
				}
			}
		}
		if what := t.claimedArtifact(tf, td); what != "" {
			lp.add(probs, field, loc, "%q claims %s; policy artifacts change only through promotion approval", tf, what)
		}
		if real, err := resolve(fsys, prefix); err != nil {
			lp.add(probs, field, loc, "%q: %s", tf, symlinkProblem(fsys, tf))
		} else if real != prefix && !shared && (!within(real, td.Dir) || t.Owner(real) != td) {
			lp.add(probs, field, loc, "%q goes through a symlink to %q, outside the thread", tf, real)
		}
	}

	if l.configRoot == nil {
		return // the thread's config did not load; its rules cannot be applied
	}
	c := td.Config.Ceilings
	ceil := func(field string, loc []any, got, limit int) {
		if limit > 0 && got > limit {
			lp.add(probs, field, loc, "%d exceeds the thread's ceiling of %d (%s)", got, limit, l.configPath)
		}
	}
	ceil("limits.max_iterations", []any{"limits", "max_iterations"}, wp.Limits.MaxIterations, c.MaxIterations)
	ceil("limits.max_tool_calls", []any{"limits", "max_tool_calls"}, wp.Limits.MaxToolCalls, c.MaxToolCalls)
	ceil("limits.max_files_changed", []any{"limits", "max_files_changed"}, wp.Limits.MaxFilesChanged, c.MaxFilesChanged)
	ceil("limits.max_diff_lines", []any{"limits", "max_diff_lines"}, wp.Limits.MaxDiffLines, c.MaxDiffLines)
	if c.MaxToolCalls > 0 && wp.Limits.MaxToolCalls == 0 {
		lp.add(probs, "limits.max_tool_calls", []any{"limits"}, "the thread caps tool calls at %d; set limits.max_tool_calls", c.MaxToolCalls)
	}
	if c.BudgetUSD > 0 && wp.Budget.LimitUSD > c.BudgetUSD {
		lp.add(probs, "budget.limit_usd", []any{"budget", "limit_usd"}, "%g USD exceeds the thread's ceiling of %g USD (%s)", wp.Budget.LimitUSD, c.BudgetUSD, l.configPath)
	}
	if c.MaxRuntime != "" && wp.Limits.MaxRuntime != "" {
		got, err1 := time.ParseDuration(string(wp.Limits.MaxRuntime))
		limit, err2 := time.ParseDuration(string(c.MaxRuntime))
		if err1 == nil && err2 == nil && got > limit {
			lp.add(probs, "limits.max_runtime", []any{"limits", "max_runtime"}, "%s exceeds the thread's ceiling of %s (%s)", wp.Limits.MaxRuntime, c.MaxRuntime, l.configPath)
		}
	}

	if len(wp.Tests.Command) > 0 {
		tool := path.Base(wp.Tests.Command[0])
		if !slices.ContainsFunc(td.Config.Tools, func(allowed string) bool { return path.Base(allowed) == tool }) {
			lp.add(probs, "tests.command[0]", []any{"tests", "command", 0}, "%q is not in the thread's tools allowlist %v (%s)", wp.Tests.Command[0], td.Config.Tools, l.configPath)
		}
	}

	if wp.Git.Branch != "" && wp.Git.Target != "" && t.Policy.RungFor(wp.Git.Branch, wp.Git.Target) == nil {
		var next []string
		for _, r := range t.Policy.NextRungs(wp.Git.Branch) {
			next = append(next, r.Target)
		}
		hint := "no rung starts from this branch"
		if len(next) > 0 {
			hint = "the next rung from " + wp.Git.Branch + " is " + strings.Join(next, " or ")
		}
		lp.add(probs, "git.target", []any{"git", "target"}, "%s -> %s is not on the ladder; %s", wp.Git.Branch, wp.Git.Target, hint)
	}
}
