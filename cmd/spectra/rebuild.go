package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/jetstream"
	"github.com/spectra-fab/spectra/events/kurrent"
	"github.com/spectra-fab/spectra/node"
	"github.com/spectra-fab/spectra/projections"
	"github.com/spectra-fab/spectra/projections/natskv"
)

// runProjections: spectra projections rebuild [NAME].
func runProjections(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "rebuild" {
		fmt.Fprintln(os.Stderr, "usage: spectra projections rebuild [NAME] [store flags]")
		return exitError{2}
	}
	args = args[1:]
	name := ""
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("projections rebuild", flag.ContinueOnError)
	var sf node.Config
	f := node.NewFlags(fs)
	sf.BindStore(f)
	spcBaseline := new(int)
	f.Int(spcBaseline, "spc-baseline", "SPECTRA_SPC_BASELINE", 20, "as serve's --spc-baseline (recorded limits stand either way)")
	t2Library := new(int)
	f.Int(t2Library, "t2-library", "SPECTRA_T2_LIBRARY", 50, "as serve's --t2-library")
	if err := parseFlags(f, args); err != nil {
		return commandError("projections rebuild", err)
	}
	all := []projections.Projection{projections.NewJobStatus(), projections.NewSPCCharts(projections.SPCConfig{Baseline: *spcBaseline}),
		projections.NewR2RState(), projections.NewSecurity(), projections.NewAudit(), projections.NewMultivariate(projections.MultivariateConfig{Library: *t2Library}),
		projections.NewTools()}
	var chosen []projections.Projection
	for _, p := range all {
		if name == "" || p.Name() == name {
			chosen = append(chosen, p)
		}
	}
	if len(chosen) == 0 {
		return fmt.Errorf("projections rebuild: no projection named %q", name)
	}
	var (
		srv *jetstream.Server
		nc  *nats.Conn
		err error
	)
	if sf.NATSURL == "" {
		if srv, err = jetstream.StartServer(jetstream.ServerConfig{DataDir: sf.DataDir, Sync: !sf.NoSync}); err != nil {
			return fmt.Errorf("projections rebuild: %w (is a server still running on %s?)", err, sf.DataDir)
		}
		defer srv.Shutdown()
		nc, err = srv.Connect()
	} else {
		nc, err = nats.Connect(sf.NATSURL)
	}
	if err != nil {
		return err
	}
	defer nc.Close()
	var store events.Store
	switch {
	case sf.EventStore == "jetstream":
		store, err = jetstream.New(ctx, nc, jetstream.Options{})
	case strings.HasPrefix(sf.EventStore, "esdb") || strings.HasPrefix(sf.EventStore, "kurrent"):
		store, err = kurrent.Open(ctx, sf.EventStore, kurrent.Options{Logger: slog.New(slog.DiscardHandler)})
	default:
		err = fmt.Errorf("unknown event store %q (want jetstream, esdb://… or kurrentdb://…)", sf.EventStore)
	}
	if err != nil {
		return fmt.Errorf("projections rebuild: %w", err)
	}
	defer store.Close()
	js, err := njs.New(nc)
	if err != nil {
		return err
	}
	cps, err := natskv.Open(ctx, js)
	if err != nil {
		return err
	}
	for _, p := range chosen {
		if err := projections.Rebuild(ctx, cps, p.Name()); err != nil {
			return err
		}
	}
	start := time.Now()
	runner := projections.NewRunner(store, cps, slog.New(slog.DiscardHandler), chosen...)
	runner.SaveEvery = 1 << 62 // save once, at the end
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runner.Run(rctx) }()
	select {
	case <-runner.CaughtUp():
	case err := <-done:
		cancel()
		return fmt.Errorf("projections rebuild: %w", err)
	}
	cancel()
	if err := <-done; err != nil {
		return err
	}
	elapsed := time.Since(start)
	pos := runner.Position()
	for _, p := range chosen {
		fmt.Printf("rebuilt %s up to position %d in %s (%.0f events/s)\n", p.Name(), pos, elapsed.Round(time.Millisecond),
			float64(pos)/elapsed.Seconds())
	}
	return nil
}
