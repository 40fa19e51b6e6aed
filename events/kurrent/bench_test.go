package kurrent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/eventstest"
	"github.com/spectra-fab/spectra/events/kurrent/kurrenttest"
)

// These measure the adapter and the real client over loopback gRPC against
// the in-process double, for comparison with the JetStream store's
// benchmarks: they say what the adapter and client cost, not how fast a
// KurrentDB node is.

// benchEvent is about 200 bytes of payload, typical of event-store benchmarks.
func benchEvent(tb testing.TB) events.Event {
	ev, err := events.New(events.RunPhaseChanged{JobID: "job-" + strings.Repeat("x", 150), Name: "implant", Progress: 0.5, Step: 42},
		events.Metadata{OrgID: "org-a", UserID: "u-1"})
	if err != nil {
		tb.Fatal(err)
	}
	return ev
}

func reportLatency(b *testing.B, lat []time.Duration, perOp int) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	var total time.Duration
	for _, d := range lat {
		total += d
	}
	b.ReportMetric(float64(len(lat)*perOp)/total.Seconds(), "events/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkAppend appends one event at a time to one stream with the
// expected revision, as a run actor does.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1, 10} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			_, conn := kurrenttest.Start(b)
			s := mustOpen(b, conn, Options{})
			ctx := context.Background()
			exp := events.ExpectNoStream
			var lat []time.Duration
			for b.Loop() {
				evs := make([]events.Event, size)
				for i := range evs {
					evs[i] = benchEvent(b)
				}
				start := time.Now()
				res, err := s.Append(ctx, "run-bench", exp, evs...)
				lat = append(lat, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				exp = events.ExpectRevision(res.Revision)
			}
			reportLatency(b, lat, size)
		})
	}
}

// BenchmarkReadStream reads a 1,000-event stream whole, as a recovering
// run actor does.
func BenchmarkReadStream(b *testing.B) {
	_, conn := kurrenttest.Start(b)
	s := mustOpen(b, conn, Options{})
	ctx := context.Background()
	const n = 1000
	for i := 0; i < n; i += 100 {
		evs := make([]events.Event, 100)
		for j := range evs {
			evs[j] = benchEvent(b)
		}
		if _, err := s.Append(ctx, "run-read", events.ExpectAny, evs...); err != nil {
			b.Fatal(err)
		}
	}
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		recs, err := s.ReadStream(ctx, "run-read", events.Forwards, 0, 0)
		lat = append(lat, time.Since(start))
		if err != nil || len(recs) != n {
			b.Fatalf("ReadStream = %d records, %v", len(recs), err)
		}
	}
	reportLatency(b, lat, n)
}

// BenchmarkCatchUp subscribes to a 5,000-event log from the start until
// caught up, as a projection rebuild does.
func BenchmarkCatchUp(b *testing.B) {
	_, conn := kurrenttest.Start(b)
	s := mustOpen(b, conn, Options{})
	ctx := context.Background()
	const n = 5000
	for i := 0; i < n; i += 250 {
		evs := make([]events.Event, 250)
		for j := range evs {
			evs[j] = benchEvent(b)
		}
		if _, err := s.Append(ctx, fmt.Sprintf("run-%d", i%7), events.ExpectAny, evs...); err != nil {
			b.Fatal(err)
		}
	}
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		sub, err := s.Subscribe(ctx, 0, events.Filter{Categories: []string{"run"}})
		if err != nil {
			b.Fatal(err)
		}
		got, err := eventstest.CatchUp(ctx, sub)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		sub.Close()
		if got != n {
			b.Fatalf("caught up after %d records, want %d", got, n)
		}
	}
	reportLatency(b, lat, n)
}
