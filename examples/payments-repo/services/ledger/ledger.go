// Package ledger is a double-entry ledger: every posting's entries sum to
// zero per currency, and balances are derived from postings only.
package ledger

import (
	"errors"
	"fmt"
	"sync"

	"example.com/payments/internal/money"
)

// ErrUnbalanced is returned for a posting whose entries do not sum to zero.
var ErrUnbalanced = errors.New("posting does not balance")

// Entry moves Amount into Account (negative: out of it).
type Entry struct {
	Account string
	Amount  money.Amount
}

// Ledger holds accepted postings.
type Ledger struct {
	mu       sync.Mutex
	balances map[string]map[string]int64 // account -> currency -> cents
	postings int
}

// New returns an empty ledger.
func New() *Ledger { return &Ledger{balances: map[string]map[string]int64{}} }

// Post records a posting atomically: all entries or none.
func (l *Ledger) Post(entries ...Entry) error {
	if len(entries) < 2 {
		return fmt.Errorf("%w: a posting needs at least two entries", ErrUnbalanced)
	}
	sum := map[string]int64{}
	for _, e := range entries {
		if e.Account == "" {
			return errors.New("entry without account")
		}
		sum[e.Amount.Currency] += e.Amount.Cents
	}
	for cur, s := range sum {
		if s != 0 {
			return fmt.Errorf("%w: %s off by %d cents", ErrUnbalanced, cur, s)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range entries {
		if l.balances[e.Account] == nil {
			l.balances[e.Account] = map[string]int64{}
		}
		l.balances[e.Account][e.Amount.Currency] += e.Amount.Cents
	}
	l.postings++
	return nil
}

// Balance returns the account's balance in currency.
func (l *Ledger) Balance(account, currency string) money.Amount {
	l.mu.Lock()
	defer l.mu.Unlock()
	return money.Amount{Cents: l.balances[account][currency], Currency: currency}
}
