package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes a human summary of the report.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	head := strings.ToUpper(string(r.Decision))
	if r.StopReason != "" {
		head += " " + string(r.StopReason)
	}
	fmt.Fprintf(&b, "agentgate check: %s (exit %d)\n", head, r.ExitCode())
	fmt.Fprintf(&b, "  repo       %s\n", r.Repo)
	fmt.Fprintf(&b, "  base       %s %s\n", shortSHA(r.Base), r.BaseRef)
	fmt.Fprintf(&b, "  head       %s %s\n", shortSHA(r.Head), r.HeadRef)
	fmt.Fprintf(&b, "  merge-base %s\n", shortSHA(r.MergeBase))
	if r.PlanID != "" || r.PlanPath != "" {
		fmt.Fprintf(&b, "  plan       %s (%s)\n", orDefault(r.PlanID, "-"), orDefault(r.PlanPath, "-"))
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	for _, c := range r.Checks {
		n := len(c.Findings)
		extra := ""
		if c.Reason != "" {
			extra = "  " + c.Reason
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d finding%s%s\n", c.Name, c.Status,
			time.Duration(c.Duration).Round(time.Millisecond), n, plural(n), extra)
	}
	tw.Flush()
	for _, c := range r.Checks {
		if len(c.Findings) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s:\n", c.Name)
		for _, f := range c.Findings {
			loc := f.Path
			if f.Line > 0 {
				loc = fmt.Sprintf("%s:%d", f.Path, f.Line)
			}
			if loc != "" {
				loc += ": "
			}
			tags := ""
			if f.Stop != "" {
				tags += " [" + string(f.Stop) + "]"
			}
			if f.NeedsApproval {
				tags += " [needs approval]"
			}
			fmt.Fprintf(&b, "  %-8s %s %s%s%s\n", f.Severity, f.Rule, loc, f.Message, tags)
		}
	}
	if len(r.Reasons) > 0 {
		b.WriteString("\nwhy:\n")
		for _, reason := range r.Reasons {
			fmt.Fprintf(&b, "  - %s\n", reason)
		}
	}
	if r.ApprovalRequired {
		b.WriteString("\nEvery failing finding may be accepted by an authorized human (/approve-promotion).\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
