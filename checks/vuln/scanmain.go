package vuln

import (
	"context"
	"fmt"
	"io"

	"golang.org/x/vuln/scan"
)

// ScanMain runs govulncheck in this process with args (as on its command
// line) and returns its exit code. It is the body of the hidden
// `agentgate vulndb scan` child, which the check starts under a Runner.
func ScanMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := scan.Command(ctx, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "govulncheck:", err)
		return 1
	}
	if err := cmd.Wait(); err != nil {
		if ec, ok := err.(interface{ ExitCode() int }); ok {
			fmt.Fprintln(stderr, "govulncheck:", err)
			return ec.ExitCode()
		}
		fmt.Fprintln(stderr, "govulncheck:", err)
		return 1
	}
	return 0
}
