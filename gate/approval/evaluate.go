package approval

import (
	"fmt"
	"sort"
	"strings"

	"github.com/agentgate/agentgate/gate/ladder"
)

// Dismissal is a recorded approval that no longer counts, and why.
type Dismissal struct {
	Approval Approval `json:"approval"`
	Reason   Reason   `json:"reason"`
	Message  string   `json:"message"`
}

// Result is the evaluation of a promotion's recorded approvals against its
// current state.
type Result struct {
	Approved  bool        `json:"approved"`
	Counted   []Approval  `json:"counted"`
	Dismissed []Dismissal `json:"dismissed"`
}

// Evaluate decides which recorded approvals still count for pr as it is now:
// only those for its current head SHA and current target. A new push voids
// every approval of an older head; a retarget voids approvals for another
// target. Time never enters into it.
func Evaluate(pr PullRequest, approvals []Approval) Result {
	var res Result
	target := ladder.Branch(pr.Target)
	for _, a := range approvals {
		if a.Repo != pr.Repo || a.Number != pr.Number {
			continue // another promotion's approval
		}
		switch {
		case a.Target != target:
			res.Dismissed = append(res.Dismissed, Dismissal{a, ReasonRetarget,
				fmt.Sprintf("approval by %s was for %s; the pull request now targets %s and needs a new approval", a.Approver.Login, a.Target, target)})
		case !strings.EqualFold(a.HeadSHA, pr.Head):
			res.Dismissed = append(res.Dismissed, Dismissal{a, ReasonNewPush,
				fmt.Sprintf("approval by %s was for %s; new commits were pushed (head is now %s), which voids it", a.Approver.Login, short(a.HeadSHA), short(pr.Head))})
		default:
			res.Counted = append(res.Counted, a)
		}
	}
	res.Approved = len(res.Counted) > 0
	return res
}

// Explanation summarises the result in the policy-bot manner: who approved,
// and how many approvals were ignored for which reasons.
func (r Result) Explanation() string {
	var b strings.Builder
	if r.Approved {
		var who []string
		for _, a := range r.Counted {
			if a.Auto {
				who = append(who, "policy (automatic, low risk)")
			} else {
				who = append(who, a.Approver.Login)
			}
		}
		fmt.Fprintf(&b, "Approved by %s", strings.Join(who, ", "))
	} else {
		b.WriteString("Waiting for approval: comment /approve-promotion on the current head")
	}
	if len(r.Dismissed) > 0 {
		counts := map[Reason]int{}
		for _, d := range r.Dismissed {
			counts[d.Reason]++
		}
		var parts []string
		for reason, n := range counts {
			parts = append(parts, fmt.Sprintf("%d %s", n, reason))
		}
		sort.Strings(parts)
		fmt.Fprintf(&b, "; ignored %d approval(s): %s", len(r.Dismissed), strings.Join(parts, ", "))
	}
	return b.String()
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// AutoApproval is the approval the policy grants a low-risk promotion (see
// ladder.AutoApprove), recorded like any other and bound the same way.
func AutoApproval(pr PullRequest, rung string, detail string) Approval {
	return Approval{
		Repo: pr.Repo, Number: pr.Number, Rung: rung, Source: ladder.Branch(pr.Source), Target: ladder.Branch(pr.Target),
		HeadSHA: pr.Head, Approver: User{Login: "policy:auto_approve"}, Auto: true, Detail: detail,
	}
}
