package budget

import (
	"context"
	"fmt"
	"time"

	"github.com/agentgate/agentgate/gate/manifest"
)

// ManifestData is what the execution manifest records about a run's LLM
// calls: each call that left the sandbox, the token totals and the cost
// against the plan's budget.
type ManifestData struct {
	Totals RunTotals
	Calls  []manifest.ExternalCall
	Tokens manifest.Tokens
	Cost   manifest.Cost
}

// Apply sets the manifest's external_calls, token_usage and cost fields.
func (d ManifestData) Apply(m *manifest.Manifest) {
	m.ExternalCalls = manifest.Known(d.Calls)
	m.TokenUsage = manifest.Known(d.Tokens)
	m.Cost = manifest.Known(d.Cost)
}

// Manifest gathers a run's manifest data from the ledger. Calls answered
// from the response cache and refused calls did not leave the sandbox and
// are not listed; degraded calls are listed with target local/MODEL.
func (l *StoreLedger) Manifest(ctx context.Context, runID string) (ManifestData, error) {
	var d ManifestData
	t, err := l.RunTotals(ctx, runID)
	if err != nil {
		return d, err
	}
	d.Totals = t
	d.Calls = []manifest.ExternalCall{}
	rows, err := l.st.DB().QueryContext(ctx, l.q(`SELECT provider, model, decision, amount_nano, degraded, at
		FROM budget_entries WHERE run_id = ? AND kind = 'settle' AND cache_hit = 0 AND decision <> ? ORDER BY seq`), runID, string(OutcomeUnreached))
	if err != nil {
		return d, fmt.Errorf("budget: read the calls of run %s: %w", runID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var provider, model, outcome, at string
		var cost int64
		var degraded int
		if err := rows.Scan(&provider, &model, &outcome, &cost, &degraded, &at); err != nil {
			return d, err
		}
		ts, _ := time.Parse(time.RFC3339Nano, at)
		d.Calls = append(d.Calls, manifest.ExternalCall{Time: ts, Kind: "llm", Target: provider + "/" + model, Outcome: outcome, CostNano: cost})
	}
	if err := rows.Err(); err != nil {
		return d, err
	}
	d.Tokens = manifest.Tokens{
		Input:      t.Tokens.InputTokens - t.Tokens.CachedInputTokens - t.Tokens.CacheWriteTokens,
		Output:     t.Tokens.OutputTokens,
		CacheRead:  t.Tokens.CachedInputTokens,
		CacheWrite: t.Tokens.CacheWriteTokens,
	}
	d.Cost = manifest.Cost{SpentUSD: t.CostUSD, BudgetUSD: t.BudgetUSD}
	if t.Budget > 0 {
		d.Cost.Ratio = float64(t.Cost) / float64(t.Budget)
	}
	return d, nil
}
