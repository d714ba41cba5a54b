package gateway

import (
	"context"
	"sync"
	"time"
)

// pendingSettles tracks settlements still being written after their
// response has been delivered. Settlement is off the client's path, but a
// plan's next admission waits for the settlements of that plan pending when
// it arrives, so every call is judged on its predecessors' real cost (their
// reservations are held until then, so not waiting could only refuse more).
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

func (p *pendingSettles) done(st *callState) {
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
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
