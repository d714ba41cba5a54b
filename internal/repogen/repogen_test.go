package repogen_test

import (
	"context"
	"os/exec"
	"testing"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/engine"
	"github.com/agentgate/agentgate/checks/scope"
	"github.com/agentgate/agentgate/checks/secrets"
	"github.com/agentgate/agentgate/internal/gitcli"
	"github.com/agentgate/agentgate/internal/repogen"
	"github.com/agentgate/agentgate/policies"
)

func TestGeneratedRepositoryIsAValidAgentRepository(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	r, err := repogen.Generate(t.TempDir(), repogen.Options{Files: 400, Changed: 60, Added: 6, Renamed: 3, Secrets: 4, Commits: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	changes, err := gitcli.Diff(ctx, r.Dir, r.Base, r.Head)
	if err != nil {
		t.Fatal(err)
	}
	renames := 0
	for _, c := range changes {
		if c.Renamed() {
			renames++
		}
	}
	if len(changes) != r.ChangedFiles || renames != 3 {
		t.Fatalf("%d changes (%d renames), want %d (3)", len(changes), renames, r.ChangedFiles)
	}
	s, _, err := engine.Prepare(ctx, engine.Input{Repo: r.Dir, Base: "main", Head: r.Branch})
	if err != nil {
		t.Fatalf("the generated contracts do not load: %v", err)
	}
	if s.PlanPath != r.PlanPath {
		t.Fatalf("plan %q", s.PlanPath)
	}
	if res := scope.New().Run(ctx, s); res.Status != checks.StatusPass {
		t.Fatalf("scope on the generated change: %s %s %+v", res.Status, res.Reason, res.Findings)
	}
	res := secrets.New().Run(ctx, s)
	if len(res.Findings) != len(r.Secrets) || len(r.Secrets) != 4 {
		t.Fatalf("want the %d planted secrets, got %+v", len(r.Secrets), res.Findings)
	}
	for _, f := range res.Findings {
		if f.Stop != policies.StopSecretExposure {
			t.Fatalf("finding %+v", f)
		}
	}
	// Deterministic: the same options give the same commits.
	r2, err := repogen.Generate(t.TempDir(), repogen.Options{Files: 400, Changed: 60, Added: 6, Renamed: 3, Secrets: 4, Commits: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r2.Head != r.Head {
		t.Errorf("not deterministic: %s vs %s", r2.Head, r.Head)
	}
}
