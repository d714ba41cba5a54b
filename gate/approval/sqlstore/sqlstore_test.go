package sqlstore

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentgate/agentgate/gate/approval"
	"github.com/agentgate/agentgate/internal/pgtest"
	"github.com/agentgate/agentgate/internal/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// backends runs fn on SQLite and on a throwaway PostgreSQL.
func backends(t *testing.T, fn func(t *testing.T, st *store.Store)) {
	for _, b := range []string{"sqlite", "postgres"} {
		t.Run(b, func(t *testing.T) {
			ctx := context.Background()
			dsn := filepath.Join(t.TempDir(), "a.db")
			if b == "postgres" {
				dsn = pgtest.DSN(t)
			}
			st, err := store.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			fn(t, st)
		})
	}
}

func TestApprovalsRoundTripAndReplayDetection(t *testing.T) { backends(t, testApprovals) }

func testApprovals(t *testing.T, st *store.Store) {
	ctx := context.Background()
	s, err := Open(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	a := approval.Approval{Repo: "r", Number: 3, Rung: "main", Source: "staging", Target: "main", HeadSHA: "abc",
		Approver: approval.User{Login: "carol", ID: 7}, CommentID: 9, DeliveryID: "d", At: time.Unix(100, 0)}
	if err := s.SaveApproval(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveApproval(ctx, approval.Approval{Repo: "r", Number: 4, Target: "main", HeadSHA: "x", Auto: true}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Approvals(ctx, "r", 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Approver.Login != "carol" || got[0].CommentID != 9 || !got[0].At.Equal(a.At) || got[0].Auto {
		t.Fatalf("got %+v", got)
	}
	rules := approval.Rules{}
	if _, ref := rules.Approve(ctx, approval.PullRequest{Repo: "r", Number: 3}, approval.Command{CommentID: 9, Action: "created"}, got, nil); ref == nil || ref.Reason != approval.ReasonReplayed {
		t.Fatalf("replay not refused from stored approvals: %v", ref)
	}
	// Reopening re-runs migrations idempotently.
	if _, err := Open(ctx, st); err != nil {
		t.Fatal(err)
	}
}

func TestHolds(t *testing.T) { backends(t, testHolds) }

func testHolds(t *testing.T, st *store.Store) {
	ctx := context.Background()
	s, err := Open(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if held, _, err := s.Held(ctx, "r", 1); err != nil || held {
		t.Fatalf("fresh PR held=%v err=%v", held, err)
	}
	if err := s.SetHold(ctx, "r", 1, true, "henry"); err != nil {
		t.Fatal(err)
	}
	if held, by, err := s.Held(ctx, "r", 1); err != nil || !held || by != "henry" {
		t.Fatalf("held=%v by=%q err=%v", held, by, err)
	}
	if held, _, _ := s.Held(ctx, "r", 2); held {
		t.Fatal("another PR held")
	}
	if err := s.SetHold(ctx, "r", 1, false, "carol"); err != nil {
		t.Fatal(err)
	}
	if held, by, _ := s.Held(ctx, "r", 1); held || by != "carol" {
		t.Fatalf("after unhold held=%v by=%q", held, by)
	}
}
