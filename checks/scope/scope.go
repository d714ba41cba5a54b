package scope

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/internal/gitcli"
	"github.com/agentgate/agentgate/policies"
)

// Rule ids of scope findings.
const (
	RuleNoPlan             = "no-plan"
	RuleOutOfScope         = "out-of-scope"
	RuleUnauthorized       = "unauthorized-access"
	RulePolicyArtifact     = "policy-artifact-changed"
	RulePlanChanged        = "plan-changed-mid-run"
	RuleSecurityCritical   = "security-critical-path"
	RuleMaxFiles           = "max-files-changed"
	RuleMaxDiffLines       = "max-diff-lines"
	RuleNewDependency      = "new-dependency"
	RuleFileType           = "unexpected-file-type"
	RuleBinary             = "binary-file"
	RuleExecutable         = "executable-bit"
	RuleSymlink            = "symlink"
	RuleSymlinkEscape      = "symlink-escapes-repository"
	RuleSubmodule          = "submodule"
	RuleOversized          = "oversized-file"
	RuleUnreadableManifest = "unreadable-dependency-manifest"
)

// Check is the scope check.
type Check struct{}

// New returns the scope check.
func New() checks.Check { return &Check{} }

// Name implements checks.Check.
func (*Check) Name() string { return "scope" }

// Run implements checks.Check.
func (*Check) Run(ctx context.Context, s *checks.Subject) checks.Result {
	res := checks.Result{Name: "scope"}
	fail := func(format string, args ...any) checks.Result {
		res.Status = checks.StatusError
		res.Reason = fmt.Sprintf(format, args...)
		return res
	}
	if s == nil || s.Tree == nil || !gitcli.IsSHA(s.MergeBase) || !gitcli.IsSHA(s.Head) {
		return fail("incomplete subject: the engine must resolve base, head, merge base and the base policy")
	}
	// The plan's history is independent of the diff: read it alongside.
	type planResult struct {
		commit string
		err    error
	}
	planCh := make(chan planResult, 1)
	go func() {
		var pr planResult
		if s.Plan != nil && s.PlanPath != "" {
			pr.commit, pr.err = planChangedMidRun(ctx, s.Repo, s.MergeBase, s.Head, s.PlanPath)
		}
		planCh <- pr
	}()
	changes, err := gitcli.Diff(ctx, s.Repo, s.MergeBase, s.Head)
	if err != nil {
		<-planCh
		return fail("list the changed files: %v", err)
	}
	in := Input{Changes: changes, Plan: s.Plan, PlanPath: s.PlanPath, Tree: s.Tree,
		LinkTargets: map[string]string{}, Manifests: map[string]ManifestPair{}}

	// Sizes of new blobs, symlink targets and dependency manifests are read
	// from git only for the paths that need them, one process per kind.
	var oids, headPaths, oldPaths []string
	for _, c := range changes {
		if c.NewMode == gitcli.ModeFile || c.NewMode == gitcli.ModeExecutable {
			oids = append(oids, c.NewOID)
		}
		if c.NewMode == gitcli.ModeSymlink {
			headPaths = append(headPaths, c.Path)
		}
		if ManifestKind(c.Path) != "" && c.Status != 'D' && c.NewMode != gitcli.ModeSymlink && c.NewMode != gitcli.ModeSubmodule {
			headPaths = append(headPaths, c.Path)
			in.Manifests[c.Path] = ManifestPair{}
			if c.Status != 'A' && c.OldMode != gitcli.ModeSymlink && c.OldMode != gitcli.ModeSubmodule {
				oldPaths = append(oldPaths, c.OldPath)
			}
		}
	}
	var (
		sizesErr, headErr, oldErr error
		headFiles, oldFiles       map[string][]byte
		done                      = make(chan struct{}, 2)
	)
	go func() {
		if len(headPaths) > 0 {
			headFiles, headErr = gitcli.ReadFiles(ctx, s.Repo, s.Head, headPaths, maxManifest)
		}
		done <- struct{}{}
	}()
	go func() {
		if len(oldPaths) > 0 {
			oldFiles, oldErr = gitcli.ReadFiles(ctx, s.Repo, s.MergeBase, oldPaths, maxManifest)
		}
		done <- struct{}{}
	}()
	in.Sizes, sizesErr = gitcli.BlobSizes(ctx, s.Repo, oids)
	<-done
	<-done
	pr := <-planCh
	switch {
	case sizesErr != nil:
		return fail("read file sizes: %v", sizesErr)
	case pr.err != nil:
		return fail("read the plan's history: %v", pr.err)
	}
	in.PlanChanged = pr.commit
	for _, c := range changes {
		if c.NewMode == gitcli.ModeSymlink {
			t, ok := headFiles[c.Path]
			if headErr != nil || !ok {
				return fail("read symlink %s: %v", c.Path, orMissing(headErr))
			}
			in.LinkTargets[c.Path] = string(t)
			continue
		}
		pair, ok := in.Manifests[c.Path]
		if !ok {
			continue
		}
		pair.New = headFiles[c.Path]
		if headErr != nil || pair.New == nil {
			pair.Err = orMissing(headErr)
		}
		if c.Status != 'A' && c.OldMode != gitcli.ModeSymlink && c.OldMode != gitcli.ModeSubmodule {
			pair.Old = oldFiles[c.OldPath]
			if oldErr != nil || pair.Old == nil {
				pair.Err = orMissing(oldErr)
			}
		}
		in.Manifests[c.Path] = pair
	}
	if err := ctx.Err(); err != nil {
		return fail("%v", err)
	}
	res.Findings = Evaluate(in)
	res.Details = map[string]any{"files_changed": len(changes)}
	res.Status = checks.StatusPass
	for _, f := range res.Findings {
		if f.Severity == checks.SeverityHigh || f.Severity == checks.SeverityCritical || f.Stop != "" {
			res.Status = checks.StatusFail
		}
	}
	if s.Plan != nil {
		res.Details["plan_id"] = s.Plan.PlanID
	}
	return res
}

const maxManifest = 4 << 20

func orMissing(err error) error {
	if err == nil {
		return errors.New("missing from the commit")
	}
	return err
}

// planChangedMidRun reports whether the plan on head differs from the
// version the branch first committed (the first commit of
// merge-base..head that touched it). A plan the branch never touched is
// the base's plan and has not changed.
func planChangedMidRun(ctx context.Context, repo, mb, head, planPath string) (string, error) {
	commits, err := gitcli.CommitsTouching(ctx, repo, mb, head, planPath)
	if err != nil || len(commits) < 2 {
		return "", err
	}
	first, err := gitcli.ReadFile(ctx, repo, commits[0], planPath, policies.MaxFileSize)
	if err != nil {
		return "", err
	}
	last, err := gitcli.ReadFile(ctx, repo, head, planPath, policies.MaxFileSize)
	if err != nil {
		return "", err
	}
	if string(first) == string(last) {
		return "", nil
	}
	return commits[0], nil
}

// ManifestPair is a dependency manifest before (merge base) and after
// (head) the change. Old is nil for a new file.
type ManifestPair struct {
	Old, New []byte
	Err      error
}

// Input is everything Evaluate looks at.
type Input struct {
	Changes  []gitcli.Change
	Plan     *policies.WorkPlan
	PlanPath string
	Tree     *policies.Tree // from base
	// Sizes maps new blob ids to their size.
	Sizes map[string]int64
	// LinkTargets maps added or changed symlinks to their targets.
	LinkTargets map[string]string
	// Manifests holds changed dependency manifests by head path.
	Manifests map[string]ManifestPair
	// PlanChanged is the commit that first committed the plan when the
	// head version differs from it; "" when unchanged.
	PlanChanged string
}

// compiled holds the per-evaluation pattern sets.
type compiled struct {
	artifacts, critical []string
	exts                map[string]bool
	names               map[string]bool
}

// Evaluate applies every scope rule. It is linear in len(in.Changes).
func Evaluate(in Input) []checks.Finding {
	var out []checks.Finding
	add := func(f checks.Finding) { out = append(out, f) }
	pol := policies.DefaultPolicy()
	if in.Tree != nil {
		pol = in.Tree.Policy
	}
	cp := compiled{critical: pol.SecurityCritical}
	if in.Tree != nil {
		cp.artifacts = in.Tree.PolicyArtifacts()
	}
	if len(pol.AllowedFileTypes) > 0 {
		cp.exts, cp.names = map[string]bool{}, map[string]bool{}
		for _, t := range pol.AllowedFileTypes {
			if strings.HasPrefix(t, ".") {
				cp.exts[strings.ToLower(t)] = true
			} else {
				cp.names[t] = true
			}
		}
	}
	var thread *policies.ThreadDir
	if in.Plan == nil {
		add(checks.Finding{Rule: RuleNoPlan, Severity: checks.SeverityHigh,
			Message: "no WORK_PLAN.json applies to this change: pass --plan, or commit the thread's plan on the branch"})
	} else if in.Tree != nil {
		thread = in.Tree.ThreadForPlan(in.PlanPath)
		if thread == nil {
			thread = in.Tree.Thread(in.Plan.Thread)
		}
	}
	if in.PlanChanged != "" {
		add(checks.Finding{Rule: RulePlanChanged, Severity: checks.SeverityHigh, Path: in.PlanPath, NeedsApproval: true,
			Message: fmt.Sprintf("plan changed mid-run: %s differs from the version first committed on the branch in %s; a human must approve the new plan", in.PlanPath, shortSHA(in.PlanChanged))})
	}

	files, lines := 0, 0
	maxBytes := pol.Anomaly.MaxFileBytes
	if maxBytes <= 0 {
		maxBytes = policies.DefaultMaxFileBytes
	}
	for _, c := range in.Changes {
		isPlan := in.PlanPath != "" && c.Path == in.PlanPath && c.OldPath == c.Path
		if !isPlan {
			files++
			lines += c.Added + c.Deleted
		}
		paths := []string{c.Path}
		if c.OldPath != c.Path {
			paths = append(paths, c.OldPath)
		}
		for _, p := range paths {
			pathRules(&out, in, cp, thread, c, p, isPlan)
		}
		if c.Status == 'D' {
			continue
		}
		anomalies(&out, in, pol, cp, c, maxBytes)
	}
	if in.Plan != nil {
		if m := in.Plan.Limits.MaxFilesChanged; m > 0 && files > m {
			add(checks.Finding{Rule: RuleMaxFiles, Severity: checks.SeverityHigh,
				Message: fmt.Sprintf("the change touches %d files; the plan allows %d (limits.max_files_changed)", files, m)})
		}
		if m := in.Plan.Limits.MaxDiffLines; m > 0 && lines > m {
			add(checks.Finding{Rule: RuleMaxDiffLines, Severity: checks.SeverityHigh,
				Message: fmt.Sprintf("the change adds and deletes %d lines; the plan allows %d (limits.max_diff_lines)", lines, m)})
		}
	}
	for p, pair := range in.Manifests {
		if pol.Anomaly.AllowNewDependencies {
			break
		}
		if pair.Err != nil {
			add(checks.Finding{Rule: RuleUnreadableManifest, Severity: checks.SeverityHigh, Path: p,
				Message: fmt.Sprintf("cannot compare dependencies: %v", pair.Err)})
			continue
		}
		added, err := NewDependencies(ManifestKind(p), pair.Old, pair.New)
		if err != nil {
			add(checks.Finding{Rule: RuleUnreadableManifest, Severity: checks.SeverityHigh, Path: p,
				Message: fmt.Sprintf("cannot parse the dependency manifest: %v", err)})
			continue
		}
		for _, d := range added {
			add(checks.Finding{Rule: RuleNewDependency, Severity: checks.SeverityHigh, Path: p,
				Message: fmt.Sprintf("new dependency %s; dependencies are added by a human (policy anomaly.allow_new_dependencies is off)", d)})
		}
	}
	slices.SortStableFunc(out, func(a, b checks.Finding) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Rule, b.Rule)
	})
	return out
}

// pathRules applies the ownership and plan rules to one path of a change
// (both sides of a rename are checked).
func pathRules(out *[]checks.Finding, in Input, cp compiled, thread *policies.ThreadDir, c gitcli.Change, p string, isPlan bool) {
	verb := verbOf(c, p)
	artifact := matchAny(cp.artifacts, p)
	if artifact {
		*out = append(*out, checks.Finding{Rule: RulePolicyArtifact, Severity: checks.SeverityHigh, Path: p, NeedsApproval: true,
			Message: fmt.Sprintf("%s policy artifact; it takes effect only after promotion with human approval (this evaluation uses the base's version)", verb)})
	}
	if matchAny(cp.critical, p) {
		*out = append(*out, checks.Finding{Rule: RuleSecurityCritical, Severity: checks.SeverityHigh, Path: p, NeedsApproval: true,
			Message: fmt.Sprintf("%s security-critical path (policy security_critical_paths); needs human approval", verb)})
	}
	if in.Plan == nil || in.Tree == nil || isPlan {
		return
	}
	owner := in.Tree.Owner(p)
	if artifact {
		// A policy artifact needs approval whoever owns the directory; only
		// another thread's own contract files are also out of bounds.
		b := path.Base(p)
		if owner == nil || owner == thread || path.Dir(p) != owner.Dir || (b != policies.ThreadFile && b != policies.RequirementsFile) {
			return
		}
	}
	shared := thread != nil && matchAny(thread.Config.SharedInterfaces, p)
	if owner != nil && thread != nil && owner != thread && !shared {
		*out = append(*out, checks.Finding{Rule: RuleUnauthorized, Severity: checks.SeverityCritical, Path: p,
			Stop: policies.StopUnauthorizedAccess,
			Message: fmt.Sprintf("%s file owned by thread %q (%s), not by %q, and not one of its shared_interfaces; a handoff to that thread is needed",
				verb, owner.Dir, owner.Config.Name, thread.Dir)})
		return
	}
	// policies.PlanAllows, with the owner already computed (it is the
	// expensive part): a target_files match, and the thread's own file or
	// one of its shared interfaces.
	if !matchAny(in.Plan.TargetFiles, p) || thread == nil || (owner != thread && !shared) {
		*out = append(*out, checks.Finding{Rule: RuleOutOfScope, Severity: checks.SeverityHigh, Path: p,
			Message: fmt.Sprintf("%s file outside the plan's target_files %v", verb, in.Plan.TargetFiles)})
	}
}

func verbOf(c gitcli.Change, p string) string {
	switch {
	case c.Status == 'R' && p == c.OldPath:
		return "moves away a"
	case c.Status == 'R':
		return "moves in a"
	case c.Status == 'A':
		return "adds a"
	case c.Status == 'D':
		return "deletes a"
	}
	return "changes a"
}

func anomalies(out *[]checks.Finding, in Input, pol policies.Policy, cp compiled, c gitcli.Change, maxBytes int64) {
	add := func(rule, msg string) {
		*out = append(*out, checks.Finding{Rule: rule, Severity: checks.SeverityHigh, Path: c.Path, Message: msg})
	}
	switch c.NewMode {
	case gitcli.ModeSymlink:
		target := in.LinkTargets[c.Path]
		if escapes(c.Path, target) {
			*out = append(*out, checks.Finding{Rule: RuleSymlinkEscape, Severity: checks.SeverityCritical, Path: c.Path,
				Message: fmt.Sprintf("symbolic link to %q points outside the repository", target)})
		} else if !pol.Anomaly.AllowSymlinks {
			add(RuleSymlink, fmt.Sprintf("adds a symbolic link to %q (policy anomaly.allow_symlinks is off)", target))
		}
		return
	case gitcli.ModeSubmodule:
		if !pol.Anomaly.AllowSubmodules {
			add(RuleSubmodule, "adds or moves a submodule (policy anomaly.allow_submodules is off)")
		}
		return
	case gitcli.ModeExecutable:
		if c.OldMode != gitcli.ModeExecutable && !pol.Anomaly.AllowExecutable {
			add(RuleExecutable, "sets the executable bit (policy anomaly.allow_executable is off)")
		}
	}
	if c.Binary && !pol.Anomaly.AllowBinaries {
		add(RuleBinary, "adds or changes a binary file (policy anomaly.allow_binaries is off)")
	}
	if size, ok := in.Sizes[c.NewOID]; ok && size > maxBytes {
		add(RuleOversized, fmt.Sprintf("file is %d bytes, over the %d byte limit (policy anomaly.max_file_bytes)", size, maxBytes))
	}
	if cp.exts != nil {
		base := path.Base(c.Path)
		if !cp.names[base] && !cp.exts[strings.ToLower(path.Ext(base))] {
			add(RuleFileType, fmt.Sprintf("file type %q is not in the policy's allowed_file_types", orNone(path.Ext(base))))
		}
	}
}

func orNone(ext string) string {
	if ext == "" {
		return "(no extension)"
	}
	return ext
}

// escapes reports whether a link at p with the given target resolves
// outside the repository (absolute, or too many "..").
func escapes(p, target string) bool {
	if target == "" || strings.HasPrefix(target, "/") || strings.Contains(target, "\\") || strings.Contains(target, "\x00") {
		return true
	}
	joined := path.Join(path.Dir(p), target)
	return joined == ".." || strings.HasPrefix(joined, "../") || strings.HasPrefix(joined, "/")
}

func matchAny(globs []string, p string) bool {
	for _, g := range globs {
		if policies.MatchGlob(g, p) {
			return true
		}
	}
	return false
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
