// Package payments authorizes card payments: it validates the amount and
// makes authorization idempotent per client-supplied key.
package payments

import (
	"errors"
	"fmt"
	"sync"

	"example.com/payments/internal/money"
)

// Errors returned by Authorize.
var (
	ErrNonPositive  = errors.New("amount must be positive")
	ErrKeyReused    = errors.New("idempotency key reused with a different request")
	ErrMissingKey   = errors.New("idempotency key is required")
	ErrUnsupported  = errors.New("currency not supported")
	supportedCurrcy = map[string]bool{"EUR": true, "USD": true, "GBP": true}
)

// Request asks to authorize Amount on a card, identified by Key for retries.
type Request struct {
	Key    string
	Card   string
	Amount money.Amount
}

// Authorization is the outcome of a successful request.
type Authorization struct {
	ID     string
	Amount money.Amount
}

// Authorizer remembers requests by idempotency key.
type Authorizer struct {
	mu   sync.Mutex
	seen map[string]Request
	auth map[string]Authorization
	next int
}

// NewAuthorizer returns an empty Authorizer.
func NewAuthorizer() *Authorizer {
	return &Authorizer{seen: map[string]Request{}, auth: map[string]Authorization{}}
}

// Authorize validates r and returns its authorization. Retrying the same
// request with the same key returns the first authorization; the same key
// with a different request is refused.
func (a *Authorizer) Authorize(r Request) (Authorization, error) {
	if r.Key == "" {
		return Authorization{}, ErrMissingKey
	}
	if r.Amount.Cents <= 0 {
		return Authorization{}, fmt.Errorf("%w: %s", ErrNonPositive, r.Amount)
	}
	if !supportedCurrcy[r.Amount.Currency] {
		return Authorization{}, fmt.Errorf("%w: %q", ErrUnsupported, r.Amount.Currency)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if prev, ok := a.seen[r.Key]; ok {
		if prev != r {
			return Authorization{}, ErrKeyReused
		}
		return a.auth[r.Key], nil
	}
	a.next++
	au := Authorization{ID: fmt.Sprintf("auth-%06d", a.next), Amount: r.Amount}
	a.seen[r.Key] = r
	a.auth[r.Key] = au
	return au, nil
}
