package app_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentgate/agentgate/gate/approval/sqlstore"
	"github.com/agentgate/agentgate/hooks/server"
	"github.com/agentgate/agentgate/test/githubdouble"
)

const policyYAML = `apiVersion: agentgate.dev/v1
kind: Policy
approvers:
  - rung: staging
    users: [alice-lead]
  - rung: main
    users: [alice-lead]
agent_identities:
  - login: agent-bot
    email: agent@example.com
`

func commentPayload(t *testing.T, number int, commentID int64, login, body string) []byte {
	m := loadPayload(t, "issue_comment/created.with-installation.payload.json")
	setRepo(m)
	m["action"] = "created"
	issue := m["issue"].(map[string]any)
	issue["number"] = number
	issue["pull_request"] = map[string]any{"url": "https://api.github.com/repos/" + repoName + "/pulls/" + strconv.Itoa(number)}
	c := m["comment"].(map[string]any)
	c["id"], c["body"] = commentID, body
	c["created_at"], c["updated_at"] = "2011-04-14T16:00:49Z", "2011-04-14T16:00:49Z"
	c["user"].(map[string]any)["login"], c["user"].(map[string]any)["type"] = login, "User"
	m["sender"].(map[string]any)["login"] = login
	return mustJSON(m)
}

// TestCommentCommandsThroughTheDispatcher: /recheck from a writer queues a
// fresh evaluation (a second check run, acknowledged with +1); a
// /approve-promotion from the PR's author is refused with -1 and a reply.
func TestCommentCommandsThroughTheDispatcher(t *testing.T) {
	e := startAppWith(t, server.EvaluatorFunc(verdictEvaluator), nil, func(e *appEnv, deps *server.Deps) {
		ap, err := sqlstore.Open(context.Background(), e.st)
		if err != nil {
			t.Fatal(err)
		}
		deps.Approvals, deps.Holds = ap, ap
	})
	// The policy lives on the protected base branch.
	gitCmd(t, e.repo.work, "checkout", "-q", "develop")
	os.MkdirAll(filepath.Join(e.repo.work, ".agentgate"), 0o755)
	os.WriteFile(filepath.Join(e.repo.work, ".agentgate", "policy.yaml"), []byte(policyYAML), 0o644)
	gitCmd(t, e.repo.work, "add", "-A")
	gitCmd(t, e.repo.work, "commit", "-q", "-m", "policy")
	gitCmd(t, e.repo.work, "push", "-q", e.repo.bare, "develop")
	base := e.repo.tip("develop")
	head := e.repo.commit("agent/cmd", "success")
	e.d.SetPull(repoName, githubdouble.Pull{Number: 20, HeadRef: "agent/cmd", HeadSHA: head, BaseRef: "develop", BaseSHA: base, User: "carol"})
	if code := deliver(t, e.url, "pull_request", newDeliveryID(), prPayload(t, "opened", 20, "agent/cmd", head, "develop", base)); code != 202 {
		t.Fatal(code)
	}
	waitFor(t, 30*time.Second, "first check run", func() bool { return len(completedOn(e.d, head)) == 1 })

	id := e.d.AddComment(repoName, 20, "alice-lead", "/recheck")
	if code := deliver(t, e.url, "issue_comment", newDeliveryID(), commentPayload(t, 20, id, "alice-lead", "/recheck")); code != 202 {
		t.Fatal(code)
	}
	waitFor(t, 30*time.Second, "re-evaluation from /recheck", func() bool { return len(completedOn(e.d, head)) == 2 })
	waitFor(t, 10*time.Second, "+1 reaction", func() bool {
		for _, r := range e.d.Reactions() {
			if r.CommentID == id && r.Content == "+1" {
				return true
			}
		}
		return false
	})

	id2 := e.d.AddComment(repoName, 20, "carol", "/approve-promotion")
	if code := deliver(t, e.url, "issue_comment", newDeliveryID(), commentPayload(t, 20, id2, "carol", "/approve-promotion")); code != 202 {
		t.Fatal(code)
	}
	waitFor(t, 30*time.Second, "refusal", func() bool {
		reacted := false
		for _, r := range e.d.Reactions() {
			if r.CommentID == id2 && r.Content == "-1" {
				reacted = true
			}
		}
		replied := false
		for _, c := range e.d.Comments() {
			if c.User == "agentgate[bot]" && strings.Contains(c.Body, "refused") {
				replied = true
			}
		}
		return reacted && replied
	})
	// The same command processed again (e.g. a job retried after its reply
	// was posted, or GitHub redelivering under a new id) posts no second reply.
	if code := deliver(t, e.url, "issue_comment", newDeliveryID(), commentPayload(t, 20, id2, "carol", "/approve-promotion")); code != 202 {
		t.Fatal(code)
	}
	waitFor(t, 30*time.Second, "second reaction", func() bool {
		n := 0
		for _, r := range e.d.Reactions() {
			if r.CommentID == id2 {
				n++
			}
		}
		return n == 2
	})
	waitFor(t, 30*time.Second, "the comment jobs to finish", func() bool {
		var n int
		e.st.DB().QueryRow(`SELECT count(*) FROM river_job WHERE state <> 'completed'`).Scan(&n)
		return n == 0
	})
	replies := 0
	for _, c := range e.d.Comments() {
		if c.User == "agentgate[bot]" {
			replies++
		}
	}
	if replies != 1 {
		t.Fatalf("bot replies = %d, want 1", replies)
	}
	// A command whose store is not configured is answered in words.
	id3 := e.d.AddComment(repoName, 20, "alice-lead", "/resume-run pay-1")
	if code := deliver(t, e.url, "issue_comment", newDeliveryID(), commentPayload(t, 20, id3, "alice-lead", "/resume-run pay-1")); code != 202 {
		t.Fatal(code)
	}
	waitFor(t, 30*time.Second, "not-enabled answer", func() bool {
		for _, c := range e.d.Comments() {
			if c.User == "agentgate[bot]" && strings.Contains(c.Body, "not enabled") {
				return true
			}
		}
		return false
	})
	var n int
	e.st.DB().QueryRow(`SELECT count(*) FROM audit WHERE kind LIKE '%recheck%'`).Scan(&n)
	if n == 0 {
		t.Fatal("the /recheck was not audited")
	}
}
