package ledger

import (
	"errors"
	"testing"

	"example.com/payments/internal/money"
)

func usd(c int64) money.Amount { return money.Amount{Cents: c, Currency: "USD"} }

func TestPostRejectsUnbalancedPostings(t *testing.T) {
	l := New()
	err := l.Post(Entry{"cash", usd(500)}, Entry{"revenue", usd(-499)})
	if !errors.Is(err, ErrUnbalanced) {
		t.Fatalf("err = %v, want ErrUnbalanced", err)
	}
	if err := l.Post(Entry{"cash", usd(500)}); !errors.Is(err, ErrUnbalanced) {
		t.Fatalf("single entry: err = %v, want ErrUnbalanced", err)
	}
	if got := l.Balance("cash", "USD"); got.Cents != 0 {
		t.Fatalf("a refused posting changed the balance: %s", got)
	}
}

func TestBalanceSumsAcceptedPostings(t *testing.T) {
	l := New()
	for i := 0; i < 3; i++ {
		if err := l.Post(Entry{"cash", usd(250)}, Entry{"revenue", usd(-250)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.Balance("cash", "USD"); got != usd(750) {
		t.Fatalf("cash = %s, want 7.50 USD", got)
	}
	if got := l.Balance("revenue", "USD"); got != usd(-750) {
		t.Fatalf("revenue = %s, want -7.50 USD", got)
	}
}
