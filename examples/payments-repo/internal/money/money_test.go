package money

import (
	"errors"
	"testing"
)

func TestParseRoundTrips(t *testing.T) {
	for _, s := range []string{"0.00 EUR", "12.34 USD", "-5.07 GBP", "1000000.00 JPY"} {
		a, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		if got := a.String(); got != s {
			t.Errorf("Parse(%q).String() = %q", s, got)
		}
	}
}

func TestParseRejectsFractionsOfCents(t *testing.T) {
	for _, s := range []string{"1.001 EUR", "1. EUR", "abc EUR", "1.00 eur", "1.00", "92233720368547758.08 EUR"} {
		if _, err := Parse(s); !errors.Is(err, ErrInvalidAmount) {
			t.Errorf("Parse(%q) error = %v, want ErrInvalidAmount", s, err)
		}
	}
}
