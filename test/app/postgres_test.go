package app_test

import (
	"os"
	"testing"
	"time"

	"github.com/agentgate/agentgate/hooks/server"
	"github.com/agentgate/agentgate/internal/pgtest"
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
