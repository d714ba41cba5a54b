package payments

import (
	"errors"
	"testing"

	"example.com/payments/internal/money"
)

func eur(c int64) money.Amount { return money.Amount{Cents: c, Currency: "EUR"} }

func TestAuthorizeRejectsNonPositiveAmounts(t *testing.T) {
	a := NewAuthorizer()
	for _, c := range []int64{0, -1, -10000} {
		if _, err := a.Authorize(Request{Key: "k", Card: "4242", Amount: eur(c)}); !errors.Is(err, ErrNonPositive) {
			t.Errorf("amount %d: err = %v, want ErrNonPositive", c, err)
		}
	}
	if _, err := a.Authorize(Request{Key: "k", Card: "4242", Amount: money.Amount{Cents: 100, Currency: "XXX"}}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("unsupported currency: err = %v", err)
	}
}

func TestAuthorizeIsIdempotentPerKey(t *testing.T) {
	a := NewAuthorizer()
	r := Request{Key: "order-1", Card: "4242", Amount: eur(1299)}
	first, err := a.Authorize(r)
	if err != nil {
		t.Fatal(err)
	}
	again, err := a.Authorize(r)
	if err != nil || again != first {
		t.Fatalf("retry = %+v, %v; want %+v", again, err, first)
	}
	other, err := a.Authorize(Request{Key: "order-2", Card: "4242", Amount: eur(1299)})
	if err != nil || other.ID == first.ID {
		t.Fatalf("new key got %+v, %v", other, err)
	}
}

func TestAuthorizeRefusesReusedKeyWithDifferentRequest(t *testing.T) {
	a := NewAuthorizer()
	if _, err := a.Authorize(Request{Key: "order-1", Card: "4242", Amount: eur(1299)}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authorize(Request{Key: "order-1", Card: "4242", Amount: eur(1300)}); !errors.Is(err, ErrKeyReused) {
		t.Fatalf("err = %v, want ErrKeyReused", err)
	}
	if _, err := a.Authorize(Request{Card: "4242", Amount: eur(1)}); !errors.Is(err, ErrMissingKey) {
		t.Fatalf("err = %v, want ErrMissingKey", err)
	}
}
