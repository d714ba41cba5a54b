package sqlstore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentgate/agentgate/gate/approval"
	"github.com/agentgate/agentgate/internal/store"
)

func TestApprovalsRoundTripAndReplayDetection(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
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
