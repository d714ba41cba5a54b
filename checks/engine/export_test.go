package engine

import "time"

// SetGrace shortens the wait for checks that ignore cancellation.
func SetGrace(d time.Duration) (restore func()) {
	old := grace
	grace = d
	return func() { grace = old }
}
