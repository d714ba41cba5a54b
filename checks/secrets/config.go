package secrets

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	"github.com/spf13/viper"
	"github.com/zricethezav/gitleaks/v8/config"
	"github.com/zricethezav/gitleaks/v8/logging"
)

const maxCachedConfigs = 64

var (
	configMu    sync.Mutex
	configCache = map[[32]byte]*config.Config{}
	defaultCfg  *config.Config
	quietOnce   sync.Once
)

// quiet silences gitleaks' global logger: it writes to stderr and, at
// debug level, would print matched lines.
func quiet() {
	quietOnce.Do(func() { logging.Logger = zerolog.Nop() })
}

// translate turns TOML bytes into a config without touching the global
// viper or the [extend] machinery. A malformed regular expression panics
// inside gitleaks; that is turned into an error.
func translate(name string, data []byte) (cfg config.Config, ext config.Extend, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: invalid gitleaks configuration: %v", name, p)
		}
	}()
	v := viper.New()
	v.SetConfigType("toml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return cfg, ext, fmt.Errorf("%s: %w", name, err)
	}
	var vc config.ViperConfig
	if err := v.Unmarshal(&vc); err != nil {
		return cfg, ext, fmt.Errorf("%s: %w", name, err)
	}
	ext = vc.Extend
	vc.Extend = config.Extend{} // never let gitleaks follow [extend]
	cfg, err = vc.Translate()
	if err != nil {
		return cfg, ext, fmt.Errorf("%s: %w", name, err)
	}
	cfg.Path = "" // a file with cfg.Path would be skipped by the detector
	return cfg, ext, nil
}

func loadDefault() (*config.Config, error) {
	if defaultCfg != nil {
		return defaultCfg, nil
	}
	cfg, _, err := translate("gitleaks default config", []byte(config.DefaultConfig))
	if err != nil {
		return nil, err
	}
	defaultCfg = &cfg
	return defaultCfg, nil
}

// Config returns gitleaks' default rules merged with repoTOML (the base
// commit's .gitleaks.toml; nil when absent). The result is cached per
// distinct input and must be treated as read-only.
func Config(repoTOML []byte) (*config.Config, error) {
	quiet()
	configMu.Lock()
	defer configMu.Unlock()
	def, err := loadDefault()
	if err != nil {
		return nil, err
	}
	if repoTOML == nil {
		return def, nil
	}
	key := sha256.Sum256(repoTOML)
	if c, ok := configCache[key]; ok {
		return c, nil
	}
	repo, ext, err := translate(".gitleaks.toml", repoTOML)
	if err != nil {
		return nil, err
	}
	if ext.Path != "" || ext.URL != "" {
		return nil, fmt.Errorf(".gitleaks.toml: [extend] path/url is not supported by agentgate (it would read files outside the commit); inline the rules in the base's .gitleaks.toml")
	}
	merged := merge(repo, *def, ext.DisabledRules)
	if len(configCache) >= maxCachedConfigs {
		clear(configCache) // a long-lived server sees few distinct configs
	}
	configCache[key] = &merged
	return &merged, nil
}

// merge adds the default rules to the repository's config the way
// gitleaks' [extend] useDefault does: repository rules override fields of
// a default rule with the same id, allowlists and keywords accumulate, and
// disabled rules are dropped. Unlike gitleaks, the defaults are always
// included: the repository can add rules and allowlists, never silently
// replace the default rule set (it may disable rules by id explicitly).
func merge(repo, def config.Config, disabled []string) config.Config {
	out := config.Config{
		Title: repo.Title, Description: repo.Description, MinVersion: repo.MinVersion,
		Rules: map[string]config.Rule{}, Keywords: map[string]struct{}{},
	}
	off := map[string]bool{}
	for _, id := range disabled {
		off[id] = true
	}
	for id, r := range repo.Rules {
		out.Rules[id] = r
	}
	for id, base := range def.Rules {
		if off[id] {
			continue
		}
		cur, ok := out.Rules[id]
		if !ok {
			out.Rules[id] = base
			continue
		}
		if cur.Description != "" {
			base.Description = cur.Description
		}
		if cur.Entropy != 0 {
			base.Entropy = cur.Entropy
		}
		if cur.SecretGroup != 0 {
			base.SecretGroup = cur.SecretGroup
		}
		if cur.Regex != nil {
			base.Regex = cur.Regex
		}
		if cur.Path != nil {
			base.Path = cur.Path
		}
		base.Tags = append(append([]string{}, base.Tags...), cur.Tags...)
		base.Keywords = append(append([]string{}, base.Keywords...), cur.Keywords...)
		base.Allowlists = append(append(base.Allowlists[:0:0], base.Allowlists...), cur.Allowlists...)
		out.Rules[id] = base
	}
	for id, r := range out.Rules {
		for _, k := range r.Keywords {
			out.Keywords[strings.ToLower(k)] = struct{}{}
		}
		out.OrderedRules = append(out.OrderedRules, id)
	}
	sort.Strings(out.OrderedRules)
	out.Allowlists = append(append(out.Allowlists, repo.Allowlists...), def.Allowlists...)
	return out
}
