package github

import (
	"context"
	"fmt"
	"time"

	gogithub "github.com/google/go-github/v60/github"
)

// AnnotationsPerCall is GitHub's limit of annotations per create/update.
const AnnotationsPerCall = 50

// Annotation is one line-level finding on a check run.
type Annotation struct {
	Path      string `json:"path"`
	StartLine int    `json:"start_line,omitempty"`
	EndLine   int    `json:"end_line,omitempty"`
	Level     string `json:"level,omitempty"` // notice, warning, failure (default)
	Title     string `json:"title,omitempty"`
	Message   string `json:"message"`
}

// CheckRun is a completed check run to publish.
type CheckRun struct {
	Name        string // agentgate/<target>
	HeadSHA     string
	ExternalID  string // idempotency key: the same key is never posted twice
	Conclusion  string // success, failure, neutral, cancelled, skipped, timed_out, action_required
	Title       string
	Summary     string // Markdown (GitHub caps it at 65535 characters)
	Text        string
	DetailsURL  string
	Annotations []Annotation
}

const maxOutput = 65000

func clip(s string) string {
	if len(s) <= maxOutput {
		return s
	}
	return s[:maxOutput] + "\n\n… (truncated)"
}

func toAnnotations(as []Annotation) []*gogithub.CheckRunAnnotation {
	out := make([]*gogithub.CheckRunAnnotation, 0, len(as))
	for _, a := range as {
		level := a.Level
		if level == "" {
			level = "failure"
		}
		start, end := a.StartLine, a.EndLine
		if start <= 0 {
			start = 1
		}
		if end < start {
			end = start
		}
		an := &gogithub.CheckRunAnnotation{
			Path: gogithub.String(a.Path), StartLine: gogithub.Int(start), EndLine: gogithub.Int(end),
			AnnotationLevel: gogithub.String(level), Message: gogithub.String(a.Message),
		}
		if a.Title != "" {
			an.Title = gogithub.String(a.Title)
		}
		out = append(out, an)
	}
	return out
}

// FindCheckRun looks for our check run with this name and external id on
// sha. It returns its id and whether it is completed.
func (c *Client) FindCheckRun(ctx context.Context, repo, sha, name, externalID string) (id int64, completed bool, err error) {
	o, r, err := split(repo)
	if err != nil {
		return 0, false, err
	}
	opts := &gogithub.ListCheckRunsOptions{CheckName: gogithub.String(name), Filter: gogithub.String("all"), ListOptions: gogithub.ListOptions{PerPage: 100}}
	for {
		res, resp, err := c.gh.Checks.ListCheckRunsForRef(ctx, o, r, sha, opts)
		if err != nil {
			return 0, false, wrap(fmt.Sprintf("list check runs %s on %s@%s", name, repo, sha), err)
		}
		for _, cr := range res.CheckRuns {
			if cr.GetExternalID() == externalID {
				return cr.GetID(), cr.GetStatus() == "completed", nil
			}
		}
		if resp.NextPage == 0 {
			return 0, false, nil
		}
		opts.Page = resp.NextPage
	}
}

// HasCheckRun reports whether any completed check run with this name
// exists on sha (the reconciler's question).
func (c *Client) HasCheckRun(ctx context.Context, repo, sha, name string) (bool, error) {
	o, r, err := split(repo)
	if err != nil {
		return false, err
	}
	res, _, err := c.gh.Checks.ListCheckRunsForRef(ctx, o, r, sha, &gogithub.ListCheckRunsOptions{CheckName: gogithub.String(name), Filter: gogithub.String("latest")})
	if err != nil {
		return false, wrap(fmt.Sprintf("list check runs %s on %s@%s", name, repo, sha), err)
	}
	return res.GetTotal() > 0, nil
}

// PublishCheckRun posts cr idempotently: if a check run with the same name
// and external id exists on the SHA and is completed, nothing is written; if
// it exists unfinished (a crash mid-publication), it is completed in place;
// otherwise one is created. Annotations go out in batches of 50, with
// status completed and the conclusion on the last call, since GitHub
// appends annotations across updates.
func (c *Client) PublishCheckRun(ctx context.Context, repo string, cr CheckRun) (int64, error) {
	o, r, err := split(repo)
	if err != nil {
		return 0, err
	}
	if cr.Name == "" || len(cr.HeadSHA) != 40 || cr.ExternalID == "" || cr.Conclusion == "" {
		return 0, fmt.Errorf("github: check run needs a name, a full head SHA, an external id and a conclusion")
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()

	batches := [][]*gogithub.CheckRunAnnotation{nil}
	if anns := toAnnotations(cr.Annotations); len(anns) > 0 {
		batches = batches[:0]
		for len(anns) > 0 {
			n := min(AnnotationsPerCall, len(anns))
			batches = append(batches, anns[:n])
			anns = anns[n:]
		}
	}
	output := func(b []*gogithub.CheckRunAnnotation) *gogithub.CheckRunOutput {
		return &gogithub.CheckRunOutput{Title: gogithub.String(cr.Title), Summary: gogithub.String(clip(cr.Summary)), Text: optional(clip(cr.Text)), Annotations: b}
	}
	var id int64
	first := 0
	// Creating is not safe to repeat blindly (a 502 may hide a created run),
	// so each attempt looks for the run by its external id first.
	for attempt := 1; ; attempt++ {
		var completed bool
		id, completed, err = c.FindCheckRun(ctx, repo, cr.HeadSHA, cr.Name, cr.ExternalID)
		if err == nil && completed {
			return id, nil
		}
		if err == nil && id == 0 {
			now := gogithub.Timestamp{Time: time.Now()}
			opts := gogithub.CreateCheckRunOptions{
				Name: cr.Name, HeadSHA: cr.HeadSHA, ExternalID: gogithub.String(cr.ExternalID),
				Output: output(batches[0]), StartedAt: &now,
			}
			if cr.DetailsURL != "" {
				opts.DetailsURL = gogithub.String(cr.DetailsURL)
			}
			if len(batches) == 1 {
				opts.Status = gogithub.String("completed")
				opts.Conclusion = gogithub.String(cr.Conclusion)
				opts.CompletedAt = &now
			} else {
				opts.Status = gogithub.String("in_progress")
			}
			var run *gogithub.CheckRun
			run, _, err = c.gh.Checks.CreateCheckRun(ctx, o, r, opts)
			if err == nil {
				id, first = run.GetID(), 1
			} else {
				err = wrap(fmt.Sprintf("create check run %s on %s@%s", cr.Name, repo, cr.HeadSHA), err)
			}
		}
		if err == nil {
			break
		}
		if !Retryable(err) || attempt >= 6 {
			return 0, err
		}
		if serr := sleepCtx(ctx, time.Duration(attempt)*time.Second); serr != nil {
			return 0, err
		}
	}
	for i := first; i < len(batches); i++ {
		opts := gogithub.UpdateCheckRunOptions{Name: cr.Name, Output: output(batches[i])}
		if i == len(batches)-1 {
			opts.Status = gogithub.String("completed")
			opts.Conclusion = gogithub.String(cr.Conclusion)
			opts.CompletedAt = &gogithub.Timestamp{Time: time.Now()}
		}
		if _, _, err := c.gh.Checks.UpdateCheckRun(ctx, o, r, id, opts); err != nil {
			return id, wrap(fmt.Sprintf("update check run %d (%s) on %s", id, cr.Name, repo), err)
		}
	}
	return id, nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
