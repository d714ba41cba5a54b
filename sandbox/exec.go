package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// Cmd is one external program the driver runs on the host (losetup,
// mkfs.ext4, hdiutil, dscl, …). Drivers never build shell strings: every
// argument is its own element.
type Cmd struct {
	Path  string   `json:"path"`
	Args  []string `json:"args"`
	Env   []string `json:"env,omitempty"`
	Dir   string   `json:"dir,omitempty"`
	Stdin []byte   `json:"stdin,omitempty"`
}

// String renders the command for logs and golden files, one argument per
// quoted field so that spaces stay visible.
func (c Cmd) String() string {
	var b strings.Builder
	b.WriteString(c.Path)
	for _, a := range c.Args {
		b.WriteString(" ")
		b.WriteString(fmt.Sprintf("%q", a))
	}
	return b.String()
}

// Output is what a Cmd printed and how it ended.
type Output struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
}

// Executor is the command-runner seam: the macOS driver is a planner over
// it, and tests substitute a recorder.
type Executor interface {
	Run(ctx context.Context, c Cmd) (Output, error)
}

// OSExecutor runs commands for real. A non-zero exit is an error that
// carries the command's stderr.
type OSExecutor struct{}

// Run implements Executor.
func (OSExecutor) Run(ctx context.Context, c Cmd) (Output, error) {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Env = c.Env
	if cmd.Env == nil {
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	}
	cmd.Dir = c.Dir
	if c.Stdin != nil {
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	err := cmd.Run()
	o := Output{Stdout: out.Bytes(), Stderr: errb.Bytes()}
	if cmd.ProcessState != nil {
		o.ExitCode = cmd.ProcessState.ExitCode()
	}
	if err != nil {
		return o, fmt.Errorf("%s: %w: %s", c.String(), err, strings.TrimSpace(limitString(errb.String(), 2000)))
	}
	return o, nil
}

func limitString(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Recorder is an Executor that records every command and answers from a
// script: the test double of the command-runner seam (a real recording, not
// a mock of behaviour: it returns what the test tells it to).
type Recorder struct {
	Cmds []Cmd
	// Answer returns the output for a command; nil means empty success.
	Answer func(c Cmd) (Output, error)
}

// Run implements Executor.
func (r *Recorder) Run(_ context.Context, c Cmd) (Output, error) {
	r.Cmds = append(r.Cmds, c)
	if r.Answer != nil {
		return r.Answer(c)
	}
	return Output{}, nil
}

// Transcript renders the recorded commands one per line (golden files).
func (r *Recorder) Transcript() string {
	var b strings.Builder
	for _, c := range r.Cmds {
		b.WriteString(c.String())
		if len(c.Stdin) > 0 {
			b.WriteString(" <<stdin ")
			b.WriteString(fmt.Sprintf("%q", c.Stdin))
		}
		b.WriteString("\n")
	}
	return b.String()
}

var _ io.Writer = (*bytes.Buffer)(nil)
