package ladder

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/agentgate/agentgate/policies"
)

// Trailer keys every agent commit must carry.
const (
	TrailerPlanID    = "Plan-Id"
	TrailerIteration = "Iteration"
)

// trailerLine is one git trailer line ("Key: value").
var trailerLine = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9-]*):[ \t]*(.*?)[ \t]*$`)

// Commit is what the trailer rule needs of one commit.
type Commit struct {
	SHA     string
	Message string
}

// Trailers parses the trailer block of a commit message: the last paragraph,
// when every non-continuation line in it is a "Key: value" line. Keys are
// returned in canonical form as written; lookups should use TrailerValues.
func Trailers(message string) map[string][]string {
	msg := strings.TrimRight(strings.ReplaceAll(message, "\r\n", "\n"), "\n \t")
	paras := strings.Split(msg, "\n\n")
	if len(paras) < 2 {
		return nil // a subject line alone has no trailers
	}
	last := paras[len(paras)-1]
	out := map[string][]string{}
	for _, line := range strings.Split(last, "\n") {
		if line == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // continuation of the previous trailer
		}
		m := trailerLine.FindStringSubmatch(line)
		if m == nil {
			return nil // not a trailer block
		}
		out[strings.ToLower(m[1])] = append(out[strings.ToLower(m[1])], m[2])
	}
	return out
}

// TrailerValues returns the values of key (case-insensitive).
func TrailerValues(t map[string][]string, key string) []string { return t[strings.ToLower(key)] }

// CheckTrailers is the "trailers" requirement: every commit carries exactly
// one Plan-Id: trailer equal to planID (when planID is known) and exactly one
// Iteration: trailer holding a positive integer. No commits is a failure:
// there is nothing to promote.
func CheckTrailers(commits []Commit, planID string) Outcome {
	o := Outcome{Requirement: policies.RequireTrailers}
	if len(commits) == 0 {
		o.Detail = "no commits to check; an empty promotion fails closed"
		return o
	}
	var problems []string
	for _, c := range commits {
		t := Trailers(c.Message)
		ids := TrailerValues(t, TrailerPlanID)
		its := TrailerValues(t, TrailerIteration)
		switch {
		case len(ids) == 0:
			problems = append(problems, fmt.Sprintf("%s: missing %s: trailer", short(c.SHA), TrailerPlanID))
		case len(ids) > 1:
			problems = append(problems, fmt.Sprintf("%s: %d %s: trailers; exactly one is allowed", short(c.SHA), len(ids), TrailerPlanID))
		case planID != "" && ids[0] != planID:
			problems = append(problems, fmt.Sprintf("%s: %s: %q does not match the plan's plan_id %q", short(c.SHA), TrailerPlanID, ids[0], planID))
		}
		switch {
		case len(its) == 0:
			problems = append(problems, fmt.Sprintf("%s: missing %s: trailer", short(c.SHA), TrailerIteration))
		case len(its) > 1:
			problems = append(problems, fmt.Sprintf("%s: %d %s: trailers; exactly one is allowed", short(c.SHA), len(its), TrailerIteration))
		default:
			if n, err := strconv.Atoi(its[0]); err != nil || n < 1 {
				problems = append(problems, fmt.Sprintf("%s: %s: %q is not a positive integer", short(c.SHA), TrailerIteration, its[0]))
			}
		}
	}
	if len(problems) > 0 {
		o.Detail = fmt.Sprintf("%d of %d commits lack valid trailers (add \"%s: <plan_id>\" and \"%s: <n>\" as the last paragraph of each commit message): %s",
			countCommits(problems), len(commits), TrailerPlanID, TrailerIteration, strings.Join(problems, "; "))
		return o
	}
	o.Satisfied = true
	o.Detail = fmt.Sprintf("all %d commits carry %s: and %s: trailers", len(commits), TrailerPlanID, TrailerIteration)
	return o
}

func countCommits(problems []string) int {
	seen := map[string]bool{}
	for _, p := range problems {
		seen[p[:strings.IndexByte(p, ':')]] = true
	}
	return len(seen)
}
