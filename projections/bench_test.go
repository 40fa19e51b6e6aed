package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/eventstest"
	"github.com/spectra-fab/spectra/events/jetstream"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// benchRun returns the events of one completed ion run: requested, queued,
// started, phase marks, telemetry batches (ten samples of three fields),
// SPC violation, artifact, completed — 100 events, the shape of a short run.
func benchRun(i int) ([]events.Event, error) {
	runID := fmt.Sprintf("ION-20261128-%08X", i)
	jobID := fmt.Sprintf("job-%d", i)
	meta := events.Metadata{OrgID: fmt.Sprintf("org-%d", i%4), UserID: "u-1", Role: "engineer", RequestID: "req-" + runID}
	ps := []events.Payload{
		&events.RunRequested{RunID: runID, JobID: jobID, Kind: process.KindIon, ToolID: fmt.Sprintf("IMP-%d", i%8),
			Recipe:    json.RawMessage(`{"species":"P","energy_kev":40,"dose_atoms_cm2":1e15,"tilt_deg":7,"twist_deg":0,"beam_current_ma":5,"scan_speed_mm_s":50,"wafer_diameter_mm":300}`),
			CreatedAt: time.Unix(int64(i), 0).UTC(), Seed: int64(i)},
		&events.RunQueued{JobID: jobID, Queue: "ion"},
		&events.RunStarted{JobID: jobID, Seed: int64(i), R2R: map[string]float64{"dose_setpoint_scale": 1.01}},
		&events.RunPhaseChanged{JobID: jobID, Name: "Validation", Progress: 5},
		&events.RunPhaseChanged{JobID: jobID, Name: "Simulator set-up", Progress: 10},
		&events.RunPhaseChanged{JobID: jobID, Name: "Controller set-up", Progress: 15},
	}
	for k := range 90 {
		t0 := float64(k)
		ps = append(ps, &events.TelemetryRecorded{JobID: jobID, FirstStep: 10 * k, Progress: 20 + float64(k)*0.6,
			CurrentStep: "Implanting", Samples: map[string][]float64{
				"time_s":              {t0 + 0.1, t0 + 0.2, t0 + 0.3, t0 + 0.4, t0 + 0.5, t0 + 0.6, t0 + 0.7, t0 + 0.8, t0 + 0.9, t0 + 1},
				"beam_current_ma":     {5, 5.01, 4.99, 5, 5.02, 4.98, 5, 5.01, 4.99, 5},
				"dose_uniformity_pct": {0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5},
			}})
	}
	ps = append(ps,
		&events.SPCViolation{JobID: jobID, Step: 400, Alarm: process.Alarm{Source: process.SourceSPC, Rule: "WE2", Parameter: "beam_current_ma"}},
		&events.ArtifactStored{JobID: jobID, Name: "telemetry.json", ContentType: "application/json", Size: 1000},
		&events.RunCompleted{JobID: jobID, Step: 900, DurationS: 90, Result: eventstest.JSON(map[string]any{"dose_error_pct": -0.2, "final_dose_atoms_cm2": 9.98e14}),
			R2R: eventstest.JSON(map[string]float64{"dose_error_pct": -0.2 + float64(i%7)*0.01, "mean_beam_current_ma": 5 + float64(i%5)*0.001, "dose_uniformity_pct": 0.5})},
	)
	out := make([]events.Event, len(ps))
	for k, p := range ps {
		ev, err := events.New(p, meta)
		if err != nil {
			return nil, err
		}
		out[k] = ev
	}
	return out, nil
}

// fillRuns appends runs whole runs, each one atomic batch, from a few
// appenders at once.
func fillRuns(b *testing.B, s events.Store, runs int) int {
	b.Helper()
	const workers = 8
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int
		first error
	)
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				evs, err := benchRun(i)
				if err == nil {
					_, err = s.Append(context.Background(), events.RunStream(fmt.Sprintf("ION-20261128-%08X", i)), events.ExpectNoStream, evs...)
				}
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				total += len(evs)
				mu.Unlock()
			}
		}()
	}
	for i := range runs {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		b.Fatalf("fill: %v", first)
	}
	return total
}

// BenchmarkRebuild1M rebuilds the read models from a log of 1,000,000
// events (10,000 runs of 100 events) on the embedded JetStream store, and
// reads the same log raw for comparison: through the store's Subscribe
// (decoding envelopes, no payloads) and with a bare JetStream ordered
// consumer. Each reports events/s. It takes a minute or two and about
// 500 MB of temporary disk, so it is skipped under -short.
func BenchmarkRebuild1M(b *testing.B) {
	if testing.Short() {
		b.Skip("1M-event rebuild in -short mode")
	}
	runs := benchRuns(b, 10_000)
	srv, err := jetstream.StartServer(jetstream.ServerConfig{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect()
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	s, err := jetstream.New(context.Background(), nc, jetstream.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	total := fillRuns(b, s, runs)
	b.Logf("appended %d events in %s (%.0f events/s, batches of 100)", total, time.Since(start).Round(time.Millisecond),
		float64(total)/time.Since(start).Seconds())
	ctx := context.Background()
	// The server keeps recently read blocks in memory: a first read, not
	// measured, puts every reader below on the same footing.
	if err := readRaw(ctx, s, runs); err != nil {
		b.Fatal(err)
	}

	b.Run("raw_ordered_consumer", func(b *testing.B) {
		cpu := startMeasure(b)
		for range b.N {
			if err := readRaw(ctx, s, runs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
		reportCPU(b, cpu, total*b.N)
	})
	b.Run("store_Subscribe", func(b *testing.B) {
		cpu := startMeasure(b)
		for range b.N {
			sub, err := s.Subscribe(ctx, 0, events.Filter{})
			if err != nil {
				b.Fatal(err)
			}
			n, err := eventstest.CatchUp(ctx, sub)
			if err != nil {
				b.Fatal(err)
			}
			sub.Close()
			if n != total {
				b.Fatalf("Subscribe delivered %d events, want %d", n, total)
			}
		}
		b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
		reportCPU(b, cpu, total*b.N)
	})
	models := []struct {
		name string
		new  func() []projections.Projection
	}{
		{"rebuild_jobstatus", func() []projections.Projection { return []projections.Projection{projections.NewJobStatus()} }},
		{"rebuild_spc", func() []projections.Projection {
			return []projections.Projection{projections.NewSPCCharts(projections.SPCConfig{})}
		}},
		{"rebuild_r2r", func() []projections.Projection { return []projections.Projection{projections.NewR2RState()} }},
		{"rebuild_three", func() []projections.Projection { // session 3's "all"
			return []projections.Projection{projections.NewJobStatus(), projections.NewSPCCharts(projections.SPCConfig{}), projections.NewR2RState()}
		}},
		{"rebuild_all", func() []projections.Projection {
			// The read models a node runs (node.go).
			return []projections.Projection{projections.NewJobStatus(), projections.NewSPCCharts(projections.SPCConfig{}),
				projections.NewR2RState(), projections.NewSecurity(), projections.NewAudit(), projections.NewFab(),
				projections.NewMultivariate(projections.MultivariateConfig{}), projections.NewTools()}
		}},
	}
	for _, m := range models {
		b.Run(m.name, func(b *testing.B) {
			cpu := startMeasure(b)
			for range b.N {
				r := projections.NewRunner(s, nil, nil, m.new()...)
				rctx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { done <- r.Run(rctx) }()
				<-r.CaughtUp()
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				if got := r.Position(); got < uint64(total) {
					b.Fatalf("rebuilt to position %d, want %d", got, total)
				}
			}
			b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
			reportCPU(b, cpu, total*b.N)
		})
	}
}

// readRaw reads the log's runs messages with a bare JetStream ordered
// consumer: one message per run (an append is one message), its events
// framed in its body, not looked at.
func readRaw(ctx context.Context, s *jetstream.Store, runs int) error {
	c, err := s.JetStream().OrderedConsumer(ctx, jetstream.DefaultStream, njs.OrderedConsumerConfig{FilterSubjects: []string{"ev.>"}})
	if err != nil {
		return err
	}
	it, err := c.Messages()
	if err != nil {
		return err
	}
	defer it.Stop()
	for range runs {
		if _, err := it.Next(); err != nil {
			return err
		}
	}
	return nil
}

// startMeasure collects the garbage earlier work left, so each reader
// pays for its own, restarts b's timer and returns the CPU time used so
// far.
func startMeasure(b *testing.B) time.Duration {
	runtime.GC()
	b.ResetTimer()
	return cpuNow()
}

// cpuNow is the CPU time (user and system) the process has used: the
// store, the embedded server and the reader alike.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per event since start: on a machine
// shared with other work it moves less than events/s does.
func reportCPU(b *testing.B, start time.Duration, events int) {
	b.ReportMetric(float64((cpuNow()-start).Nanoseconds())/1000/float64(events), "cpu-µs/event")
}

// benchRuns is SPECTRA_BENCH_RUNS when set, else def.
func benchRuns(b *testing.B, def int) int {
	b.Helper()
	v := os.Getenv("SPECTRA_BENCH_RUNS")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("SPECTRA_BENCH_RUNS: %q is not a positive count", v)
	}
	return n
}

// BenchmarkPipeline measures the event pipeline against raw JetStream on
// the same payloads, fsync on: 8 appenders write runs of 100 events (one
// append per run) through the store while a projection runner (job status,
// SPC, R2R) applies them live — events/s until the read models have
// applied the last; then, on a fresh server, 8 publishers publish the same
// runs' event payloads as bare JetStream messages (one per run, the
// payloads concatenated) while an ordered consumer reads them — events/s
// until it has read the last. SPECTRA_BENCH_RUNS sets the runs (2,000).
func BenchmarkPipeline(b *testing.B) {
	runs := benchRuns(b, 2000)
	ctx := context.Background()
	b.Run("store_to_projections", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			s, stop := benchStore(b)
			r := projections.NewRunner(s, nil, nil, projections.NewJobStatus(),
				projections.NewSPCCharts(projections.SPCConfig{}), projections.NewR2RState())
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- r.Run(rctx) }()
			<-r.CaughtUp()
			b.StartTimer()
			total := fillRuns(b, s, runs)
			if err := r.WaitFor(ctx, s.Acknowledged()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			stop()
			b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
		}
	})
	b.Run("raw_jetstream", func(b *testing.B) {
		bodies := make([][]byte, runs)
		total := 0
		for i := range runs {
			evs, err := benchRun(i)
			if err != nil {
				b.Fatal(err)
			}
			for _, ev := range evs {
				bodies[i] = append(bodies[i], ev.Data...)
			}
			total += len(evs)
		}
		for range b.N {
			b.StopTimer()
			s, stop := benchStore(b)
			js := s.JetStream()
			c, err := js.OrderedConsumer(ctx, jetstream.DefaultStream, njs.OrderedConsumerConfig{FilterSubjects: []string{"raw.>"},
				DeliverPolicy: njs.DeliverNewPolicy})
			if err != nil {
				b.Fatal(err)
			}
			it, err := c.Messages()
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			read := make(chan error, 1)
			go func() {
				for range runs {
					if _, err := it.Next(); err != nil {
						read <- err
						return
					}
				}
				read <- nil
			}()
			var wg sync.WaitGroup
			next := make(chan int)
			errs := make(chan error, 8)
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range next {
						if _, err := js.Publish(ctx, fmt.Sprintf("raw.%d", i), bodies[i]); err != nil {
							errs <- err
						}
					}
				}()
			}
			for i := range runs {
				next <- i
			}
			close(next)
			wg.Wait()
			if err := <-read; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			it.Stop()
			close(errs)
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
			stop()
		}
		b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// benchStore opens a store on a fresh embedded server with fsync on, its
// stream also taking raw.> subjects for the raw baseline.
func benchStore(b *testing.B) (*jetstream.Store, func()) {
	b.Helper()
	srv, err := jetstream.StartServer(jetstream.ServerConfig{DataDir: b.TempDir(), Sync: true})
	if err != nil {
		b.Fatal(err)
	}
	nc, err := srv.Connect()
	if err != nil {
		b.Fatal(err)
	}
	s, err := jetstream.New(context.Background(), nc, jetstream.Options{})
	if err != nil {
		b.Fatal(err)
	}
	js := s.JetStream()
	st, err := js.Stream(context.Background(), jetstream.DefaultStream)
	if err != nil {
		b.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.Subjects = append(cfg.Subjects, "raw.>")
	if _, err := js.UpdateStream(context.Background(), cfg); err != nil {
		b.Fatal(err)
	}
	return s, func() { s.Close(); nc.Close(); srv.Shutdown() }
}
