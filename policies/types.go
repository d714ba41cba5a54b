package policies

// APIVersion is the only apiVersion agentgate understands today.
const APIVersion = "agentgate.dev/v1"

// Kinds of YAML contract documents.
const (
	KindThread       = "Thread"
	KindRequirements = "Requirements"
	KindPolicy       = "Policy"
)

// Conventional file names.
const (
	WorkPlanFile     = "WORK_PLAN.json"
	ThreadFile       = "config.yaml"
	RequirementsFile = "requirements.yaml"
	PolicyFile       = ".agentgate/policy.yaml"
)

// Risk levels, ordered.
type Risk string

const (
	RiskLow      Risk = "low"
	RiskMedium   Risk = "medium"
	RiskHigh     Risk = "high"
	RiskCritical Risk = "critical"
)

// StopReason is one of the fixed stop reason codes.
type StopReason string

const (
	StopSecurityViolation  StopReason = "STOP_SECURITY_VIOLATION"
	StopSecretExposure     StopReason = "STOP_SECRET_EXPOSURE"
	StopUnauthorizedAccess StopReason = "STOP_UNAUTHORIZED_ACCESS"
	StopBudgetExceeded     StopReason = "STOP_BUDGET_EXCEEDED"
	StopNoProgress         StopReason = "STOP_NO_PROGRESS"
	StopRuntimeExceeded    StopReason = "STOP_RUNTIME_EXCEEDED"
	// StopCoverageRegression is agentgate's own code: the reference design
	// requires a stop on a global coverage regression but names no code.
	StopCoverageRegression StopReason = "STOP_COVERAGE_REGRESSION"
)

// StopReasons lists every valid stop reason code.
var StopReasons = []StopReason{
	StopSecurityViolation, StopSecretExposure, StopUnauthorizedAccess,
	StopBudgetExceeded, StopNoProgress, StopRuntimeExceeded, StopCoverageRegression,
}

// Duration is a Go duration string ("30m", "1h30m") in contract files.
type Duration string

// WorkPlan is a thread's WORK_PLAN.json: the agent's declared intent.
type WorkPlan struct {
	// Schema is the optional "$schema" URL editors use to find the schema.
	Schema          string       `json:"$schema,omitempty"`
	APIVersion      string       `json:"apiVersion"`
	PlanID          string       `json:"plan_id"`
	FRIDs           []string     `json:"fr_ids"`
	Thread          string       `json:"thread"`
	TargetFiles     []string     `json:"target_files"`
	ExpectedChanges string       `json:"expected_changes,omitempty"`
	Risk            Risk         `json:"risk"`
	Tests           PlanTests    `json:"tests"`
	Limits          PlanLimits   `json:"limits"`
	Budget          PlanBudget   `json:"budget"`
	Git             PlanGit      `json:"git"`
	Security        PlanSecurity `json:"security"`
	StopConditions  []StopReason `json:"stop_conditions,omitempty"`
}

// PlanTests says how the thread's tests run and what coverage must hold.
type PlanTests struct {
	// Command is the argv of the test command; it must be allowlisted by the
	// thread's tools. Empty means `go test -json ./...` in the thread.
	Command []string `json:"command,omitempty"`
	// CoverageChangedMin is the minimum statement coverage (percent, 0–100)
	// of the changed files.
	CoverageChangedMin float64 `json:"coverage_changed_min,omitempty"`
	// CoverageRegressionTolerance is how many percentage points total
	// coverage may drop versus base before the run stops.
	CoverageRegressionTolerance float64 `json:"coverage_regression_tolerance,omitempty"`
	RequireTestsForChanged      bool    `json:"require_tests_for_changed,omitempty"`
}

// PlanLimits bounds one agent run.
type PlanLimits struct {
	MaxIterations        int      `json:"max_iterations"`
	NoProgressIterations int      `json:"no_progress_iterations,omitempty"`
	MaxRuntime           Duration `json:"max_runtime"`
	MaxToolCalls         int      `json:"max_tool_calls,omitempty"`
	MaxFilesChanged      int      `json:"max_files_changed"`
	MaxDiffLines         int      `json:"max_diff_lines"`
}

// PlanBudget is the run's spending limit and its escalation ratios.
type PlanBudget struct {
	LimitUSD       float64 `json:"limit_usd"`
	WarnRatio      float64 `json:"warn_ratio,omitempty"`
	EscalateRatio  float64 `json:"escalate_ratio,omitempty"`
	StopRatio      float64 `json:"stop_ratio,omitempty"`
	DegradeToLocal bool    `json:"degrade_to_local,omitempty"`
}

// Default budget ratios.
const (
	DefaultWarnRatio     = 0.7
	DefaultEscalateRatio = 0.9
	DefaultStopRatio     = 1.0
)

// PlanGit names the agent branch and the branch it targets.
type PlanGit struct {
	Branch string `json:"branch"`
	Target string `json:"target,omitempty"`
}

// PlanSecurity selects security gates and the severity that fails them.
type PlanSecurity struct {
	Gates  []string `json:"gates,omitempty"`
	FailOn Risk     `json:"fail_on,omitempty"`
}

// Thread is a thread directory's config.yaml (kind: Thread).
type Thread struct {
	APIVersion       string         `json:"apiVersion" yaml:"apiVersion"`
	Kind             string         `json:"kind" yaml:"kind"`
	Name             string         `json:"name" yaml:"name"`
	Owner            string         `json:"owner" yaml:"owner"`
	Runtime          ThreadRuntime  `json:"runtime,omitempty" yaml:"runtime"`
	Tools            []string       `json:"tools,omitempty" yaml:"tools"`
	Network          ThreadNetwork  `json:"network,omitempty" yaml:"network"`
	SharedInterfaces []string       `json:"shared_interfaces,omitempty" yaml:"shared_interfaces"`
	Ceilings         ThreadCeilings `json:"ceilings,omitempty" yaml:"ceilings"`
	PolicyRefs       []string       `json:"policy_refs,omitempty" yaml:"policy_refs"`

	// Dir is the thread's repo-relative directory ("." for the root). Set by
	// the loader, not read from the file.
	Dir string `json:"-" yaml:"-"`
}

// ThreadRuntime bounds processes run for the thread (sandbox limits).
type ThreadRuntime struct {
	MaxRuntime Duration `json:"max_runtime,omitempty" yaml:"max_runtime"`
	// CPU is a number of CPUs, e.g. 1 or 0.5.
	CPU float64 `json:"cpu,omitempty" yaml:"cpu"`
	// Memory is a byte size with a binary suffix, e.g. "2Gi", "512Mi".
	Memory string `json:"memory,omitempty" yaml:"memory"`
}

// ThreadNetwork is default-deny; Allow lists the only reachable hosts.
type ThreadNetwork struct {
	Allow []string `json:"allow,omitempty" yaml:"allow"`
}

// ThreadCeilings are the most a WORK_PLAN in this thread may ask for.
type ThreadCeilings struct {
	MaxIterations   int      `json:"max_iterations,omitempty" yaml:"max_iterations"`
	MaxRuntime      Duration `json:"max_runtime,omitempty" yaml:"max_runtime"`
	MaxToolCalls    int      `json:"max_tool_calls,omitempty" yaml:"max_tool_calls"`
	BudgetUSD       float64  `json:"budget_usd,omitempty" yaml:"budget_usd"`
	MaxFilesChanged int      `json:"max_files_changed,omitempty" yaml:"max_files_changed"`
	MaxDiffLines    int      `json:"max_diff_lines,omitempty" yaml:"max_diff_lines"`
}

// Requirements is a thread's requirements.yaml (kind: Requirements).
type Requirements struct {
	APIVersion   string        `json:"apiVersion" yaml:"apiVersion"`
	Kind         string        `json:"kind" yaml:"kind"`
	Requirements []Requirement `json:"requirements" yaml:"requirements"`
}

// Requirement is one Functional Requirement (FR).
type Requirement struct {
	ID             string              `json:"id" yaml:"id"`
	Owner          string              `json:"owner" yaml:"owner"`
	Objective      string              `json:"objective" yaml:"objective"`
	NonGoals       []string            `json:"non_goals,omitempty" yaml:"non_goals"`
	Inputs         []string            `json:"inputs,omitempty" yaml:"inputs"`
	Outputs        []string            `json:"outputs,omitempty" yaml:"outputs"`
	Acceptance     []Acceptance        `json:"acceptance" yaml:"acceptance"`
	Security       RequirementSecurity `json:"security,omitempty" yaml:"security"`
	CostCeilingUSD float64             `json:"cost_ceiling_usd,omitempty" yaml:"cost_ceiling_usd"`
	RuntimeCeiling Duration            `json:"runtime_ceiling,omitempty" yaml:"runtime_ceiling"`
	Done           []string            `json:"done,omitempty" yaml:"done"`
	Rollback       []string            `json:"rollback,omitempty" yaml:"rollback"`
}

// Acceptance is one testable acceptance criterion, mapped to a real test.
type Acceptance struct {
	ID          string         `json:"id" yaml:"id"`
	Description string         `json:"description" yaml:"description"`
	Test        AcceptanceTest `json:"test" yaml:"test"`
}

// AcceptanceTest names an executable test: a Go package (repo-relative
// import path suffix or ./dir) and a test function name.
type AcceptanceTest struct {
	Package string `json:"package" yaml:"package"`
	Name    string `json:"name" yaml:"name"`
}

// RequirementSecurity holds security constraints of an FR.
type RequirementSecurity struct {
	Constraints []string `json:"constraints,omitempty" yaml:"constraints"`
	Prohibited  []string `json:"prohibited,omitempty" yaml:"prohibited"`
}

// Policy is the repository policy .agentgate/policy.yaml (kind: Policy).
type Policy struct {
	APIVersion            string          `json:"apiVersion" yaml:"apiVersion"`
	Kind                  string          `json:"kind" yaml:"kind"`
	Ladder                []Rung          `json:"ladder,omitempty" yaml:"ladder"`
	Approvers             []RungApprovers `json:"approvers,omitempty" yaml:"approvers"`
	AgentIdentities       []AgentIdentity `json:"agent_identities,omitempty" yaml:"agent_identities"`
	SecurityCritical      []string        `json:"security_critical_paths,omitempty" yaml:"security_critical_paths"`
	Anomaly               AnomalyPolicy   `json:"anomaly,omitempty" yaml:"anomaly"`
	AllowedFileTypes      []string        `json:"allowed_file_types,omitempty" yaml:"allowed_file_types"`
	IntegrationThread     string          `json:"integration_thread,omitempty" yaml:"integration_thread"`
	SharedDependencyFiles []string        `json:"shared_dependency_files,omitempty" yaml:"shared_dependency_files"`
	MaturityLevel         int             `json:"maturity_level" yaml:"maturity_level"`
	AutoApprove           AutoApprove     `json:"auto_approve,omitempty" yaml:"auto_approve"`
	AutoMerge             bool            `json:"auto_merge,omitempty" yaml:"auto_merge"`
	Vuln                  VulnPolicy      `json:"vuln,omitempty" yaml:"vuln"`
}

// Rung is one step of the promotion ladder.
type Rung struct {
	Name string `json:"name" yaml:"name"`
	// Source and Target are branch patterns (path.Match syntax, e.g. "agent/*").
	Source   string   `json:"source" yaml:"source"`
	Target   string   `json:"target" yaml:"target"`
	Requires []string `json:"requires,omitempty" yaml:"requires"`
}

// Requirements a rung may list.
const (
	RequireChecks          = "checks"           // every gate of `agentgate check` green
	RequirePlanValid       = "plan_valid"       // the plan validates against base
	RequireTrailers        = "trailers"         // Plan-Id: and Iteration: trailers
	RequirePolicyValid     = "policy_valid"     // the whole tree validates
	RequireGateEvidence    = "gate_evidence"    // every agent commit covered by a passing signed attestation
	RequireBudgetCompliant = "budget_compliant" // no run ended over budget
	RequireHumanApproval   = "human_approval"   // /approve-promotion (or auto-approval)
)

// RungApprovers lists who may approve promotion to a target branch.
type RungApprovers struct {
	Rung  string   `json:"rung" yaml:"rung"` // the rung's target branch
	Users []string `json:"users,omitempty" yaml:"users"`
	Teams []string `json:"teams,omitempty" yaml:"teams"` // "org/team-slug"
}

// AgentIdentity identifies an agent by GitHub login and/or commit e-mail.
type AgentIdentity struct {
	Login string `json:"login,omitempty" yaml:"login"`
	Email string `json:"email,omitempty" yaml:"email"`
}

// AnomalyPolicy holds thresholds of the scope check's anomaly rules.
type AnomalyPolicy struct {
	MaxFileBytes         int64 `json:"max_file_bytes,omitempty" yaml:"max_file_bytes"`
	AllowBinaries        bool  `json:"allow_binaries,omitempty" yaml:"allow_binaries"`
	AllowExecutable      bool  `json:"allow_executable,omitempty" yaml:"allow_executable"`
	AllowSymlinks        bool  `json:"allow_symlinks,omitempty" yaml:"allow_symlinks"`
	AllowSubmodules      bool  `json:"allow_submodules,omitempty" yaml:"allow_submodules"`
	AllowNewDependencies bool  `json:"allow_new_dependencies,omitempty" yaml:"allow_new_dependencies"`
}

// AutoApprove pre-approves low-risk promotions to main.
type AutoApprove struct {
	Enabled bool `json:"enabled" yaml:"enabled"`
	// MaxRisk is the highest plan risk that may be auto-approved (default low).
	MaxRisk Risk `json:"max_risk,omitempty" yaml:"max_risk"`
}

// VulnPolicy says how vulnerability findings gate.
type VulnPolicy struct {
	// FailOn is the lowest reachability level that fails: called (default),
	// imported or required.
	FailOn string `json:"fail_on,omitempty" yaml:"fail_on"`
	// Stdlib is the policy for toolchain (standard library) findings:
	// warn (default) or fail.
	Stdlib string `json:"stdlib,omitempty" yaml:"stdlib"`
	// Allow lists OSV ids accepted until an expiry date.
	Allow []VulnAllow `json:"allow,omitempty" yaml:"allow"`
}

// VulnAllow accepts one advisory until Expires (YYYY-MM-DD).
type VulnAllow struct {
	ID      string `json:"id" yaml:"id"`
	Reason  string `json:"reason" yaml:"reason"`
	Expires string `json:"expires" yaml:"expires"`
}
