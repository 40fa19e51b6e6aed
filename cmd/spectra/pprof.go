package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"strconv"
	"time"
)

// servePprof serves Go's profiles (/debug/pprof/) on SPECTRA_PPROF_ADDR,
// e.g. 127.0.0.1:6060, when it is set; never on the API's address. It
// returns the function that stops it. SPECTRA_PPROF_BLOCK, a duration in
// nanoseconds, turns on the block profile (one sample per that much time
// blocked) and the mutex profile (one contention in 100): what goroutines
// wait on, which a CPU profile does not show.
func servePprof(logger *slog.Logger) func() {
	addr := os.Getenv("SPECTRA_PPROF_ADDR")
	if addr == "" {
		return func() {}
	}
	if ns, err := strconv.Atoi(os.Getenv("SPECTRA_PPROF_BLOCK")); err == nil && ns > 0 {
		runtime.SetBlockProfileRate(ns)
		runtime.SetMutexProfileFraction(100)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		logger.Error("pprof: not serving", "addr", addr, "err", err)
		return func() {}
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	logger.Info("pprof serving", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}
}
