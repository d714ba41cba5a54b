package server

import (
	"context"
	"errors"
	"time"
)

// DefaultEvaluator is the configured evaluator: the external command when
// evaluator.command is set, otherwise the built-in engine.
func DefaultEvaluator(cfg *Config) Evaluator {
	if len(cfg.Evaluator.Command) > 0 {
		return CommandEvaluator{Command: cfg.Evaluator.Command, Timeout: time.Duration(cfg.Evaluator.Timeout)}
	}
	return builtinEvaluator{}
}

// builtinEvaluator will call the checks engine in process. Until that is
// wired it fails closed, saying how to configure an evaluator command.
type builtinEvaluator struct{}

func (builtinEvaluator) Evaluate(context.Context, EvalRequest) (EvalResult, error) {
	return EvalResult{}, errors.New("the built-in evaluation engine is not available in this build; set evaluator.command (AGENTGATE_EVALUATOR_COMMAND)")
}
