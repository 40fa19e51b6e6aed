package kurrent_test

import (
	"context"
	"log/slog"

	"github.com/spectra-fab/spectra/events/kurrent"
)

// Open connects to a KurrentDB cluster; the store reconnects by itself.
// (Not run: it needs a server.)
func ExampleOpen() {
	ctx := context.Background()
	store, err := kurrent.Open(ctx, "kurrentdb://admin:changeit@db1:2113,db2:2113,db3:2113?tlsCAFile=ca.crt",
		kurrent.Options{Logger: slog.Default()})
	if err != nil {
		return
	}
	defer store.Close()
}
