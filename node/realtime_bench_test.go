package node_test

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/jetstream"
	"github.com/spectra-fab/spectra/node"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// longIonRecipe is the seed recipe at a tenth of its beam current: about
// 490 s of process time, so runs outlast their creation and the window.
var longIonRecipe = []byte(`{"species":"P","energy_kev":40.0,"dose_atoms_cm2":1e15,"tilt_deg":7.0,"twist_deg":0.0,` +
	`"beam_current_ma":0.5,"scan_speed_mm_s":50.0,"wafer_diameter_mm":300,"wafer_id":"W12345","lot_id":"LOT-001"}`)

// BenchmarkRealTimeRuns runs N ion runs at once in real time on one node
// (time scale 1: a control step every 100 ms, a telemetry event every
// second of each run, fsync on) and measures, over a window once every run
// is running: how late steps were stepped (p50, p99, max; the target is
// p99 < 20 ms), the read models' lag behind the appends (time from an
// append's acknowledgement until the projections applied it, sampled
// every 250 ms; the target is < 1 s), the appends' rate and the node's CPU.
// N is SPECTRA_REALTIME_RUNS (comma-separated, default 1000,10000; a
// create the node refuses five times is left out and logged);
// SPECTRA_REALTIME_WINDOW sets the window (default 20s);
// SPECTRA_REALTIME_CPUPROFILE=path writes the window's CPU profile to
// path.N. Each N takes its
// creation time plus the window (10,000 runs: a few minutes).
func BenchmarkRealTimeRuns(b *testing.B) {
	sizes := []int{1000, 10000}
	if v := os.Getenv("SPECTRA_REALTIME_RUNS"); v != "" {
		sizes = nil
		for _, f := range splitComma(v) {
			n, err := strconv.Atoi(f)
			if err != nil || n <= 0 {
				b.Fatalf("SPECTRA_REALTIME_RUNS: %q is not a positive count", f)
			}
			sizes = append(sizes, n)
		}
	}
	window := 20 * time.Second
	if v := os.Getenv("SPECTRA_REALTIME_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("SPECTRA_REALTIME_WINDOW: %v", err)
		}
		window = d
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) {
			for range b.N {
				realTimeRuns(b, n, window)
			}
		})
	}
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

func realTimeRuns(b *testing.B, n int, window time.Duration) {
	ctx := context.Background()
	nd, err := node.Start(ctx, node.Config{DataDir: b.TempDir(), TimeScale: 1, QueueLimit: n,
		JWTSecret: []byte("bench-secret-bench-secret-0123456789")})
	if err != nil {
		b.Fatal(err)
	}
	defer nd.Close()
	st, ok := nd.Store().(*jetstream.Store)
	if !ok {
		b.Fatalf("store is %T, want the JetStream store", nd.Store())
	}

	// Create the runs (32 at a time) and wait until every one runs.
	md := events.Metadata{OrgID: "org-1", UserID: "bench", Role: "engineer"}
	createStart := time.Now()
	var next, refused atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				// Creates queue behind the running runs' appends: one
				// that times out is repeated with its key (no duplicate).
				c := actors.CreateRun{Kind: process.KindIon, Recipe: longIonRecipe, Meta: md, IdempotencyKey: fmt.Sprintf("rt-%d", i)}
				var err error
				for range 5 {
					if _, err = nd.Actors().CreateRun(ctx, c); err == nil {
						break
					}
				}
				if err != nil {
					if refused.Add(1) == 1 {
						b.Logf("create refused 5 times: %v", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	created := time.Since(createStart)
	want := n - int(refused.Load())
	var running int
	for {
		var err error
		if _, running, err = nd.Jobs().Runs(ctx, projections.RunFilter{OrgID: "org-1", Status: projections.StatusRunning}); err != nil {
			b.Fatal(err)
		}
		if running >= want {
			break
		}
		if time.Since(createStart) > created+time.Minute {
			counts := map[string]int{}
			for _, st := range []string{projections.StatusQueued, projections.StatusRunning, projections.StatusFailed, projections.StatusCompleted} {
				_, counts[st], _ = nd.Jobs().Runs(ctx, projections.RunFilter{OrgID: "org-1", Status: st})
			}
			// Measured all the same: the figures are for the runs that run.
			b.Logf("%d of %d runs running a minute after their creation (by status: %v)", running, n, counts)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	allRunning := time.Since(createStart)

	// The window: step lateness, projection lag, appends, CPU.
	late := nd.Actors().StepLateness()
	late.Reset()
	events0 := appended(st)
	commits0 := st.CommitStats()
	cpu0 := cpuTime()
	if path := os.Getenv("SPECTRA_REALTIME_CPUPROFILE"); path != "" {
		// The window's CPU profile, creation left out.
		f, err := os.Create(fmt.Sprintf("%s.%d", path, n))
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	b.ResetTimer()
	start := time.Now()
	var lags []time.Duration
	for time.Since(start) < window {
		h := st.Acknowledged()
		t0 := time.Now()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := nd.Runner().WaitFor(wctx, h)
		cancel()
		if err != nil {
			// Counted as 30 s: the read models are that far behind or more.
			b.Logf("projections did not reach position %d in 30 s: %v", h, err)
		}
		lags = append(lags, time.Since(t0))
		time.Sleep(250 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := cpuTime() - cpu0
	evs := appended(st) - events0
	commits := st.CommitStats()
	steps := late.Count()
	slices.Sort(lags)
	b.ReportMetric(float64(late.Quantile(0.5).Milliseconds()), "step-late-p50-ms")
	b.ReportMetric(float64(late.Quantile(0.99).Milliseconds()), "step-late-p99-ms")
	b.ReportMetric(float64(late.Quantile(1).Milliseconds()), "step-late-max-ms")
	b.ReportMetric(float64(steps)/elapsed.Seconds(), "steps/s")
	b.ReportMetric(float64(evs)/elapsed.Seconds(), "events/s")
	if n := commits.Commits - commits0.Commits; n > 0 {
		// Group commit: a single message is one fsync, a batch seven
		// synchronous writes (events/jetstream/groupcommit.go).
		b.ReportMetric(float64(commits.Appends-commits0.Appends)/float64(n), "appends/commit")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "commits/s")
	}
	b.ReportMetric(float64(lags[len(lags)/2].Milliseconds()), "proj-lag-p50-ms")
	b.ReportMetric(float64(lags[min(len(lags)-1, len(lags)*99/100)].Milliseconds()), "proj-lag-p99-ms")
	b.ReportMetric(float64(lags[len(lags)-1].Milliseconds()), "proj-lag-max-ms")
	b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds(), "cpu-%-of-a-core")
	b.ReportMetric(float64(running), "runs-running")
	load, _ := os.ReadFile("/proc/loadavg")
	b.Logf("%d runs: created in %s, all running after %s; window %s: %d steps (want %d), %.0f events appended, load %s",
		n, created.Round(time.Millisecond), allRunning.Round(time.Millisecond), elapsed.Round(time.Millisecond),
		steps, int64(float64(n)*elapsed.Seconds()/process.Period), evs, string(load[:min(len(load), 14)]))
	// The figures again at once: a benchmark's report and log come out
	// only when it returns, after the node's Close, and a crash there
	// (nats-server v2.15.3 can panic on a direct get that arrives as its
	// file store stops) would take them with it.
	fmt.Fprintf(os.Stderr, "realtime runs=%d: steps late p50/p99/max %v/%v/%v, lag p50/p99/max %v/%v/%v, %.0f steps/s, %.0f events/s, cpu %.1f%% of a core, %d running, load %s\n",
		n, late.Quantile(0.5), late.Quantile(0.99), late.Quantile(1), lags[len(lags)/2], lags[min(len(lags)-1, len(lags)*99/100)], lags[len(lags)-1],
		float64(steps)/elapsed.Seconds(), float64(evs)/elapsed.Seconds(), 100*cpu.Seconds()/elapsed.Seconds(), running, string(load[:min(len(load), 14)]))
}

// appended is how many events the store has appended.
func appended(st *jetstream.Store) float64 { return float64(st.EventsAppended()) }

// cpuTime is the CPU time this process has used (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
