package policies

import (
	"bytes"
	"fmt"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The loaders below take a file name (used only in problem locations) and
// the file's bytes. They decode strictly (unknown fields, duplicate keys,
// wrong types, nulls, YAML anchors/aliases/tags are problems), validate
// against the embedded JSON Schema, apply defaults and run the checks that
// need only this one file. On any problem they return a nil value and a
// Problems error listing every problem found. Cross-file rules (fr_ids
// exist, target_files inside the thread, ceilings) are LoadTree's.

// LoadWorkPlan loads a WORK_PLAN.json.
func LoadWorkPlan(name string, data []byte) (*WorkPlan, error) {
	wp, _, probs := decodeWorkPlan(name, data)
	if len(probs) > 0 {
		return nil, probs
	}
	return wp, nil
}

// LoadThread loads a thread's config.yaml. Use IsThreadConfig first when
// the file might belong to another tool.
func LoadThread(name string, data []byte) (*Thread, error) {
	t, _, probs := decodeThread(name, data)
	if len(probs) > 0 {
		return nil, probs
	}
	return t, nil
}

// LoadRequirements loads a thread's requirements.yaml.
func LoadRequirements(name string, data []byte) (*Requirements, error) {
	r, _, probs := decodeRequirements(name, data)
	if len(probs) > 0 {
		return nil, probs
	}
	return r, nil
}

// LoadPolicy loads the repository policy .agentgate/policy.yaml and applies
// defaults to the fields it leaves out.
func LoadPolicy(name string, data []byte) (*Policy, error) {
	p, _, probs := decodePolicy(name, data)
	if len(probs) > 0 {
		return nil, probs
	}
	return p, nil
}

// IsThreadConfig reports whether a config.yaml is agentgate's: its
// apiVersion starts with "agentgate.dev/", or it says kind: Thread without
// an apiVersion. Other tools' config.yaml files are ignored by discovery. A
// file that does not parse counts as ours when it mentions agentgate.dev/,
// so that a broken thread config is reported rather than silently skipped.
func IsThreadConfig(data []byte) bool {
	root, probs := parseYAML("config.yaml", data)
	if root == nil || len(probs) > 0 || root.Kind != yaml.MappingNode {
		return bytes.Contains(data, []byte("agentgate.dev/"))
	}
	var apiVersion, kind string
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch root.Content[i].Value {
		case "apiVersion":
			apiVersion = root.Content[i+1].Value
		case "kind":
			kind = root.Content[i+1].Value
		}
	}
	return strings.HasPrefix(apiVersion, "agentgate.dev/") || (apiVersion == "" && kind == KindThread)
}

func decodeWorkPlan(name string, data []byte) (*WorkPlan, *yaml.Node, Problems) {
	root, probs := parseJSON(name, data)
	if root == nil {
		return nil, nil, probs
	}
	var wp WorkPlan
	d := decoder{file: name, tag: "json", json: true}
	d.decode(root, reflect.ValueOf(&wp).Elem(), "")
	probs = append(probs, d.probs...)
	wp.ApplyDefaults()
	checkWorkPlan(locator{name, root}, &wp, &probs)
	return &wp, root, merge(probs, schemaProblems(SchemaWorkPlan, name, root))
}

func decodeThread(name string, data []byte) (*Thread, *yaml.Node, Problems) {
	root, probs := parseYAML(name, data)
	if root == nil {
		return nil, nil, probs
	}
	var t Thread
	d := decoder{file: name, tag: "yaml"}
	d.decode(root, reflect.ValueOf(&t).Elem(), "")
	probs = append(probs, d.probs...)
	checkThread(locator{name, root}, &t, &probs)
	return &t, root, merge(probs, schemaProblems(SchemaThread, name, root))
}

func decodeRequirements(name string, data []byte) (*Requirements, *yaml.Node, Problems) {
	root, probs := parseYAML(name, data)
	if root == nil {
		return nil, nil, probs
	}
	var r Requirements
	d := decoder{file: name, tag: "yaml"}
	d.decode(root, reflect.ValueOf(&r).Elem(), "")
	probs = append(probs, d.probs...)
	checkRequirements(locator{name, root}, &r, &probs)
	return &r, root, merge(probs, schemaProblems(SchemaRequirements, name, root))
}

func decodePolicy(name string, data []byte) (*Policy, *yaml.Node, Problems) {
	root, probs := parseYAML(name, data)
	if root == nil {
		return nil, nil, probs
	}
	var p Policy
	d := decoder{file: name, tag: "yaml"}
	d.decode(root, reflect.ValueOf(&p).Elem(), "")
	probs = append(probs, d.probs...)
	checkPolicy(locator{name, root}, &p, &probs)
	p.ApplyDefaults()
	return &p, root, merge(probs, schemaProblems(SchemaPolicy, name, root))
}

// ApplyDefaults fills the budget ratios (0.7/0.9/1.0), the git target
// (develop) and security.fail_on (low) when the plan leaves them out.
func (wp *WorkPlan) ApplyDefaults() {
	if wp.Budget.WarnRatio == 0 {
		wp.Budget.WarnRatio = DefaultWarnRatio
	}
	if wp.Budget.EscalateRatio == 0 {
		wp.Budget.EscalateRatio = DefaultEscalateRatio
	}
	if wp.Budget.StopRatio == 0 {
		wp.Budget.StopRatio = DefaultStopRatio
	}
	if wp.Git.Target == "" {
		wp.Git.Target = DefaultPlanTarget
	}
	if wp.Security.FailOn == "" {
		wp.Security.FailOn = RiskLow
	}
}

// DefaultPlanTarget is the branch an agent branch promotes to by default.
const DefaultPlanTarget = "develop"

// DefaultAgentBranchPattern is the only branch pattern agents may push to.
const DefaultAgentBranchPattern = "agent/*"

// DefaultMaxFileBytes is the largest file a change may add unless the
// policy's anomaly.max_file_bytes says otherwise.
const DefaultMaxFileBytes = 1 << 20

// DefaultLadder is the seed promotion ladder. A policy may add rungs and
// requirements but never drop these.
func DefaultLadder() []Rung {
	return []Rung{
		{Name: "develop", Source: DefaultAgentBranchPattern, Target: "develop", Requires: []string{RequireChecks, RequirePlanValid, RequireTrailers}},
		{Name: "staging", Source: "develop", Target: "staging", Requires: []string{RequirePolicyValid, RequireGateEvidence, RequireBudgetCompliant}},
		{Name: "main", Source: "staging", Target: "main", Requires: []string{RequireHumanApproval}},
	}
}

// DefaultSharedDependencyFiles are owned by the integration thread wherever
// they are, unless the policy sets shared_dependency_files.
func DefaultSharedDependencyFiles() []string {
	return []string{
		"**/go.mod", "**/go.sum", "**/go.work", "**/go.work.sum",
		"**/package.json", "**/package-lock.json", "**/yarn.lock", "**/pnpm-lock.yaml",
		"**/requirements.txt", "**/poetry.lock", "**/Pipfile.lock",
		"**/Cargo.toml", "**/Cargo.lock", "**/Gemfile.lock",
	}
}

// DefaultPolicy is the policy of a repository without .agentgate/policy.yaml.
func DefaultPolicy() Policy {
	p := Policy{}
	p.ApplyDefaults()
	return p
}

// ApplyDefaults fills what the policy file leaves out. An explicitly empty
// shared_dependency_files list stays empty (nobody owns them specially).
func (p *Policy) ApplyDefaults() {
	if p.APIVersion == "" {
		p.APIVersion = APIVersion
	}
	if p.Kind == "" {
		p.Kind = KindPolicy
	}
	if p.Ladder == nil {
		p.Ladder = DefaultLadder()
	}
	if p.IntegrationThread == "" {
		p.IntegrationThread = "."
	}
	if p.SharedDependencyFiles == nil {
		p.SharedDependencyFiles = DefaultSharedDependencyFiles()
	}
	if p.AutoApprove.MaxRisk == "" {
		p.AutoApprove.MaxRisk = RiskLow
	}
	if p.Vuln.FailOn == "" {
		p.Vuln.FailOn = "called"
	}
	if p.Vuln.Stdlib == "" {
		p.Vuln.Stdlib = "warn"
	}
	if p.Anomaly.MaxFileBytes == 0 {
		p.Anomaly.MaxFileBytes = DefaultMaxFileBytes
	}
}

// RungFor returns the ladder rung promoting source to target, or nil when
// the pair is not on the ladder.
func (p *Policy) RungFor(source, target string) *Rung {
	for i := range p.Ladder {
		r := &p.Ladder[i]
		if r.Target != target {
			continue
		}
		if ok, err := path.Match(r.Source, source); err == nil && ok {
			return r
		}
	}
	return nil
}

// NextRungs returns the rungs whose source matches branch: where it may go.
func (p *Policy) NextRungs(branch string) []Rung {
	var out []Rung
	for _, r := range p.Ladder {
		if ok, err := path.Match(r.Source, branch); err == nil && ok {
			out = append(out, r)
		}
	}
	return out
}

// IsAgentIdentity reports whether a GitHub login or commit e-mail is one of
// the policy's agent identities (case-insensitive).
func (p *Policy) IsAgentIdentity(loginOrEmail string) bool {
	for _, a := range p.AgentIdentities {
		if (a.Login != "" && strings.EqualFold(a.Login, loginOrEmail)) || (a.Email != "" && strings.EqualFold(a.Email, loginOrEmail)) {
			return true
		}
	}
	return false
}

var (
	planIDRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	agentBranchR = regexp.MustCompile(`^agent/[A-Za-z0-9._-]+$`)
	goTestNameRE = regexp.MustCompile(`^(Test|Example|Fuzz)([A-Z0-9_][A-Za-z0-9_]*)?(/\S+)?$`)
	frIDRE       = regexp.MustCompile(`^FR-[A-Z0-9]+(-[A-Z0-9]+)*$`)
)

func checkHeader(l locator, apiVersion, kind, wantKind string, probs *Problems) {
	if apiVersion != "" && apiVersion != APIVersion {
		l.add(probs, "apiVersion", []any{"apiVersion"}, "unsupported apiVersion %q; this agentgate reads %s", apiVersion, APIVersion)
	}
	if wantKind != "" && kind != "" && kind != wantKind {
		l.add(probs, "kind", []any{"kind"}, "kind is %q; this file must say kind: %s", kind, wantKind)
	}
}

func checkDuration(l locator, probs *Problems, field string, loc []any, d Duration) {
	if d == "" {
		return
	}
	v, err := time.ParseDuration(string(d))
	if err != nil {
		l.add(probs, field, loc, "%q is not a duration; write a Go duration such as 45m or 1h30m", d)
		return
	}
	if v <= 0 {
		l.add(probs, field, loc, "duration must be positive")
	}
}

func checkPaths(l locator, probs *Problems, field string, paths []string, glob bool) {
	for i, p := range paths {
		if why := checkRepoPath(p, glob); why != "" {
			l.add(probs, fmt.Sprintf("%s[%d]", field, i), []any{field, i}, "%q: %s", clip(p), why)
		}
	}
}

func checkWorkPlan(l locator, wp *WorkPlan, probs *Problems) {
	checkHeader(l, wp.APIVersion, "", "", probs)
	if wp.PlanID != "" && !planIDRE.MatchString(wp.PlanID) {
		l.add(probs, "plan_id", []any{"plan_id"}, "plan_id %q may use only letters, digits, '.', '_' and '-', must start with a letter or digit and be at most 128 characters", clip(wp.PlanID))
	}
	for i, id := range wp.FRIDs {
		if !frIDRE.MatchString(id) {
			l.add(probs, fmt.Sprintf("fr_ids[%d]", i), []any{"fr_ids", i}, "%q is not an FR id (FR-AREA-001: 'FR-' then upper-case letters, digits and '-')", clip(id))
		}
	}
	if wp.Thread != "" {
		if why := checkRepoPath(wp.Thread, false); why != "" {
			l.add(probs, "thread", []any{"thread"}, "%q: %s", clip(wp.Thread), why)
		}
	}
	checkPaths(l, probs, "target_files", wp.TargetFiles, true)
	checkDuration(l, probs, "limits.max_runtime", []any{"limits", "max_runtime"}, wp.Limits.MaxRuntime)
	if wp.Limits.NoProgressIterations > 0 && wp.Limits.MaxIterations > 0 && wp.Limits.NoProgressIterations > wp.Limits.MaxIterations {
		l.add(probs, "limits.no_progress_iterations", []any{"limits", "no_progress_iterations"}, "no_progress_iterations (%d) exceeds max_iterations (%d)", wp.Limits.NoProgressIterations, wp.Limits.MaxIterations)
	}
	b := wp.Budget
	for _, r := range []struct {
		name string
		v    float64
	}{{"warn_ratio", b.WarnRatio}, {"escalate_ratio", b.EscalateRatio}, {"stop_ratio", b.StopRatio}} {
		if r.v <= 0 || r.v > 1 {
			l.add(probs, "budget."+r.name, []any{"budget", r.name}, "%s must be greater than 0 and at most 1, got %g", r.name, r.v)
		}
	}
	if !(b.WarnRatio < b.EscalateRatio && b.EscalateRatio < b.StopRatio) {
		l.add(probs, "budget", []any{"budget"}, "ratios must be strictly ascending: warn_ratio (%g) < escalate_ratio (%g) < stop_ratio (%g)", b.WarnRatio, b.EscalateRatio, b.StopRatio)
	}
	if wp.Git.Branch != "" {
		if !agentBranchR.MatchString(wp.Git.Branch) || strings.Contains(wp.Git.Branch, "..") || strings.HasSuffix(wp.Git.Branch, ".lock") {
			l.add(probs, "git.branch", []any{"git", "branch"}, "branch %q must match agent/* (one segment of letters, digits, '.', '_', '-'; no '..', not ending in .lock)", clip(wp.Git.Branch))
		}
	}
}

func checkThread(l locator, t *Thread, probs *Problems) {
	checkHeader(l, t.APIVersion, t.Kind, KindThread, probs)
	checkDuration(l, probs, "runtime.max_runtime", []any{"runtime", "max_runtime"}, t.Runtime.MaxRuntime)
	checkDuration(l, probs, "ceilings.max_runtime", []any{"ceilings", "max_runtime"}, t.Ceilings.MaxRuntime)
	checkPaths(l, probs, "shared_interfaces", t.SharedInterfaces, true)
}

func checkRequirements(l locator, r *Requirements, probs *Problems) {
	checkHeader(l, r.APIVersion, r.Kind, KindRequirements, probs)
	seen := map[string]int{}
	for i, fr := range r.Requirements {
		base := fmt.Sprintf("requirements[%d]", i)
		if fr.ID != "" {
			if !frIDRE.MatchString(fr.ID) {
				l.add(probs, base+".id", []any{"requirements", i, "id"}, "%q is not an FR id (FR-AREA-001: 'FR-' then upper-case letters, digits and '-')", clip(fr.ID))
			}
			if j, dup := seen[fr.ID]; dup {
				l.add(probs, base+".id", []any{"requirements", i, "id"}, "duplicate FR id %q (also requirements[%d])", fr.ID, j)
			}
			seen[fr.ID] = i
		}
		checkDuration(l, probs, base+".runtime_ceiling", []any{"requirements", i, "runtime_ceiling"}, fr.RuntimeCeiling)
		acSeen := map[string]bool{}
		for j, ac := range fr.Acceptance {
			ab := fmt.Sprintf("%s.acceptance[%d]", base, j)
			if ac.ID != "" {
				if acSeen[ac.ID] {
					l.add(probs, ab+".id", []any{"requirements", i, "acceptance", j, "id"}, "duplicate acceptance id %q in %s", ac.ID, fr.ID)
				}
				acSeen[ac.ID] = true
			}
			if ac.Test.Name != "" && !goTestNameRE.MatchString(ac.Test.Name) {
				l.add(probs, ab+".test.name", []any{"requirements", i, "acceptance", j, "test", "name"}, "%q is not a Go test name: TestXxx (Xxx not starting with a lower-case letter), optionally /subtest", clip(ac.Test.Name))
			}
			if pkg := ac.Test.Package; pkg != "" {
				if why := checkTestPackage(pkg); why != "" {
					l.add(probs, ab+".test.package", []any{"requirements", i, "acceptance", j, "test", "package"}, "%q: %s", clip(pkg), why)
				}
			}
		}
	}
}

// checkTestPackage accepts "." or "./dir" (repo-relative) or an import path.
func checkTestPackage(pkg string) string {
	if pkg == "." {
		return ""
	}
	if rel, ok := strings.CutPrefix(pkg, "./"); ok {
		if strings.Contains(rel, "...") {
			return "name one package, not a pattern"
		}
		return checkRepoPath(rel, false)
	}
	if strings.ContainsAny(pkg, " \t\\*") || strings.HasPrefix(pkg, "/") || slices.Contains(strings.Split(pkg, "/"), "..") || strings.Contains(pkg, "...") {
		return "write ./dir (relative to the repository root) or a Go import path"
	}
	return ""
}

func checkPolicy(l locator, p *Policy, probs *Problems) {
	checkHeader(l, p.APIVersion, p.Kind, KindPolicy, probs)
	targets := map[string]bool{}
	for i, r := range p.Ladder {
		if _, err := path.Match(r.Source, ""); err != nil {
			l.add(probs, fmt.Sprintf("ladder[%d].source", i), []any{"ladder", i, "source"}, "malformed branch pattern %q", clip(r.Source))
		}
		targets[r.Target] = true
		for j, prev := range p.Ladder[:i] {
			if prev.Source == r.Source && prev.Target == r.Target && r.Source != "" {
				l.add(probs, fmt.Sprintf("ladder[%d]", i), []any{"ladder", i}, "duplicate rung %s -> %s (also ladder[%d])", r.Source, r.Target, j)
			}
		}
	}
	if p.Ladder != nil {
		// The policy may tighten the seed ladder, never loosen it.
		for _, seed := range DefaultLadder() {
			var got *Rung
			for i := range p.Ladder {
				if p.Ladder[i].Source == seed.Source && p.Ladder[i].Target == seed.Target {
					got = &p.Ladder[i]
				}
			}
			if got == nil {
				l.add(probs, "ladder", []any{"ladder"}, "the seed rung %s -> %s is missing; a policy may add rungs and requirements but not remove them", seed.Source, seed.Target)
				continue
			}
			for _, req := range seed.Requires {
				if !slices.Contains(got.Requires, req) {
					l.add(probs, "ladder", []any{"ladder"}, "rung %s -> %s must require %q (seed rule); a policy may add requirements but not remove them", seed.Source, seed.Target, req)
				}
			}
		}
	} else {
		for _, r := range DefaultLadder() {
			targets[r.Target] = true
		}
	}
	for i, a := range p.Approvers {
		if a.Rung != "" && !targets[a.Rung] {
			l.add(probs, fmt.Sprintf("approvers[%d].rung", i), []any{"approvers", i, "rung"}, "%q is not the target of any ladder rung", clip(a.Rung))
		}
	}
	if p.IntegrationThread != "" {
		if why := checkRepoPath(p.IntegrationThread, false); why != "" {
			l.add(probs, "integration_thread", []any{"integration_thread"}, "%q: %s", clip(p.IntegrationThread), why)
		}
	}
	checkPaths(l, probs, "security_critical_paths", p.SecurityCritical, true)
	checkPaths(l, probs, "shared_dependency_files", p.SharedDependencyFiles, true)
	for i, a := range p.Vuln.Allow {
		if a.Expires == "" {
			continue
		}
		if _, err := time.Parse(time.DateOnly, a.Expires); err != nil {
			l.add(probs, fmt.Sprintf("vuln.allow[%d].expires", i), []any{"vuln", "allow", i, "expires"}, "%q is not a date; write YYYY-MM-DD", clip(a.Expires))
		}
	}
}
