package policies

import "go.yaml.in/yaml/v3"

// Tree is every contract file of one repository snapshot (a work tree, or a
// commit read through an fs.FS), loaded and cross-validated.
type Tree struct {
	// Policy is the repository policy with defaults applied; PolicyFound says
	// whether .agentgate/policy.yaml existed.
	Policy      Policy
	PolicyFound bool
	// Threads are the thread directories, sorted by Dir.
	Threads []*ThreadDir
}

// ThreadDir is one thread directory and its contract files.
type ThreadDir struct {
	Dir          string        // repo-relative, "." for the root
	Config       Thread        // config.yaml
	Requirements *Requirements // requirements.yaml, nil when absent
	Plan         *WorkPlan     // WORK_PLAN.json, nil when absent

	// Nested lists the directories of the threads inside this one (at any
	// depth), sorted. They own their own files.
	Nested []string

	// tree is the Tree this thread was loaded into (for ownership).
	tree *Tree
	// reqPath and reqRoot locate requirements.yaml problems found later.
	reqPath string
	reqRoot *yaml.Node
}
