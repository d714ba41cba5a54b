package gopkgs

import (
	"context"
	"fmt"
	"strings"

	"github.com/agentgate/agentgate/checks/engine"
)

// Logf writes one line to the running check's log (<out>/<check>.log when
// the engine runs the check; nowhere otherwise). Callers log commands,
// exit codes, durations and bounded tool output, never credentials.
func Logf(ctx context.Context, format string, a ...any) {
	line := fmt.Sprintf(format, a...)
	if !strings.HasSuffix(line, "\n") {
		line += "\n"
	}
	_, _ = engine.LogWriter(ctx).Write([]byte(line))
}
