package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/agentgate/agentgate/checks"
	"github.com/agentgate/agentgate/checks/report"
	agh "github.com/agentgate/agentgate/hooks/github"
)

// CheckEvaluator evaluates with `agentgate check` in a child process: the
// same engine, checks and evidence (audit record, signed attestation) as
// the command line, and a crash or runaway check cannot take the server
// down with it.
type CheckEvaluator struct {
	Binary     string        // path of the agentgate binary
	SigningKey string        // --sign-key (attestation + audit checkpoint); "" to skip
	DB         string        // --db: the audit log the decision is recorded in
	RepoHost   string        // e.g. "github.com", for --repo-id HOST/owner/name
	WorkDir    string        // where per-evaluation output directories go
	Timeout    time.Duration // whole evaluation (default 30m)
	Checks     []string      // --checks; empty: all
	Flags      []string      // extra isolation flags (Config.Evaluator.CheckFlags)
}

// Evaluate implements Evaluator.
func (c CheckEvaluator) Evaluate(ctx context.Context, req EvalRequest) (EvalResult, error) {
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if err := os.MkdirAll(c.WorkDir, 0o700); err != nil {
		return EvalResult{}, err
	}
	out, err := os.MkdirTemp(c.WorkDir, "eval-")
	if err != nil {
		return EvalResult{}, err
	}
	defer os.RemoveAll(out)
	args := []string{"check", "--repo", req.RepoDir, "--base", req.Base, "--head", req.Head, "--output", "json",
		"--out", out, "--target", req.Target, "--repo-id", strings.TrimSuffix(c.RepoHost, "/") + "/" + req.Repo}
	if len(c.Checks) > 0 {
		args = append(args, "--checks", strings.Join(c.Checks, ","))
	}
	if c.SigningKey != "" {
		args = append(args, "--sign-key", c.SigningKey)
	}
	if c.DB != "" {
		args = append(args, "--db", c.DB)
	}
	args = append(args, c.Flags...)
	cmd := exec.CommandContext(ctx, c.Binary, args...)
	// The child gets no GitHub token, no webhook secret: only what it needs.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "LANG=C.UTF-8",
		"XDG_CACHE_HOME=" + os.Getenv("XDG_CACHE_HOME"), "XDG_STATE_HOME=" + os.Getenv("XDG_STATE_HOME")}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return EvalResult{}, fmt.Errorf("agentgate check: %w", ctx.Err())
	}
	var rep report.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil || rep.Decision == "" {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 4000 {
			msg = "…" + msg[len(msg)-4000:]
		}
		var ee *exec.ExitError
		if errors.As(runErr, &ee) && ee.ExitCode() == 2 {
			// Input the gate cannot evaluate (invalid plan, policy, refs):
			// a failed check with the reason, not a retry.
			return EvalResult{Conclusion: "failure", Title: "agentgate cannot evaluate this change",
				Summary: "`agentgate check` refused the input:\n\n```\n" + msg + "\n```"}, nil
		}
		return EvalResult{}, fmt.Errorf("agentgate check gave no report (%v): %s", runErr, msg)
	}
	res := ReportResult(&rep)
	if b, err := os.ReadFile(filepath.Join(out, "attestation.sigstore.json")); err == nil {
		sum := sha256.Sum256(b)
		res.AttestationDigest = "sha256:" + hex.EncodeToString(sum[:])
	}
	return res, nil
}

// maxAnnotations bounds what one check run carries (GitHub accepts more in
// batches of 50, but a wall of annotations helps nobody).
const maxAnnotations = 500

// ReportResult turns a check report into a check-run result: the
// conclusion, a Markdown summary with every check and the reasons, and one
// annotation per finding that has a file.
func ReportResult(rep *report.Report) EvalResult {
	res := EvalResult{PlanID: rep.PlanID}
	switch {
	case rep.Decision == report.Pass:
		res.Conclusion, res.Title = "success", "agentgate: pass"
	case rep.Decision == report.Stop:
		res.Conclusion, res.Title = "failure", "agentgate: stop ("+string(rep.StopReason)+")"
	case rep.ApprovalRequired:
		res.Conclusion, res.Title = "action_required", "agentgate: needs approval"
	default:
		res.Conclusion, res.Title = "failure", "agentgate: fail"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## agentgate: %s\n\n", strings.ToUpper(string(rep.Decision)))
	if rep.PlanID != "" {
		fmt.Fprintf(&b, "Plan `%s`", rep.PlanID)
		if rep.Thread != "" {
			fmt.Fprintf(&b, " (thread `%s`)", rep.Thread)
		}
		b.WriteString("\n\n")
	}
	if len(rep.StopReasons) > 0 {
		codes := make([]string, len(rep.StopReasons))
		for i, s := range rep.StopReasons {
			codes[i] = "`" + string(s) + "`"
		}
		fmt.Fprintf(&b, "**Stop:** %s. The run stays stopped until an authorized human re-authorizes it.\n\n", strings.Join(codes, ", "))
	}
	for _, r := range rep.Reasons {
		fmt.Fprintf(&b, "- %s\n", mdEscape(r))
	}
	if len(rep.Reasons) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("| check | status | findings | time | reason |\n| --- | --- | --- | --- | --- |\n")
	checksSorted := append([]checks.Result(nil), rep.Checks...)
	sort.SliceStable(checksSorted, func(i, j int) bool { return checksSorted[i].Name < checksSorted[j].Name })
	for _, c := range checksSorted {
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s |\n", c.Name, statusIcon(c.Status), len(c.Findings),
			time.Duration(c.Duration).Round(time.Millisecond), mdEscape(c.Reason))
	}
	var anns []agh.Annotation
	var text strings.Builder
	for _, c := range checksSorted {
		for _, f := range c.Findings {
			fmt.Fprintf(&text, "- **%s/%s** (%s)", c.Name, f.Rule, f.Severity)
			if f.Path != "" {
				fmt.Fprintf(&text, " `%s", f.Path)
				if f.Line > 0 {
					fmt.Fprintf(&text, ":%d", f.Line)
				}
				text.WriteString("`")
			}
			fmt.Fprintf(&text, ": %s\n", mdEscape(f.Message))
			if f.Path != "" && len(anns) < maxAnnotations {
				level := "failure"
				if f.NeedsApproval || f.Severity == checks.SeverityLow {
					level = "warning"
				}
				anns = append(anns, agh.Annotation{Path: f.Path, StartLine: f.Line, EndLine: f.Line, Level: level,
					Title: c.Name + "/" + f.Rule, Message: f.Message})
			}
		}
	}
	res.Summary = b.String()
	res.Text = text.String()
	res.Annotations = anns
	dec, _ := json.Marshal(map[string]any{"decision": rep.Decision, "stop_reasons": rep.StopReasons, "reasons": rep.Reasons,
		"plan_id": rep.PlanID, "base": rep.Base, "head": rep.Head, "merge_base": rep.MergeBase})
	res.Decision = dec
	return res
}

func statusIcon(s checks.Status) string {
	switch s {
	case checks.StatusPass:
		return "✅ pass"
	case checks.StatusSkipped:
		return "⏭️ skipped"
	case checks.StatusError:
		return "⚠️ error"
	default:
		return "❌ " + string(s)
	}
}

// mdEscape keeps finding text from breaking the table or injecting markup.
func mdEscape(s string) string {
	r := strings.NewReplacer("|", "\\|", "\n", " ", "\r", " ", "<", "&lt;", ">", "&gt;")
	return r.Replace(s)
}
