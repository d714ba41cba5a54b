package rulesets

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v60/github"
	github88 "github.com/google/go-github/v88/github"

	"github.com/agentgate/agentgate/test/githubdouble"
)

func TestPlanBindsTheCheckToTheApp(t *testing.T) {
	rs, err := Plan(Options{AppID: 4242})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 {
		t.Fatalf("%d rulesets", len(rs))
	}
	for i, target := range []string{"develop", "staging", "main"} {
		r := rs[i]
		if r.Name != "agentgate: "+target || r.Enforcement != "active" || r.Conditions.RefName.Include[0] != "refs/heads/"+target {
			t.Fatalf("ruleset %d: %+v", i, r)
		}
		types := map[string]json.RawMessage{}
		for _, rule := range r.Rules {
			var p json.RawMessage
			if rule.Parameters != nil {
				p = *rule.Parameters
			}
			types[rule.Type] = p
		}
		for _, want := range []string{"deletion", "non_fast_forward", "creation", "pull_request", "required_status_checks"} {
			if _, ok := types[want]; !ok {
				t.Fatalf("%s lacks rule %s", target, want)
			}
		}
		var sc github.RequiredStatusChecksRuleParameters
		if err := json.Unmarshal(types["required_status_checks"], &sc); err != nil {
			t.Fatal(err)
		}
		if len(sc.RequiredStatusChecks) != 1 || sc.RequiredStatusChecks[0].Context != "agentgate/"+target || sc.RequiredStatusChecks[0].GetIntegrationID() != 4242 {
			t.Fatalf("%s status checks %+v: the check must be bound to the App", target, sc)
		}
		if _, ok := types["update"]; ok {
			t.Fatalf("%s restricts updates without auto_merge", target)
		}
	}
	auto, _ := Plan(Options{AppID: 1, AutoMerge: true, Targets: []string{"main"}})
	if len(auto[0].BypassActors) != 1 || auto[0].BypassActors[0].GetActorType() != "Integration" {
		t.Fatalf("auto-merge bypass: %+v", auto[0].BypassActors)
	}
	for _, bad := range []Options{{}, {AppID: 1, Targets: []string{"refs/heads/main"}}, {AppID: 1, Targets: []string{"a b"}}, {AppID: 1, Targets: []string{"x/../main"}}} {
		if _, err := Plan(bad); err == nil {
			t.Errorf("Plan(%+v) accepted", bad)
		}
	}
}

func client(t *testing.T, d *githubdouble.Double, inst int64) *github.Client {
	t.Helper()
	tr, err := ghinstallation.New(http.DefaultTransport, d.AppID, inst, d.PrivateKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	tr.BaseURL = strings.TrimSuffix(d.APIURL, "/")
	tr.InstallationTokenOptions = &github88.InstallationTokenOptions{}
	c := github.NewClient(&http.Client{Transport: tr})
	u, _ := url.Parse(d.APIURL)
	c.BaseURL = u
	return c
}

// TestApplyAgainstTheAPIDouble sends the rulesets through go-github to the
// double, which validates every request against GitHub's OpenAPI
// description: creates when none exist, updates (by name) when they do.
func TestApplyAgainstTheAPIDouble(t *testing.T) {
	d := githubdouble.New(t)
	d.AddInstallation(7, "octo/app")
	c := client(t, d, 7)
	want, err := Plan(Options{AppID: d.AppID})
	if err != nil {
		t.Fatal(err)
	}
	existing := []*github.Ruleset{}
	d.Handle("repos/get-repo-rulesets", func(w http.ResponseWriter, r *http.Request, _ map[string]string, _ []byte) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(existing)
	})
	nextID := int64(10)
	d.Handle("repos/create-repo-ruleset", func(w http.ResponseWriter, r *http.Request, _ map[string]string, body []byte) {
		var rs github.Ruleset
		json.Unmarshal(body, &rs)
		nextID++
		rs.ID = github.Int64(nextID)
		rs.Source, rs.SourceType = "octo/app", github.String("Repository")
		existing = append(existing, &rs)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(rs)
	})
	d.Handle("repos/update-repo-ruleset", func(w http.ResponseWriter, r *http.Request, params map[string]string, body []byte) {
		var rs github.Ruleset
		json.Unmarshal(body, &rs)
		for _, e := range existing {
			if params["ruleset_id"] == json.Number(jsonID(e.GetID())).String() {
				rs.ID = e.ID
			}
		}
		rs.Source, rs.SourceType = "octo/app", github.String("Repository")
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(rs)
	})
	ctx := context.Background()
	changes, err := Apply(ctx, c.Repositories, "octo/app", want)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 3 || changes[0].Op != "create" {
		t.Fatalf("first apply: %+v", changes)
	}
	changes, err = Apply(ctx, c.Repositories, "octo/app", want)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range changes {
		if ch.Op != "update" || ch.ID == 0 {
			t.Fatalf("second apply must update in place: %+v", changes)
		}
	}
	if n := len(d.CallsTo("repos/create-repo-ruleset")); n != 3 {
		t.Fatalf("%d creates, want 3", n)
	}
	if v := d.Violations(); len(v) != 0 {
		t.Fatalf("requests GitHub would reject: %v", v)
	}
	if _, err := Apply(ctx, c.Repositories, "no-slash", want); err == nil {
		t.Fatal("bad repo name accepted")
	}
}

func jsonID(id int64) string {
	b, _ := json.Marshal(id)
	return string(b)
}
