package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	agh "github.com/agentgate/agentgate/hooks/github"
)

// EvalRequest is one change to evaluate: a local clone holding base and
// head, and the rung's target branch.
type EvalRequest struct {
	RepoDir    string // local git repository (bare) with both commits
	Repo       string // owner/name
	Base       string // full SHA of the target branch tip
	Head       string // full SHA evaluated
	Source     string // head branch (agent/x, develop, ...)
	Target     string // target branch: the rung
	PR         int    // 0 for a push without a pull request
	DeliveryID string
}

// EvalResult is the gate's answer for one change.
type EvalResult struct {
	// Conclusion is a check-run conclusion: success, failure, neutral,
	// action_required, ... Anything else is treated as failure.
	Conclusion        string           `json:"conclusion"`
	Title             string           `json:"title"`
	Summary           string           `json:"summary"`
	Text              string           `json:"text,omitempty"`
	Annotations       []agh.Annotation `json:"annotations,omitempty"`
	AttestationDigest string           `json:"attestation_digest,omitempty"`
	PlanID            string           `json:"plan_id,omitempty"`
	// Decision is the evaluator's full decision, written to the audit log.
	Decision json.RawMessage `json:"decision,omitempty"`
}

// Evaluator evaluates a change. Implementations must fail closed: an error
// is reported as a failed check, never as a pass.
type Evaluator interface {
	Evaluate(ctx context.Context, req EvalRequest) (EvalResult, error)
}

// EvaluatorFunc adapts a function.
type EvaluatorFunc func(ctx context.Context, req EvalRequest) (EvalResult, error)

// Evaluate implements Evaluator.
func (f EvaluatorFunc) Evaluate(ctx context.Context, req EvalRequest) (EvalResult, error) {
	return f(ctx, req)
}

var conclusions = map[string]bool{
	"success": true, "failure": true, "neutral": true, "cancelled": true,
	"skipped": true, "timed_out": true, "action_required": true,
}

// normalize fails closed on an unknown conclusion and fills required text.
func normalize(r EvalResult) EvalResult {
	if !conclusions[r.Conclusion] {
		r.Summary = fmt.Sprintf("The evaluator returned conclusion %q, which is not a check-run conclusion; failing closed.\n\n%s", r.Conclusion, r.Summary)
		r.Conclusion = "failure"
	}
	if r.Title == "" {
		r.Title = "agentgate: " + r.Conclusion
	}
	if r.Summary == "" {
		r.Summary = r.Title
	}
	return r
}

// CommandEvaluator runs an external command per evaluation. The command
// gets AGENTGATE_REPO_DIR, AGENTGATE_REPO, AGENTGATE_BASE, AGENTGATE_HEAD,
// AGENTGATE_SOURCE, AGENTGATE_TARGET and AGENTGATE_PR in its environment
// (and nothing secret) and prints an EvalResult as JSON on stdout. A
// non-zero exit without a valid result is a failure.
type CommandEvaluator struct {
	Command []string
	Timeout time.Duration
}

// Evaluate implements Evaluator.
func (c CommandEvaluator) Evaluate(ctx context.Context, req EvalRequest) (EvalResult, error) {
	if len(c.Command) == 0 {
		return EvalResult{}, errors.New("evaluator command is empty")
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, c.Command[0], c.Command[1:]...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "LANG=C.UTF-8",
		"AGENTGATE_REPO_DIR=" + req.RepoDir, "AGENTGATE_REPO=" + req.Repo,
		"AGENTGATE_BASE=" + req.Base, "AGENTGATE_HEAD=" + req.Head,
		"AGENTGATE_SOURCE=" + req.Source, "AGENTGATE_TARGET=" + req.Target,
		fmt.Sprintf("AGENTGATE_PR=%d", req.PR),
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return EvalResult{}, fmt.Errorf("evaluator %s: %w", c.Command[0], ctx.Err())
	}
	var res EvalResult
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &res); err != nil || res.Conclusion == "" {
		msg := strings.TrimSpace(errb.String())
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		return EvalResult{}, fmt.Errorf("evaluator %s gave no result (exit: %v): %s", c.Command[0], runErr, msg)
	}
	return res, nil
}
