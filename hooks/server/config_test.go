package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t testing.TB, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func envFrom(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestConfigFileThenEnvironmentOverrides(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "app.pem", "-----BEGIN RSA PRIVATE KEY-----\n-----END RSA PRIVATE KEY-----\n", 0o600)
	sec := writeFile(t, dir, "secret", "from-file\n", 0o600)
	cfg := writeFile(t, dir, "agentgate.yaml", `
github:
  app_id: 12
  private_key_file: `+key+`
  webhook_secret_files: [`+sec+`]
  api_url: https://ghe.example.com/api/v3
listen: "127.0.0.1:9000"
workers: 3
reconcile_interval: 1m
agents:
  - login: bot[bot]
`, 0o600)
	c, err := LoadConfig(cfg, envFrom(map[string]string{
		"AGENTGATE_APP_ID":         "34",
		"AGENTGATE_WEBHOOK_SECRET": "a, b",
		"AGENTGATE_DB":             "postgres://u@h/db",
		"AGENTGATE_CLONE_CACHE":    dir,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.GitHub.AppID != 34 || c.Workers != 3 || c.Listen != "127.0.0.1:9000" || c.DB != "postgres://u@h/db" {
		t.Fatalf("config = %+v", c)
	}
	if c.GitHub.APIURL != "https://ghe.example.com/api/v3/" || c.GitHub.GitURL != "https://ghe.example.com/" {
		t.Fatalf("GHES urls = %s %s", c.GitHub.APIURL, c.GitHub.GitURL)
	}
	if c.Reconcile() != time.Minute {
		t.Fatalf("reconcile = %v", c.Reconcile())
	}
	s, err := c.Secrets()
	if err != nil || strings.Join(s, "|") != "a|b|from-file" {
		t.Fatalf("secrets = %q %v", s, err)
	}
}

func TestConfigDefaultsForGitHubCom(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "app.pem", "k", 0o600)
	c, err := LoadConfig("", envFrom(map[string]string{
		"AGENTGATE_APP_ID": "1", "AGENTGATE_PRIVATE_KEY_FILE": key, "AGENTGATE_WEBHOOK_SECRET": "s", "AGENTGATE_CLONE_CACHE": dir,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.GitHub.APIURL != "https://api.github.com/" || c.GitHub.GitURL != "https://github.com/" || c.Listen != ":8080" || c.Reconcile() != 5*time.Minute {
		t.Fatalf("defaults = %+v", c)
	}
	if c.RescueAfter <= c.JobTimeout {
		t.Fatal("rescue_after must exceed job_timeout")
	}
}

func TestConfigRejections(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "app.pem", "k", 0o600)
	open := writeFile(t, dir, "open.pem", "k", 0o644)
	empty := writeFile(t, dir, "empty-secret", "\n", 0o600)
	good := map[string]string{"AGENTGATE_APP_ID": "1", "AGENTGATE_PRIVATE_KEY_FILE": key, "AGENTGATE_WEBHOOK_SECRET": "s", "AGENTGATE_CLONE_CACHE": dir}
	cases := []struct {
		name string
		set  map[string]string
		yaml string
		want string
	}{
		{"no secret", map[string]string{"AGENTGATE_WEBHOOK_SECRET": ""}, "", "webhook secret"},
		{"empty secret in list", map[string]string{"AGENTGATE_WEBHOOK_SECRET": "a,,b"}, "", "is empty"},
		{"empty secret file", map[string]string{"AGENTGATE_WEBHOOK_SECRET_FILE": empty}, "", "is empty"},
		{"key readable by others", map[string]string{"AGENTGATE_PRIVATE_KEY_FILE": open}, "", "chmod 600"},
		{"missing key", map[string]string{"AGENTGATE_PRIVATE_KEY_FILE": filepath.Join(dir, "nope")}, "", "private_key_file"},
		{"bad app id", map[string]string{"AGENTGATE_APP_ID": "twelve"}, "", "not a number"},
		{"bad api url", map[string]string{"AGENTGATE_GITHUB_API_URL": "ftp://x"}, "", "api_url"},
		{"credentials in git url", map[string]string{"AGENTGATE_GITHUB_GIT_URL": "https://u:p@github.com/"}, "", "git_url"},
		{"bad listen", map[string]string{"AGENTGATE_LISTEN": "8080"}, "", "listen"},
		{"too many workers", map[string]string{"AGENTGATE_WORKERS": "1000"}, "", "workers"},
		{"tiny reconcile", map[string]string{"AGENTGATE_RECONCILE_INTERVAL": "1s"}, "", "reconcile_interval"},
		{"rescue before timeout", map[string]string{"AGENTGATE_JOB_TIMEOUT": "10m", "AGENTGATE_RESCUE_AFTER": "5m"}, "", "rescue_after"},
		{"unknown yaml key", nil, "listen: \":1\"\nlisten_addr: x\n", "listen_addr"},
		{"bad yaml duration", nil, "job_timeout: soon\n", "duration"},
		{"agent without identity", nil, "agents:\n  - {}\n", "agents[0]"},
		{"check flag that is not an isolation switch", nil, "evaluator:\n  check_flags: [\"--out=/tmp/x\"]\n", "check_flags"},
		{"check flag from the environment", map[string]string{"AGENTGATE_EVALUATOR_CHECK_FLAGS": "--seal-test-binaries,--sign-key=/k"}, "", "--sign-key=/k"},
		{"check flags with an external command", nil, "evaluator:\n  command: [x]\n  check_flags: [--require-landlock]\n", "built-in evaluator"},
	}
	for _, tc := range cases {
		env := map[string]string{}
		for k, v := range good {
			env[k] = v
		}
		for k, v := range tc.set {
			env[k] = v
		}
		if tc.set != nil {
			if v, ok := tc.set["AGENTGATE_WEBHOOK_SECRET"]; ok && v == "" {
				delete(env, "AGENTGATE_WEBHOOK_SECRET")
			}
		}
		path := ""
		if tc.yaml != "" {
			path = writeFile(t, dir, "c.yaml", tc.yaml, 0o600)
		}
		_, err := LoadConfig(path, envFrom(env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want mention of %q", tc.name, err, tc.want)
		}
	}
}

func TestConfigCheckFlagsReachTheBuiltInEvaluator(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "app.pem", "k", 0o600)
	env := map[string]string{"AGENTGATE_APP_ID": "1", "AGENTGATE_PRIVATE_KEY_FILE": key, "AGENTGATE_WEBHOOK_SECRET": "s", "AGENTGATE_CLONE_CACHE": dir}
	path := writeFile(t, dir, "c.yaml", "evaluator:\n  check_flags: [--seal-test-binaries, --require-landlock]\n", 0o600)
	cfg, err := LoadConfig(path, envFrom(env))
	if err != nil {
		t.Fatal(err)
	}
	ev, ok := DefaultEvaluator(cfg).(CheckEvaluator)
	if !ok {
		t.Fatalf("default evaluator is %T", DefaultEvaluator(cfg))
	}
	if strings.Join(ev.Flags, " ") != "--seal-test-binaries --require-landlock" {
		t.Errorf("flags = %q", ev.Flags)
	}
}

func FuzzLoadConfig(f *testing.F) {
	f.Add("github:\n  app_id: 1\nlisten: \":8080\"\n")
	f.Add("workers: -1\nreconcile_interval: 0s\n")
	f.Add("agents: [{login: x}]\nevaluator: {command: [a, b], timeout: 1m}\n")
	f.Add("{{{")
	dir := f.TempDir()
	key := writeFile(f, dir, "app.pem", "k", 0o600)
	f.Fuzz(func(t *testing.T, doc string) {
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := LoadConfig(p, envFrom(map[string]string{"AGENTGATE_PRIVATE_KEY_FILE": key, "AGENTGATE_CLONE_CACHE": dir}))
		if err != nil {
			return
		}
		// Whatever parsed must satisfy the invariants the server relies on.
		if s, _ := c.Secrets(); len(s) == 0 {
			t.Fatal("accepted without a webhook secret")
		}
		if c.JobTimeout <= 0 || c.RescueAfter <= c.JobTimeout || c.Workers < 1 {
			t.Fatalf("accepted invalid limits: %+v", c)
		}
	})
}
