package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/engine"
	"github.com/agentgate/agentgate/checks/report"
	"github.com/agentgate/agentgate/gate/audit"
	"github.com/agentgate/agentgate/gate/budget"
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
		f.Checker = engineChecker{names: o.checks}
		l, err := budget.NewStoreLedger(ctx, st, budget.AuditLog{Log: log, Repo: f.Repo})
		if err != nil {
			return fmt.Errorf("open the budget ledger: %w", err)
		}
		f.Budget = l
		return nil
	})
}

// engineChecker runs `agentgate check`'s default set of checks through the
// checks engine for the forge.
type engineChecker struct {
	names []string // the checks to run; empty means all of agentgate check's
}

func (e engineChecker) Check(ctx context.Context, repo, base, head, planPath string) (*forge.CheckOutcome, error) {
	o := &checkOptions{repo: repo, base: base, head: head, timeout: engine.DefaultTimeout}
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
	subject, meta, err := engine.Prepare(ctx, engine.Input{Repo: repo, Base: base, Head: head, PlanPath: planPath})
	if err != nil {
		return nil, err
	}
	rep, err := engine.Evaluate(ctx, subject, meta, engine.Options{Checks: list, Timeout: o.timeout, Tool: report.Tool{Name: "agentgate", Version: version}})
	if err != nil {
		return nil, err
	}
	out := &forge.CheckOutcome{
		Decision: string(rep.Decision), StopReason: rep.StopReason, StopReasons: rep.StopReasons, Reasons: rep.Reasons,
		PlanID: rep.PlanID, PlanPath: rep.PlanPath, MergeBase: rep.MergeBase, Checks: rep.Checks,
	}
	if rep.PlanPath != "" {
		if data, err := gitcli.ReadFile(ctx, repo, rep.Head, rep.PlanPath, policies.MaxFileSize); err == nil {
			out.Plan = data
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
