package githubdouble_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v60/github"
	github88 "github.com/google/go-github/v88/github"

	"github.com/agentgate/agentgate/test/githubdouble"
)

// TestUsage shows the double's life cycle: start it, declare an
// installation, point ghinstallation and go-github at it, script a fault,
// and assert on what the client did.
func TestUsage(t *testing.T) {
	d := githubdouble.New(t) // stopped when the test ends; an invalid call fails t
	d.AddInstallation(42, "acme/payments")
	d.Inject(githubdouble.Fault{OperationID: "checks/create", Status: 502, Times: 1})

	tr, err := ghinstallation.New(http.DefaultTransport, d.AppID, 42, d.PrivateKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	tr.BaseURL = strings.TrimSuffix(d.APIURL, "/")
	tr.InstallationTokenOptions = &github88.InstallationTokenOptions{} // GitHub's schema wants an object, not null
	gh := github.NewClient(&http.Client{Transport: tr, Timeout: 10 * time.Second})
	gh.BaseURL, _ = url.Parse(d.APIURL)

	opts := github.CreateCheckRunOptions{Name: "agentgate/develop", HeadSHA: strings.Repeat("a", 40), Status: github.String("completed"), Conclusion: github.String("success")}
	if _, _, err := gh.Checks.CreateCheckRun(context.Background(), "acme", "payments", opts); err == nil {
		t.Fatal("the scripted 502 was not served")
	}
	if _, _, err := gh.Checks.CreateCheckRun(context.Background(), "acme", "payments", opts); err != nil {
		t.Fatal(err)
	}
	if runs := d.CheckRuns(); len(runs) != 1 || runs[0].Conclusion != "success" {
		t.Fatalf("runs = %+v", runs)
	}
}
