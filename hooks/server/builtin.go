package server

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/agentgate/agentgate/internal/store"
)

// DefaultEvaluator is the configured evaluator: the external command when
// evaluator.command is set, otherwise `agentgate check` run from this
// binary in a child process, recording its decision in the same audit log
// and signing it with the configured key.
func DefaultEvaluator(cfg *Config) Evaluator {
	if len(cfg.Evaluator.Command) > 0 {
		return CommandEvaluator{Command: cfg.Evaluator.Command, Timeout: time.Duration(cfg.Evaluator.Timeout)}
	}
	bin, err := os.Executable()
	if err != nil {
		return failingEvaluator{fmt.Errorf("cannot locate the agentgate binary to run checks (%v); set evaluator.command", err)}
	}
	db := cfg.DB
	if db == "" {
		if p, err := store.DefaultPath(); err == nil {
			db = p
		}
	}
	host := "github.com"
	if u, err := url.Parse(cfg.GitHub.GitURL); err == nil && u.Host != "" {
		host = u.Host
	}
	timeout := time.Duration(cfg.Evaluator.Timeout)
	if timeout <= 0 {
		timeout = time.Duration(cfg.JobTimeout) - time.Minute
		if timeout <= 0 {
			timeout = time.Duration(cfg.JobTimeout) * 9 / 10
		}
	}
	return CheckEvaluator{Binary: bin, SigningKey: cfg.SigningKey, DB: db, RepoHost: host,
		WorkDir: filepath.Join(cfg.CloneCache, ".evaluations"), Timeout: timeout, Checks: cfg.Evaluator.Checks,
		Flags: cfg.Evaluator.CheckFlags}
}

type failingEvaluator struct{ err error }

func (f failingEvaluator) Evaluate(context.Context, EvalRequest) (EvalResult, error) {
	return EvalResult{}, f.err
}
