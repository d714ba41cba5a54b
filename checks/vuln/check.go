package vuln

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/basecache"
	"github.com/agentgate/agentgate/checks/gopkgs"
	"github.com/agentgate/agentgate/checks/isolate"
	"github.com/agentgate/agentgate/checks/vuln/vulndb"
	"github.com/agentgate/agentgate/internal/gitcli"
	"github.com/agentgate/agentgate/policies"
)

// Name is the check's name in reports.
const Name = "vuln"

// DefaultTimeout bounds one govulncheck run (source mode on a large
// module takes ~15 s; loading is the slow part).
const DefaultTimeout = 5 * time.Minute

// Config wires the check.
type Config struct {
	// Runner runs the scanner child with no network (required).
	Runner isolate.Runner
	// ScanArgv starts the scanner child; govulncheck's arguments are
	// appended. Default: this executable with "vulndb", "scan", "--".
	ScanArgv []string
	// DB is a database built by vulndb.Build. Empty: the cached database
	// for DBVersion, built on first use (needs the module proxy once).
	DB string
	// DBVersion is the x/vulndb version when DB is empty
	// (vulndb.PinnedVersion by default).
	DBVersion string
	// CacheDir is the root cache directory (basecache.DefaultRoot() when
	// empty); the database lives in CacheDir/vulndb, scan results (by
	// commit) in CacheDir/vuln-scans.
	CacheDir string
	// Timeout bounds each scan (DefaultTimeout when 0).
	Timeout time.Duration
	// Now is the clock for allow-list expiry (time.Now when nil).
	Now func() time.Time
	// DownloadModules runs `go mod download` on the host before each scan
	// (the scan itself has GOPROXY=off).
	DownloadModules bool
}

// Check is the vulnerability check.
type Check struct{ cfg Config }

// New returns the check.
func New(cfg Config) *Check { return &Check{cfg: cfg} }

// Name implements checks.Check.
func (c *Check) Name() string { return Name }

// scanRecord is what is cached per base commit and module.
type scanRecord struct {
	Missing bool   `json:"missing,omitempty"` // the module does not exist at base
	Error   string `json:"error,omitempty"`   // the base scan failed
	Scan    *Scan  `json:"scan,omitempty"`
	// Isolation is what confined the scan that produced Scan.
	Isolation string `json:"isolation,omitempty"`
	// Scope says which packages a head scan covered.
	Scope string `json:"scope,omitempty"`
}

func scopeOf(r scanRecord) string {
	if r.Scope == "" {
		return "every package"
	}
	return r.Scope
}

// maxAffectedPatterns bounds the packages named on govulncheck's command
// line; a larger set is scanned as ./... .
const maxAffectedPatterns = 500

// affectedPatterns returns the import paths of module mod's packages on
// head that the change can reach (changed packages and everything that
// depends on them), or ./... when that cannot be bounded: go.mod or go.sum
// changed, the packages do not list, or most of the module is affected.
// nil means no package of the module is affected.
func (c *Check) affectedPatterns(ctx context.Context, s *checks.Subject, root, headDir, mod string, changed []string) ([]string, string) {
	all := []string{"./..."}
	pkgs, _, err := gopkgs.ListCommit(ctx, c.cfg.Runner, root, s.Head, headDir, mod)
	if err != nil {
		gopkgs.Logf(ctx, "module %s: packages do not list (%v); scanning every package", mod, err)
		return all, "every package (the packages do not list)"
	}
	g := gopkgs.NewGraph(pkgs)
	ch, every := gopkgs.ChangedPackages(g, changed, headDir, mod)
	if every {
		return all, "every package (go.mod or go.sum changed)"
	}
	affected := g.Affected(ch)
	switch {
	case len(affected) == 0:
		return nil, fmt.Sprintf("no package affected (0 of %d); base findings carried over", len(g.Pkgs))
	case len(affected) > maxAffectedPatterns || len(affected)*10 >= len(g.Pkgs)*9:
		return all, fmt.Sprintf("every package (%d of %d affected)", len(affected), len(g.Pkgs))
	}
	return affected, fmt.Sprintf("%d of %d packages (those the change reaches)", len(affected), len(g.Pkgs))
}

// Run implements checks.Check.
func (c *Check) Run(ctx context.Context, s *checks.Subject) (res checks.Result) {
	start := time.Now()
	res = checks.Result{Name: Name, Status: checks.StatusError, Findings: []checks.Finding{}, Details: map[string]any{}}
	defer func() { res.Duration = checks.Duration(time.Since(start)) }()
	fail := func(format string, a ...any) checks.Result {
		res.Status = checks.StatusError
		res.Reason = fmt.Sprintf(format, a...)
		return res
	}
	if c.cfg.Runner == nil {
		return fail("vuln check misconfigured: no runner for untrusted code")
	}
	pol, err := policyOf(s)
	if err != nil {
		return fail("%v", err)
	}
	db, err := c.database(ctx)
	if err != nil {
		return fail("vulnerability database: %v", err)
	}
	res.Details["db_version"] = db.Version
	res.Details["db_modified"] = db.Modified
	res.Details["scanner"] = "golang.org/x/vuln " + scannerVersion()

	// The modules of head, read from the commit: when every scan is
	// cached (a re-check of the same head) nothing is exported.
	headFS, err := gitcli.CommitFS(ctx, s.Repo, s.Head)
	if err != nil {
		return fail("read head %s: %v", s.Head, err)
	}
	mods, err := gopkgs.ModulesFS(headFS)
	headFS.Close()
	if err != nil {
		return fail("%v", err)
	}
	if len(mods) == 0 {
		res.Status = checks.StatusSkipped
		res.Reason = "no go.mod on head: nothing for govulncheck to scan"
		return res
	}
	res.Details["modules"] = mods

	baseSHA := s.MergeBase
	if baseSHA == "" {
		baseSHA = s.Base
	}
	store := basecache.Store{Dir: filepath.Join(c.cacheRoot(), "vuln-scans")}
	// Scans are cached by commit: a re-check of the same head (after an
	// approval, a policy change on base) and every check of a base seen
	// before scan nothing. What is not cached is exported once per side
	// into a stable work tree and scanned, base alongside head (two
	// processes, so both cores work).
	baseKeys := map[string]string{}
	baseRecs := map[string]scanRecord{}
	headKeys := map[string]string{}
	affKeys := map[string]string{}
	headRecs := map[string]scanRecord{}
	needBase, needHead := false, false
	for _, mod := range mods {
		k := basecache.Key(baseSHA, mod, db.Version, scannerVersion(), gopkgs.GoVersion())
		baseKeys[mod] = k
		var rec scanRecord
		switch {
		case baseSHA == "":
			baseRecs[mod] = scanRecord{Error: "no base commit"}
		case store.Get(k, &rec):
			baseRecs[mod] = rec
		default:
			needBase = true
		}
		hk := basecache.Key(s.Head, mod, db.Version, scannerVersion(), gopkgs.GoVersion())
		headKeys[mod] = hk
		// A head scanned only where the change reaches is valid against
		// this base only.
		ak := basecache.Key(s.Head, mod, db.Version, scannerVersion(), gopkgs.GoVersion(), "affected", baseSHA)
		affKeys[mod] = ak
		var hrec scanRecord
		if store.Get(hk, &hrec) && hrec.Scan != nil {
			headRecs[mod] = hrec
		} else if store.Get(ak, &hrec) && hrec.Scan != nil {
			headRecs[mod] = hrec
		} else {
			needHead = true
		}
	}
	root := c.cacheRoot()
	var headDir, baseDir string
	if needHead {
		w, err := gopkgs.Export(ctx, root, s.Repo, "vuln-head", s.Head)
		if err != nil {
			return fail("%v", err)
		}
		defer w.Release()
		headDir = w.Dir
	}
	if needBase {
		w, err := gopkgs.Export(ctx, root, s.Repo, "vuln-base", baseSHA)
		if err != nil {
			return fail("%v", err)
		}
		defer w.Release()
		baseDir = w.Dir
	}
	headCached := !needHead
	var changed []string
	if needHead {
		changes, err := gitcli.Diff(ctx, s.Repo, s.Base, s.Head)
		if err != nil {
			return fail("list changed files: %v", err)
		}
		for _, ch := range changes {
			changed = append(changed, ch.Path)
			if ch.OldPath != "" {
				changed = append(changed, ch.OldPath)
			}
		}
	}
	var scopes []string

	var head, base []Vuln
	var baseNotes []string
	for _, mod := range mods {
		var baseCh chan scanRecord
		if _, ok := baseRecs[mod]; !ok {
			baseCh = make(chan scanRecord, 1)
			go func(mod string) {
				baseCh <- c.scanBase(ctx, db, baseDir, filepath.Join(baseDir, filepath.FromSlash(mod)))
			}(mod)
		}
		waitBase := func() {
			if baseCh != nil {
				<-baseCh // never leave a scan running behind an early return
			}
		}

		hrec, ok := headRecs[mod]
		if ok {
			scopes = append(scopes, fmt.Sprintf("%s: %s (cached)", mod, scopeOf(hrec)))
		} else {
			modDir := filepath.Join(headDir, filepath.FromSlash(mod))
			if c.cfg.DownloadModules {
				if err := gopkgs.DownloadModules(ctx, modDir); err != nil {
					waitBase()
					return fail("%v", err)
				}
			}
			// Only packages the change reaches can call anything new: when
			// the base's scan of this module is known, scan just those on
			// head (exact for what counts: findings new versus base).
			patterns, why := []string{"./..."}, "every package"
			if brec, ok := baseRecs[mod]; ok && brec.Scan != nil {
				patterns, why = c.affectedPatterns(ctx, s, root, headDir, mod, changed)
			}
			var sc *Scan
			var iso string
			switch {
			case len(patterns) == 0:
				// Nothing in this module changed: head is the base.
				sc = baseRecs[mod].Scan
				iso = baseRecs[mod].Isolation
			default:
				sc, iso, err = c.scan(ctx, db, headDir, modDir, patterns...)
				if err != nil {
					waitBase()
					return fail("govulncheck on head module %s: %v", mod, err)
				}
			}
			hrec = scanRecord{Scan: sc, Isolation: iso, Scope: why}
			key := headKeys[mod]
			if patterns == nil || patterns[0] != "./..." {
				key = affKeys[mod]
			}
			_ = store.Put(key, hrec)
			scopes = append(scopes, fmt.Sprintf("%s: %s", mod, why))
		}
		res.Details["isolation"] = hrec.Isolation
		hs := hrec.Scan
		if v := hs.GoVersion; v != "" {
			res.Details["go_version"] = v
		}
		head = append(head, prefixPaths(hs.Vulns, mod)...)

		rec, ok := baseRecs[mod]
		if !ok {
			rec = <-baseCh
			if ctx.Err() != nil {
				return fail("base scan interrupted: %v", ctx.Err())
			}
			if rec.Error == "" {
				_ = store.Put(baseKeys[mod], rec) // a cache write failure only costs time
			}
		}
		switch {
		case rec.Missing:
		case rec.Error != "":
			baseNotes = append(baseNotes, fmt.Sprintf("module %s: base scan failed, every head finding counts as new: %s", mod, rec.Error))
		case rec.Scan != nil:
			base = append(base, prefixPaths(rec.Scan.Vulns, mod)...)
		}
	}
	if headCached {
		res.Details["head_cached"] = true
	}
	res.Details["head_scope"] = scopes
	if len(baseNotes) > 0 {
		res.Details["base_notes"] = baseNotes
	}
	ev := Evaluate(head, base, pol, c.now())
	res.Findings = ev.Findings
	res.Details["new"] = len(ev.New)
	res.Details["preexisting"] = len(ev.Preexisting)
	if len(ev.Preexisting) > 0 {
		res.Details["preexisting_ids"] = ids(ev.Preexisting)
	}
	if len(ev.Allowed) > 0 {
		res.Details["allowed"] = ids(ev.Allowed)
	}
	if len(ev.Stdlib) > 0 {
		res.Details["stdlib"] = ev.Stdlib
	}
	if ev.Failed {
		res.Status = checks.StatusFail
		res.Reason = fmt.Sprintf("%d new vulnerabilit%s at or above level %q", ev.Failing, plural(ev.Failing, "y", "ies"), pol.FailOn)
	} else {
		res.Status = checks.StatusPass
	}
	return res
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func ids(vs []Vuln) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.ID)
	}
	return out
}

func prefixPaths(vs []Vuln, mod string) []Vuln {
	out := make([]Vuln, len(vs))
	copy(out, vs)
	if mod == "." {
		return out
	}
	for i := range out {
		if out[i].Path != "" && !strings.HasPrefix(out[i].Path, "/") {
			out[i].Path = path.Join(mod, out[i].Path)
		}
	}
	return out
}

func (c *Check) now() time.Time {
	if c.cfg.Now != nil {
		return c.cfg.Now()
	}
	return time.Now()
}

func (c *Check) cacheRoot() string {
	if c.cfg.CacheDir != "" {
		return c.cfg.CacheDir
	}
	if d, err := basecache.DefaultRoot(); err == nil {
		return d
	}
	return filepath.Join(os.TempDir(), "agentgate-cache")
}

func (c *Check) database(ctx context.Context) (vulndb.Info, error) {
	if c.cfg.DB != "" {
		return vulndb.Load(c.cfg.DB)
	}
	return vulndb.Ensure(ctx, filepath.Join(c.cacheRoot(), "vulndb"), c.cfg.DBVersion)
}

func (c *Check) scanArgv() ([]string, error) {
	if len(c.cfg.ScanArgv) > 0 {
		return c.cfg.ScanArgv, nil
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the agentgate executable to start the scanner: %w", err)
	}
	return []string{self, "vulndb", "scan", "--"}, nil
}

// scan runs govulncheck on the module at dir (inside the exported tree) in
// the isolated child.
func (c *Check) scan(ctx context.Context, db vulndb.Info, tree, dir string, patterns ...string) (*Scan, string, error) {
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	argv, err := c.scanArgv()
	if err != nil {
		return nil, "", err
	}
	timeout := c.cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	args := append(append(append([]string{}, argv[1:]...), "-db", db.URL(), "-format", "json", "-C", dir), patterns...)
	r, err := c.cfg.Runner.Run(ctx, isolate.Cmd{Path: argv[0], Args: args, Dir: dir, Timeout: timeout,
		ReadOnly: []string{tree, db.Dir}, Env: []string{"GOFLAGS=" + gopkgs.ModFlag(dir)}})
	gopkgs.Logf(ctx, "govulncheck %s: exit %d, %s, isolation %q, err %v", dir, r.ExitCode, r.Duration.Round(time.Millisecond), r.Isolation, err)
	if len(r.Stderr) > 0 {
		gopkgs.Logf(ctx, "stderr (tail):\n%s", gopkgs.Tail(r.Stderr, 4000))
	}
	if err != nil {
		return nil, r.Isolation, err
	}
	if r.ExitCode != 0 {
		return nil, r.Isolation, fmt.Errorf("govulncheck exited %d: %s%s", r.ExitCode, gopkgs.Tail(r.Stderr, 2000), gopkgs.Hint(r.Stderr))
	}
	if r.StdoutTruncated {
		return nil, r.Isolation, errors.New("govulncheck output exceeded the output limit")
	}
	sc, err := ParseStream(strings.NewReader(string(r.Stdout)), dir)
	if err != nil {
		return nil, r.Isolation, err
	}
	if sc.DBLastModified == "" {
		// govulncheck omits it when it could not read index/db.json, and
		// then reports "no vulnerabilities" for a database it never read.
		return nil, r.Isolation, errors.New("govulncheck could not read the vulnerability database (no db_last_modified in its output)")
	}
	return sc, r.Isolation, nil
}

func (c *Check) scanBase(ctx context.Context, db vulndb.Info, tree, dir string) scanRecord {
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return scanRecord{Missing: true}
	}
	if c.cfg.DownloadModules {
		if err := gopkgs.DownloadModules(ctx, dir); err != nil {
			return scanRecord{Error: err.Error()}
		}
	}
	sc, iso, err := c.scan(ctx, db, tree, dir)
	if err != nil {
		return scanRecord{Error: err.Error()}
	}
	return scanRecord{Scan: sc, Isolation: iso}
}

// Policy is the effective vulnerability policy.
type Policy struct {
	FailOn Level
	// StdlibFail makes standard-library findings fail like module ones.
	StdlibFail bool
	Allow      []policies.VulnAllow
}

func policyOf(s *checks.Subject) (Policy, error) {
	var vp policies.VulnPolicy
	if s != nil && s.Tree != nil {
		vp = s.Tree.Policy.Vuln
	}
	return ParsePolicy(vp)
}

// ParsePolicy validates the repository's vuln policy.
func ParsePolicy(vp policies.VulnPolicy) (Policy, error) {
	lvl, err := ParseLevel(vp.FailOn)
	if err != nil {
		return Policy{}, fmt.Errorf("policy vuln.fail_on: %w", err)
	}
	p := Policy{FailOn: lvl, Allow: vp.Allow}
	switch strings.ToLower(vp.Stdlib) {
	case "", "warn":
	case "fail":
		p.StdlibFail = true
	default:
		return Policy{}, fmt.Errorf("policy vuln.stdlib: %q is not warn or fail", vp.Stdlib)
	}
	return p, nil
}

// Evaluation is the verdict over head and base findings.
type Evaluation struct {
	New         []Vuln // at a higher level on head than on base
	Preexisting []Vuln
	Allowed     []Vuln // new, accepted by an unexpired allow entry
	Stdlib      []Vuln // new standard-library findings, reported separately
	Findings    []checks.Finding
	Failing     int
	Failed      bool
}

type vkey struct{ id, module string }

// Evaluate compares head with base under policy p at time now.
func Evaluate(head, base []Vuln, p Policy, now time.Time) Evaluation {
	baseLevel := map[vkey]Level{}
	for _, v := range base {
		k := vkey{v.ID, v.Module}
		if v.Level > baseLevel[k] {
			baseLevel[k] = v.Level
		}
	}
	// One entry per id and module, at its highest level.
	best := map[vkey]Vuln{}
	for _, v := range head {
		k := vkey{v.ID, v.Module}
		if old, ok := best[k]; !ok || v.Level > old.Level {
			best[k] = v
		}
	}
	keys := make([]vkey, 0, len(best))
	for k := range best {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].id != keys[j].id {
			return keys[i].id < keys[j].id
		}
		return keys[i].module < keys[j].module
	})
	var ev Evaluation
	ev.Findings = []checks.Finding{}
	for _, k := range keys {
		v := best[k]
		if v.Level <= baseLevel[k] {
			ev.Preexisting = append(ev.Preexisting, v)
			continue
		}
		ev.New = append(ev.New, v)
		allowed, expired := allowState(p.Allow, v.ID, now)
		if allowed {
			ev.Allowed = append(ev.Allowed, v)
			continue
		}
		fails := v.Level >= p.FailOn
		rule := "vuln." + v.Level.String()
		sev := severityOf(v.Level)
		if v.Stdlib() {
			ev.Stdlib = append(ev.Stdlib, v)
			rule = "vuln.stdlib"
			if !p.StdlibFail {
				fails = false
				sev = checks.SeverityLow
			}
		}
		if !fails && v.Level < LevelImported && !v.Stdlib() {
			continue // a required-only module below the threshold is noise
		}
		msg := describe(v)
		if expired != "" {
			msg += fmt.Sprintf(" (its allow entry expired on %s)", expired)
		}
		if !fails {
			msg = "warning: " + msg
			if sev != checks.SeverityLow {
				sev = checks.SeverityLow
			}
		}
		ev.Findings = append(ev.Findings, checks.Finding{
			Rule:        rule,
			Severity:    sev,
			Path:        v.Path,
			Line:        v.Line,
			Message:     msg,
			Fingerprint: "vuln:" + v.ID + ":" + v.Module + ":" + v.Level.String(),
		})
		if fails {
			ev.Failing++
			ev.Failed = true
		}
	}
	return ev
}

func severityOf(l Level) checks.Severity {
	switch l {
	case LevelCalled:
		return checks.SeverityHigh
	case LevelImported:
		return checks.SeverityMedium
	}
	return checks.SeverityLow
}

func describe(v Vuln) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s in %s", v.ID, v.Module)
	if v.Version != "" {
		fmt.Fprintf(&b, "@%s", v.Version)
	}
	switch v.Level {
	case LevelCalled:
		fmt.Fprintf(&b, ": vulnerable %s.%s is called", v.Package, v.Symbol)
	case LevelImported:
		fmt.Fprintf(&b, ": vulnerable package %s is imported", v.Package)
	default:
		b.WriteString(": vulnerable module is required")
	}
	b.WriteString(" (new on head)")
	if v.FixedVersion != "" {
		fmt.Fprintf(&b, "; fixed in %s", v.FixedVersion)
	} else {
		b.WriteString("; no fixed version")
	}
	if v.Summary != "" {
		fmt.Fprintf(&b, ": %s", v.Summary)
	}
	return b.String()
}

// allowState says whether an unexpired allow entry accepts id; expired is
// the date of an expired entry for the message.
func allowState(allow []policies.VulnAllow, id string, now time.Time) (allowed bool, expired string) {
	for _, a := range allow {
		if a.ID != id {
			continue
		}
		day, err := time.Parse("2006-01-02", a.Expires)
		if err != nil {
			expired = a.Expires + " (unreadable date)"
			continue
		}
		// The entry holds through the whole expiry day (UTC).
		if now.UTC().Before(day.Add(24 * time.Hour)) {
			return true, ""
		}
		expired = a.Expires
	}
	return false, expired
}

// scannerVersion is the x/vuln version linked into this binary (govulncheck
// reports the host program's version instead when run in-process).
func scannerVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "golang.org/x/vuln" {
				if d.Replace != nil {
					return d.Replace.Version
				}
				return d.Version
			}
		}
	}
	return "unknown"
}
