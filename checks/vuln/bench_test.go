package vuln

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/agentgate/agentgate/checks/isolate"
)

// benchModule writes the x/net-calling module into a temp dir.
func benchModule(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	for name, body := range map[string]string{"go.mod": goModNet, "go.sum": goSumNet, "main.go": mainCallsParse} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

func benchDB(b *testing.B) string {
	b.Helper()
	db := testDB(b)
	needXNet(b)
	return db.Dir
}

// BenchmarkScanInProcess is govulncheck's scan package called directly.
func BenchmarkScanInProcess(b *testing.B) {
	db := benchDB(b)
	mod := benchModule(b)
	args := []string{"-db", "file://" + db, "-format", "json", "-C", mod, "./..."}
	for i := 0; i < b.N; i++ {
		var out, errb bytes.Buffer
		if code := ScanMain(context.Background(), args, &out, &errb); code != 0 {
			b.Fatalf("exit %d: %s", code, errb.String())
		}
		sc, err := ParseStream(&out, mod)
		if err != nil || len(sc.Vulns) == 0 {
			b.Fatalf("%v %d", err, len(sc.Vulns))
		}
	}
}

// BenchmarkScanIsolatedChild is what the check does: the scanner as a
// child of our binary under the Netless runner (new net+pid namespaces).
func BenchmarkScanIsolatedChild(b *testing.B) {
	db := benchDB(b)
	mod := benchModule(b)
	runner := isolate.NewNetless(isolate.Options{})
	if _, err := runner.Isolation(); err != nil {
		b.Skip(err)
	}
	self, _ := os.Executable()
	for i := 0; i < b.N; i++ {
		r, err := runner.Run(context.Background(), isolate.Cmd{Path: self, Args: []string{scanChildArg, "-db", "file://" + db, "-format", "json", "-C", mod, "./..."}, Dir: mod,
			ReadOnly: []string{db}})
		if err != nil || r.ExitCode != 0 {
			b.Fatalf("%v exit %d %s", err, r.ExitCode, r.Stderr)
		}
		if _, err := ParseStream(bytes.NewReader(r.Stdout), mod); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScanCLI is the govulncheck command built from the same module
// version, on the same module and database.
func BenchmarkScanCLI(b *testing.B) {
	db := benchDB(b)
	mod := benchModule(b)
	bin := filepath.Join(b.TempDir(), "govulncheck")
	build := exec.Command("go", "build", "-o", bin, "golang.org/x/vuln/cmd/govulncheck")
	if out, err := build.CombinedOutput(); err != nil {
		b.Skipf("cannot build the govulncheck CLI: %v %s", err, out)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(bin, "-db", "file://"+db, "-format", "json", "-C", mod, "./...")
		out, err := cmd.Output()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ParseStream(bytes.NewReader(out), mod); err != nil {
			b.Fatal(err)
		}
	}
}
