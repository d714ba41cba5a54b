package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/engine"
	"github.com/agentgate/agentgate/checks/report"
	"github.com/agentgate/agentgate/gate/attest"
	"github.com/agentgate/agentgate/gate/audit"
	"github.com/agentgate/agentgate/gate/budget"
	"github.com/agentgate/agentgate/gate/evidence"
	"github.com/agentgate/agentgate/gate/sign"
	"github.com/agentgate/agentgate/hooks/forge"
	"github.com/agentgate/agentgate/internal/gitcli"
	"github.com/agentgate/agentgate/internal/store"
	"github.com/agentgate/agentgate/policies"
)

func init() {
	forgeExtras = append(forgeExtras, func(ctx context.Context, f *forge.Forge, st *store.Store, log *audit.Log, o forgeOptions) error {
		for _, n := range o.checks {
			if _, ok := checkRegistry[n]; !ok {
				return fmt.Errorf("unknown check %q; available: %s", n, checkNamesList())
			}
		}
		f.Checker = engineChecker{names: o.checks, log: log, signer: o.signer, stopDir: filepath.Join(forgeState(f.Repo), "stops")}
		l, err := budget.NewStoreLedger(ctx, st, budget.AuditLog{Log: log, Repo: f.Repo})
		if err != nil {
			return fmt.Errorf("open the budget ledger: %w", err)
		}
		f.Budget = l
		return nil
	})
}

// engineChecker runs `agentgate check`'s checks through the checks engine
// for the forge, and persists the evidence of a stop.
type engineChecker struct {
	names   []string // the checks to run; empty means all of agentgate check's
	log     *audit.Log
	signer  sign.Signer
	stopDir string // where stop evidence goes (one directory per stop)
}

func (e engineChecker) Check(ctx context.Context, req forge.CheckRequest) (*forge.CheckOutcome, error) {
	o := &checkOptions{repo: req.Repo, base: req.Base, head: req.Head, timeout: engine.DefaultTimeout, downloadModules: true}
	var list []checks.Check
	names := e.names
	if len(names) == 0 {
		names = checkNames
	}
	for _, n := range names {
		c, err := checkRegistry[n](o)
		if err != nil {
			return nil, fmt.Errorf("set up check %s: %w", n, err)
		}
		list = append(list, c)
	}
	subject, meta, err := engine.Prepare(ctx, engine.Input{Repo: req.Repo, Base: req.Base, Head: req.Head, PlanPath: req.PlanPath})
	if err != nil {
		return nil, err
	}
	meta.BaseRef, meta.HeadRef = req.Target, req.Source
	rep, err := engine.Evaluate(ctx, subject, meta, engine.Options{Checks: list, Timeout: o.timeout, Tool: report.Tool{Name: "agentgate", Version: version}})
	if err != nil {
		return nil, err
	}
	out := &forge.CheckOutcome{
		Decision: string(rep.Decision), StopReason: rep.StopReason, StopReasons: rep.StopReasons, Reasons: rep.Reasons,
		PlanID: rep.PlanID, PlanPath: rep.PlanPath, MergeBase: rep.MergeBase, Checks: rep.Checks,
	}
	if rep.PlanPath != "" {
		if data, err := gitcli.ReadFile(ctx, req.Repo, rep.Head, rep.PlanPath, policies.MaxFileSize); err == nil {
			out.Plan = data
		}
	}
	if rep.Decision == report.Stop && e.log != nil {
		// A stop's evidence (decision, manifest, report, diff snapshot) is
		// persisted before the push is answered.
		dir := filepath.Join(e.stopDir, time.Now().UTC().Format("20060102T150405Z")+"-"+rep.Head[:12])
		if _, err := evidence.Record(ctx, evidence.Options{
			Report: rep, Log: e.log, Signer: e.signer, OutDir: dir, RepoID: req.RepoID,
			Rung: attest.Rung{Source: req.Source, Target: req.Target}, Plan: out.Plan, Actor: "agentgate hooks pre-receive (" + req.Pusher + ")",
		}); err != nil {
			out.StopEvidence = "the stop evidence could not be persisted: " + err.Error()
		} else {
			out.StopEvidence = "stop evidence (decision, manifest, report, diff snapshot): " + dir
		}
	}
	return out, nil
}

func (engineChecker) PlanError(err error) bool {
	var ie *engine.InputError
	return errors.As(err, &ie)
}

// checkNamesList is for messages.
func checkNamesList() string { return strings.Join(checkNames, ", ") }
