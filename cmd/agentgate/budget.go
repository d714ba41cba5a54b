package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentgate/agentgate/gate/budget"
)

func init() { register(newBudgetCmd) }

func newBudgetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "budget",
		Short: "Show a plan's live LLM spend, approve continuing past escalation, resume a stopped plan",
		Long: `Every LLM call of an agent run goes through "agentgate gateway", which reserves
its worst-case cost against the plan's budget before forwarding it and settles
it to the real cost afterwards. These commands read and steer that ledger.

Thresholds come from the plan (budget.warn_ratio, escalate_ratio, stop_ratio;
default 70 / 90 / 100 %) and are judged on projected spend: settled cost plus
what is reserved (budget leases of gateway processes and single calls in
flight) plus the next call's worst case.`,
		Example: `  agentgate budget show PLAN-42 --config gateway.yaml
  agentgate budget approve PLAN-42 --as alice --config gateway.yaml
  agentgate budget resume PLAN-42 --as alice --config gateway.yaml`,
	}
	cmd.AddCommand(newBudgetShowCmd(), newBudgetApproveCmd(), newBudgetResumeCmd(), newBudgetRecoverCmd())
	return cmd
}

func newBudgetShowCmd() *cobra.Command {
	var sf gatewayStoreFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show PLAN_ID",
		Short: "Show a plan's budget, spend, reservations and state",
		Long: `Show a plan's budget: the limit, what is spent (settled), what is reserved and by
whom (open budget leases of gateway processes, which cover the calls they
admitted in memory, and single calls in flight), expired leases awaiting their
charge, the ratio of both to the limit, the thresholds, and whether the
plan warned, awaits approval, was approved (by whom) or is stopped. Exits 3 when
the plan is stopped (STOP_BUDGET_EXCEEDED), so scripts can test it.`,
		Example: "  agentgate budget show PLAN-42 --config gateway.yaml\n  agentgate budget show PLAN-42 --db postgres://gate@db/agentgate --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			l, closeStore, err := sf.openLedger(ctx)
			if err != nil {
				return err
			}
			defer closeStore()
			p, err := l.Status(ctx, args[0])
			if errors.Is(err, budget.ErrUnknownPlan) {
				return withCode(exitInvalid, err)
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(p)
			}
			state := "ok"
			switch {
			case p.Stopped:
				state = "STOPPED (STOP_BUDGET_EXCEEDED): " + p.StopReason
			case p.Escalated:
				state = "awaiting approval (agentgate budget approve " + p.ID + ")"
			case p.ApprovedBy != "":
				state = "approved past escalation by " + p.ApprovedBy
			case p.Warned:
				state = "warned"
			}
			fmt.Fprintf(out, "plan       %s\n", p.ID)
			if p.Repo != "" {
				fmt.Fprintf(out, "repo       %s\n", p.Repo)
			}
			fmt.Fprintf(out, "limit      %s\n", budget.FormatUSD(p.Limit))
			fmt.Fprintf(out, "spent      %s (settled)\n", budget.FormatUSD(p.Spent))
			fmt.Fprintf(out, "reserved   %s (not spent: %s held by %d open budget lease(s) of gateway processes, covering the calls they admitted; %s by single calls in flight)\n",
				budget.FormatUSD(p.Reserved), budget.FormatUSD(p.Leased), p.OpenLeases, budget.FormatUSD(p.Reserved-p.Leased))
			if p.ExpiredLeases > 0 {
				fmt.Fprintf(out, "expired    %d lease(s) whose gateway stopped without settling: charged in full as spent by the next recovery (agentgate budget recover %s)\n", p.ExpiredLeases, p.ID)
			}
			fmt.Fprintf(out, "used       %.1f%%\n", 100*p.Ratio)
			esc := "none"
			if p.Ratios.Escalate > 0 {
				esc = fmt.Sprintf("%.0f%%", 100*p.Ratios.Escalate)
			}
			fmt.Fprintf(out, "thresholds warn %.0f%%, escalate %s, stop %.0f%%\n", 100*p.Ratios.Warn, esc, 100*p.Ratios.Stop)
			if p.DegradeToLocal {
				fmt.Fprintln(out, "degrade    to the local model past the warning ratio")
			}
			fmt.Fprintf(out, "state      %s\n", state)
			if p.Stopped {
				return withCode(exitStop, nil)
			}
			return nil
		},
	}
	sf.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the state as JSON")
	return cmd
}

func newBudgetApproveCmd() *cobra.Command {
	var sf gatewayStoreFlags
	var as string
	cmd := &cobra.Command{
		Use:   "approve PLAN_ID --as NAME",
		Short: "Let a plan's calls continue past its escalation ratio (up to the stop ratio)",
		Long: `Record a human approval for a plan that reached its escalation ratio (default
90 %): its calls are accepted again, with a warning header, until the stop ratio.
The approval is written to the audit log with the approver's name. Run it as an
operator of the gateway's database; on GitHub the same approval is the
"/approve-budget PLAN_ID" comment command, checked like "/approve-promotion".

A stopped plan cannot be approved: raise its budget and use "budget resume".`,
		Example: "  agentgate budget approve PLAN-42 --as alice --config gateway.yaml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(as) == "" {
				return withCode(exitInvalid, errors.New("budget approve: --as NAME (who approves) is required"))
			}
			ctx := cmd.Context()
			l, closeStore, err := sf.openLedger(ctx)
			if err != nil {
				return err
			}
			defer closeStore()
			if err := l.Approve(ctx, args[0], as); err != nil {
				return withCode(exitFail, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "plan %s approved past its escalation ratio by %s\n", args[0], as)
			return nil
		},
	}
	sf.add(cmd)
	cmd.Flags().StringVar(&as, "as", "", "name of the approving human (recorded in the audit log)")
	return cmd
}

func newBudgetResumeCmd() *cobra.Command {
	var sf gatewayStoreFlags
	var as string
	cmd := &cobra.Command{
		Use:   "resume PLAN_ID --as NAME",
		Short: "Lift a plan's budget stop (after raising its budget)",
		Long: `Lift the stop latched when a call would have crossed the plan's stop ratio
(STOP_BUDGET_EXCEEDED). Raise the budget first (a reviewed WORK_PLAN.json
change, then "gateway keys issue --work-plan"): with the same budget the next
call that does not fit stops the plan again. Recorded in the audit log.`,
		Example: "  agentgate budget resume PLAN-42 --as alice --config gateway.yaml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(as) == "" {
				return withCode(exitInvalid, errors.New("budget resume: --as NAME is required"))
			}
			ctx := cmd.Context()
			l, closeStore, err := sf.openLedger(ctx)
			if err != nil {
				return err
			}
			defer closeStore()
			if err := l.Resume(ctx, args[0], as); err != nil {
				return withCode(exitFail, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "plan %s resumed by %s\n", args[0], as)
			return nil
		},
	}
	sf.add(cmd)
	cmd.Flags().StringVar(&as, "as", "", "name of the human resuming the plan (recorded in the audit log)")
	return cmd
}

func newBudgetRecoverCmd() *cobra.Command {
	var sf gatewayStoreFlags
	cmd := &cobra.Command{
		Use:   "recover [PLAN_ID]",
		Short: "Charge expired budget leases of gateway processes that died",
		Long: `A gateway admits calls against a budget lease: a block of the plan's budget it
reserved durably. If the gateway dies (kill -9, a crash) before its calls are
settled, their cost is unknown: the lease stays open and keeps its whole
outstanding amount reserved. Once it has expired (its admission window, plus the
upstream timeout, plus a minute: every call it admitted has ended) the next
recovery charges that amount in full as spent (fail closed) and closes it, with
an "orphan" entry in the ledger. Running gateways recover expired leases every
30 seconds and at start; this command does it now, for one plan or all.`,
		Example: "  agentgate budget recover --config gateway.yaml\n  agentgate budget recover PLAN-42 --db postgres://gate@db/agentgate",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			plan := ""
			if len(args) == 1 {
				plan = args[0]
			}
			ctx := cmd.Context()
			l, closeStore, err := sf.openLedger(ctx)
			if err != nil {
				return err
			}
			defer closeStore()
			n, err := l.RecoverLeases(ctx, plan)
			if err != nil {
				return withCode(exitFail, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "charged %d expired lease(s) in full\n", n)
			return nil
		},
	}
	sf.add(cmd)
	return cmd
}
