package tests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/engine"
	"github.com/agentgate/agentgate/checks/report"
	"github.com/agentgate/agentgate/policies"
)

func TestEngineLogRecordsTheRuns(t *testing.T) {
	runner := newRunner(t)
	s := newShop(t)
	head := s.branch("logged", map[string]string{"strutil/strutil_test.go": shopBase["strutil/strutil_test.go"] + "\n// x\n"})
	logs := t.TempDir()
	c := New(Config{Runner: runner, CacheDir: t.TempDir()})
	rep, err := engine.Evaluate(context.Background(), subject(s, head, policies.PlanTests{}), report.Report{},
		engine.Options{Checks: []checks.Check{c}, LogDir: logs, Timeout: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Decision != report.Pass {
		t.Fatalf("decision %s %v", rep.Decision, rep.Reasons)
	}
	b, err := os.ReadFile(filepath.Join(logs, "tests.log"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `isolation "none"`) {
		t.Errorf("tests ran unisolated:\n%s", b)
	}
	for _, want := range []string{"selection affected: 1 package(s)", "ran go test -json example.com/shop/strutil", "netns+pidns"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("log lacks %q:\n%s", want, b)
		}
	}
}
