package rulesets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-github/v60/github"
)

// NamePrefix starts the name of every ruleset agentgate manages.
const NamePrefix = "agentgate: "

// CheckName is the required check of a target branch.
func CheckName(target string) string { return "agentgate/" + target }

// Options of the rulesets.
type Options struct {
	// AppID is the GitHub App the required check is bound to (required).
	AppID int64
	// Targets are the ladder branches to protect (default develop, staging, main).
	Targets []string
	// AutoMerge restricts updates to the App (which then merges itself,
	// pinned to the evaluated head): the policy's auto_merge: true.
	AutoMerge bool
}

var branchRE = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,200}$`)

// Plan returns the rulesets for repo (owner/name), one per target branch.
func Plan(opts Options) ([]*github.Ruleset, error) {
	if opts.AppID <= 0 {
		return nil, errors.New("the GitHub App id is required: the agentgate/<target> check is bound to the App so that nobody else's status can satisfy it (pass --app-id)")
	}
	targets := opts.Targets
	if len(targets) == 0 {
		targets = []string{"develop", "staging", "main"}
	}
	var out []*github.Ruleset
	for _, t := range targets {
		if !branchRE.MatchString(t) || strings.Contains(t, "..") || strings.HasPrefix(t, "refs/") {
			return nil, fmt.Errorf("target %q is not a plain branch name", t)
		}
		rules := []*github.RepositoryRule{
			github.NewDeletionRule(),
			github.NewNonFastForwardRule(),
			github.NewCreationRule(),
			github.NewPullRequestRule(&github.PullRequestRuleParameters{
				DismissStaleReviewsOnPush:      true,
				RequireLastPushApproval:        true,
				RequireCodeOwnerReview:         false,
				RequiredApprovingReviewCount:   0, // approvals are agentgate's /approve-promotion, bound to the head SHA
				RequiredReviewThreadResolution: false,
			}),
			github.NewRequiredStatusChecksRule(&github.RequiredStatusChecksRuleParameters{
				RequiredStatusChecks:             []github.RuleRequiredStatusChecks{{Context: CheckName(t), IntegrationID: github.Int64(opts.AppID)}},
				StrictRequiredStatusChecksPolicy: true,
			}),
		}
		rs := &github.Ruleset{
			Name:        NamePrefix + t,
			Target:      github.String("branch"),
			Enforcement: "active",
			Conditions: &github.RulesetConditions{RefName: &github.RulesetRefConditionParameters{
				Include: []string{"refs/heads/" + t}, Exclude: []string{},
			}},
			Rules: rules,
		}
		if opts.AutoMerge {
			rs.Rules = append(rs.Rules, github.NewUpdateRule(&github.UpdateAllowsFetchAndMergeRuleParameters{UpdateAllowsFetchAndMerge: false}))
			rs.BypassActors = []*github.BypassActor{{ActorID: github.Int64(opts.AppID), ActorType: github.String("Integration"), BypassMode: github.String("always")}}
		}
		out = append(out, rs)
	}
	return out, nil
}

// Client is the part of go-github's RepositoriesService that Apply uses.
type Client interface {
	GetAllRulesets(ctx context.Context, owner, repo string, includesParents bool) ([]*github.Ruleset, *github.Response, error)
	CreateRuleset(ctx context.Context, owner, repo string, rs *github.Ruleset) (*github.Ruleset, *github.Response, error)
	UpdateRuleset(ctx context.Context, owner, repo string, rulesetID int64, rs *github.Ruleset) (*github.Ruleset, *github.Response, error)
}

// Change is one applied ruleset.
type Change struct {
	Op   string `json:"op"` // "create" or "update"
	Name string `json:"name"`
	ID   int64  `json:"id"`
}

// SplitRepo splits "owner/name".
func SplitRepo(repo string) (owner, name string, err error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("repository %q: want OWNER/NAME", repo)
	}
	return owner, name, nil
}

// Apply creates the rulesets that do not exist (by name) and updates those
// that do, so that running setup twice converges.
func Apply(ctx context.Context, c Client, repo string, want []*github.Ruleset) ([]Change, error) {
	owner, name, err := SplitRepo(repo)
	if err != nil {
		return nil, err
	}
	have, _, err := c.GetAllRulesets(ctx, owner, name, false)
	if err != nil {
		return nil, fmt.Errorf("list the rulesets of %s (the token needs administration:write): %w", repo, err)
	}
	byName := map[string]int64{}
	for _, rs := range have {
		if rs != nil && rs.ID != nil {
			byName[rs.Name] = *rs.ID
		}
	}
	var changes []Change
	for _, rs := range want {
		if id, ok := byName[rs.Name]; ok {
			got, _, err := c.UpdateRuleset(ctx, owner, name, id, rs)
			if err != nil {
				return changes, fmt.Errorf("update ruleset %q (id %d): %w", rs.Name, id, err)
			}
			changes = append(changes, Change{Op: "update", Name: rs.Name, ID: got.GetID()})
			continue
		}
		got, _, err := c.CreateRuleset(ctx, owner, name, rs)
		if err != nil {
			return changes, fmt.Errorf("create ruleset %q: %w", rs.Name, err)
		}
		changes = append(changes, Change{Op: "create", Name: rs.Name, ID: got.GetID()})
	}
	return changes, nil
}

// DryRun is the plan as `agentgate setup --dry-run` prints it.
type DryRun struct {
	Repo     string            `json:"repo"`
	AppID    int64             `json:"app_id"`
	Rulesets []*github.Ruleset `json:"rulesets"`
}

// MarshalPlan renders the plan as indented JSON.
func MarshalPlan(repo string, appID int64, rs []*github.Ruleset) ([]byte, error) {
	return json.MarshalIndent(DryRun{Repo: repo, AppID: appID, Rulesets: rs}, "", "  ")
}
