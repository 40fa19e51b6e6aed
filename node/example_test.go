package node_test

import (
	"context"
	"log/slog"
	"os"
	"os/signal"

	"github.com/spectra-fab/spectra/node"
)

// Start wires and starts a node; Close stops it. (Not run: it serves until
// interrupted.)
func ExampleStart() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	secret := []byte(os.Getenv("SPECTRA_JWT_SECRET"))
	n, err := node.Start(ctx, node.Config{DataDir: "./data", HTTPAddr: ":8003", JWTSecret: secret,
		TimeScale: 100, Logger: slog.Default()})
	if err != nil {
		return
	}
	defer n.Close()
	select {
	case <-ctx.Done():
	case <-n.Err():
	}
}
