package repogen

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Options shape the generated repository.
type Options struct {
	// Files is the number of source files on main (default 3000).
	Files int
	// Threads is the number of service threads (default 4); files are
	// spread across them and a shared internal/ package.
	Threads int
	// Changed is the number of files the agent branch edits (default 200),
	// all inside thread 0 when it has enough files, else anywhere.
	Changed int
	// Added and Renamed are new and moved files on the branch (defaults
	// 20 and 5), inside thread 0.
	Added, Renamed int
	// Secrets is the number of fake credentials planted in added lines
	// (default 0). They match gitleaks' AWS and GitHub token rules.
	Secrets int
	// Commits spreads the branch's changes over this many commits
	// (default 3).
	Commits int
	// Tests adds a _test.go file to every package of thread 0 so that `go
	// test` has work to do.
	Tests bool
	// Seed makes the content deterministic (default 1).
	Seed uint64
}

func (o *Options) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Files, 3000)
	def(&o.Threads, 4)
	def(&o.Changed, 200)
	def(&o.Commits, 3)
	if o.Added < 0 {
		o.Added = 0
	} else if o.Added == 0 {
		o.Added = 20
	}
	if o.Renamed < 0 {
		o.Renamed = 0
	} else if o.Renamed == 0 {
		o.Renamed = 5
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
}

// Repo is a generated repository.
type Repo struct {
	Dir      string
	Base     string // SHA of main
	Head     string // SHA of the agent branch
	Branch   string // the agent branch, "agent/bench"
	PlanPath string // thread 0's WORK_PLAN.json
	Secrets  []string
	// ChangedFiles is how many paths base...head touches.
	ChangedFiles int
}

// Generate writes the repository into dir (created; must be empty or
// missing) and returns it.
func Generate(dir string, o Options) (*Repo, error) {
	o.defaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	g := &gen{dir: dir, rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))}
	if err := g.git("init", "-q", "-b", "main"); err != nil {
		return nil, err
	}
	r := &Repo{Dir: dir, Branch: "agent/bench", PlanPath: "services/svc0/WORK_PLAN.json"}

	// Contracts.
	g.write(".agentgate/policy.yaml", policyYAML)
	g.write("config.yaml", threadYAML("integration", ""))
	g.write("go.mod", "module example.com/bench\n\ngo 1.26\n")
	for t := 0; t < o.Threads; t++ {
		d := fmt.Sprintf("services/svc%d", t)
		g.write(d+"/config.yaml", threadYAML(fmt.Sprintf("svc%d", t), ""))
		g.write(d+"/requirements.yaml", requirementsYAML(t))
		g.write(d+"/WORK_PLAN.json", planJSON(t))
	}

	// Sources: thread t gets an equal share; internal/ a tenth.
	var files []string
	perPkg := 25
	for i := 0; i < o.Files; i++ {
		var dir string
		if i%10 == 9 {
			dir = fmt.Sprintf("internal/lib%d", (i/perPkg)%20)
		} else {
			t := i % o.Threads
			dir = fmt.Sprintf("services/svc%d/pkg%d", t, (i/(o.Threads*perPkg))%200)
		}
		p := fmt.Sprintf("%s/file%05d.go", dir, i)
		g.write(p, g.source(pkgName(dir), i, 20+g.rng.IntN(60)))
		files = append(files, p)
	}
	if o.Tests {
		seen := map[string]bool{}
		for _, p := range files {
			d := filepath.Dir(p)
			if strings.HasPrefix(d, "services/svc0/") && !seen[d] {
				seen[d] = true
				g.write(d+"/pkg_test.go", testSource(pkgName(d)))
			}
		}
	}
	if g.err != nil {
		return nil, g.err
	}
	var err error
	if r.Base, err = g.commit("base: generated repository"); err != nil {
		return nil, err
	}

	// The agent branch.
	if err := g.git("checkout", "-q", "-b", r.Branch); err != nil {
		return nil, err
	}
	var own []string
	for _, p := range files {
		if strings.HasPrefix(p, "services/svc0/") {
			own = append(own, p)
		}
	}
	if len(own) < o.Changed+o.Renamed {
		own = files
	}
	changed := own[:min(o.Changed, len(own))]
	rest := own[len(changed):]
	renamed := rest[:min(o.Renamed, len(rest))]
	per := max(1, (len(changed)+o.Commits-1)/o.Commits)
	secretsLeft := o.Secrets
	for c := 0; c < o.Commits; c++ {
		lo, hi := c*per, min((c+1)*per, len(changed))
		for _, p := range changed[lo:min(hi, len(changed))] {
			g.appendFile(p, g.edit(p))
		}
		if c == 0 {
			for i, p := range renamed {
				np := strings.TrimSuffix(p, ".go") + "_moved.go"
				if err := g.git("mv", p, np); err != nil {
					return nil, err
				}
				g.appendFile(np, fmt.Sprintf("\n// moved %d\n", i))
			}
			for i := 0; i < o.Added; i++ {
				p := fmt.Sprintf("services/svc0/added/new%04d.go", i)
				body := g.source("added", 100000+i, 30)
				if secretsLeft > 0 {
					s := FakeSecret(i)
					r.Secrets = append(r.Secrets, s)
					body += fmt.Sprintf("\nconst leaked%d = %q\n", i, s)
					secretsLeft--
				}
				g.write(p, body)
			}
		}
		if g.err != nil {
			return nil, g.err
		}
		if _, err := g.commit(fmt.Sprintf("agent: step %d\n\nPlan-Id: svc0-plan\nIteration: %d", c+1, c+1)); err != nil {
			return nil, err
		}
	}
	r.Head, err = g.output("rev-parse", "HEAD")
	if err != nil {
		return nil, err
	}
	r.ChangedFiles = len(changed) + len(renamed) + o.Added
	// Pack like a clone: loose objects would make every git command slow.
	if err := g.git("repack", "-adq"); err != nil {
		return nil, err
	}
	return r, nil
}

// FakeSecret returns a credential-shaped string for index i: AWS access
// key ids and GitHub personal access tokens in turn. They are assembled
// at run time so no source file holds one.
func FakeSecret(i int) string {
	const b32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	r := rand.New(rand.NewPCG(uint64(i)+7, 42))
	var b strings.Builder
	if i%2 == 0 {
		b.WriteString("AK" + "IA")
		for j := 0; j < 16; j++ {
			b.WriteByte(b32[r.IntN(len(b32))])
		}
		return b.String()
	}
	b.WriteString("gh" + "p_")
	for j := 0; j < 36; j++ {
		b.WriteByte(alnum[r.IntN(len(alnum))])
	}
	return b.String()
}

func pkgName(dir string) string {
	return strings.ReplaceAll(filepath.Base(dir), "-", "")
}

type gen struct {
	dir string
	rng *rand.Rand
	err error
}

var words = strings.Fields("ledger amount account balance payment refund currency merchant order invoice settle charge token key limit window retry backoff cursor batch")

func (g *gen) source(pkg string, i, lines int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "// Code for the benchmark repository, file %d.\n\npackage %s\n\n", i, pkg)
	for l := 0; l < lines; l += 5 {
		w1, w2 := words[g.rng.IntN(len(words))], words[g.rng.IntN(len(words))]
		fmt.Fprintf(&b, "// %s%d computes the %s of a %s.\nfunc %s%d_%d(x int) int {\n\treturn x*%d + %d\n}\n\n",
			strings.ToUpper(w1[:1])+w1[1:], i, w1, w2, strings.ToUpper(w1[:1])+w1[1:], i, l, g.rng.IntN(97)+1, g.rng.IntN(1000))
	}
	return b.String()
}

func testSource(pkg string) string {
	return fmt.Sprintf("package %s\n\nimport \"testing\"\n\nfunc TestPackage(t *testing.T) {\n\tif 1+1 != 2 {\n\t\tt.Fatal(\"math\")\n\t}\n}\n", pkg)
}

func (g *gen) edit(p string) string {
	w := words[g.rng.IntN(len(words))]
	return fmt.Sprintf("\n// %s handling revised by the agent.\nvar _ = %q\n", w, w+"-"+filepath.Base(p))
}

func (g *gen) write(p, content string) {
	if g.err != nil {
		return
	}
	full := filepath.Join(g.dir, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		g.err = err
		return
	}
	g.err = os.WriteFile(full, []byte(content), 0o644)
}

func (g *gen) appendFile(p, content string) {
	if g.err != nil {
		return
	}
	f, err := os.OpenFile(filepath.Join(g.dir, filepath.FromSlash(p)), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		g.err = err
		return
	}
	_, g.err = f.WriteString(content)
	if cerr := f.Close(); g.err == nil {
		g.err = cerr
	}
}

func (g *gen) commit(msg string) (string, error) {
	if err := g.git("add", "-A"); err != nil {
		return "", err
	}
	if err := g.git("commit", "-q", "--no-verify", "-m", msg); err != nil {
		return "", err
	}
	return g.output("rev-parse", "HEAD")
}

func (g *gen) git(args ...string) error {
	_, err := g.output(args...)
	return err
}

func (g *gen) output(args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = g.dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Bench Agent", "GIT_AUTHOR_EMAIL=agent@bench.example",
		"GIT_COMMITTER_NAME=Bench Agent", "GIT_COMMITTER_EMAIL=agent@bench.example",
		"GIT_AUTHOR_DATE=2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2026-01-01T00:00:00Z")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

const policyYAML = `apiVersion: agentgate.dev/v1
kind: Policy
security_critical_paths:
  - internal/lib0/**
anomaly:
  max_file_bytes: 262144
allowed_file_types: [.go, .md, .json, .yaml, .mod, .sum]
integration_thread: "."
maturity_level: 1
`

func threadYAML(name, _ string) string {
	return fmt.Sprintf(`apiVersion: agentgate.dev/v1
kind: Thread
name: %s
owner: bench-owner
runtime:
  max_runtime: 30m
  cpu: 2
  memory: 2Gi
tools: [go]
ceilings:
  max_iterations: 50
  max_runtime: 2h
  max_tool_calls: 5000
  budget_usd: 100
  max_files_changed: 100000
  max_diff_lines: 10000000
`, name)
}

func requirementsYAML(t int) string {
	return fmt.Sprintf(`apiVersion: agentgate.dev/v1
kind: Requirements
requirements:
  - id: FR-SVC%d-001
    owner: bench-owner
    objective: The service computes what it is asked to.
    acceptance:
      - id: AC-1
        description: The package test passes.
        test: {package: ./services/svc%d/pkg0, name: TestPackage}
`, t, t)
}

func planJSON(t int) string {
	return fmt.Sprintf(`{
  "apiVersion": "agentgate.dev/v1",
  "plan_id": "svc%d-plan",
  "fr_ids": ["FR-SVC%d-001"],
  "thread": "services/svc%d",
  "target_files": ["services/svc%d/**/*.go"],
  "risk": "low",
  "tests": {"command": ["go", "test", "-json", "./services/svc%d/..."]},
  "limits": {"max_iterations": 10, "max_runtime": "1h", "max_tool_calls": 1000, "max_files_changed": 50000, "max_diff_lines": 5000000},
  "budget": {"limit_usd": 10},
  "git": {"branch": "agent/bench", "target": "develop"}
}
`, t, t, t, t, t)
}
