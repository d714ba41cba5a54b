package static

import (
	"bufio"
	"context"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/basecache"
	"github.com/agentgate/agentgate/checks/gopkgs"
	"github.com/agentgate/agentgate/checks/isolate"
	"github.com/agentgate/agentgate/internal/gitcli"
)

// Name is the check's name in reports.
const Name = "static"

// DefaultTimeout bounds one tool run.
const DefaultTimeout = 5 * time.Minute

// maxFindings bounds the findings one run reports.
const maxFindings = 200

// Config wires the check.
type Config struct {
	// Runner runs the tools with no network (required).
	Runner isolate.Runner
	// CacheDir is the root cache directory for work trees
	// (basecache.DefaultRoot() when empty).
	CacheDir string
	// Timeout bounds each tool run (DefaultTimeout when 0).
	Timeout time.Duration
	// Staticcheck is the absolute path of a staticcheck binary; empty
	// means staticcheck is not run.
	Staticcheck string
	// DownloadModules runs `go mod download` on the host before the
	// isolated runs (which have GOPROXY=off).
	DownloadModules bool
}

// Check is the static-analysis check.
type Check struct{ cfg Config }

// New returns the check.
func New(cfg Config) *Check { return &Check{cfg: cfg} }

// Name implements checks.Check.
func (c *Check) Name() string { return Name }

// Diagnostic is one tool message at a position.
type Diagnostic struct {
	Tool    string `json:"tool"`
	Path    string `json:"path"` // repo-relative
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

// Run implements checks.Check.
func (c *Check) Run(ctx context.Context, s *checks.Subject) (res checks.Result) {
	start := time.Now()
	res = checks.Result{Name: Name, Status: checks.StatusError, Findings: []checks.Finding{}, Details: map[string]any{}}
	defer func() { res.Duration = checks.Duration(time.Since(start)) }()
	errorf := func(format string, a ...any) checks.Result {
		res.Status = checks.StatusError
		res.Reason = fmt.Sprintf(format, a...)
		return res
	}
	if c.cfg.Runner == nil {
		return errorf("static check misconfigured: no runner for untrusted code")
	}
	changes, err := gitcli.Diff(ctx, s.Repo, s.Base, s.Head)
	if err != nil {
		return errorf("list changed files: %v", err)
	}
	var goFiles []string
	for _, ch := range changes {
		if ch.Status != 'D' && strings.HasSuffix(ch.Path, ".go") {
			goFiles = append(goFiles, ch.Path)
		}
	}
	if len(goFiles) == 0 {
		res.Status = checks.StatusSkipped
		res.Reason = "no Go file changed"
		return res
	}
	root := c.cfg.CacheDir
	if root == "" {
		if root, err = basecache.DefaultRoot(); err != nil {
			return errorf("%v", err)
		}
	}
	w, err := gopkgs.Export(ctx, root, s.Repo, "static", s.Head)
	if err != nil {
		return errorf("%v", err)
	}
	defer w.Release()
	mods, err := gopkgs.Modules(w.Dir)
	if err != nil {
		return errorf("%v", err)
	}
	byMod := map[string][]string{}
	for _, f := range goFiles {
		if m, ok := gopkgs.ModuleOf(mods, f); ok {
			byMod[m] = append(byMod[m], f)
		}
	}
	if len(byMod) == 0 {
		res.Status = checks.StatusSkipped
		res.Reason = "the changed Go files are in no Go module"
		return res
	}
	modNames := make([]string, 0, len(byMod))
	for m := range byMod {
		modNames = append(modNames, m)
	}
	sort.Strings(modNames)

	var diags []Diagnostic
	var vetted []string
	for _, mod := range modNames {
		modAbs := filepath.Join(w.Dir, filepath.FromSlash(mod))
		if c.cfg.DownloadModules {
			if err := gopkgs.DownloadModules(ctx, modAbs); err != nil {
				return errorf("%v", err)
			}
		}
		pkgs, iso, err := gopkgs.ListCommit(ctx, c.cfg.Runner, root, s.Head, w.Dir, mod)
		res.Details["isolation"] = iso
		if err != nil {
			return errorf("go list in module %s: %v", mod, err)
		}
		g := gopkgs.NewGraph(pkgs)
		set := map[string]bool{}
		for _, f := range byMod[mod] {
			if pk, ok := g.OwnerOf(filepath.Join(w.Dir, filepath.FromSlash(f)), modAbs); ok {
				set[pk.ImportPath] = true
			}
		}
		if len(set) == 0 {
			continue
		}
		var targets []string
		for ip := range set {
			targets = append(targets, ip)
		}
		sort.Strings(targets)
		vetted = append(vetted, targets...)

		d, err := c.runTool(ctx, "go vet", "go", append([]string{"vet"}, targets...), modAbs, w.Dir)
		if err != nil {
			return errorf("%v", err)
		}
		diags = append(diags, d...)
		if c.cfg.Staticcheck != "" {
			d, err := c.runTool(ctx, "staticcheck", c.cfg.Staticcheck, append([]string{"-f", "text"}, targets...), modAbs, w.Dir)
			if err != nil {
				return errorf("%v", err)
			}
			diags = append(diags, d...)
		}
	}
	res.Details["packages"] = vetted
	tools := []string{"go vet"}
	if c.cfg.Staticcheck != "" {
		tools = append(tools, "staticcheck")
	}
	res.Details["tools"] = tools
	res.Details["diagnostics"] = len(diags)
	for i, d := range diags {
		if i == maxFindings {
			res.Findings = append(res.Findings, checks.Finding{Rule: "static.truncated", Severity: checks.SeverityLow,
				Message: fmt.Sprintf("%d more diagnostics not listed", len(diags)-maxFindings), Fingerprint: "static:truncated"})
			break
		}
		rule := "static.vet"
		if d.Tool == "staticcheck" {
			rule = "static.staticcheck"
		}
		res.Findings = append(res.Findings, checks.Finding{
			Rule: rule, Severity: checks.SeverityMedium, Path: d.Path, Line: d.Line,
			Message:     d.Tool + ": " + d.Message,
			Fingerprint: fmt.Sprintf("static:%s:%s:%d:%s", d.Tool, d.Path, d.Line, d.Message),
		})
	}
	if len(diags) > 0 {
		res.Status = checks.StatusFail
		res.Reason = fmt.Sprintf("%d diagnostic%s in the changed packages", len(diags), map[bool]string{true: "", false: "s"}[len(diags) == 1])
		return res
	}
	res.Status = checks.StatusPass
	return res
}

// runTool runs a vet-like tool and parses its diagnostics. A non-zero exit
// with no diagnostic in the output is an error (the tool did not run).
func (c *Check) runTool(ctx context.Context, tool, prog string, args []string, dir, tree string) ([]Diagnostic, error) {
	timeout := c.cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	r, err := c.cfg.Runner.Run(ctx, isolate.Cmd{Path: prog, Args: args, Dir: dir, Timeout: timeout, MaxOutput: 16 << 20,
		ReadOnly: []string{tree}, Env: []string{"GOFLAGS=" + gopkgs.ModFlag(dir)}})
	gopkgs.Logf(ctx, "%s %s in %s: exit %d, %s, isolation %q, err %v", tool, strings.Join(args, " "), dir, r.ExitCode, r.Duration.Round(time.Millisecond), r.Isolation, err)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tool, err)
	}
	out := string(r.Stdout) + "\n" + string(r.Stderr)
	diags := ParseDiagnostics(tool, out, dir, tree)
	if r.ExitCode != 0 && len(diags) == 0 {
		return nil, fmt.Errorf("%s exited %d without diagnostics: %s%s", tool, r.ExitCode, gopkgs.Tail([]byte(out), 2000), gopkgs.Hint([]byte(out)))
	}
	if r.ExitCode == 0 && len(diags) > 0 && tool == "go vet" {
		// go vet prints diagnostics only when it fails; anything that looks
		// like one on success is noise from the build (e.g. cgo warnings).
		return nil, nil
	}
	return diags, nil
}

// diagRE matches "file.go:line:col: message" and "vet: file.go:line:col: message".
var diagRE = regexp.MustCompile(`^(?:vet: )?([^\s:][^:]*\.go):(\d+):(?:(\d+):)? (.+)$`)

// ParseDiagnostics reads "file:line:col: message" lines. Paths are made
// relative to tree (absolute ones) or joined from dir (relative ones); a
// path that leaves the tree is kept as the tool printed it.
func ParseDiagnostics(tool, out, dir, tree string) []Diagnostic {
	var diags []Diagnostic
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	seen := map[string]bool{}
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		m := diagRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		ln, err := strconv.Atoi(m[2])
		if err != nil {
			continue
		}
		col, _ := strconv.Atoi(m[3])
		p := m[1]
		abs := p
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(dir, filepath.FromSlash(p))
		}
		if rel, err := filepath.Rel(tree, abs); err == nil && !strings.HasPrefix(rel, "..") {
			p = filepath.ToSlash(rel)
		}
		msg := strings.TrimSpace(m[4])
		if msg == "" {
			continue
		}
		d := Diagnostic{Tool: tool, Path: path.Clean(p), Line: ln, Column: col, Message: msg}
		k := fmt.Sprintf("%s:%d:%d:%s", d.Path, d.Line, d.Column, d.Message)
		if seen[k] {
			continue
		}
		seen[k] = true
		diags = append(diags, d)
	}
	return diags
}
