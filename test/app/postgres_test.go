package app_test

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/agentgate/agentgate/gate/audit"
	"github.com/agentgate/agentgate/hooks/server"
	"github.com/agentgate/agentgate/internal/pgtest"
	"github.com/agentgate/agentgate/internal/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// TestPushOnPostgreSQL runs the intake, River (riverpgxv5) and the
// evaluation path on PostgreSQL, as a multi-replica deployment would.
func TestPushOnPostgreSQL(t *testing.T) {
	dsn := pgtest.DSN(t)
	e := startApp(t, server.EvaluatorFunc(verdictEvaluator), func(env map[string]string) { env["AGENTGATE_DB"] = dsn })
	base := e.repo.tip("develop")
	head := e.repo.commit("agent/pg", "failure")
	body := pushPayload(t, "agent/pg", base, head)
	id := newDeliveryID()
	if code := deliver(t, e.url, "push", id, body); code != 202 {
		t.Fatalf("push: %d", code)
	}
	if code := deliver(t, e.url, "push", id, body); code != 200 {
		t.Fatalf("replay: %d", code)
	}
	waitFor(t, 30*time.Second, "check run", func() bool { return len(completedOn(e.d, head)) == 1 })
	if r := completedOn(e.d, head)[0]; r.Conclusion != "failure" {
		t.Fatalf("conclusion %s", r.Conclusion)
	}
	time.Sleep(time.Second)
	if n := len(runsOn(e.d, head)); n != 1 {
		t.Fatalf("check runs = %d", n)
	}
}

// TestTwoReplicasOnPostgreSQL runs two servers on one PostgreSQL database,
// as a replicated deployment does: a delivery sent to both is accepted
// once, and each head gets exactly one check run.
func TestTwoReplicasOnPostgreSQL(t *testing.T) {
	dsn := pgtest.DSN(t)
	first := startApp(t, server.EvaluatorFunc(verdictEvaluator), func(env map[string]string) { env["AGENTGATE_DB"] = dsn })
	// The second replica shares the first one's GitHub, repository and database.
	cfg, err := server.LoadConfig("", func(k string) (string, bool) { v, ok := first.env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	cfg.CloneCache = t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log, err := audit.Open(ctx, st, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := server.New(ctx, cfg, st, server.Deps{Evaluator: server.EvaluatorFunc(verdictEvaluator), Audit: log, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url2 := "http://" + l.Addr().String()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- second.Run(rctx, l, 5*time.Second) }()
	defer func() { cancel(); <-done }()

	base := first.repo.tip("develop")
	var heads []string
	for i, branch := range []string{"agent/r1", "agent/r2", "agent/r3", "agent/r4"} {
		head := first.repo.commit(branch, "success")
		heads = append(heads, head)
		body := pushPayload(t, branch, base, head)
		id := newDeliveryID()
		urls := []string{first.url, url2}
		a, b := deliver(t, urls[i%2], "push", id, body), deliver(t, urls[(i+1)%2], "push", id, body)
		if a != 202 || b != 200 {
			t.Fatalf("%s: replicas answered %d then %d, want 202 then 200", branch, a, b)
		}
	}
	for _, h := range heads {
		waitFor(t, 60*time.Second, "check run "+h[:7], func() bool { return len(completedOn(first.d, h)) == 1 })
	}
	time.Sleep(time.Second)
	for _, h := range heads {
		if n := len(runsOn(first.d, h)); n != 1 {
			t.Fatalf("check runs on %s = %d, want 1", h[:7], n)
		}
	}
}
