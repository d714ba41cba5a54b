package isolate

import (
	"context"
	"errors"
	"testing"
)

// BenchmarkRun measures one command through the Netless runner with and
// without Landlock (the same namespaces either way): `true` is the fixed
// cost of a run, `go version` a short go command.
//
//	go test -run '^$' -bench BenchmarkRun -benchtime 200x ./checks/isolate/
func BenchmarkRun(b *testing.B) {
	for _, conf := range []struct {
		name     string
		landlock bool
	}{{"landlock", true}, {"no-landlock", false}} {
		old := landlockProbeFunc
		if !conf.landlock {
			landlockProbeFunc = func() (int, error) { return 0, errors.New("disabled for the benchmark") }
		}
		r := NewNetless(Options{})
		iso, err := r.Isolation()
		landlockProbeFunc = old
		if err != nil {
			b.Skipf("namespaces unavailable: %v", err)
		}
		if conf.landlock && r.llErr != nil {
			b.Skipf("no Landlock here: %s", iso)
		}
		for _, cmd := range []struct {
			name string
			path string
			args []string
		}{{"true", "true", nil}, {"go-version", "go", []string{"version"}}} {
			b.Run(cmd.name+"/"+conf.name, func(b *testing.B) {
				dir := b.TempDir()
				for b.Loop() {
					res, err := r.Run(context.Background(), Cmd{Path: cmd.path, Args: cmd.args, Dir: dir})
					if err != nil || res.ExitCode != 0 {
						b.Fatalf("%v exit %d %s", err, res.ExitCode, res.Stderr)
					}
				}
			})
		}
	}
}
