package tests

import (
	"fmt"
	"math"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/gopkgs"
	"github.com/agentgate/agentgate/internal/gitcli"
	"github.com/agentgate/agentgate/policies"
)

type evalInput struct {
	plan      plan
	head      record
	base      record
	graph     *gopkgs.Graph
	headDir   string
	mod       string
	selection string   // affected | all | command
	tested    []string // packages run on head (affected selection)
	changes   []gitcli.Change
	accept    []policies.Acceptance
	// extraCover is coverage from the gate's own run of affected packages
	// outside a custom command: it counts for the changed files only, so
	// the total stays comparable with the base's run of the same command.
	extraCover map[string]Counts
}

type evalOutput struct {
	findings []checks.Finding
	details  map[string]any
	failed   bool
	reasons  []string
	reason   string
}

func (o *evalOutput) add(f checks.Finding, fails bool, reason string) {
	o.findings = append(o.findings, f)
	if fails {
		o.failed = true
		if reason != "" {
			o.reasons = append(o.reasons, reason)
		}
	}
}

// maxListed bounds how many failed tests become individual findings.
const maxListed = 50

func evaluate(in evalInput) evalOutput {
	out := evalOutput{details: map[string]any{}}
	tested := map[string]bool{}
	for _, ip := range in.tested {
		tested[ip] = true
	}
	reuseBase := in.selection == "affected" && in.base.Run != nil
	onHead := func(ip string) bool {
		if in.graph == nil {
			return true
		}
		_, ok := in.graph.Package(ip)
		return ok
	}

	// The head suite: packages run on head, plus the base's results for
	// packages the change cannot affect.
	merged := &Run{Packages: map[string]*PackageResult{}}
	if reuseBase {
		for ip, pr := range in.base.Run.Packages {
			if !tested[ip] && onHead(ip) {
				merged.Packages[ip] = pr
			}
		}
	}
	if in.head.Run != nil {
		for ip, pr := range in.head.Run.Packages {
			merged.Packages[ip] = pr
		}
	}

	baseFailed := map[string]bool{}
	if in.base.Run != nil {
		for _, f := range in.base.Run.Failed() {
			baseFailed[f] = true
		}
	}

	// 1. Failures.
	failed := merged.Failed()
	out.details["failed"] = len(failed)
	listed := 0
	for _, name := range failed {
		ip, test := splitTestName(merged, name)
		if test == "" && hasFailedTest(merged.Packages[ip]) {
			continue // the failed tests say it better
		}
		listed++
		if listed > maxListed {
			continue
		}
		msg := "test " + test + " failed in " + ip
		pr := merged.Packages[ip]
		switch {
		case test == "" && pr.BuildFailed:
			msg = "package " + ip + " does not build: " + lastLines(pr.Output, 6)
		case test == "":
			msg = "package " + ip + " failed (" + string(pr.Outcome) + "): " + lastLines(pr.Output, 6)
		case pr.Tests[test] == OutcomeIncomplete:
			msg = "test " + test + " in " + ip + " did not finish (crash, panic or time limit): " + lastLines(pr.Output, 6)
		}
		if baseFailed[name] {
			msg += " (it also failed on base: the suite was red before this change)"
		}
		out.add(checks.Finding{
			Rule: "tests.failed", Severity: checks.SeverityHigh, Path: pkgPath(in, ip),
			Message: msg, Fingerprint: "tests:failed:" + name,
		}, true, "")
	}
	if listed > 0 {
		out.reasons = append(out.reasons, fmt.Sprintf("%d failing test%s or package%s", listed, plural(listed), plural(listed)))
	}
	if in.head.Run != nil && in.head.ExitCode != 0 && len(in.head.Run.Failed()) == 0 {
		msg := fmt.Sprintf("the test command exited %d without a failing test in its output: %s", in.head.ExitCode, lastLines(in.head.Stderr+"\n"+in.head.Run.Stray, 8))
		out.add(checks.Finding{Rule: "tests.command-failed", Severity: checks.SeverityHigh, Message: msg,
			Fingerprint: "tests:command-failed"}, true, "the test command failed")
	}
	ranSomething := in.selection != "affected" || len(in.tested) > 0
	if ranSomething && (in.head.Run == nil || len(in.head.Run.Packages) == 0) {
		out.add(checks.Finding{Rule: "tests.no-results", Severity: checks.SeverityHigh,
			Message:     "the test command produced no go test -json results: " + lastLines(in.head.Stderr, 8),
			Fingerprint: "tests:no-results"}, true, "no test results")
	}

	// 2. Acceptance tests.
	for _, a := range in.accept {
		ip := ""
		if pk := resolvePackage(in.graph, a.Test.Package, in.headDir); pk != nil {
			ip = pk.ImportPath
		} else if in.graph == nil {
			ip = matchResultPackage(merged, a.Test.Package)
		}
		state := "missing: its package " + a.Test.Package + " does not exist on head"
		if ip != "" {
			pr := merged.Packages[ip]
			o, ok := Outcome(""), false
			if pr != nil {
				o, ok = pr.Tests[a.Test.Name]
			}
			switch {
			case ok && o == OutcomePass:
				continue
			case !ok:
				state = "missing: " + a.Test.Name + " did not run in " + ip
			case o == OutcomeSkip:
				state = "skipped"
			case o == OutcomeIncomplete:
				state = "did not finish"
			default:
				state = "failed"
			}
		}
		out.add(checks.Finding{
			Rule: "tests.acceptance", Severity: checks.SeverityHigh, Path: pkgPath(in, ip),
			Message:     fmt.Sprintf("acceptance test %s (%s %s) %s", a.ID, a.Test.Package, a.Test.Name, state),
			Fingerprint: "tests:acceptance:" + a.ID,
		}, true, "acceptance test "+a.ID+" "+strings.SplitN(state, ":", 2)[0])
	}

	// 3. Test changes for changed Go files.
	changedGo := map[string]bool{}
	testDirs := map[string]bool{}
	for _, ch := range in.changes {
		if ch.Status == 'D' || !strings.HasSuffix(ch.Path, ".go") || ignoredGoPath(ch.Path) {
			continue
		}
		if strings.HasSuffix(ch.Path, "_test.go") {
			testDirs[path.Dir(ch.Path)] = true
			continue
		}
		changedGo[ch.Path] = true
	}
	if in.plan.tests.RequireTestsForChanged {
		var files []string
		for f := range changedGo {
			if !testDirs[path.Dir(f)] {
				files = append(files, f)
			}
		}
		sort.Strings(files)
		for _, f := range files {
			out.add(checks.Finding{
				Rule: "tests.missing-test-change", Severity: checks.SeverityMedium, Path: f,
				Message:     "changed " + f + " without changing a test in its package (require_tests_for_changed)",
				Fingerprint: "tests:missing-test-change:" + f,
			}, true, "")
		}
		if len(files) > 0 {
			out.reasons = append(out.reasons, fmt.Sprintf("%d changed file%s without a test change", len(files), plural(len(files))))
		}
	}

	// 4. Coverage.
	headFiles := map[string]Counts{}
	if reuseBase && in.base.Profile != nil {
		for f, c := range in.base.Profile.Files {
			ip := path.Dir(f)
			if !tested[ip] && onHead(ip) {
				headFiles[f] = c
			}
		}
	}
	if in.head.Profile != nil {
		for f, c := range in.head.Profile.Files {
			headFiles[f] = c
		}
	}
	haveHeadProfile := in.head.Profile != nil || (in.selection == "affected" && len(in.tested) == 0 && in.base.Profile != nil)
	var headTotal, changed Counts
	for f, c := range headFiles {
		headTotal = headTotal.Add(c)
		if changedGo[profileFileToRepo(in, f)] {
			changed = changed.Add(c)
		}
	}
	for f, c := range in.extraCover {
		if _, ok := headFiles[f]; !ok && changedGo[profileFileToRepo(in, f)] {
			changed = changed.Add(c)
		}
	}
	if pct, ok := headTotal.Percent(); ok && haveHeadProfile {
		out.details["coverage_total_head"] = round2(pct)
	}
	if pct, ok := changed.Percent(); ok {
		out.details["coverage_changed"] = round2(pct)
	}
	if min := in.plan.tests.CoverageChangedMin; min > 0 && len(changedGo) > 0 {
		pct, ok := changed.Percent()
		switch {
		case !haveHeadProfile:
			out.add(checks.Finding{Rule: "tests.coverage-missing", Severity: checks.SeverityMedium,
				Message:     "coverage_changed_min is set but the test command wrote no coverage profile (it must run go test, which honours GOFLAGS=-coverprofile)",
				Fingerprint: "tests:coverage-missing"}, true, "no coverage profile")
		case ok && pct+1e-9 < min:
			out.add(checks.Finding{Rule: "tests.coverage-changed", Severity: checks.SeverityMedium,
				Message:     fmt.Sprintf("coverage of the changed files is %.1f%%, below coverage_changed_min %.1f%% (%d of %d statements)", pct, min, changed.Covered, changed.Total),
				Fingerprint: "tests:coverage-changed"}, true, "changed-file coverage below minimum")
		}
	}
	if in.base.Profile != nil {
		baseTotal := in.base.Profile.Total()
		if bp, ok := baseTotal.Percent(); ok {
			out.details["coverage_total_base"] = round2(bp)
			hp, hok := headTotal.Percent()
			if hok && haveHeadProfile && in.plan.hasPlan {
				drop := bp - hp
				tol := in.plan.tests.CoverageRegressionTolerance
				if drop > tol+1e-9 {
					out.add(checks.Finding{
						Rule: "tests.coverage-regression", Severity: checks.SeverityHigh,
						Message:     fmt.Sprintf("total coverage fell from %.2f%% on base to %.2f%% on head (-%.2f points, tolerance %.2f)", bp, hp, drop, tol),
						Fingerprint: "tests:coverage-regression",
						Stop:        policies.StopCoverageRegression,
					}, true, "total coverage regressed")
				}
			}
		}
	}

	// 5. The base's state.
	switch {
	case in.base.Error != "":
		out.details["base_error"] = in.base.Error
	case in.base.Missing:
		out.details["base_missing"] = true
	case in.base.Run != nil && in.base.Run.Red():
		bf := in.base.Run.Failed()
		out.details["base_red"] = true
		shown := bf
		if len(shown) > 10 {
			shown = shown[:10]
		}
		out.findings = append(out.findings, checks.Finding{
			Rule: "tests.base-red", Severity: checks.SeverityLow,
			Message:     fmt.Sprintf("the suite was red before this change: %d failing on base (%s)", len(bf), strings.Join(shown, ", ")),
			Fingerprint: "tests:base-red",
		})
	}
	if out.failed {
		out.reason = strings.Join(out.reasons, "; ")
		if out.reason == "" {
			out.reason = "tests failed"
		}
	}
	return out
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// splitTestName splits a Failed() name into package and test.
func splitTestName(r *Run, name string) (string, string) {
	if _, ok := r.Packages[name]; ok {
		return name, ""
	}
	// Longest package prefix followed by ".".
	best := ""
	for ip := range r.Packages {
		if strings.HasPrefix(name, ip+".") && len(ip) > len(best) {
			best = ip
		}
	}
	return best, strings.TrimPrefix(name, best+".")
}

func hasFailedTest(p *PackageResult) bool {
	if p == nil {
		return false
	}
	for _, o := range p.Tests {
		if o == OutcomeFail || o == OutcomeIncomplete {
			return true
		}
	}
	return false
}

func lastLines(s string, n int) string {
	s = strings.TrimSpace(s)
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := strings.Join(lines, " | ")
	if len(out) > 600 {
		out = "…" + out[len(out)-600:]
	}
	return out
}

func ignoredGoPath(p string) bool {
	for _, part := range strings.Split(path.Dir(p), "/") {
		if part == "testdata" || part == "vendor" || strings.HasPrefix(part, "_") || (strings.HasPrefix(part, ".") && part != ".") {
			return true
		}
	}
	return false
}

// pkgPath is the repo-relative directory of a package, for findings.
func pkgPath(in evalInput, ip string) string {
	if in.graph == nil || ip == "" {
		return ""
	}
	pk, ok := in.graph.Package(ip)
	if !ok || pk.Dir == "" {
		return ""
	}
	rel, err := filepath.Rel(in.headDir, pk.Dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return ""
	}
	return filepath.ToSlash(rel)
}

// profileFileToRepo maps "importpath/file.go" to the repo-relative path.
func profileFileToRepo(in evalInput, f string) string {
	ip, name := path.Split(f)
	ip = strings.TrimSuffix(ip, "/")
	if d := pkgPath(in, ip); d != "" {
		return path.Join(d, name)
	}
	return ""
}

// matchResultPackage finds the result package an acceptance spec names
// when there is no package graph ("./a/b" matches a package ending in
// "/a/b").
func matchResultPackage(r *Run, spec string) string {
	s := strings.TrimPrefix(path.Clean(spec), "./")
	for ip := range r.Packages {
		if ip == s || strings.HasSuffix(ip, "/"+s) {
			return ip
		}
	}
	return ""
}
