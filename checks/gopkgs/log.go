package gopkgs

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/agentgate/agentgate/checks/engine"
)

// Logf writes one line, stamped with the UTC time, to the running check's log (<out>/<check>.log when
// the engine runs the check; nowhere otherwise). Callers log commands,
// exit codes, durations and bounded tool output, never credentials.
func Logf(ctx context.Context, format string, a ...any) {
	line := time.Now().UTC().Format("15:04:05.000 ") + fmt.Sprintf(format, a...)
	if !strings.HasSuffix(line, "\n") {
		line += "\n"
	}
	_, _ = engine.LogWriter(ctx).Write([]byte(line))
}
