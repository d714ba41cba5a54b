// Package money is the amount type shared by the payments and ledger
// services: integer minor units (cents) and an ISO 4217 currency code, so
// that no float ever touches money.
package money

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Amount is a sum of money in minor units of Currency.
type Amount struct {
	Cents    int64
	Currency string
}

// ErrInvalidAmount is returned for text that is not an amount.
var ErrInvalidAmount = errors.New("invalid amount")

// Parse reads "12.34 EUR". It refuses fractions of a cent, missing or
// malformed currencies and amounts that overflow int64 cents.
func Parse(s string) (Amount, error) {
	num, cur, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok || len(cur) != 3 || strings.ToUpper(cur) != cur {
		return Amount{}, fmt.Errorf("%w: %q: want \"12.34 EUR\"", ErrInvalidAmount, s)
	}
	neg := strings.HasPrefix(num, "-")
	num = strings.TrimPrefix(num, "-")
	whole, frac, hasFrac := strings.Cut(num, ".")
	if hasFrac && (len(frac) == 0 || len(frac) > 2) {
		return Amount{}, fmt.Errorf("%w: %q: at most two decimals", ErrInvalidAmount, s)
	}
	for len(frac) < 2 {
		frac += "0"
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w < 0 {
		return Amount{}, fmt.Errorf("%w: %q", ErrInvalidAmount, s)
	}
	f, err := strconv.ParseInt(frac, 10, 64)
	if err != nil || f < 0 {
		return Amount{}, fmt.Errorf("%w: %q", ErrInvalidAmount, s)
	}
	if w > (1<<63-1-f)/100 {
		return Amount{}, fmt.Errorf("%w: %q: too large", ErrInvalidAmount, s)
	}
	cents := w*100 + f
	if neg {
		cents = -cents
	}
	return Amount{Cents: cents, Currency: cur}, nil
}

// String formats the amount as Parse reads it.
func (a Amount) String() string {
	sign := ""
	c := a.Cents
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, c/100, c%100, a.Currency)
}
