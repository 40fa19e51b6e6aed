package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/jetstream"
)

// BenchmarkStreamRead measures a run stream's reads in a log of N runs
// written at once (each run's events interleaved with every other run's,
// one event per message: what N real-time runs leave), through the
// stream index (streamindex.go) and through a store on the same log with
// Options.NoOrgIndex (the server's filtered read), alternated:
//
//   - from0: one run's 100 events read from revision 0 (an actor
//     reloading its run);
//   - conflict: an append expecting revision 49 of a run at 99 (refused:
//     the store reads revision 50 to tell a retry of its own append from a
//     conflict).
//
// The runs read rotate over the N.
//
//	go test -run '^$' -bench StreamRead -benchtime 20x ./events/jetstream
//
// SPECTRA_STREAM_READ_RUNS (comma-separated) overrides N (default
// 1000,10000).
func BenchmarkStreamRead(b *testing.B) {
	sizes := []int{1000, 10_000}
	if v := os.Getenv("SPECTRA_STREAM_READ_RUNS"); v != "" {
		sizes = sizes[:0]
		for _, f := range splitComma(v) {
			n, err := strconv.Atoi(f)
			if err != nil {
				b.Fatalf("SPECTRA_STREAM_READ_RUNS: %v", err)
			}
			sizes = append(sizes, n)
		}
	}
	for _, runs := range sizes {
		b.Run(fmt.Sprintf("runs=%d", runs), func(b *testing.B) { benchStreamRead(b, runs) })
	}
}

const streamReadEvents = 100

func benchStreamRead(b *testing.B, runs int) {
	s := openStore(b, b.TempDir(), false)
	ctx := context.Background()
	t0 := time.Now()
	fillOrg(b, s, "org-b", "b", runs, streamReadEvents, 16, 0)
	b.Logf("filled %d runs of %d events in %v", runs, streamReadEvents, time.Since(t0).Round(time.Millisecond))
	plain, err := jetstream.New(ctx, s.Conn(), jetstream.Options{NoOrgIndex: true})
	if err != nil {
		b.Fatal(err)
	}
	defer plain.Close()
	t0 = time.Now()
	jetstream.StartIndex(s)
	for !jetstream.IndexReady(s) {
		if time.Since(t0) > 10*time.Minute {
			b.Fatal("index not ready after 10 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Logf("index built in %v", time.Since(t0).Round(time.Millisecond))
	runtime.GC()
	time.Sleep(time.Second) // let the fill's writes settle
	next := 0
	run := func() string {
		next = (next + 7919) % runs // a prime step: neighbours in the log are not read in turn
		return fmt.Sprintf("run-b%d", next)
	}
	// A read without the index can take seconds: longer than a
	// request's default timeout.
	rctx, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	from0 := func(s *jetstream.Store) func(b *testing.B) {
		return func(b *testing.B) {
			cpu := cpuNow()
			for range b.N {
				recs, err := s.ReadStream(rctx, run(), events.Forwards, 0, 0)
				if err != nil || len(recs) != streamReadEvents {
					b.Fatalf("ReadStream = %d events, %v", len(recs), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/read")
			reportCPU(b, cpu, b.N*streamReadEvents)
		}
	}
	conflict := func(s *jetstream.Store) func(b *testing.B) {
		return func(b *testing.B) {
			cpu := cpuNow()
			for range b.N {
				_, err := s.Append(rctx, run(), events.ExpectRevision(streamReadEvents/2-1), orgEvent("org-b"))
				var c *events.ConflictError
				if !errors.As(err, &c) || c.Actual != streamReadEvents-1 {
					b.Fatalf("Append = %v, want a conflict at %d", err, streamReadEvents-1)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/append")
			reportCPU(b, cpu, b.N)
		}
	}
	// Alternated, so that the machine's load falls on both alike.
	for i := range 2 {
		b.Run(fmt.Sprintf("from0_filtered#%d", i), from0(plain))
		b.Run(fmt.Sprintf("from0_indexed#%d", i), from0(s))
	}
	for i := range 2 {
		b.Run(fmt.Sprintf("conflict_filtered#%d", i), conflict(plain))
		b.Run(fmt.Sprintf("conflict_indexed#%d", i), conflict(s))
	}
}
