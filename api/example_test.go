package api_test

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/spectra-fab/spectra/api"
)

// The API is a front: commands go to the actors, reads to the projections,
// job logs to the event log, each through a small interface declared in
// api. (Not run: the node supplies those services; node.Start wires them.)
func ExampleNew() {
	var (
		commands api.Commands    // the actor layer
		queries  api.Queries     // the read models
		store    api.EventReader // the event log
	)
	srv := api.New(api.Config{JWTSecret: api.Secret(os.Getenv("SPECTRA_JWT_SECRET")), Node: "node-1", Logger: slog.Default()},
		api.Deps{Commands: commands, Queries: queries, Store: store})
	go func() { _ = srv.Listen(":8003") }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer srv.Shutdown(ctx)
}
