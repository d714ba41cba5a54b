package secrets_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/secrets"
	"github.com/agentgate/agentgate/internal/gitcli/gittest"
	"github.com/agentgate/agentgate/policies"
)

// awsKey is built at run time so that this file holds no scannable key.
var awsKey = strings.Join([]string{"AK", "IA", "QYLPMN5HHHFPZAM2"}, "")

type fixture struct {
	r              *gittest.Repo
	base, mb, head string
}

// newRepo makes main with setupBase applied, then an agent branch with
// change applied.
func newRepo(t *testing.T, setupBase, change func(r *gittest.Repo)) fixture {
	r := gittest.New(t)
	r.Write("app/main.go", "package main\n\nfunc main() {}\n")
	if setupBase != nil {
		setupBase(r)
	}
	base := r.Commit("base")
	r.Branch("agent/x")
	change(r)
	r.Git("add", "-A")
	r.Git("commit", "-q", "--allow-empty", "-m", "agent change")
	return fixture{r: r, base: base, mb: base, head: r.Git("rev-parse", "HEAD")}
}

func (f fixture) run(t *testing.T) checks.Result {
	t.Helper()
	s := &checks.Subject{Repo: f.r.Dir, Base: f.base, MergeBase: f.mb, Head: f.head}
	res := secrets.New().Run(context.Background(), s)
	b, _ := json.Marshal(res)
	if strings.Contains(string(b), awsKey) || strings.Contains(string(b), "QYLPMN5HHHFPZAM2") {
		t.Fatalf("the secret leaked into the result: %s", b)
	}
	return res
}

func keyFile(r *gittest.Repo) {
	r.Write("app/keys.go", "package main\n\nconst awsKey = \""+awsKey+"\"\n")
}

func TestPlantedKeyStops(t *testing.T) {
	res := newRepo(t, nil, keyFile).run(t)
	if res.Status != checks.StatusFail || len(res.Findings) != 1 {
		t.Fatalf("want one finding, got %s %s %+v", res.Status, res.Reason, res.Findings)
	}
	f := res.Findings[0]
	if f.Stop != policies.StopSecretExposure || f.Path != "app/keys.go" || f.Line != 3 || f.Rule != "aws-access-token" || f.Severity != checks.SeverityCritical {
		t.Fatalf("finding %+v", f)
	}
}

func TestCleanChangePasses(t *testing.T) {
	res := newRepo(t, nil, func(r *gittest.Repo) { r.Append("app/main.go", "// nothing to see\n") }).run(t)
	if res.Status != checks.StatusPass || len(res.Findings) != 0 {
		t.Fatalf("got %s %s %+v", res.Status, res.Reason, res.Findings)
	}
}

func TestKeyInCommitMessageStops(t *testing.T) {
	fx := newRepo(t, nil, func(r *gittest.Repo) {})
	fx.r.Git("commit", "-q", "--allow-empty", "-m", "deploy\n\nuse "+awsKey+" for now")
	fx.head = fx.r.Git("rev-parse", "HEAD")
	res := fx.run(t)
	if len(res.Findings) != 1 || res.Findings[0].Path != "" || !strings.Contains(res.Findings[0].Message, "commit message") {
		t.Fatalf("want a commit-message finding, got %+v", res.Findings)
	}
}

func TestAgentCannotSilenceTheScan(t *testing.T) {
	// Fingerprints gitleaks would use for app/keys.go line 3.
	ignoreAll := "app/keys.go:aws-access-token:3\n"
	tests := map[string]func(r *gittest.Repo){
		".gitleaksignore added on head": func(r *gittest.Repo) {
			keyFile(r)
			r.Write(".gitleaksignore", ignoreAll)
		},
		".gitleaks.toml allowlist added on head": func(r *gittest.Repo) {
			keyFile(r)
			r.Write(".gitleaks.toml", "[extend]\nuseDefault = true\n[allowlist]\npaths = ['''.*''']\n")
		},
		"inline gitleaks:allow": func(r *gittest.Repo) {
			r.Write("app/keys.go", "package main\n\nconst awsKey = \""+awsKey+"\" // gitleaks:allow\n")
		},
		"-diff attribute": func(r *gittest.Repo) {
			keyFile(r)
			r.Write(".gitattributes", "*.go -diff\n")
		},
		"file name with spaces and unicode": func(r *gittest.Repo) {
			r.Write("app/ключ файл.go", "package main\n\nconst awsKey = \""+awsKey+"\"\n")
		},
	}
	for name, change := range tests {
		t.Run(name, func(t *testing.T) {
			res := newRepo(t, nil, change).run(t)
			if len(res.Findings) == 0 || res.Findings[0].Stop != policies.StopSecretExposure {
				t.Fatalf("the key was silenced: %s %s %+v", res.Status, res.Reason, res.Findings)
			}
		})
	}
}

func TestBaseIgnoreAndConfigApply(t *testing.T) {
	t.Run("ignore entry on base", func(t *testing.T) {
		res := newRepo(t, func(r *gittest.Repo) {
			r.Write(".gitleaksignore", "app/keys.go:aws-access-token:3\n")
		}, keyFile).run(t)
		if res.Status != checks.StatusPass {
			t.Fatalf("the base's ignore entry should apply: %+v", res.Findings)
		}
	})
	t.Run("custom rule on base", func(t *testing.T) {
		res := newRepo(t, func(r *gittest.Repo) {
			r.Write(".gitleaks.toml", "[[rules]]\nid = \"acme-token\"\nregex = '''acme_[a-z0-9]{20}'''\nkeywords = [\"acme_\"]\n")
		}, func(r *gittest.Repo) {
			r.Write("app/acme.go", "package main\n\nvar t = \"acme_"+strings.Repeat("k3", 10)+"\"\n")
			keyFile(r) // default rules still apply alongside the repository's
		}).run(t)
		rules := map[string]bool{}
		for _, f := range res.Findings {
			rules[f.Rule] = true
		}
		if !rules["acme-token"] || !rules["aws-access-token"] {
			t.Fatalf("want both the custom and the default rule, got %+v", res.Findings)
		}
	})
}

func TestBrokenBaseConfigFailsClosed(t *testing.T) {
	for name, cfg := range map[string]string{
		"bad regex":    "[[rules]]\nid = \"x\"\nregex = '''([a-z'''\n",
		"extend path":  "[extend]\npath = \"/etc/gitleaks.toml\"\n",
		"not toml":     "[[rules\n",
		"rule invalid": "[[rules]]\nid = \"\"\n",
	} {
		t.Run(name, func(t *testing.T) {
			res := newRepo(t, func(r *gittest.Repo) { r.Write(".gitleaks.toml", cfg) }, keyFile).run(t)
			if res.Status != checks.StatusError {
				t.Fatalf("want an error, got %s %+v", res.Status, res.Findings)
			}
			if !strings.Contains(res.Reason, ".gitleaks.toml") {
				t.Errorf("the reason should name the base's config: %s", res.Reason)
			}
			t.Log(res.Reason)
		})
	}
}

func TestUnresolvedRangeIsAnError(t *testing.T) {
	fx := newRepo(t, nil, keyFile)
	for _, s := range []*checks.Subject{
		{Repo: fx.r.Dir, Base: fx.base, MergeBase: fx.mb, Head: "HEAD"},
		{Repo: fx.r.Dir, Base: fx.base, MergeBase: fx.mb, Head: strings.Repeat("d", 40)},
		{Repo: t.TempDir(), Base: fx.base, MergeBase: fx.mb, Head: fx.head},
	} {
		if res := secrets.New().Run(context.Background(), s); res.Status != checks.StatusError {
			t.Errorf("%+v: want an error, got %s", s, res.Status)
		}
	}
}

// Loading the same extending config repeatedly must give the same rules
// (gitleaks' own [extend] loader degrades on the third load).
func TestConfigLoadsAreStable(t *testing.T) {
	def, err := secrets.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := []byte("[extend]\nuseDefault = true\ndisabledRules = [\"generic-api-key\"]\n[[rules]]\nid = \"acme\"\nregex = '''acme_[a-z]{8}'''\n")
	var counts []int
	for i := 0; i < 3; i++ {
		c, err := secrets.Config(append([]byte{}, cfg...))
		if err != nil {
			t.Fatal(err)
		}
		counts = append(counts, len(c.Rules))
	}
	// A different but equivalent config (so not a cache hit) too.
	c, err := secrets.Config(append(cfg, '\n'))
	if err != nil {
		t.Fatal(err)
	}
	counts = append(counts, len(c.Rules))
	want := len(def.Rules) // +1 acme, -1 generic-api-key
	for _, n := range counts {
		if n != want {
			t.Fatalf("rule counts %v, want %d each", counts, want)
		}
	}
	if _, ok := c.Rules["generic-api-key"]; ok {
		t.Error("disabledRules ignored")
	}
	if len(def.Rules) < 100 {
		t.Errorf("default rules: %d", len(def.Rules))
	}
}

// A key added in one commit and removed in a later one is not in the net
// diff but stays in the branch's history (and on the remote): it stops.
func TestKeyAddedThenRemovedOnTheBranchStops(t *testing.T) {
	fx := newRepo(t, nil, keyFile)
	fx.r.Write("app/keys.go", "package main\n\n// key moved to the vault\n")
	fx.r.Commit("remove the key")
	fx.head = fx.r.Git("rev-parse", "HEAD")
	res := fx.run(t)
	if len(res.Findings) != 1 || res.Findings[0].Stop != policies.StopSecretExposure || !strings.Contains(res.Findings[0].Message, "history") {
		t.Fatalf("want one history finding, got %s %s %+v", res.Status, res.Reason, res.Findings)
	}
	if res.Findings[0].Path != "app/keys.go" || res.Findings[0].Line != 3 {
		t.Errorf("finding location %+v", res.Findings[0])
	}
}

// A key that survives to head is reported once, not once per commit.
func TestKeyInNetDiffIsReportedOnce(t *testing.T) {
	fx := newRepo(t, nil, keyFile)
	fx.r.Append("app/main.go", "// later commit\n")
	fx.r.Commit("more")
	fx.head = fx.r.Git("rev-parse", "HEAD")
	if res := fx.run(t); len(res.Findings) != 1 {
		t.Fatalf("want one finding, got %+v", res.Findings)
	}
}

// A branch that merged its base back in is scanned without accounting
// errors.
func TestBranchWithAMergeFromBase(t *testing.T) {
	fx := newRepo(t, nil, func(r *gittest.Repo) { r.Write("app/a.go", "package main\n\nvar a = 1\n") })
	fx.r.Checkout("main")
	fx.r.Write("app/b.go", "package main\n\nvar b = 2\n")
	newBase := fx.r.Commit("main moves on")
	fx.r.Checkout("agent/x")
	fx.r.Git("merge", "-q", "--no-edit", "main")
	keyFile(fx.r)
	fx.r.Commit("key after merge")
	fx.head = fx.r.Git("rev-parse", "HEAD")
	fx.base = newBase
	fx.mb = fx.r.Git("merge-base", newBase, fx.head)
	res := fx.run(t)
	if res.Status != checks.StatusFail || len(res.Findings) != 1 {
		t.Fatalf("got %s %s %+v", res.Status, res.Reason, res.Findings)
	}
}
