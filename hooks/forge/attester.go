package forge

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/agentgate/agentgate/gate/attest"
	"github.com/agentgate/agentgate/gate/sign"
	"github.com/sigstore/sigstore/pkg/signature"
)

// FileAttester signs gate attestations (in-toto statements in DSSE
// envelopes, Sigstore bundle v0.3) with the gate key and keeps each one as
// Dir/<target>-<sha>.sigstore.json; the file path is the reference.
type FileAttester struct {
	Dir      string
	Signer   sign.Signer
	Verifier signature.Verifier // nil: the signer's own key
}

var safeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Attest implements Attester.
func (a *FileAttester) Attest(ctx context.Context, in Attestation) (string, error) {
	d := &attest.Decision{
		Repo: in.Repo, Base: in.Base, Head: in.SHA, MergeBase: in.Base,
		Rung:     attest.Rung{Source: in.Source, Target: in.Target},
		Decision: "pass",
	}
	d.PlanID = strings.Join(in.PlanIDs, ",")
	for _, o := range in.Decision.Outcomes {
		d.Reasons = append(d.Reasons, fmt.Sprintf("%s: %s", o.Requirement, o.Detail))
	}
	if r := in.Report; r != nil {
		d.PlanID, d.PlanPath, d.Plan = r.PlanID, r.PlanPath, r.Plan
		if r.MergeBase != "" {
			d.MergeBase = r.MergeBase
		}
		for _, c := range r.Checks {
			var sev, stops []string
			for _, f := range c.Findings {
				sev = append(sev, string(f.Severity))
				if f.Stop != "" {
					stops = append(stops, string(f.Stop))
				}
			}
			d.Checks = append(d.Checks, attest.CheckResult{Name: c.Name, Status: string(c.Status), Findings: len(c.Findings),
				BySeverity: attest.SeverityCounts(sev), StopReasons: stops, Reason: c.Reason})
		}
	}
	for _, ap := range in.Approvals {
		who := ap.Approver.Login
		if ap.Auto {
			who = "policy:auto_approve"
		}
		d.Approvals = append(d.Approvals, attest.Approval{Approver: who, SHA: ap.HeadSHA, Target: ap.Target, Source: ap.Source, At: ap.At})
	}
	bundle, err := attest.Sign(ctx, a.Signer, d)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(a.Dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(a.Dir, safeName.ReplaceAllString(in.Target, "_")+"-"+in.SHA+".sigstore.json")
	if err := os.WriteFile(path, bundle, 0o644); err != nil {
		return "", fmt.Errorf("write the attestation: %w", err)
	}
	return path, nil
}

// Verify implements Attester: the bundle at ref verifies with the gate key
// and records a pass.
func (a *FileAttester) Verify(ctx context.Context, ref string) error {
	data, err := os.ReadFile(ref)
	if err != nil {
		return fmt.Errorf("read attestation: %w", err)
	}
	v := a.Verifier
	if v == nil {
		v = a.Signer
	}
	_, err = attest.Verify(ctx, data, v, attest.Expect{Decision: "pass"})
	return err
}
