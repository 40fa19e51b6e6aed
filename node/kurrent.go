package node

import (
	"context"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/kurrent"
)

// openKurrent opens the KurrentDB / EventStoreDB store; NATS still holds
// artifacts and projection checkpoints.
func openKurrent(ctx context.Context, conn string, cfg Config) (events.Store, error) {
	st, err := kurrent.Open(ctx, conn, kurrent.Options{Logger: cfg.Logger.With("component", "store")})
	if err != nil {
		return nil, err
	}
	return st, nil
}
