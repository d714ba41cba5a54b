package gateway

import (
	"strings"
	"testing"
)

func TestConfigValidationFailsClosed(t *testing.T) {
	env := func(k string) string {
		if k == "KEY" {
			return "sk-x"
		}
		return ""
	}
	ok := "upstreams:\n  - {name: openai, api: openai, base_url: https://api.openai.com, key_env: KEY}\n"
	if c, err := ParseConfig([]byte(ok), env); err != nil || c.Listen != "127.0.0.1:8790" || c.DefaultMaxOutputTokens != 4096 {
		t.Fatalf("%+v %v", c, err)
	}
	bad := map[string]string{
		"no upstreams":              "listen: x\n",
		"unknown field":             ok + "budget_usd: 3\n",
		"plain http to a provider":  "upstreams:\n  - {name: openai, api: openai, base_url: http://api.openai.com, key_env: KEY}\n",
		"credentials in the URL":    "upstreams:\n  - {name: openai, api: openai, base_url: https://u:p@api.openai.com, key_env: KEY}\n",
		"missing provider key":      "upstreams:\n  - {name: openai, api: openai, base_url: https://api.openai.com, key_env: NOPE}\n",
		"no key_env":                "upstreams:\n  - {name: openai, api: openai, base_url: https://api.openai.com}\n",
		"unmetered compatible host": "upstreams:\n  - {name: x, api: openai-compatible, base_url: https://x.example, key_env: KEY}\n",
		"local without models":      "upstreams:\n  - {name: l, api: openai-compatible, base_url: http://127.0.0.1:1, local: true}\n",
		"bad name":                  "upstreams:\n  - {name: Open/AI, api: openai, base_url: https://api.openai.com, key_env: KEY}\n",
		"reserved name":             "upstreams:\n  - {name: metrics, api: openai, base_url: https://api.openai.com, key_env: KEY}\n",
		"duplicate":                 ok + "  - {name: openai, api: openai, base_url: https://api.openai.com, key_env: KEY}\n",
		"degrade to a paid host":    ok + "degrade: {upstream: openai, model: gpt-4o}\n",
		"margin below 1":            ok + "estimate_margin: 0.5\n",
		"negative cap":              ok + "monthly_caps: {orgs: {acme: -1}}\n",
		"bad ttl":                   ok + "cache: {enabled: true, ttl: soon}\n",
		"not YAML":                  "upstreams: [",
		"relative unix socket":      ok + "listen: unix:gw.sock\n",
		"listen without a port":     ok + "listen: localhost\n",
		"lease fraction above 1":    ok + "leases: {fraction: 2}\n",
		"lease window not a time":   ok + "leases: {window: soon}\n",
		"github without a key":      ok + "github: {app_id: 1, installation_id: 2}\n",
		"github with two keys":      ok + "github: {app_id: 1, installation_id: 2, private_key_file: /k.pem, private_key_command: [vault]}\n",
		"github without install":    ok + "github: {app_id: 1, private_key_file: /k.pem}\n",
	}
	for name, doc := range bad {
		if _, err := ParseConfig([]byte(doc), env); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "sk-x") {
			t.Errorf("%s: the error leaks the key: %v", name, err)
		}
	}
}
