package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Outcome of a test or a package.
type Outcome string

// Outcomes. A test that started but has no final event (the binary
// crashed or was killed) is OutcomeIncomplete, which counts as a failure.
const (
	OutcomePass       Outcome = "pass"
	OutcomeFail       Outcome = "fail"
	OutcomeSkip       Outcome = "skip"
	OutcomeIncomplete Outcome = "incomplete"
)

// Event is one test2json record (`go test -json`).
type Event struct {
	Action      string  `json:"Action"`
	Package     string  `json:"Package"`
	Test        string  `json:"Test"`
	Output      string  `json:"Output"`
	Elapsed     float64 `json:"Elapsed"`
	ImportPath  string  `json:"ImportPath"` // build-output / build-fail (Go >= 1.24)
	FailedBuild string  `json:"FailedBuild"`
}

// PackageResult is one package's outcome and its tests'.
type PackageResult struct {
	Outcome Outcome            `json:"outcome"`
	Tests   map[string]Outcome `json:"tests,omitempty"`
	// Output keeps the tail of the package's and failed tests' output, for
	// messages. Never more than maxKeptOutput bytes per package.
	Output string `json:"output,omitempty"`
	// BuildFailed is set when the package or its test binary did not build.
	BuildFailed bool `json:"build_failed,omitempty"`
}

// Run is a parsed `go test -json` stream.
type Run struct {
	Packages map[string]*PackageResult `json:"packages"`
	// NonJSON counts lines that were not test2json (e.g. a wrapper's own
	// messages); they are kept in Stray (bounded).
	NonJSON int    `json:"non_json,omitempty"`
	Stray   string `json:"stray,omitempty"`
}

// Limits of the parser.
const (
	maxLineBytes  = 16 << 20
	maxKeptOutput = 8 << 10
	maxPackages   = 100000
	maxTests      = 1000000
)

// ParseTestJSON reads a test2json stream. Lines that are not JSON objects
// are tolerated (wrappers print their own messages) and counted. Tests
// whose final event never came are marked incomplete, and a package with
// no final event takes its tests' worst outcome or incomplete.
func ParseTestJSON(r io.Reader) (*Run, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	run := &Run{Packages: map[string]*PackageResult{}}
	final := map[string]bool{} // packages with a package-level final event
	tests := 0
	pkg := func(name string) (*PackageResult, error) {
		p := run.Packages[name]
		if p == nil {
			if len(run.Packages) >= maxPackages {
				return nil, fmt.Errorf("test output names more than %d packages", maxPackages)
			}
			p = &PackageResult{Tests: map[string]Outcome{}}
			run.Packages[name] = p
		}
		return p, nil
	}
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if line[0] != '{' {
			run.NonJSON++
			run.Stray = keepTail(run.Stray+string(line)+"\n", maxKeptOutput)
			continue
		}
		var ev Event
		if err := json.Unmarshal(line, &ev); err != nil {
			run.NonJSON++
			run.Stray = keepTail(run.Stray+string(line)+"\n", maxKeptOutput)
			continue
		}
		switch ev.Action {
		case "build-output", "build-fail":
			name := ev.ImportPath
			if i := strings.Index(name, " ["); i > 0 { // "p [p.test]"
				name = name[:i]
			}
			if name == "" {
				continue
			}
			p, err := pkg(name)
			if err != nil {
				return nil, err
			}
			p.Output = keepTail(p.Output+ev.Output, maxKeptOutput)
			if ev.Action == "build-fail" {
				p.BuildFailed = true
			}
			continue
		}
		if ev.Package == "" {
			continue
		}
		p, err := pkg(ev.Package)
		if err != nil {
			return nil, err
		}
		if ev.FailedBuild != "" {
			p.BuildFailed = true
		}
		switch ev.Action {
		case "run":
			if ev.Test != "" {
				if _, ok := p.Tests[ev.Test]; !ok {
					tests++
					if tests > maxTests {
						return nil, fmt.Errorf("test output names more than %d tests", maxTests)
					}
				}
				p.Tests[ev.Test] = OutcomeIncomplete
			}
		case "pass", "fail", "skip":
			o := Outcome(ev.Action)
			if ev.Test == "" {
				p.Outcome = o
				final[ev.Package] = true
				continue
			}
			if _, ok := p.Tests[ev.Test]; !ok {
				tests++
				if tests > maxTests {
					return nil, fmt.Errorf("test output names more than %d tests", maxTests)
				}
			}
			p.Tests[ev.Test] = o
		case "output":
			// Keep what explains failures: package-level output and the
			// output of tests (trimmed later to failed ones).
			if strings.Contains(ev.Output, "[build failed]") || strings.Contains(ev.Output, "[setup failed]") {
				p.BuildFailed = true
			}
			if ev.Test == "" || strings.HasPrefix(strings.TrimSpace(ev.Output), "---") || strings.Contains(ev.Output, "_test.go:") || strings.Contains(ev.Output, "panic") {
				p.Output = keepTail(p.Output+ev.Output, maxKeptOutput)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read test output: %w", err)
	}
	for name, p := range run.Packages {
		if final[name] {
			continue
		}
		switch {
		case p.BuildFailed:
			p.Outcome = OutcomeFail
		default:
			p.Outcome = OutcomeIncomplete
		}
	}
	return run, nil
}

func keepTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// Failed returns "pkg" and "pkg.Test" names of failed or incomplete
// packages and tests, sorted.
func (r *Run) Failed() []string {
	var out []string
	for name, p := range r.Packages {
		if p.Outcome == OutcomeFail || p.Outcome == OutcomeIncomplete {
			out = append(out, name)
		}
		for t, o := range p.Tests {
			if o == OutcomeFail || o == OutcomeIncomplete {
				out = append(out, name+"."+t)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Red reports whether anything failed.
func (r *Run) Red() bool { return len(r.Failed()) > 0 }
