package report

import (
	"encoding/json"
	"io"
	"net/url"
	"path/filepath"
	"sort"

	"github.com/agentgate/agentgate/checks"
)

// SARIFSchemaURI is the $schema written in SARIF output (the OASIS
// errata 01 location of the 2.1.0 schema).
const SARIFSchemaURI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"

// InformationURI is the project's home, written as the SARIF tool's
// informationUri.
const InformationURI = "https://github.com/agentgate/agentgate"

// The SARIF 2.1.0 subset agentgate writes. Field names follow the spec.
type (
	SARIFLog struct {
		Schema  string     `json:"$schema"`
		Version string     `json:"version"`
		Runs    []SARIFRun `json:"runs"`
	}
	SARIFRun struct {
		Tool                     SARIFTool              `json:"tool"`
		AutomationDetails        *SARIFAutomation       `json:"automationDetails,omitempty"`
		Invocations              []SARIFInvocation      `json:"invocations"`
		VersionControlProvenance []SARIFVersionControl  `json:"versionControlProvenance,omitempty"`
		OriginalURIBaseIDs       map[string]SARIFArtLoc `json:"originalUriBaseIds,omitempty"`
		Results                  []SARIFResult          `json:"results"`
		Properties               map[string]any         `json:"properties,omitempty"`
	}
	SARIFTool struct {
		Driver SARIFDriver `json:"driver"`
	}
	SARIFDriver struct {
		Name           string      `json:"name"`
		Version        string      `json:"version,omitempty"`
		InformationURI string      `json:"informationUri,omitempty"`
		Rules          []SARIFRule `json:"rules"`
	}
	SARIFRule struct {
		ID                   string         `json:"id"`
		Name                 string         `json:"name,omitempty"`
		ShortDescription     SARIFMessage   `json:"shortDescription"`
		DefaultConfiguration SARIFRuleConf  `json:"defaultConfiguration"`
		Properties           map[string]any `json:"properties,omitempty"`
	}
	SARIFRuleConf struct {
		Level string `json:"level"`
	}
	SARIFMessage struct {
		Text string `json:"text"`
	}
	SARIFAutomation struct {
		ID string `json:"id"`
	}
	SARIFInvocation struct {
		ExecutionSuccessful        bool                `json:"executionSuccessful"`
		ToolExecutionNotifications []SARIFNotification `json:"toolExecutionNotifications,omitempty"`
	}
	SARIFNotification struct {
		Level      string         `json:"level"`
		Message    SARIFMessage   `json:"message"`
		Properties map[string]any `json:"properties,omitempty"`
	}
	SARIFVersionControl struct {
		RepositoryURI string `json:"repositoryUri"`
		RevisionID    string `json:"revisionId,omitempty"`
		Branch        string `json:"branch,omitempty"`
	}
	SARIFArtLoc struct {
		URI       string `json:"uri,omitempty"`
		URIBaseID string `json:"uriBaseId,omitempty"`
	}
	SARIFResult struct {
		RuleID              string            `json:"ruleId"`
		RuleIndex           int               `json:"ruleIndex"`
		Level               string            `json:"level"`
		Message             SARIFMessage      `json:"message"`
		Locations           []SARIFLocation   `json:"locations,omitempty"`
		PartialFingerprints map[string]string `json:"partialFingerprints,omitempty"`
		Properties          map[string]any    `json:"properties,omitempty"`
	}
	SARIFLocation struct {
		PhysicalLocation SARIFPhysical `json:"physicalLocation"`
	}
	SARIFPhysical struct {
		ArtifactLocation SARIFArtLoc  `json:"artifactLocation"`
		Region           *SARIFRegion `json:"region,omitempty"`
	}
	SARIFRegion struct {
		StartLine int `json:"startLine"`
	}
)

// Level maps a finding severity to a SARIF level.
func Level(s checks.Severity) string {
	switch s {
	case checks.SeverityCritical, checks.SeverityHigh:
		return "error"
	case checks.SeverityMedium:
		return "warning"
	}
	return "note"
}

// securitySeverity is GitHub code scanning's numeric severity.
func securitySeverity(s checks.Severity) string {
	switch s {
	case checks.SeverityCritical:
		return "9.5"
	case checks.SeverityHigh:
		return "8.0"
	case checks.SeverityMedium:
		return "5.5"
	}
	return "2.0"
}

// fileURI renders a relative repository path as a URI reference.
func fileURI(p string) string {
	return (&url.URL{Path: filepath.ToSlash(p)}).String()
}

// SARIF converts the report to a SARIF 2.1.0 log with one run. Findings
// without a path are attached to the plan file when there is one, so that
// code scanning (which needs a location) shows them.
func (r *Report) SARIF() *SARIFLog {
	run := SARIFRun{
		Tool: SARIFTool{Driver: SARIFDriver{Name: orDefault(r.Tool.Name, "agentgate"), Version: r.Tool.Version,
			InformationURI: InformationURI, Rules: []SARIFRule{}}},
		AutomationDetails: &SARIFAutomation{ID: "agentgate/check/" + r.PlanID},
		Results:           []SARIFResult{},
		Properties: map[string]any{
			"decision": string(r.Decision), "stop_reason": string(r.StopReason),
			"base": r.Base, "head": r.Head, "merge_base": r.MergeBase, "plan_id": r.PlanID,
		},
	}
	if r.Head != "" && r.Repo != "" {
		repoURI := (&url.URL{Scheme: "file", Path: filepath.ToSlash(r.Repo)}).String()
		run.VersionControlProvenance = []SARIFVersionControl{{RepositoryURI: repoURI, RevisionID: r.Head}}
		run.OriginalURIBaseIDs = map[string]SARIFArtLoc{"%SRCROOT%": {URI: repoURI + "/"}}
	}
	inv := SARIFInvocation{ExecutionSuccessful: true}
	for _, c := range r.Checks {
		if c.Status == checks.StatusError {
			inv.ExecutionSuccessful = false
			inv.ToolExecutionNotifications = append(inv.ToolExecutionNotifications, SARIFNotification{
				Level: "error", Message: SARIFMessage{Text: c.Name + " could not run: " + orUnknown(c.Reason)},
				Properties: map[string]any{"check": c.Name},
			})
		}
	}
	run.Invocations = []SARIFInvocation{inv}

	ruleIndex := map[string]int{}
	for _, cf := range r.Findings() {
		id := RuleID(cf.Check, cf.Rule)
		idx, ok := ruleIndex[id]
		if !ok {
			idx = len(run.Tool.Driver.Rules)
			ruleIndex[id] = idx
			run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, SARIFRule{
				ID: id, Name: cf.Rule,
				ShortDescription:     SARIFMessage{Text: "agentgate " + cf.Check + " check: " + cf.Rule},
				DefaultConfiguration: SARIFRuleConf{Level: Level(cf.Severity)},
				Properties: map[string]any{"security-severity": securitySeverity(cf.Severity),
					"tags": []string{"agentgate", cf.Check, "security"}},
			})
		}
		res := SARIFResult{
			RuleID: id, RuleIndex: idx, Level: Level(cf.Severity),
			Message:    SARIFMessage{Text: orDefault(cf.Message, cf.Rule)},
			Properties: map[string]any{"check": cf.Check, "severity": string(cf.Severity)},
		}
		if cf.Fingerprint != "" {
			res.PartialFingerprints = map[string]string{"agentgate/v1": cf.Fingerprint}
		}
		if cf.Stop != "" {
			res.Properties["stop_reason"] = string(cf.Stop)
		}
		if cf.NeedsApproval {
			res.Properties["needs_approval"] = true
		}
		p := cf.Path
		if p == "" {
			p = r.PlanPath
		}
		if p != "" {
			loc := SARIFLocation{PhysicalLocation: SARIFPhysical{ArtifactLocation: SARIFArtLoc{URI: fileURI(p), URIBaseID: "%SRCROOT%"}}}
			if cf.Line > 0 && cf.Path != "" {
				loc.PhysicalLocation.Region = &SARIFRegion{StartLine: cf.Line}
			}
			res.Locations = []SARIFLocation{loc}
		}
		run.Results = append(run.Results, res)
	}
	sort.SliceStable(run.Results, func(i, j int) bool { return run.Results[i].RuleIndex < run.Results[j].RuleIndex })
	return &SARIFLog{Schema: SARIFSchemaURI, Version: "2.1.0", Runs: []SARIFRun{run}}
}

// WriteSARIF writes the SARIF rendering of the report.
func (r *Report) WriteSARIF(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r.SARIF())
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
