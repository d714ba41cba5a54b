package secrets_test

import (
	"testing"

	"github.com/agentgate/agentgate/checks/secrets"
)

// FuzzConfig: a hostile base .gitleaks.toml gives an error, never a panic
// or a config without the default rules.
func FuzzConfig(f *testing.F) {
	f.Add([]byte("[extend]\nuseDefault = true\n"))
	f.Add([]byte("[[rules]]\nid = \"x\"\nregex = '''a+'''\n"))
	f.Add([]byte("[allowlist]\npaths = ['''(''']\n"))
	def, err := secrets.Config(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := secrets.Config(data)
		if err != nil {
			return
		}
		if len(c.Rules) == 0 || (len(c.Rules) < len(def.Rules)/2 && len(data) < 64) {
			t.Fatalf("config with %d rules from %q", len(c.Rules), data)
		}
	})
}
