package webhook_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/hooks/webhook"
	"github.com/agentgate/agentgate/internal/store"
	"github.com/agentgate/agentgate/internal/store/storetest"
	"github.com/agentgate/agentgate/test/githubdouble"
)

func TestMain(m *testing.M) { os.Exit(storetest.Run(m)) }

const secret = "s3cret-current"

func payload(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(githubdouble.MustSharedTestdata(t), "webhooks", rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newIntake(t testing.TB, st *store.Store) (*webhook.Handler, *webhook.Queue) {
	t.Helper()
	ctx := context.Background()
	if err := webhook.MigrateAll(ctx, st); err != nil {
		t.Fatal(err)
	}
	q, err := webhook.NewQueue(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := webhook.NewHandler(webhook.Config{
		Secrets:  []string{"s3cret-old", secret},
		Handled:  func(e string) bool { return e != "workflow_run" },
		Recorder: q,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h, q
}

type delivery struct {
	event, id, sig, ctype string
	body                  []byte
}

func signed(event, id string, body []byte) delivery {
	return delivery{event: event, id: id, sig: webhook.Sign(secret, body), ctype: "application/json", body: body}
}

func send(h http.Handler, d delivery) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(d.body))
	if d.event != "" {
		req.Header.Set("X-GitHub-Event", d.event)
	}
	if d.id != "" {
		req.Header.Set("X-GitHub-Delivery", d.id)
	}
	if d.sig != "" {
		req.Header.Set("X-Hub-Signature-256", d.sig)
	}
	if d.ctype != "" {
		req.Header.Set("Content-Type", d.ctype)
	}
	req.Header.Set("User-Agent", "GitHub-Hookshot/044aadd")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func count(t *testing.T, st *store.Store, q string) int {
	t.Helper()
	var n int
	if err := st.DB().QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestIntakeAnswersAndRecords(t *testing.T) {
	push := payload(t, "push/payload.json")
	pr := payload(t, "pull_request/synchronize.payload.json")
	wf := payload(t, "workflow_run/completed.payload.json")
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		h, _ := newIntake(t, st)
		oldSig := webhook.Sign("s3cret-old", push)
		truncated := signed("push", "d-trunc", push)
		truncated.body = push[:len(push)/2]
		sha1Only := signed("push", "d-sha1", push)
		sha1Only.sig = ""
		cases := []struct {
			name string
			d    delivery
			code int
		}{
			{"push accepted", signed("push", "d-1", push), 202},
			{"replay of the same delivery id", signed("push", "d-1", push), 200},
			{"pull_request accepted", signed("pull_request", "d-2", pr), 202},
			{"rotated old secret accepted", delivery{"push", "d-3", oldSig, "application/json", push}, 202},
			{"unhandled event recorded", signed("workflow_run", "d-4", wf), 202},
			{"wrong secret", delivery{"push", "d-5", webhook.Sign("other", push), "application/json", push}, 401},
			{"truncated body", truncated, 401},
			{"sha1 header only", sha1Only, 401},
			{"bad hex", delivery{"push", "d-6", "sha256=" + strings.Repeat("zz", 32), "application/json", push}, 401},
			{"sha1 prefix", delivery{"push", "d-7", strings.Replace(webhook.Sign(secret, push), "sha256=", "sha1=", 1), "application/json", push}, 401},
			{"missing event", delivery{"", "d-8", webhook.Sign(secret, push), "application/json", push}, 400},
			{"missing delivery", delivery{"push", "", webhook.Sign(secret, push), "application/json", push}, 400},
			{"hostile delivery id", delivery{"push", "d\n9", webhook.Sign(secret, push), "application/json", push}, 400},
			{"form encoded", delivery{"push", "d-10", webhook.Sign(secret, push), "application/x-www-form-urlencoded", push}, 415},
			{"signed non-JSON", signed("push", "d-11", []byte("payload=%7B%7D")), 415},
			{"signed JSON array", signed("push", "d-12", []byte("[1,2]")), 415},
		}
		for _, tc := range cases {
			if got := send(h, tc.d).Code; got != tc.code {
				t.Errorf("%s: status %d, want %d", tc.name, got, tc.code)
			}
		}
		if n := count(t, st, "SELECT count(*) FROM webhook_deliveries"); n != 4 {
			t.Errorf("deliveries recorded = %d, want 4", n)
		}
		if n := count(t, st, "SELECT count(*) FROM river_job"); n != 3 {
			t.Errorf("jobs enqueued = %d, want 3 (workflow_run unhandled, replay deduplicated)", n)
		}
		d, err := webhook.Load(context.Background(), st, "d-2")
		if err != nil || d.Event != "pull_request" || d.Action != "synchronize" || !bytes.Equal(d.Payload, pr) || d.Repo == "" {
			t.Errorf("Load(d-2) = %+v, %v", d, err)
		}
	})
}

func TestIntakeRejectsOversizedBody(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	h, _ := newIntake(t, st)
	big := append([]byte(`{"pad":"`), bytes.Repeat([]byte("a"), webhook.MaxBody)...)
	big = append(big, '"', '}')
	d := signed("push", "d-big", big)
	if got := send(h, d).Code; got != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", got)
	}
	// Without Content-Length (chunked), the reader cap still answers 413.
	req := httptest.NewRequest(http.MethodPost, "/webhook", struct{ *bytes.Reader }{bytes.NewReader(big)})
	req.ContentLength = -1
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "d-big2")
	req.Header.Set("X-Hub-Signature-256", d.sig)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked: status %d, want 413", rec.Code)
	}
}

func TestIntakeRefusesToStartWithoutSecret(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	_, q := newIntake(t, st)
	for _, secrets := range [][]string{nil, {}, {""}, {"ok", " "}} {
		if _, err := webhook.NewHandler(webhook.Config{Secrets: secrets, Recorder: q}); err == nil {
			t.Errorf("secrets %q: handler created", secrets)
		}
	}
}

func TestIntakeOnlyPOST(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	h, _ := newIntake(t, st)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/webhook", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", rec.Code)
	}
}

// TestIntakeReplaysEveryPublishedPayload sends all of GitHub's published
// example payloads, signed, and checks each is accepted exactly once.
func TestIntakeReplaysEveryPublishedPayload(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	h, _ := newIntake(t, st)
	root := filepath.Join(githubdouble.MustSharedTestdata(t), "webhooks")
	files, _ := filepath.Glob(filepath.Join(root, "*", "*.json"))
	if len(files) < 60 {
		t.Fatalf("found %d payloads under %s", len(files), root)
	}
	for i, f := range files {
		body, _ := os.ReadFile(f)
		event := filepath.Base(filepath.Dir(f))
		id := fmt.Sprintf("replay-%d", i)
		if got := send(h, signed(event, id, body)).Code; got != 202 {
			t.Errorf("%s: %d", f, got)
		}
		if got := send(h, signed(event, id, body)).Code; got != 200 {
			t.Errorf("%s replay: %d", f, got)
		}
	}
}

// failingRecorder simulates a database outage.
type failingRecorder struct{}

func (failingRecorder) Record(context.Context, *webhook.Delivery, bool) (bool, error) {
	return false, sql.ErrConnDone
}

func TestIntakeStoreOutageIsNotAcknowledged(t *testing.T) {
	h, err := webhook.NewHandler(webhook.Config{Secrets: []string{secret}, Recorder: failingRecorder{}})
	if err != nil {
		t.Fatal(err)
	}
	if got := send(h, signed("push", "d-x", []byte(`{}`))).Code; got != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503 so GitHub shows a failed delivery", got)
	}
}

func FuzzHandler(f *testing.F) {
	f.Add([]byte(`{"action":"opened"}`), "pull_request", "id-1", true, "application/json")
	f.Add([]byte(`{`), "push", "id-2", true, "application/json")
	f.Add([]byte(`[]`), "push", "x\x00", false, "text/plain")
	f.Add([]byte(`{"installation":{"id":"x"}}`), "installation", "id-3", true, "application/json; charset=utf-8")
	st := storetest.Open(f, store.SQLite)
	h, _ := newIntake(f, st)
	f.Fuzz(func(t *testing.T, body []byte, event, id string, sign bool, ctype string) {
		d := delivery{event: event, id: id, ctype: ctype, body: body}
		if sign {
			d.sig = webhook.Sign(secret, body)
		} else {
			d.sig = webhook.Sign("attacker", body)
		}
		code := send(h, d).Code
		switch code {
		case 200, 202:
			if !sign {
				t.Fatalf("unsigned delivery answered %d", code)
			}
		case 400, 401, 413, 415, 503:
		default:
			t.Fatalf("unexpected status %d", code)
		}
	})
}
