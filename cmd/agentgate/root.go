package main

import (
	"github.com/spf13/cobra"
)

// subcommands is filled by each command file's init so that command files
// stay independent of one another.
var subcommands []func() *cobra.Command

func register(f func() *cobra.Command) { subcommands = append(subcommands, f) }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "agentgate",
		Short: "Promotion gate for code written by autonomous coding agents",
		Long: `agentgate binds every agent run to a written contract (Functional Requirements and
a WORK_PLAN.json), checks the agent's change with deterministic gates (scope, secrets,
vulnerabilities, tests, coverage), signs an attestation for every decision, and lets the
change climb agent/* -> develop -> staging -> main only when each rung's rules hold.

Exit codes: 0 success/pass, 1 the gate or a verification failed, 2 usage or invalid
input, 3 a stop condition fired.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, f := range subcommands {
		root.AddCommand(f())
	}
	return root
}
