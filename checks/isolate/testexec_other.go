//go:build !linux

package isolate

// TestExecEnv carries the inner policy to the test-binary wrapper.
const TestExecEnv = "AGENTGATE_ISOLATE_TESTEXEC"

// IsTestExec reports whether this process is the test-binary wrapper.
func IsTestExec() bool { return false }

// TestExecMain is Linux-only.
func TestExecMain() int { return 1 }

func (n *Netless) testExecSetup(outer *fsPolicy, env []string, scratch, sharedCache string) ([]string, error) {
	return nil, nil
}
