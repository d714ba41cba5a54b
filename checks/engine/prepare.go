package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/report"
	"github.com/agentgate/agentgate/internal/gitcli"
	"github.com/agentgate/agentgate/policies"
)

// Input names the change to evaluate.
type Input struct {
	Repo string // path of a local git repository
	Base string // base ref (branch, tag or SHA): the protected branch
	Head string // head ref: the agent's branch
	// PlanPath is the repo-relative WORK_PLAN.json to evaluate against.
	// Empty means: the plan the change modifies, else the plan of the
	// single thread that owns every changed file.
	PlanPath string
}

// InputError is input the gate cannot evaluate: a bad ref, an invalid
// policy on base, an invalid plan. `agentgate check` exits 2 on it.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

func invalid(format string, args ...any) error {
	return &InputError{Err: fmt.Errorf(format, args...)}
}

// Prepare resolves the range, loads the policy tree from the base commit
// and the plan from head, and validates the head plan against the base
// policy (thread ceilings, fr_ids, target_files, tools). It returns the
// subject for the checks and the report fields that describe it.
func Prepare(ctx context.Context, in Input) (*checks.Subject, report.Report, error) {
	meta := report.Report{BaseRef: in.Base, HeadRef: in.Head}
	if in.Repo == "" {
		return nil, meta, invalid("no repository given: pass --repo DIR")
	}
	repo, err := filepath.Abs(in.Repo)
	if err != nil {
		return nil, meta, invalid("repository path %q: %w", in.Repo, err)
	}
	meta.Repo = repo
	if in.Base == "" || in.Head == "" {
		return nil, meta, invalid("pass both --base and --head")
	}
	base, err := gitcli.VerifyCommit(ctx, repo, in.Base)
	if err != nil {
		return nil, meta, &InputError{Err: fmt.Errorf("base: %w", err)}
	}
	head, err := gitcli.VerifyCommit(ctx, repo, in.Head)
	if err != nil {
		return nil, meta, &InputError{Err: fmt.Errorf("head: %w", err)}
	}
	mb, err := gitcli.MergeBase(ctx, repo, base, head)
	if err != nil {
		if errors.Is(err, gitcli.ErrNoMergeBase) {
			return nil, meta, &InputError{Err: err}
		}
		return nil, meta, err
	}
	meta.Base, meta.Head, meta.MergeBase = base, head, mb

	baseFS, err := gitcli.CommitFS(ctx, repo, base)
	if err != nil {
		return nil, meta, fmt.Errorf("read the base commit: %w", err)
	}
	defer baseFS.Close()
	baseFS.MaxFileSize = policies.MaxFileSize
	tree, probs := policies.LoadTree(baseFS)
	if len(probs) > 0 {
		return nil, meta, invalid("the policy on base %s is invalid; fix it on the base branch first:\n%s", short(base), probs.Sort().Error())
	}

	s := &checks.Subject{Repo: repo, Base: base, Head: head, MergeBase: mb, Tree: tree}
	planPath := in.PlanPath
	if planPath == "" {
		planPath, err = discoverPlan(ctx, repo, mb, head, in.Head, tree)
		if err != nil {
			return nil, meta, err
		}
	} else if clean := path.Clean(strings.TrimPrefix(filepath.ToSlash(planPath), "./")); clean != planPath {
		planPath = clean
	}
	if planPath == "" {
		return s, meta, nil // the scope check fails closed without a plan
	}
	plan, err := loadHeadPlan(ctx, repo, head, planPath, baseFS)
	if err != nil {
		return nil, meta, err
	}
	s.Plan, s.PlanPath = plan, planPath
	meta.PlanPath, meta.PlanID, meta.Thread = planPath, plan.PlanID, path.Dir(planPath)
	return s, meta, nil
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// discoverPlan picks the plan a change is evaluated against: the single
// WORK_PLAN.json the change adds or modifies, else the single plan whose
// git.branch is the head ref, else the plan of the single thread owning
// every changed file. "" when none applies.
func discoverPlan(ctx context.Context, repo, mb, head, headRef string, tree *policies.Tree) (string, error) {
	entries, err := gitcli.Numstat(ctx, repo, mb, head)
	if err != nil {
		return "", fmt.Errorf("list the changed files: %w", err)
	}
	var plans []string
	owners := map[string]*policies.ThreadDir{}
	for _, e := range entries {
		if path.Base(e.Path) == policies.WorkPlanFile {
			plans = append(plans, e.Path)
		}
		if o := tree.Owner(e.Path); o != nil {
			owners[o.Dir] = o
		} else {
			owners[""] = nil
		}
	}
	switch {
	case len(plans) == 1:
		return plans[0], nil
	case len(plans) > 1:
		sort.Strings(plans)
		return "", invalid("the change touches several plans (%s); name the one to evaluate with --plan", strings.Join(plans, ", "))
	}
	// A plan whose git.branch is the head ref being evaluated.
	branch := strings.TrimPrefix(strings.TrimPrefix(headRef, "refs/heads/"), "origin/")
	var planPaths, byBranch []string
	for _, td := range tree.Threads {
		planPaths = append(planPaths, path.Join(td.Dir, policies.WorkPlanFile))
	}
	headPlans, err := gitcli.ReadFiles(ctx, repo, head, planPaths, policies.MaxFileSize)
	if err != nil {
		headPlans = nil // an unreadable plan is simply not a candidate
	}
	for _, p := range planPaths {
		data, ok := headPlans[p]
		if !ok {
			continue
		}
		if wp, err := policies.LoadWorkPlan(p, data); err == nil && wp.Git.Branch == branch {
			byBranch = append(byBranch, p)
		}
	}
	if len(byBranch) == 1 {
		return byBranch[0], nil
	}
	if len(owners) == 1 {
		for dir, td := range owners {
			if td != nil && dir != "" {
				p := path.Join(dir, policies.WorkPlanFile)
				if _, ok := headPlans[p]; ok {
					return p, nil
				}
			}
		}
	}
	return "", nil
}

// loadHeadPlan reads the plan from head and loads it into the base tree in
// place of the base's version, so that every cross-file rule (fr_ids,
// target_files inside the thread, ceilings, tools, ladder) is judged by the
// base policy.
func loadHeadPlan(ctx context.Context, repo, head, planPath string, baseFS *gitcli.FS) (*policies.WorkPlan, error) {
	if path.Base(planPath) != policies.WorkPlanFile || !fs.ValidPath(planPath) {
		return nil, invalid("plan %q: name a repo-relative path ending in %s", planPath, policies.WorkPlanFile)
	}
	data, err := gitcli.ReadFile(ctx, repo, head, planPath, policies.MaxFileSize)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, invalid("plan %s does not exist on head", planPath)
		}
		return nil, invalid("plan %s: %w", planPath, err)
	}
	if _, err := policies.LoadWorkPlan(planPath, data); err != nil {
		return nil, invalid("plan %s on head is invalid:\n%w", planPath, err)
	}
	overlay := &overlayFS{FS: baseFS, path: planPath, data: data}
	tree, probs := policies.LoadTree(overlay)
	if len(probs) > 0 {
		return nil, invalid("plan %s on head does not fit the base policy:\n%s", planPath, probs.Sort().Error())
	}
	td := tree.ThreadForPlan(planPath)
	if td == nil || td.Plan == nil {
		return nil, invalid("plan %s is not in a thread directory of the base commit (threads are created on the protected branch first)", planPath)
	}
	if err := checkCeilings(td.Plan, td); err != nil {
		return nil, err
	}
	return td.Plan, nil
}

// checkCeilings repeats the ceiling rules explicitly: a plan asking for
// more than its thread allows is never evaluated.
func checkCeilings(wp *policies.WorkPlan, td *policies.ThreadDir) error {
	c := td.Config.Ceilings
	var over []string
	add := func(field string, got, limit any) {
		over = append(over, fmt.Sprintf("%s %v exceeds the thread ceiling %v", field, got, limit))
	}
	if c.MaxIterations > 0 && wp.Limits.MaxIterations > c.MaxIterations {
		add("limits.max_iterations", wp.Limits.MaxIterations, c.MaxIterations)
	}
	if c.MaxToolCalls > 0 && wp.Limits.MaxToolCalls > c.MaxToolCalls {
		add("limits.max_tool_calls", wp.Limits.MaxToolCalls, c.MaxToolCalls)
	}
	if c.MaxFilesChanged > 0 && wp.Limits.MaxFilesChanged > c.MaxFilesChanged {
		add("limits.max_files_changed", wp.Limits.MaxFilesChanged, c.MaxFilesChanged)
	}
	if c.MaxDiffLines > 0 && wp.Limits.MaxDiffLines > c.MaxDiffLines {
		add("limits.max_diff_lines", wp.Limits.MaxDiffLines, c.MaxDiffLines)
	}
	if c.BudgetUSD > 0 && wp.Budget.LimitUSD > c.BudgetUSD {
		add("budget.limit_usd", wp.Budget.LimitUSD, c.BudgetUSD)
	}
	if c.MaxRuntime != "" && wp.Limits.MaxRuntime != "" {
		got, err1 := time.ParseDuration(string(wp.Limits.MaxRuntime))
		limit, err2 := time.ParseDuration(string(c.MaxRuntime))
		if err1 != nil || err2 != nil || got > limit {
			add("limits.max_runtime", wp.Limits.MaxRuntime, c.MaxRuntime)
		}
	}
	if len(over) > 0 {
		return invalid("plan %s asks for more than thread %q allows on base: %s", path.Join(td.Dir, policies.WorkPlanFile), td.Dir, strings.Join(over, "; "))
	}
	return nil
}

// overlayFS is a commit's tree with one file replaced (or added).
type overlayFS struct {
	*gitcli.FS
	path string
	data []byte
}

func (o *overlayFS) Open(name string) (fs.File, error) {
	if name == o.path {
		return &memFile{name: path.Base(name), data: data(o.data)}, nil
	}
	return o.FS.Open(name)
}

func (o *overlayFS) ReadFile(name string) ([]byte, error) {
	if name == o.path {
		return slices.Clone(o.data), nil
	}
	return o.FS.ReadFile(name)
}

func (o *overlayFS) Stat(name string) (fs.FileInfo, error) {
	if name == o.path {
		return memInfo{name: path.Base(name), size: int64(len(o.data))}, nil
	}
	return o.FS.Stat(name)
}

func (o *overlayFS) Lstat(name string) (fs.FileInfo, error) {
	if name == o.path {
		return o.Stat(name)
	}
	return o.FS.Lstat(name)
}

func (o *overlayFS) ReadDir(name string) ([]fs.DirEntry, error) {
	entries, err := o.FS.ReadDir(name)
	if err != nil || path.Dir(o.path) != name {
		return entries, err
	}
	base := path.Base(o.path)
	out := slices.DeleteFunc(slices.Clone(entries), func(e fs.DirEntry) bool { return e.Name() == base })
	out = append(out, fs.FileInfoToDirEntry(memInfo{name: base, size: int64(len(o.data))}))
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

type data []byte

type memFile struct {
	name string
	data data
	off  int
}

func (m *memFile) Stat() (fs.FileInfo, error) {
	return memInfo{name: m.name, size: int64(len(m.data))}, nil
}
func (m *memFile) Close() error { return nil }
func (m *memFile) Read(p []byte) (int, error) {
	if m.off >= len(m.data) {
		return 0, io.EOF
	}
	n := copy(p, m.data[m.off:])
	m.off += n
	return n, nil
}

type memInfo struct {
	name string
	size int64
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return 0o644 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }
