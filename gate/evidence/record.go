package evidence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/report"
	"github.com/agentgate/agentgate/gate/attest"
	"github.com/agentgate/agentgate/gate/audit"
	"github.com/agentgate/agentgate/gate/manifest"
	"github.com/agentgate/agentgate/internal/gitcli"
	"github.com/agentgate/agentgate/policies"
)

// Audit event kinds written by Record.
const (
	KindDecision = "gate.decision"
	KindStop     = "gate.stop"
	KindEvidence = "gate.evidence"
)

// Artifact names inside the output directory.
const (
	ManifestFile    = manifest.FileName
	AttestationFile = attest.BundleFileName
	// StopDir holds one directory per stop, named TIME-HEAD12 (UTC,
	// 20060102T150405Z): stop.json, manifest.json, report.json, logs/,
	// diff.bundle, diff.patch. A stop never writes into an earlier one's.
	StopDir = "evidence"
)

// Options says what to record. Report is required; everything else is
// optional and its absence is recorded, never papered over.
type Options struct {
	Report *report.Report
	// Log is the audit log; nil records nothing in it (the manifest says so).
	Log *audit.Log
	// Signer signs the attestation and the audit checkpoint; nil writes no
	// attestation.
	Signer signature.Signer
	// Sink stores artifacts; nil means Dir(OutDir). With neither, only the
	// audit record is written.
	Sink   Sink
	OutDir string
	// LogDir holds the per-check logs (<check>.log) copied into the stop
	// evidence; "" means OutDir.
	LogDir string

	Rung         attest.Rung       // Target "" means the base ref's branch name
	RepoID       string            // repository identity for the attestation; "" means Report.Repo
	Plan         []byte            // WORK_PLAN.json bytes; nil reads Report.PlanPath at head
	PolicyDigest string            // "" means the tree of .agentgate at base (gitTree:<sha>)
	Approvals    []attest.Approval // approvals counted for this decision
	Tools        map[string]string // extra tool versions
	Databases    map[string]string // extra database versions
	Actor        string            // audit actor; "" means "agentgate check"
	RunID        string
	Now          func() time.Time
}

// Result says what was recorded and where.
type Result struct {
	Decision    *audit.Record     // the decision (or stop) record
	Evidence    *audit.Record     // the record listing artifact digests
	Checkpoint  *audit.Checkpoint // the signed audit head after recording
	Manifest    string            // location of manifest.json
	Attestation string            // location of attestation.sigstore.json
	StopDir     []string          // locations of the stop evidence
	Digests     map[string]string // artifact name -> sha256
}

// Record appends the decision to the audit log, persists the manifest (and,
// for a stop, the stop evidence), signs the attestation and checkpoints the
// audit log, in that order. It fails closed: any error is returned and the
// caller must treat the evaluation as failed.
func Record(ctx context.Context, o Options) (*Result, error) {
	rep := o.Report
	if rep == nil {
		return nil, errors.New("evidence: no report to record")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Actor == "" {
		o.Actor = "agentgate check"
	}
	if o.LogDir == "" {
		o.LogDir = o.OutDir
	}
	sink := o.Sink
	if sink == nil && o.OutDir != "" {
		sink = Dir(o.OutDir)
	}
	res := &Result{Digests: map[string]string{}}

	plan := o.Plan
	if plan == nil && rep.PlanPath != "" && rep.Head != "" {
		b, err := gitcli.ReadFile(ctx, rep.Repo, rep.Head, rep.PlanPath, 4<<20)
		if err != nil {
			return nil, fmt.Errorf("evidence: read the plan %s at head: %w", rep.PlanPath, err)
		}
		plan = b
	}
	planSHA := ""
	if len(plan) > 0 {
		sum := sha256.Sum256(plan)
		planSHA = hex.EncodeToString(sum[:])
	}
	policy := o.PolicyDigest
	if policy == "" && rep.Base != "" {
		out, err := gitcli.Run(ctx, rep.Repo, "rev-parse", "--verify", "--quiet", rep.Base+":.agentgate")
		if err == nil {
			policy = "gitTree:" + strings.TrimSpace(string(out))
		}
		// No .agentgate directory on base: the policy digest stays empty.
	}
	rung := o.Rung
	if rung.Target == "" {
		rung.Target = branchName(rep.BaseRef)
	}
	if rung.Source == "" {
		rung.Source = branchName(rep.HeadRef)
	}
	tools, dbs := versions(rep, o)

	// 1. The decision goes to the audit log before anything else.
	kind := KindDecision
	if rep.Decision == report.Stop {
		kind = KindStop
	}
	payload := map[string]any{
		"decision": rep.Decision, "stop_reason": rep.StopReason, "stop_reasons": rep.StopReasons,
		"reasons": rep.Reasons, "approval_required": rep.ApprovalRequired,
		"base": rep.Base, "merge_base": rep.MergeBase, "rung": rung,
		"plan_path": rep.PlanPath, "plan_sha256": planSHA, "policy_digest": policy,
		"checks": checkSummaries(rep.Checks), "tool": rep.Tool,
	}
	if o.Log != nil {
		rec, err := o.Log.Append(ctx, audit.Event{Actor: o.Actor, Kind: kind, Repo: repoID(rep, o), SHA: rep.Head,
			PlanID: rep.PlanID, RunID: o.RunID, Payload: payload})
		if err != nil {
			return nil, fmt.Errorf("evidence: record the decision in the audit log (nothing else was written): %w", err)
		}
		res.Decision = &rec
	}

	// 2. The manifest and, for a stop, the stop evidence.
	m := buildManifest(ctx, rep, o, plan, planSHA)
	mb, err := m.Marshal()
	if err != nil {
		return res, err
	}
	put := func(name string, data []byte) (string, error) {
		loc, err := sink.Put(ctx, name, bytes.NewReader(data))
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(data)
		res.Digests[name] = hex.EncodeToString(sum[:])
		return loc, nil
	}
	if sink != nil {
		if res.Manifest, err = put(ManifestFile, mb); err != nil {
			return res, err
		}
		if rep.Decision == report.Stop {
			if err := persistStop(ctx, rep, o, put, mb, res); err != nil {
				return res, err
			}
		}
	} else if rep.Decision == report.Stop {
		return res, errors.New("evidence: a stop needs somewhere to persist its evidence: pass --out DIR")
	}

	// 3. The attestation, anchored to the audit record of the decision.
	if o.Signer != nil {
		if sink == nil {
			return res, errors.New("evidence: signing needs an output directory for the attestation: pass --out DIR")
		}
		d := &attest.Decision{
			Repo: repoID(rep, o), Base: rep.Base, Head: rep.Head, MergeBase: rep.MergeBase, Rung: rung,
			PlanID: rep.PlanID, PlanPath: rep.PlanPath, Plan: plan, PolicyDigest: policy,
			Checks: attestChecks(rep.Checks), Tools: tools, Databases: dbs,
			Decision: string(rep.Decision), StopReason: string(rep.StopReason), Reasons: rep.Reasons,
			Approval: rep.ApprovalRequired, Approvals: o.Approvals, DecidedAt: o.Now(),
		}
		if res.Decision != nil {
			d.Audit = &attest.AuditRef{Seq: res.Decision.Seq, Hash: res.Decision.Hash}
		}
		bundle, err := attest.Sign(ctx, o.Signer, d)
		if err != nil {
			return res, fmt.Errorf("evidence: %w", err)
		}
		if res.Attestation, err = put(AttestationFile, bundle); err != nil {
			return res, err
		}
	}

	// 4. What was written, then a signed checkpoint over all of it.
	if o.Log != nil && len(res.Digests) > 0 {
		rec, err := o.Log.Append(ctx, audit.Event{Actor: o.Actor, Kind: KindEvidence, Repo: repoID(rep, o), SHA: rep.Head,
			PlanID: rep.PlanID, RunID: o.RunID, Payload: map[string]any{"decision_seq": res.Decision.Seq, "sha256": res.Digests}})
		if err != nil {
			return res, fmt.Errorf("evidence: record the artifact digests in the audit log: %w", err)
		}
		res.Evidence = &rec
	}
	if o.Log != nil && o.Signer != nil {
		cp, err := o.Log.Checkpoint(ctx)
		if err != nil {
			return res, fmt.Errorf("evidence: %w", err)
		}
		res.Checkpoint = &cp
	}
	return res, nil
}

func persistStop(ctx context.Context, rep *report.Report, o Options, put func(string, []byte) (string, error), manifestJSON []byte, res *Result) error {
	stop := map[string]any{"stop_reason": rep.StopReason, "stop_reasons": rep.StopReasons, "reasons": rep.Reasons,
		"repo": rep.Repo, "head": rep.Head, "merge_base": rep.MergeBase, "plan_id": rep.PlanID, "time": o.Now().UTC()}
	if res.Decision != nil {
		stop["audit_seq"], stop["audit_hash"] = res.Decision.Seq, res.Decision.Hash
	}
	stopJSON, _ := json.MarshalIndent(stop, "", "  ")
	sub := StopDir + "/" + o.Now().UTC().Format("20060102T150405Z") + "-" + short(rep.Head)
	if o.OutDir != "" {
		if _, err := os.Lstat(filepath.Join(o.OutDir, filepath.FromSlash(sub))); err == nil {
			return fmt.Errorf("evidence: %s already exists; stop evidence is never overwritten", sub)
		}
	}
	add := func(name string, data []byte) error {
		loc, err := put(sub+"/"+name, data)
		if err != nil {
			return err
		}
		res.StopDir = append(res.StopDir, loc)
		return nil
	}
	if err := add("stop.json", append(stopJSON, '\n')); err != nil {
		return err
	}
	if err := add(ManifestFile, manifestJSON); err != nil {
		return err
	}
	reportJSON, err := rep.Marshal()
	if err != nil {
		return err
	}
	if err := add("report.json", reportJSON); err != nil {
		return err
	}
	for _, c := range rep.Checks {
		if o.LogDir == "" {
			break
		}
		data, err := os.ReadFile(filepath.Join(o.LogDir, c.Name+".log"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("evidence: read the %s log: %w", c.Name, err)
		}
		if err := add("logs/"+c.Name+".log", data); err != nil {
			return err
		}
	}
	if rep.MergeBase != "" && rep.Head != "" {
		tmp, err := os.MkdirTemp("", "agentgate-evidence-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		bundlePath := filepath.Join(tmp, "diff.bundle")
		switch err := Bundle(ctx, rep.Repo, rep.MergeBase, rep.Head, bundlePath); {
		case errors.Is(err, ErrEmptyRange):
		case err != nil:
			return err
		default:
			data, err := os.ReadFile(bundlePath)
			if err != nil {
				return err
			}
			if err := add("diff.bundle", data); err != nil {
				return err
			}
			// A plaintext patch of a change that exposed a secret would
			// spread the secret to every reader of the evidence directory;
			// the bundle keeps the exact objects for forensics.
			if slices.Contains(rep.StopReasons, policies.StopSecretExposure) || rep.StopReason == policies.StopSecretExposure {
				note := []byte("diff.patch omitted: the change exposed a secret (" + string(policies.StopSecretExposure) + ");\n" +
					"the exact commits are in diff.bundle (git bundle verify / git fetch diff.bundle).\n")
				if err := add("diff.patch.omitted", note); err != nil {
					return err
				}
				break
			}
			patch, err := Patch(ctx, rep.Repo, rep.MergeBase, rep.Head)
			if err != nil {
				return err
			}
			if err := add("diff.patch", patch); err != nil {
				return err
			}
		}
	}
	return nil
}

func buildManifest(ctx context.Context, rep *report.Report, o Options, plan []byte, planSHA string) *manifest.Manifest {
	m := manifest.New(manifest.Producer{Name: "agentgate check", Version: rep.Tool.Version})
	sandbox := "recorded by the sandbox runner, which did not produce this manifest"
	gateway := "recorded by the LLM gateway, which did not produce this manifest"
	m.Agent = manifest.Unknown[manifest.Agent]("agentgate check sees commits, not the agent process; " + sandbox)
	m.StartedAt = manifest.Unknown[time.Time]("the agent run's start is " + sandbox)
	m.EndedAt = manifest.Unknown[time.Time]("the agent run's end is " + sandbox)
	m.FilesRead = manifest.Unknown[[]string]("reads are " + sandbox)
	m.ExternalCalls = manifest.Unknown[[]manifest.ExternalCall]("external calls are " + gateway)
	m.TokenUsage = manifest.Unknown[manifest.Tokens]("token usage is " + gateway)
	m.Cost = manifest.Unknown[manifest.Cost]("spend is " + gateway)
	m.Iterations = manifest.Unknown[[]manifest.Iteration]("per-iteration progress is " + sandbox)
	m.ExitCondition = manifest.Unknown[string]("the agent's exit condition is " + sandbox)
	if o.RunID != "" {
		m.RunID = manifest.Known(o.RunID)
	} else {
		m.RunID = manifest.Unknown[string]("agentgate check was not given a run id")
	}
	if len(plan) > 0 {
		m.Plan = manifest.Known(manifest.Plan{ID: rep.PlanID, Path: rep.PlanPath, SHA256: planSHA})
		var wp struct {
			FRIDs []string `json:"fr_ids"`
		}
		if err := json.Unmarshal(plan, &wp); err == nil {
			m.FRIDs = manifest.Known(wp.FRIDs)
		} else {
			m.FRIDs = manifest.Unknown[[]string]("the WORK_PLAN could not be decoded")
		}
	} else {
		m.Plan = manifest.Unknown[manifest.Plan]("no WORK_PLAN.json was found for this change")
		m.FRIDs = manifest.Unknown[[]string]("no WORK_PLAN.json was found for this change")
	}
	if rep.MergeBase != "" && rep.Head != "" {
		if changes, err := gitcli.Diff(ctx, rep.Repo, rep.MergeBase, rep.Head); err == nil {
			sum := manifest.DiffSummary{Base: rep.MergeBase, Head: rep.Head, FilesChanged: len(changes)}
			var written []string
			for _, c := range changes {
				if c.Binary {
					sum.Binary++
				}
				sum.Insertions += c.Added
				sum.Deletions += c.Deleted
				if c.Status != 'D' {
					written = append(written, c.Path)
				}
			}
			sort.Strings(written)
			m.Diff = manifest.Known(sum)
			m.FilesWritten = manifest.Known(written)
		} else {
			m.Diff = manifest.Unknown[manifest.DiffSummary]("git diff failed: " + err.Error())
			m.FilesWritten = manifest.Unknown[[]string]("git diff failed")
		}
	}
	if rep.Decision == report.Stop {
		m.StopReason = manifest.Known(string(rep.StopReason))
	} else {
		m.StopReason = manifest.Known("")
	}
	return m
}

func checkSummaries(cs []checks.Result) []map[string]any {
	out := make([]map[string]any, 0, len(cs))
	for _, c := range attestChecks(cs) {
		out = append(out, map[string]any{"name": c.Name, "status": c.Status, "findings": c.Findings, "by_severity": c.BySeverity, "stop_reasons": c.StopReasons})
	}
	return out
}

func attestChecks(cs []checks.Result) []attest.CheckResult {
	out := make([]attest.CheckResult, 0, len(cs))
	for _, c := range cs {
		r := attest.CheckResult{Name: c.Name, Status: string(c.Status), Findings: len(c.Findings), Reason: c.Reason}
		stops := map[string]bool{}
		for _, f := range c.Findings {
			if r.BySeverity == nil {
				r.BySeverity = map[string]int{}
			}
			r.BySeverity[string(f.Severity)]++
			if f.Stop != "" && !stops[string(f.Stop)] {
				stops[string(f.Stop)] = true
				r.StopReasons = append(r.StopReasons, string(f.Stop))
			}
		}
		out = append(out, r)
	}
	return out
}

// versions collects tool and database versions from the report, the check
// details and the caller.
func versions(rep *report.Report, o Options) (tools, dbs map[string]string) {
	tools, dbs = map[string]string{"go": runtime.Version()}, map[string]string{}
	if rep.Tool.Name != "" {
		tools[rep.Tool.Name] = rep.Tool.Version
	}
	for _, c := range rep.Checks {
		for k, v := range c.Details {
			s, ok := v.(string)
			if !ok || s == "" {
				continue
			}
			switch {
			case strings.HasPrefix(k, "db_"):
				dbs[c.Name+"."+k] = s
			case k == "scanner" || k == "version" || strings.HasSuffix(k, "_version"):
				tools[c.Name+"."+k] = s
			}
		}
	}
	if o.Log != nil {
		if v, err := o.Log.Store().Version(context.Background()); err == nil {
			dbs["audit_store"] = v
		}
	}
	for k, v := range o.Tools {
		tools[k] = v
	}
	for k, v := range o.Databases {
		dbs[k] = v
	}
	return tools, dbs
}

func repoID(rep *report.Report, o Options) string {
	if o.RepoID != "" {
		return o.RepoID
	}
	return rep.Repo
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	if sha == "" {
		return "nohead"
	}
	return sha
}

// branchName turns a ref as typed (origin/develop, refs/heads/develop) into
// a branch name.
func branchName(ref string) string {
	ref = strings.TrimPrefix(ref, "refs/heads/")
	ref = strings.TrimPrefix(ref, "refs/remotes/")
	if i := strings.Index(ref, "/"); i > 0 && (ref[:i] == "origin" || ref[:i] == "upstream") {
		ref = ref[i+1:]
	}
	return ref
}
