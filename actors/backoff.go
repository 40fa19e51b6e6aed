package actors

import (
	"math"
	"time"
)

// backoff is an exponential back-off: base·2^n, capped. protoactor's
// "exponential" strategy is linear and never gives up, so we keep our own.
type backoff struct {
	base, cap time.Duration
}

// delay is the wait before attempt n+1 after n failures (n ≥ 1).
func (b backoff) delay(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	d := float64(b.base) * math.Pow(2, float64(n-1))
	if d > float64(b.cap) || math.IsInf(d, 0) {
		return b.cap
	}
	return time.Duration(d)
}
