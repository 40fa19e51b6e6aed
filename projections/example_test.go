package projections_test

import (
	"context"
	"log/slog"

	"github.com/spectra-fab/spectra/events/memory"
	"github.com/spectra-fab/spectra/projections"
)

// A runner keeps read models up to date with the log; WaitFor lets a read
// that follows a command see what the command appended. (Not run: the
// checkpoints come from the node, natskv.Open in production.)
func ExampleRunner() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		store       = memory.New()
		checkpoints projections.Checkpoints // natskv.Open(ctx, js)
		position    uint64                  // a command's append position
		runID       = "ION-1"
	)
	jobs := projections.NewJobStatus()
	r := projections.NewRunner(store, checkpoints, slog.Default(), jobs)
	go func() { _ = r.Run(ctx) }()
	if err := r.WaitFor(ctx, position); err != nil {
		return
	}
	run, err := jobs.Run(ctx, "org-1", runID)
	_, _ = run, err
}
