package eventstest

import (
	"context"

	"github.com/spectra-fab/spectra/events"
)

// CatchUp reads a subscription up to its caught-up item and returns how
// many records came before it: the replay that benchmarks time and tests
// count.
func CatchUp(ctx context.Context, sub events.Subscription) (int, error) {
	n := 0
	for {
		it, err := sub.Next(ctx)
		if err != nil {
			return n, err
		}
		if it.CaughtUp {
			return n, nil
		}
		n++
	}
}
