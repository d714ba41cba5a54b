package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/agentgate/agentgate/policies"
)

func init() {
	register(newValidateCmd)
}

func newValidateCmd() *cobra.Command {
	var output string
	var checkTests bool
	cmd := &cobra.Command{
		Use:   "validate [DIR|FILE]",
		Short: "Validate the contract files of a repository (policy, threads, requirements, work plans)",
		Long: `Validate every agentgate contract file under DIR (default: the current directory):

  .agentgate/policy.yaml        the repository policy (defaults apply when absent)
  <thread>/config.yaml          a thread (only files with kind: Thread and
                                apiVersion agentgate.dev/v1; other tools' config.yaml are ignored)
  <thread>/requirements.yaml    the thread's Functional Requirements
  <thread>/WORK_PLAN.json       the thread's work plan

Each file is decoded strictly (unknown fields, duplicate keys, wrong types, YAML
anchors and aliases are errors), checked against its JSON Schema ("agentgate schema
NAME"), and then against the other files: a plan's fr_ids must exist in its thread's
requirements, its target_files must stay inside the thread or its shared_interfaces,
its limits and budget within the thread's ceilings, its git target on the ladder;
paths must be repo-relative and clean and may not escape through symlinks.
Directories named testdata, vendor, node_modules and dot-directories are not searched.

Every problem is reported at once, one per line:

  FILE:LINE:COL: FIELD: MESSAGE

With --check-tests, every acceptance test named in a requirements.yaml must also exist
as a function in a _test.go file of its package (source is read, nothing is run). This
is off by default because acceptance tests may be written during the agent's run.

Given a single FILE instead of a directory, only that file is checked (by its name:
WORK_PLAN.json, config.yaml, requirements.yaml or policy.yaml), without the
cross-file rules.

Exit codes: 0 all files are valid, 2 a problem was found (or DIR cannot be read).`,
		Example: `  # validate the current repository
  agentgate validate

  # the bundled example; machine-readable output
  agentgate validate examples/payments-repo --output json

  # also require every acceptance test to exist
  agentgate validate --check-tests

  # one file
  agentgate validate services/payments/WORK_PLAN.json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return withCode(exitInvalid, fmt.Errorf("validate: --output must be text or json, got %q", output))
			}
			target := "."
			if len(args) == 1 {
				target = args[0]
			}
			res, err := validateTarget(target, checkTests)
			if err != nil {
				return withCode(exitInvalid, err)
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			} else {
				res.writeText(cmd.OutOrStdout())
			}
			if !res.Valid {
				return withCode(exitInvalid, nil)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().BoolVar(&checkTests, "check-tests", false, "also require every acceptance test named in requirements.yaml to exist in its package's _test.go files")
	return cmd
}

// validateResult is the --output json document.
type validateResult struct {
	Valid       bool               `json:"valid"`
	Root        string             `json:"root"`
	PolicyFound bool               `json:"policy_found"`
	Threads     []validateThread   `json:"threads"`
	Files       int                `json:"files"`
	Problems    []policies.Problem `json:"problems"`
	prefix      string
	file        string // set when a single file was validated
}

type validateThread struct {
	Dir          string `json:"dir"`
	Name         string `json:"name"`
	Requirements int    `json:"requirements"`
	PlanID       string `json:"plan_id,omitempty"`
}

func validateTarget(target string, checkTests bool) (*validateResult, error) {
	fi, err := os.Stat(target)
	if err != nil {
		return nil, fmt.Errorf("validate: %w (give a repository directory or a contract file)", err)
	}
	res := &validateResult{Root: target, Problems: []policies.Problem{}, Threads: []validateThread{}}
	if !fi.IsDir() {
		res.Root = filepath.Dir(target)
		res.Files = 1
		res.file = target
		probs, err := validateFile(target)
		if err != nil {
			return nil, err
		}
		res.Problems = append(res.Problems, probs...)
		res.Valid = len(res.Problems) == 0
		return res, nil
	}
	fsys := policies.DirFS(target)
	tree, probs := policies.LoadTree(fsys)
	res.Problems = append(res.Problems, probs...)
	if checkTests {
		res.Problems = append(res.Problems, policies.CheckAcceptanceTests(fsys, tree)...)
	}
	res.PolicyFound = tree.PolicyFound
	if tree.PolicyFound {
		res.Files++
	}
	for _, td := range tree.Threads {
		vt := validateThread{Dir: td.Dir, Name: td.Config.Name}
		res.Files++
		if td.Requirements != nil {
			vt.Requirements = len(td.Requirements.Requirements)
			res.Files++
		}
		if td.Plan != nil {
			vt.PlanID = td.Plan.PlanID
			res.Files++
		}
		res.Threads = append(res.Threads, vt)
	}
	if target != "." {
		res.prefix = target
	}
	res.Valid = len(res.Problems) == 0
	return res, nil
}

// validateFile checks one contract file chosen by its base name.
func validateFile(name string) (policies.Problems, error) {
	data, err := readCapped(name)
	if err != nil {
		return nil, err
	}
	var lerr error
	switch base := filepath.Base(name); base {
	case policies.WorkPlanFile:
		_, lerr = policies.LoadWorkPlan(name, data)
	case policies.ThreadFile:
		_, lerr = policies.LoadThread(name, data)
	case policies.RequirementsFile:
		_, lerr = policies.LoadRequirements(name, data)
	case filepath.Base(policies.PolicyFile):
		_, lerr = policies.LoadPolicy(name, data)
	default:
		return nil, fmt.Errorf("validate: %s: unknown contract file name %q; expected %s, %s, %s or policy.yaml",
			name, base, policies.WorkPlanFile, policies.ThreadFile, policies.RequirementsFile)
	}
	if lerr == nil {
		return nil, nil
	}
	if ps, ok := lerr.(policies.Problems); ok {
		return ps, nil
	}
	return nil, lerr
}

// readCapped reads at most one byte more than the contract size cap, so the
// loader can report an oversized file without us reading all of it.
func readCapped(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, policies.MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("validate: %s: %w", name, err)
	}
	return data, nil
}

func (r *validateResult) writeText(w io.Writer) {
	for _, p := range r.Problems {
		if r.prefix != "" && p.File != "" {
			p.File = filepath.Join(r.prefix, p.File)
		}
		fmt.Fprintln(w, p.String())
	}
	if r.Valid && r.file != "" {
		fmt.Fprintf(w, "ok: %s is valid (cross-file rules need the whole repository: agentgate validate DIR)\n", r.file)
		return
	}
	if r.Valid {
		policy := "default policy (no .agentgate/policy.yaml)"
		if r.PolicyFound {
			policy = ".agentgate/policy.yaml"
		}
		fmt.Fprintf(w, "ok: %d contract files valid in %s (%d threads; %s)\n", r.Files, r.Root, len(r.Threads), policy)
		return
	}
	fmt.Fprintf(w, "invalid: %d problems in %s\n", len(r.Problems), r.Root)
}
