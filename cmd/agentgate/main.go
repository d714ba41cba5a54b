// Command agentgate is the promotion gate for code written by autonomous coding agents.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/agentgate/agentgate/checks/isolate"
)

// Exit codes shared by every subcommand (documented in README.md).
const (
	exitOK      = 0
	exitFail    = 1 // the gate (or verification) failed
	exitInvalid = 2 // usage error or invalid input
	exitStop    = 3 // a stop condition fired
)

// exitError carries an exit code out of a cobra RunE without printing usage.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// withCode wraps err so that main exits with code. A nil err with a non-zero
// code exits silently (the command already printed its result).
func withCode(code int, err error) error { return &exitError{code: code, err: err} }

func main() {
	if isolate.IsTestExec() {
		// Started by `go test -exec` inside an isolated tests run
		// (check --seal-test-binaries): confine, then become the test binary.
		os.Exit(isolate.TestExecMain())
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "agentgate:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "agentgate:", err)
	return exitInvalid
}
