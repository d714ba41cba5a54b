package gateway

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/agentgate/agentgate/gate/budget"
)

//go:embed gateway.schema.json
var configSchema []byte

// ConfigSchema returns the JSON Schema (draft 2020-12) of gateway.yaml.
func ConfigSchema() []byte { return configSchema }

// Config is gateway.yaml.
type Config struct {
	// Listen is the address to serve on: host:port (default 127.0.0.1:8790)
	// or unix:/absolute/path.sock (a socket to bind-mount into a sandbox).
	Listen string `yaml:"listen" json:"listen,omitempty"`
	// Store is the database DSN (a SQLite path, sqlite://PATH or postgres://...).
	Store string `yaml:"store" json:"store,omitempty"`
	// Prices is a price table file; empty uses the one built in.
	Prices string `yaml:"prices" json:"prices,omitempty"`
	// MaxRequestBytes bounds a request body (default 8 MiB).
	MaxRequestBytes int64 `yaml:"max_request_bytes" json:"max_request_bytes,omitempty"`
	// DefaultMaxOutputTokens is injected when a request does not bound its
	// output, so that its worst case is bounded (default 4096).
	DefaultMaxOutputTokens int64 `yaml:"default_max_output_tokens" json:"default_max_output_tokens,omitempty"`
	// EstimateMargin multiplies o200k token counts for models without an
	// offline tokenizer (Anthropic); default 1.3.
	EstimateMargin float64 `yaml:"estimate_margin" json:"estimate_margin,omitempty"`
	// RequestCeilingUSD refuses any single call whose worst case is above it.
	RequestCeilingUSD float64 `yaml:"request_ceiling_usd" json:"request_ceiling_usd,omitempty"`
	// MonthlyCaps caps spend per organisation and per repository per month.
	MonthlyCaps MonthlyCaps `yaml:"monthly_caps" json:"monthly_caps,omitempty"`
	// UpstreamTimeout bounds one upstream call (default 10m).
	UpstreamTimeout string `yaml:"upstream_timeout" json:"upstream_timeout,omitempty"`
	// Upstreams are the only hosts reachable through the gateway.
	Upstreams []Upstream `yaml:"upstreams" json:"upstreams"`
	// Cache is the response cache for deterministic requests.
	Cache CacheConfig `yaml:"cache" json:"cache,omitempty"`
	// Degrade names the local upstream and model that plans with
	// budget.degrade_to_local use past their warning ratio.
	Degrade *DegradeConfig `yaml:"degrade" json:"degrade,omitempty"`
	// Leases tunes budget leases (see budget.Leaser).
	Leases LeaseConfig `yaml:"leases" json:"leases,omitempty"`
	// GitHub, when set, lets the gateway comment on the pull request a run
	// key was issued for (gateway keys issue --pr) when its plan warns,
	// needs approval or stops.
	GitHub *GitHubConfig `yaml:"github" json:"github,omitempty"`
}

// LeaseConfig tunes budget leases: a gateway reserves a block of a plan's
// budget durably, then admits the run's calls against it in memory.
type LeaseConfig struct {
	// Disabled reserves every call in its own durable transaction instead.
	Disabled bool `yaml:"disabled" json:"disabled,omitempty"`
	// Fraction of a plan's budget one lease takes at most (default 0.05).
	Fraction float64 `yaml:"fraction" json:"fraction,omitempty"`
	// Window is how long a lease admits calls (default 30s).
	Window string `yaml:"window" json:"window,omitempty"`
	window time.Duration
}

// GitHubConfig is the GitHub App the gateway comments as. The private key
// comes from a file (mode 0600) or from a credential helper command that
// prints the PEM on its standard output.
type GitHubConfig struct {
	AppID          int64    `yaml:"app_id" json:"app_id"`
	InstallationID int64    `yaml:"installation_id" json:"installation_id"`
	PrivateKeyFile string   `yaml:"private_key_file" json:"private_key_file,omitempty"`
	PrivateKeyCmd  []string `yaml:"private_key_command" json:"private_key_command,omitempty"`
	// APIURL defaults to https://api.github.com/ (GitHub Enterprise Server:
	// https://HOST/api/v3/).
	APIURL string `yaml:"api_url" json:"api_url,omitempty"`
	// AppLogin is the App's bot login ("agentgate[bot]"). Only its own
	// comments count when the gateway looks for a notice it already
	// posted, so nobody can suppress a notice by posting its marker.
	// Default: a login that starts with "agentgate" and ends in "[bot]".
	AppLogin string `yaml:"app_login" json:"app_login,omitempty"`
}

// OwnComment reports whether login is the gateway's App.
func (g *GitHubConfig) OwnComment(login string) bool {
	if g.AppLogin != "" {
		return strings.EqualFold(login, g.AppLogin)
	}
	return strings.HasPrefix(login, "agentgate") && strings.HasSuffix(login, "[bot]")
}

// MonthlyCaps are USD limits per calendar month (UTC).
type MonthlyCaps struct {
	Orgs  map[string]float64 `yaml:"orgs" json:"orgs,omitempty"`
	Repos map[string]float64 `yaml:"repos" json:"repos,omitempty"`
}

// Upstream is one provider endpoint, reached as /NAME/v1/... on the gateway.
type Upstream struct {
	Name    string `yaml:"name" json:"name"`
	API     string `yaml:"api" json:"api"` // openai, anthropic or openai-compatible
	BaseURL string `yaml:"base_url" json:"base_url"`
	// KeyEnv names the environment variable holding the provider key. The key
	// lives only in the gateway's environment, never in the config file.
	KeyEnv string `yaml:"key_env" json:"key_env,omitempty"`
	// Local marks a free local endpoint; it serves only Models.
	Local  bool     `yaml:"local" json:"local,omitempty"`
	Models []string `yaml:"models" json:"models,omitempty"`

	key  string
	base *url.URL
}

// CacheConfig configures the response cache.
type CacheConfig struct {
	Enabled       bool   `yaml:"enabled" json:"enabled,omitempty"`
	TTL           string `yaml:"ttl" json:"ttl,omitempty"` // default 10m
	MaxEntries    int    `yaml:"max_entries" json:"max_entries,omitempty"`
	MaxEntryBytes int64  `yaml:"max_entry_bytes" json:"max_entry_bytes,omitempty"`
	ttl           time.Duration
}

// DegradeConfig is the local fallback.
type DegradeConfig struct {
	Upstream string `yaml:"upstream" json:"upstream"`
	Model    string `yaml:"model" json:"model"`
}

// Upstream API kinds.
const (
	UpstreamOpenAI           = "openai"
	UpstreamAnthropic        = "anthropic"
	UpstreamOpenAICompatible = "openai-compatible"
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// LoadConfig reads and validates gateway.yaml. Provider keys are read from
// the environment variables the config names.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	c, err := ParseConfig(data, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Prices = relativeTo(path, c.Prices)
	return c, nil
}

// ParseConfig decodes and validates a config; getenv supplies provider keys.
func ParseConfig(data []byte, getenv func(string) string) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	if err := c.validate(getenv); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	return &c, nil
}

func (c *Config) validate(getenv func(string) string) error {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8790"
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = 8 << 20
	}
	if c.DefaultMaxOutputTokens == 0 {
		c.DefaultMaxOutputTokens = 4096
	}
	if c.EstimateMargin == 0 {
		c.EstimateMargin = 1.3
	}
	if c.UpstreamTimeout == "" {
		c.UpstreamTimeout = "10m"
	}
	switch {
	case c.MaxRequestBytes < 1024:
		return errors.New("max_request_bytes must be at least 1024")
	case c.DefaultMaxOutputTokens < 1:
		return errors.New("default_max_output_tokens must be positive")
	case c.EstimateMargin < 1 || c.EstimateMargin > 4:
		return errors.New("estimate_margin must lie between 1 and 4")
	case c.RequestCeilingUSD < 0:
		return errors.New("request_ceiling_usd must not be negative")
	}
	if path, ok := strings.CutPrefix(c.Listen, "unix:"); ok {
		if !filepath.IsAbs(path) {
			return fmt.Errorf("listen %q: a unix socket path must be absolute", c.Listen)
		}
	} else if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen %q must be host:port or unix:/path: %w", c.Listen, err)
	}
	if d, err := time.ParseDuration(c.UpstreamTimeout); err != nil || d <= 0 {
		return fmt.Errorf("upstream_timeout %q is not a positive duration", c.UpstreamTimeout)
	}
	for kind, m := range map[string]map[string]float64{"orgs": c.MonthlyCaps.Orgs, "repos": c.MonthlyCaps.Repos} {
		for k, v := range m {
			if v <= 0 {
				return fmt.Errorf("monthly_caps.%s.%s must be a positive USD amount", kind, k)
			}
		}
	}
	if len(c.Upstreams) == 0 {
		return errors.New("no upstreams: list at least one provider")
	}
	seen := map[string]bool{}
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		if !nameRE.MatchString(u.Name) || u.Name == "metrics" || u.Name == "healthz" || u.Name == "agentgate" {
			return fmt.Errorf("upstreams[%d]: name %q must be lower-case letters, digits and '-' (and not metrics, healthz or agentgate)", i, u.Name)
		}
		if seen[u.Name] {
			return fmt.Errorf("upstreams: %q listed twice", u.Name)
		}
		seen[u.Name] = true
		switch u.API {
		case UpstreamOpenAI, UpstreamAnthropic, UpstreamOpenAICompatible:
		default:
			return fmt.Errorf("upstreams.%s: api %q must be openai, anthropic or openai-compatible", u.Name, u.API)
		}
		b, err := url.Parse(u.BaseURL)
		if err != nil || (b.Scheme != "https" && b.Scheme != "http") || b.Host == "" || b.User != nil || b.RawQuery != "" || b.Fragment != "" {
			return fmt.Errorf("upstreams.%s: base_url %q must be an http(s) URL with a host and no credentials, query or fragment", u.Name, u.BaseURL)
		}
		if b.Scheme == "http" && !u.Local && !isLoopback(b.Hostname()) {
			return fmt.Errorf("upstreams.%s: a paid provider must be reached over https (plain http only for local endpoints)", u.Name)
		}
		b.Path = strings.TrimSuffix(b.Path, "/")
		u.base = b
		if u.Local {
			if u.API != UpstreamOpenAICompatible {
				return fmt.Errorf("upstreams.%s: a local upstream must have api openai-compatible", u.Name)
			}
			if len(u.Models) == 0 {
				return fmt.Errorf("upstreams.%s: a local upstream must list the models it serves", u.Name)
			}
		} else if u.API == UpstreamOpenAICompatible {
			return fmt.Errorf("upstreams.%s: an openai-compatible upstream is only accepted as local: true (paid models must be in the price table under api openai or anthropic)", u.Name)
		}
		if u.KeyEnv != "" {
			u.key = getenv(u.KeyEnv)
			if u.key == "" && !u.Local {
				return fmt.Errorf("upstreams.%s: the environment variable %s (the provider key) is empty", u.Name, u.KeyEnv)
			}
		} else if !u.Local {
			return fmt.Errorf("upstreams.%s: key_env is required for a paid provider", u.Name)
		}
	}
	if c.Cache.TTL == "" {
		c.Cache.TTL = "10m"
	}
	d, err := time.ParseDuration(c.Cache.TTL)
	if err != nil || d <= 0 {
		return fmt.Errorf("cache.ttl %q is not a positive duration", c.Cache.TTL)
	}
	c.Cache.ttl = d
	if c.Cache.MaxEntries == 0 {
		c.Cache.MaxEntries = 1000
	}
	if c.Cache.MaxEntryBytes == 0 {
		c.Cache.MaxEntryBytes = 1 << 20
	}
	if c.Leases.Window == "" {
		c.Leases.Window = "30s"
	}
	lw, err := time.ParseDuration(c.Leases.Window)
	if err != nil || lw <= 0 {
		return fmt.Errorf("leases.window %q is not a positive duration", c.Leases.Window)
	}
	c.Leases.window = lw
	if c.Leases.Fraction == 0 {
		c.Leases.Fraction = 0.05
	}
	if !(c.Leases.Fraction > 0 && c.Leases.Fraction <= 1) {
		return fmt.Errorf("leases.fraction %v must lie in (0, 1]", c.Leases.Fraction)
	}
	if g := c.GitHub; g != nil {
		switch {
		case g.AppID <= 0:
			return errors.New("github.app_id must be the App's positive id")
		case g.InstallationID <= 0:
			return errors.New("github.installation_id must be the positive id of the App's installation on the repositories of the plans")
		case (g.PrivateKeyFile == "") == (len(g.PrivateKeyCmd) == 0):
			return errors.New("github: give the App's private key as private_key_file or private_key_command (not both)")
		case g.APIURL != "" && !strings.HasPrefix(g.APIURL, "https://") && !strings.HasPrefix(g.APIURL, "http://"):
			return fmt.Errorf("github.api_url %q must be an http(s) URL", g.APIURL)
		}
	}
	if c.Degrade != nil {
		u := c.upstream(c.Degrade.Upstream)
		if u == nil || !u.Local {
			return fmt.Errorf("degrade.upstream %q must name a local upstream", c.Degrade.Upstream)
		}
		if !u.serves(c.Degrade.Model) {
			return fmt.Errorf("degrade.model %q is not among upstreams.%s.models", c.Degrade.Model, u.Name)
		}
	}
	return nil
}

// LeaseOptions returns the budget lease options of the config: a call may
// run for the upstream timeout before it settles.
func (c *Config) LeaseOptions() budget.LeaseOptions {
	d, _ := time.ParseDuration(c.UpstreamTimeout)
	return budget.LeaseOptions{Fraction: c.Leases.Fraction, Window: c.Leases.window, MaxCall: d}
}

// ListenNetwork splits Listen into a net.Listen network and address.
func (c *Config) ListenNetwork() (network, addr string) {
	if path, ok := strings.CutPrefix(c.Listen, "unix:"); ok {
		return "unix", path
	}
	return "tcp", c.Listen
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

func (c *Config) upstream(name string) *Upstream {
	for i := range c.Upstreams {
		if c.Upstreams[i].Name == name {
			return &c.Upstreams[i]
		}
	}
	return nil
}

func (u *Upstream) serves(model string) bool {
	for _, m := range u.Models {
		if m == model {
			return true
		}
	}
	return false
}

// capLimits converts the monthly caps to nano-USD.
func (c *Config) capLimits() (orgs, repos map[string]int64) {
	orgs, repos = map[string]int64{}, map[string]int64{}
	for k, v := range c.MonthlyCaps.Orgs {
		orgs[k] = budget.USDToNano(v)
	}
	for k, v := range c.MonthlyCaps.Repos {
		repos[k] = budget.USDToNano(v)
	}
	return orgs, repos
}

// ConfigStore reads only the store DSN of a gateway.yaml, for the admin
// commands (keys, budget) that run without the provider keys.
func ConfigStore(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("gateway config: %w", err)
	}
	var c struct {
		Store string `yaml:"store"`
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return c.Store, nil
}

// LoadPrices returns the config's price table (the built-in one when the
// config names none).
func (c *Config) LoadPrices() (*PriceTable, error) {
	if c.Prices == "" {
		return BuiltinPrices(), nil
	}
	data, err := os.ReadFile(c.Prices)
	if err != nil {
		return nil, fmt.Errorf("gateway prices: %w", err)
	}
	t, err := ParsePrices(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Prices, err)
	}
	return t, nil
}

// ConfigPrices loads the price table a gateway.yaml names (the built-in one
// when it names none), without needing the provider keys.
func ConfigPrices(path string) (*PriceTable, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	var c Config
	if err := yaml.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Prices = relativeTo(path, c.Prices)
	return c.LoadPrices()
}

// relativeTo resolves a file named in a config relative to the config.
func relativeTo(config, file string) string {
	if file == "" || filepath.IsAbs(file) {
		return file
	}
	return filepath.Join(filepath.Dir(config), file)
}
