package budget

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/gate/audit"
	"github.com/agentgate/agentgate/gate/manifest"
	"github.com/agentgate/agentgate/internal/store"
	"github.com/agentgate/agentgate/internal/store/storetest"
	"github.com/agentgate/agentgate/policies"
)

func TestStopIsWrittenToTheAuditLogAsAGateStop(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, store.SQLite)
	log, err := audit.Open(ctx, st, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewStoreLedger(ctx, st, AuditLog{Log: log, Repo: "acme/app"})
	if err != nil {
		t.Fatal(err)
	}
	mustPlan(t, l, "p-audit", 100)
	for _, amount := range []int64{75, 30} { // warn, then stop
		if _, err := l.Reserve(ctx, ReserveRequest{PlanID: "p-audit", RunID: "r-audit", Model: "gpt-4o", Amount: amount}); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := log.Tail(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range recs {
		kinds = append(kinds, r.Kind)
		if r.PlanID != "p-audit" || r.RunID != "r-audit" || r.Repo != "acme/app" {
			t.Errorf("record %+v", r)
		}
		if r.Kind == EventStop {
			var e Event
			if err := json.Unmarshal(r.Payload, &e); err != nil || e.StopReason != policies.StopBudgetExceeded {
				t.Errorf("stop payload %s", r.Payload)
			}
		}
	}
	if strings.Join(kinds, ",") != EventWarn+","+EventStop {
		t.Fatalf("audit kinds %v", kinds)
	}
	if _, err := log.Verify(ctx, nil); err != nil {
		t.Fatalf("the audit chain does not verify: %v", err)
	}
}

func TestManifestDataFillsTheExecutionManifest(t *testing.T) {
	ctx := context.Background()
	l, _ := newLedger(t, storetest.Open(t, store.SQLite))
	mustPlan(t, l, "p-man", 1_000_000_000)
	for _, c := range []struct {
		cache bool
		cost  int64
		u     Usage
	}{{false, 3000, Usage{InputTokens: 100, CachedInputTokens: 40, OutputTokens: 10}}, {true, 0, Usage{}}} {
		res, err := l.Reserve(ctx, ReserveRequest{PlanID: "p-man", RunID: "r-man", Provider: "openai", Model: "gpt-4o", Amount: 5000, CacheHit: c.cache})
		if err != nil {
			t.Fatal(err)
		}
		out := OutcomeOK
		if c.cache {
			out = OutcomeCacheHit
		}
		if err := l.Settle(ctx, Settlement{ReservationID: res.ID, Outcome: out, Cost: c.cost, Usage: c.u}); err != nil {
			t.Fatal(err)
		}
	}
	d, err := l.Manifest(ctx, "r-man")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Calls) != 1 || d.Calls[0].Target != "openai/gpt-4o" || d.Calls[0].CostNano != 3000 || d.Tokens.Input != 60 || d.Tokens.CacheRead != 40 || d.Cost.BudgetUSD != 1 {
		t.Fatalf("manifest data %+v", d)
	}
	m := manifest.New(manifest.Producer{Name: "gateway"})
	d.Apply(m)
	if _, err := m.Marshal(); err != nil {
		t.Fatalf("the manifest does not validate: %v", err)
	}
}
