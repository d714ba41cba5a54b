package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/agentgate/agentgate/gate/budget"
)

// pendingSettles tracks settlements after their response has been
// delivered. Settlement is off the client's path, but a plan's next
// admission waits until the settlements of that plan pending when it arrives
// are handed to the ledger, so every call is judged on its predecessors'
// real cost (their reservations are held until then, so not waiting could
// only refuse more). With a leasing ledger a settlement is handed over as
// soon as its cost is known (its lease counts it in memory at once) and the
// wait is for microseconds; with a plain ledger it is handed over once it is
// written.
type pendingSettles struct {
	mu     sync.Mutex
	byPlan map[string]map[*callState]chan struct{}
	wg     sync.WaitGroup
}

// maxSettleWait bounds how long an admission waits for earlier settlements;
// past it the call is judged with their reservations still held.
const maxSettleWait = 2 * time.Second

func newPendingSettles() *pendingSettles {
	return &pendingSettles{byPlan: map[string]map[*callState]chan struct{}{}}
}

func (p *pendingSettles) add(st *callState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.byPlan[st.plan]
	if m == nil {
		m = map[*callState]chan struct{}{}
		p.byPlan[st.plan] = m
	}
	m[st] = make(chan struct{})
	p.wg.Add(1)
}

// handed marks st's settlement accounted by the ledger: admissions stop
// waiting for it.
func (p *pendingSettles) handed(st *callState) {
	p.mu.Lock()
	if m := p.byPlan[st.plan]; m != nil {
		if ch, ok := m[st]; ok {
			close(ch)
			delete(m, st)
		}
		if len(m) == 0 {
			delete(p.byPlan, st.plan)
		}
	}
	p.mu.Unlock()
}

// done marks st's settlement written (or failed).
func (p *pendingSettles) done(st *callState) {
	p.handed(st)
	p.wg.Done()
}

// wait waits for the plan's settlements pending now (not for later ones).
func (p *pendingSettles) wait(ctx context.Context, plan string) {
	p.mu.Lock()
	var chans []chan struct{}
	for _, ch := range p.byPlan[plan] {
		chans = append(chans, ch)
	}
	p.mu.Unlock()
	if len(chans) == 0 {
		return
	}
	timer := time.NewTimer(maxSettleWait)
	defer timer.Stop()
	for _, ch := range chans {
		select {
		case <-ch:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// Flush waits until every settlement in progress is written (shutdown,
// tests), or ctx ends.
func (g *Gateway) Flush(ctx context.Context) error {
	done := make(chan struct{})
	go func() { g.pending.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if f, ok := g.ledger.(flusher); ok {
		return f.Flush(ctx)
	}
	return nil
}

// flusher is a ledger that writes in the background (budget.Leaser).
type flusher interface {
	Flush(ctx context.Context) error
}

// asyncSettler is a ledger that accounts a settlement at once and writes it
// later (budget.Leaser).
type asyncSettler interface {
	SettleAsync(ctx context.Context, s budget.Settlement) (wait func() error)
}
