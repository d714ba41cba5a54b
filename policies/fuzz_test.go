package policies

import (
	"encoding/json"
	"strings"
	"testing"
	"testing/fstest"
)

// checkLoaderContract asserts what every loader promises for any input:
// no panic, a value xor a non-empty Problems, every problem in this file.
func checkLoaderContract[T any](t *testing.T, v *T, err error) {
	t.Helper()
	if err == nil {
		if v == nil {
			t.Fatal("nil value without error")
		}
		return
	}
	if v != nil {
		t.Fatal("value returned with an error")
	}
	ps, ok := err.(Problems)
	if !ok || len(ps) == 0 {
		t.Fatalf("error %T is not a non-empty Problems", err)
	}
	for _, p := range ps {
		if p.File != "fuzz.in" || p.Message == "" || p.Line < 0 || p.Col < 0 {
			t.Fatalf("malformed problem %+v", p)
		}
	}
}

func FuzzLoadWorkPlan(f *testing.F) {
	f.Add(readExample(f, "services/payments/WORK_PLAN.json"))
	f.Add(readExample(f, "services/ledger/WORK_PLAN.json"))
	f.Add([]byte(planJSON))
	f.Add([]byte(`{"plan_id": "a", "plan_id": "b"}`))
	f.Add([]byte("\xEF\xBB\xBF{}"))
	f.Add([]byte(`[[[[{"a":[1e400, -0, "\u0000"]}]]]]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		wp, err := LoadWorkPlan("fuzz.in", data)
		checkLoaderContract(t, wp, err)
		if err != nil {
			return
		}
		// A plan that loads survives a round trip through encoding/json.
		b, merr := json.Marshal(wp)
		if merr != nil {
			t.Fatal(merr)
		}
		if _, err := LoadWorkPlan("fuzz.in", b); err != nil {
			t.Fatalf("round trip of an accepted plan fails: %v\n%s", err, b)
		}
	})
}

func FuzzLoadThread(f *testing.F) {
	for _, s := range []string{"config.yaml", "services/payments/config.yaml", "services/ledger/config.yaml"} {
		f.Add(readExample(f, s))
	}
	f.Add([]byte(threadYAML))
	f.Add([]byte(aliasBomb()))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("? [a, b]\n: c\n"))
	f.Add([]byte("<<: {a: 1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		th, err := LoadThread("fuzz.in", data)
		checkLoaderContract(t, th, err)
		IsThreadConfig(data)
	})
}

func FuzzLoadRequirements(f *testing.F) {
	for _, s := range []string{"requirements.yaml", "services/payments/requirements.yaml", "services/ledger/requirements.yaml"} {
		f.Add(readExample(f, s))
	}
	f.Add([]byte(reqYAML))
	f.Add([]byte(strings.ReplaceAll(reqYAML, "\n", "\r\n")))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := LoadRequirements("fuzz.in", data)
		checkLoaderContract(t, r, err)
	})
}

func FuzzLoadPolicy(f *testing.F) {
	f.Add(readExample(f, ".agentgate/policy.yaml"))
	f.Add([]byte(policyYAML))
	f.Add([]byte("apiVersion: agentgate.dev/v1\nkind: Policy\nladder: []\n"))
	f.Add([]byte("apiVersion: agentgate.dev/v1\nkind: Policy\nmaturity_level: 0x3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := LoadPolicy("fuzz.in", data)
		checkLoaderContract(t, p, err)
		if err == nil && (len(p.Ladder) == 0 || p.IntegrationThread == "") {
			t.Fatalf("accepted policy without defaults: %+v", p)
		}
	})
}

func FuzzMatchGlob(f *testing.F) {
	f.Add("services/payments/**/*.go", "services/payments/a/b.go")
	f.Add("**/go.mod", "go.mod")
	f.Add("{a,b", "a")
	f.Fuzz(func(t *testing.T, pattern, p string) {
		MatchGlob(pattern, p) // must not panic
		if checkRepoPath(p, false) == "" && isLiteral(p) && !MatchGlob(p, p) && !strings.ContainsAny(p, "]}") {
			t.Fatalf("literal path %q does not match itself", p)
		}
	})
}

func BenchmarkLoadWorkPlan(b *testing.B) {
	data := readExample(b, "services/payments/WORK_PLAN.json")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := LoadWorkPlan("WORK_PLAN.json", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadThread(b *testing.B) {
	data := readExample(b, "services/payments/config.yaml")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := LoadThread("config.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRejectAliasBomb(b *testing.B) {
	data := []byte(aliasBomb())
	for b.Loop() {
		if _, err := LoadThread("config.yaml", data); err == nil {
			b.Fatal("alias bomb accepted")
		}
	}
}

func BenchmarkLoadTreeExample(b *testing.B) {
	fsys := DirFS(exampleRepo)
	for b.Loop() {
		if _, probs := LoadTree(fsys); len(probs) > 0 {
			b.Fatal(probs)
		}
	}
}

func BenchmarkOwner(b *testing.B) {
	tree, _ := LoadTree(DirFS(exampleRepo))
	paths := []string{"services/payments/payments.go", "go.mod", "internal/money/money.go", "services/ledger/x/y/z.go"}
	for i := 0; b.Loop(); i++ {
		tree.Owner(paths[i%len(paths)])
	}
}

// exampleMapFS is the example repository's contract files in memory.
func exampleMapFS(tb testing.TB) fstest.MapFS {
	m := fstest.MapFS{}
	for _, f := range []string{".agentgate/policy.yaml", "config.yaml", "requirements.yaml",
		"services/payments/config.yaml", "services/payments/requirements.yaml", "services/payments/WORK_PLAN.json",
		"services/ledger/config.yaml", "services/ledger/requirements.yaml", "services/ledger/WORK_PLAN.json"} {
		m[f] = &fstest.MapFile{Data: readExample(tb, f)}
	}
	return m
}

// FuzzLoadTree runs the cross-file rules on arbitrary plans and thread
// configs placed in the example repository.
func FuzzLoadTree(f *testing.F) {
	f.Add(readExample(f, "services/payments/WORK_PLAN.json"), readExample(f, "services/payments/config.yaml"))
	f.Add([]byte(planJSON), []byte(threadYAML))
	f.Add([]byte(`{"target_files": ["**", "/x", "services/**/config.yaml"], "tests": {"command": [""]}}`), []byte("apiVersion: agentgate.dev/v1\nshared_interfaces: ['**', '.github/**']\n"))
	base := exampleMapFS(f)
	f.Fuzz(func(t *testing.T, plan, cfg []byte) {
		fsys := fstest.MapFS{}
		for k, v := range base {
			fsys[k] = v
		}
		fsys["services/payments/WORK_PLAN.json"] = &fstest.MapFile{Data: plan}
		fsys["services/payments/config.yaml"] = &fstest.MapFile{Data: cfg}
		tree, probs := LoadTree(fsys)
		if tree == nil {
			t.Fatal("nil tree")
		}
		for _, p := range probs {
			if p.File == "" || p.Message == "" {
				t.Fatalf("malformed problem %+v", p)
			}
		}
		tree.Owner("services/payments/x.go")
		if td := tree.Thread("services/payments"); td != nil && td.Plan != nil {
			PlanAllows(td.Plan, td, "services/payments/x.go")
		}
	})
}
