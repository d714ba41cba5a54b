package server

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/agentgate/agentgate/policies"
)

// ConfigSchema is the JSON Schema of agentgate.yaml's serve configuration
// (published as `agentgate schema serve-config`).
//
//go:embed serve-config.schema.json
var ConfigSchema []byte

// Config is the `agentgate serve` configuration (agentgate.yaml). Every
// field can be overridden from the environment (see EnvVars).
type Config struct {
	GitHub GitHubConfig `yaml:"github"`
	// Listen is the HTTP address (default ":8080").
	Listen string `yaml:"listen"`
	// DB is the store DSN: a SQLite path (default), sqlite://PATH or
	// postgres://... for several replicas.
	DB string `yaml:"db"`
	// SigningKey is the gate's signing key reference (file path or KMS
	// reference, see `agentgate keys`), used for audit checkpoints and
	// attestations.
	SigningKey string `yaml:"signing_key"`
	// Workers is the number of concurrent evaluations (default 2).
	Workers int `yaml:"workers"`
	// CloneCache is where repositories are fetched (default
	// $XDG_CACHE_HOME/agentgate/repos).
	CloneCache string `yaml:"clone_cache"`
	// Agents are the agents' identities (never approvers, pushes checked).
	Agents []policies.AgentIdentity `yaml:"agents"`
	// ReconcileInterval is how often open PRs are compared with posted
	// check runs (default 5m; 0s disables).
	ReconcileInterval *Duration `yaml:"reconcile_interval"`
	// StatusMirror also posts the result as a commit status
	// agentgate/<target>.
	StatusMirror bool `yaml:"status_mirror"`
	// JobTimeout bounds one job (default 30m); a job left running by a
	// crash is retried after RescueAfter (default JobTimeout + 1m).
	JobTimeout  Duration `yaml:"job_timeout"`
	RescueAfter Duration `yaml:"rescue_after"`
	// Evaluator selects how a change is evaluated. Empty Command: the
	// built-in engine. Otherwise the command is run with the repository,
	// base, head and target in its environment and prints a JSON result.
	Evaluator EvaluatorConfig `yaml:"evaluator"`
	// LogLevel is debug, info (default), warn or error.
	LogLevel string `yaml:"log_level"`
}

// GitHubConfig is the App's identity.
type GitHubConfig struct {
	AppID          int64  `yaml:"app_id"`
	PrivateKeyFile string `yaml:"private_key_file"`
	// APIURL defaults to https://api.github.com/; on GitHub Enterprise
	// Server https://HOST/api/v3/.
	APIURL string `yaml:"api_url"`
	// GitURL is where repositories are fetched over HTTPS
	// (GitURL + "owner/name.git"); default derived from APIURL:
	// https://github.com/ for api.github.com, https://HOST/ on GHES.
	GitURL string `yaml:"git_url"`
	// WebhookSecrets are accepted secrets (rotation). Prefer
	// WebhookSecretFiles, which keep secrets out of the config file.
	WebhookSecrets     []string `yaml:"webhook_secrets"`
	WebhookSecretFiles []string `yaml:"webhook_secret_files"`
	// AppLogins are the App's bot logins (e.g. agentgate[bot]): comments by
	// them are never commands.
	AppLogins []string `yaml:"app_logins"`
}

// EvaluatorConfig configures an external evaluator command.
type EvaluatorConfig struct {
	Command []string `yaml:"command"`
	Timeout Duration `yaml:"timeout"`
	// Checks limits the built-in evaluator to these checks (agentgate
	// check --checks); empty runs them all.
	Checks []string `yaml:"checks"`
	// CheckFlags are extra `agentgate check` flags of the built-in
	// evaluator, limited to the isolation switches (see CheckFlagsAllowed):
	// e.g. ["--seal-test-binaries", "--require-landlock"].
	CheckFlags []string `yaml:"check_flags"`
}

// CheckFlagsAllowed are the `agentgate check` flags evaluator.check_flags
// may carry: isolation switches only, never paths or outputs.
var CheckFlagsAllowed = []string{
	"--seal-test-binaries", "--require-landlock", "--allow-unix-sockets",
	"--download-modules=false", "--download-modules=true",
}

// Duration is a Go duration string in YAML ("5m").
type Duration time.Duration

// UnmarshalYAML parses "90s", "5m", "1h".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: a duration such as \"5m\" is expected", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// EnvVars maps each environment variable to what it sets.
var EnvVars = []struct{ Name, Field string }{
	{"AGENTGATE_APP_ID", "github.app_id"},
	{"AGENTGATE_PRIVATE_KEY_FILE", "github.private_key_file"},
	{"AGENTGATE_GITHUB_API_URL", "github.api_url"},
	{"AGENTGATE_GITHUB_GIT_URL", "github.git_url"},
	{"AGENTGATE_WEBHOOK_SECRET", "github.webhook_secrets (comma-separated)"},
	{"AGENTGATE_WEBHOOK_SECRET_FILE", "github.webhook_secret_files (comma-separated)"},
	{"AGENTGATE_APP_LOGINS", "github.app_logins (comma-separated)"},
	{"AGENTGATE_LISTEN", "listen"},
	{"AGENTGATE_DB", "db"},
	{"AGENTGATE_SIGNING_KEY", "signing_key"},
	{"AGENTGATE_WORKERS", "workers"},
	{"AGENTGATE_CLONE_CACHE", "clone_cache"},
	{"AGENTGATE_RECONCILE_INTERVAL", "reconcile_interval"},
	{"AGENTGATE_STATUS_MIRROR", "status_mirror"},
	{"AGENTGATE_JOB_TIMEOUT", "job_timeout"},
	{"AGENTGATE_RESCUE_AFTER", "rescue_after"},
	{"AGENTGATE_EVALUATOR_COMMAND", "evaluator.command (space-separated)"},
	{"AGENTGATE_EVALUATOR_CHECKS", "evaluator.checks (comma-separated)"},
	{"AGENTGATE_LOG_LEVEL", "log_level"},
}

// LoadConfig reads path (if not empty), applies environment overrides
// (lookup is os.LookupEnv in production) and defaults, and validates.
func LoadConfig(path string, lookup func(string) (string, bool)) (*Config, error) {
	cfg := &Config{}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config %s: %w", path, err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := cfg.applyEnv(lookup); err != nil {
		return nil, err
	}
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (c *Config) applyEnv(lookup func(string) (string, bool)) error {
	if lookup == nil {
		return nil
	}
	get := func(k string) (string, bool) { return lookup(k) }
	dur := func(k string, dst *Duration) error {
		if v, ok := get(k); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			*dst = Duration(d)
		}
		return nil
	}
	if v, ok := get("AGENTGATE_APP_ID"); ok {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return fmt.Errorf("AGENTGATE_APP_ID: %q is not a number (the App ID from the App's settings page)", v)
		}
		c.GitHub.AppID = n
	}
	str := map[string]*string{
		"AGENTGATE_PRIVATE_KEY_FILE": &c.GitHub.PrivateKeyFile,
		"AGENTGATE_GITHUB_API_URL":   &c.GitHub.APIURL,
		"AGENTGATE_GITHUB_GIT_URL":   &c.GitHub.GitURL,
		"AGENTGATE_LISTEN":           &c.Listen,
		"AGENTGATE_DB":               &c.DB,
		"AGENTGATE_SIGNING_KEY":      &c.SigningKey,
		"AGENTGATE_CLONE_CACHE":      &c.CloneCache,
		"AGENTGATE_LOG_LEVEL":        &c.LogLevel,
	}
	for k, dst := range str {
		if v, ok := get(k); ok {
			*dst = v
		}
	}
	if v, ok := get("AGENTGATE_WEBHOOK_SECRET"); ok {
		// Kept verbatim per item except surrounding spaces; an explicitly
		// empty item is caught by Validate.
		c.GitHub.WebhookSecrets = nil
		for _, p := range strings.Split(v, ",") {
			c.GitHub.WebhookSecrets = append(c.GitHub.WebhookSecrets, strings.TrimSpace(p))
		}
	}
	if v, ok := get("AGENTGATE_WEBHOOK_SECRET_FILE"); ok {
		c.GitHub.WebhookSecretFiles = splitList(v)
	}
	if v, ok := get("AGENTGATE_APP_LOGINS"); ok {
		c.GitHub.AppLogins = splitList(v)
	}
	if v, ok := get("AGENTGATE_WORKERS"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("AGENTGATE_WORKERS: %q is not a number", v)
		}
		c.Workers = n
	}
	if v, ok := get("AGENTGATE_STATUS_MIRROR"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("AGENTGATE_STATUS_MIRROR: %q is not true or false", v)
		}
		c.StatusMirror = b
	}
	if v, ok := get("AGENTGATE_EVALUATOR_CHECKS"); ok {
		c.Evaluator.Checks = splitList(v)
	}
	if v, ok := get("AGENTGATE_EVALUATOR_CHECK_FLAGS"); ok {
		c.Evaluator.CheckFlags = splitList(v)
	}
	if v, ok := get("AGENTGATE_EVALUATOR_COMMAND"); ok {
		c.Evaluator.Command = strings.Fields(v)
	}
	if _, ok := get("AGENTGATE_RECONCILE_INTERVAL"); ok {
		c.ReconcileInterval = new(Duration)
		if err := dur("AGENTGATE_RECONCILE_INTERVAL", c.ReconcileInterval); err != nil {
			return err
		}
	}
	for k, dst := range map[string]*Duration{
		"AGENTGATE_JOB_TIMEOUT":  &c.JobTimeout,
		"AGENTGATE_RESCUE_AFTER": &c.RescueAfter,
	} {
		if err := dur(k, dst); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) defaults() {
	if c.Listen == "" {
		c.Listen = ":8080"
	}
	if c.Workers == 0 {
		c.Workers = 2
	}
	if c.GitHub.APIURL == "" {
		c.GitHub.APIURL = "https://api.github.com/"
	}
	if !strings.HasSuffix(c.GitHub.APIURL, "/") {
		c.GitHub.APIURL += "/"
	}
	if c.GitHub.GitURL == "" {
		if u, err := url.Parse(c.GitHub.APIURL); err == nil && u.Host != "" {
			if u.Host == "api.github.com" {
				c.GitHub.GitURL = "https://github.com/"
			} else {
				c.GitHub.GitURL = u.Scheme + "://" + u.Host + "/"
			}
		}
	}
	if c.GitHub.GitURL != "" && !strings.HasSuffix(c.GitHub.GitURL, "/") {
		c.GitHub.GitURL += "/"
	}
	if c.ReconcileInterval == nil {
		d := Duration(5 * time.Minute)
		c.ReconcileInterval = &d
	}
	if c.JobTimeout == 0 {
		c.JobTimeout = Duration(30 * time.Minute)
	}
	if c.RescueAfter == 0 {
		c.RescueAfter = c.JobTimeout + Duration(time.Minute)
	}
	if c.CloneCache == "" {
		if d, err := os.UserCacheDir(); err == nil {
			c.CloneCache = d + "/agentgate/repos"
		}
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
}

// Validate checks the configuration; every problem is reported at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.GitHub.AppID <= 0 {
		bad("github.app_id is not set (AGENTGATE_APP_ID): use the App ID from the App's settings page")
	}
	if c.GitHub.PrivateKeyFile == "" {
		bad("github.private_key_file is not set (AGENTGATE_PRIVATE_KEY_FILE): the .pem downloaded from the App's settings page")
	} else if st, err := os.Stat(c.GitHub.PrivateKeyFile); err != nil {
		bad("github.private_key_file: %v", err)
	} else if st.Mode().Perm()&0o077 != 0 {
		bad("github.private_key_file %s is readable by group or others (mode %o): chmod 600 it", c.GitHub.PrivateKeyFile, st.Mode().Perm())
	}
	if len(c.GitHub.WebhookSecrets) == 0 && len(c.GitHub.WebhookSecretFiles) == 0 {
		bad("no webhook secret: set github.webhook_secret_files or AGENTGATE_WEBHOOK_SECRET (comma-separated for rotation); agentgate never accepts unsigned deliveries")
	}
	for i, s := range c.GitHub.WebhookSecrets {
		if strings.TrimSpace(s) == "" {
			bad("webhook secret #%d is empty", i+1)
		}
	}
	for _, f := range c.GitHub.WebhookSecretFiles {
		if _, err := readSecretFile(f); err != nil {
			bad("%v", err)
		}
	}
	if u, err := url.Parse(c.GitHub.APIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("github.api_url %q is not an http(s) URL (https://api.github.com/ or https://HOST/api/v3/ on GitHub Enterprise Server)", c.GitHub.APIURL)
	}
	if u, err := url.Parse(c.GitHub.GitURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		bad("github.git_url %q is not an http(s) URL without credentials", c.GitHub.GitURL)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen %q: %v (e.g. \":8080\" or \"127.0.0.1:8080\")", c.Listen, err)
	}
	if c.Workers < 1 || c.Workers > 64 {
		bad("workers must be between 1 and 64, not %d", c.Workers)
	}
	if c.CloneCache == "" {
		bad("clone_cache is not set and no user cache directory exists (AGENTGATE_CLONE_CACHE)")
	}
	if ri := c.Reconcile(); ri < 0 || (ri > 0 && ri < 10*time.Second) {
		bad("reconcile_interval must be 0 (off) or at least 10s")
	}
	if c.JobTimeout <= 0 {
		bad("job_timeout must be positive: a job without a timeout is never rescued after a crash")
	}
	if c.RescueAfter <= c.JobTimeout {
		bad("rescue_after (%s) must be longer than job_timeout (%s)", time.Duration(c.RescueAfter), time.Duration(c.JobTimeout))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level must be debug, info, warn or error")
	}
	for i, a := range c.Agents {
		if a.Login == "" && a.Email == "" {
			bad("agents[%d] needs a login or an email", i)
		}
	}
	for _, f := range c.Evaluator.CheckFlags {
		if !slices.Contains(CheckFlagsAllowed, f) {
			bad("evaluator.check_flags: %q is not one of %s", f, strings.Join(CheckFlagsAllowed, ", "))
		}
	}
	if len(c.Evaluator.CheckFlags) > 0 && len(c.Evaluator.Command) > 0 {
		bad("evaluator.check_flags applies to the built-in evaluator, not to evaluator.command")
	}
	return errors.Join(errs...)
}

func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("webhook secret file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("webhook secret file %s is empty", path)
	}
	return s, nil
}

// Secrets returns every configured webhook secret (inline and from files).
func (c *Config) Secrets() ([]string, error) {
	out := append([]string(nil), c.GitHub.WebhookSecrets...)
	for _, f := range c.GitHub.WebhookSecretFiles {
		s, err := readSecretFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Reconcile is the reconciliation interval (0: off).
func (c *Config) Reconcile() time.Duration {
	if c.ReconcileInterval == nil {
		return 0
	}
	return time.Duration(*c.ReconcileInterval)
}
