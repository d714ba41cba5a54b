package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// schemas maps a schema name (as typed after `agentgate schema`) to its
// JSON Schema document. Command files add theirs with registerSchema in init.
var schemas = map[string][]byte{}

func registerSchema(name string, doc []byte) {
	if _, dup := schemas[name]; dup {
		panic("schema registered twice: " + name)
	}
	schemas[name] = doc
}

func schemaNames() []string {
	names := make([]string, 0, len(schemas))
	for n := range schemas {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func init() {
	register(func() *cobra.Command {
		cmd := &cobra.Command{
			Use:   "schema NAME",
			Short: "Print the JSON Schema (draft 2020-12) of a file agentgate reads or writes",
			Long: `Print the JSON Schema (draft 2020-12) of a file agentgate reads or writes, for
editors and other tools. Save it and point your editor at it, e.g. for VS Code:
  agentgate schema work-plan > .vscode/work-plan.schema.json

Run "agentgate schema --list" to see the names.`,
			Example: "  agentgate schema work-plan\n  agentgate schema --list",
			Args:    cobra.MaximumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				list, _ := cmd.Flags().GetBool("list")
				if list || len(args) == 0 {
					fmt.Fprintln(cmd.OutOrStdout(), strings.Join(schemaNames(), "\n"))
					if !list {
						return withCode(exitInvalid, fmt.Errorf("schema: name a schema (one of the above)"))
					}
					return nil
				}
				doc, ok := schemas[args[0]]
				if !ok {
					return withCode(exitInvalid, fmt.Errorf("schema: unknown schema %q; known: %s", args[0], strings.Join(schemaNames(), ", ")))
				}
				_, err := cmd.OutOrStdout().Write(doc)
				return err
			},
		}
		cmd.Flags().Bool("list", false, "list the schema names and exit")
		return cmd
	})
}
