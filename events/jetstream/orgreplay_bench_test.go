package jetstream_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/jetstream"
)

// BenchmarkOrgReplay measures what one organisation's replay costs in a
// log that other organisations filled: org-a's 1,000 run events (20 runs
// of 50, written first, as an old tenant's history) are replayed in pages
// of 100 (what a paced /api/stream?from=0 reads), from a log that then
// received N messages of org-b's (1,000 runs; one event per message, the
// worst case for a scan); in the "spread" layout org-a's events are
// spread evenly over the log instead (an organisation active all along).
// The replay should cost the same whatever N.
// Each is measured through the store (org index) and through a store on
// the same log with Options.NoOrgIndex (the server filters), alternated.
// It also reads a one-event stream written last (an idempotency claim:
// `claimedBefore`), and measures org-b's appends while org-a's replays
// loop beside them (what a replay's reads cost another tenant's writes).
//
//	go test -run '^$' -bench OrgReplay -benchtime 20x ./events/jetstream
//
// SPECTRA_ORG_REPLAY_SIZES (comma-separated) overrides the log sizes
// (default 10000,100000,1000000).
func BenchmarkOrgReplay(b *testing.B) {
	sizes := []int{10_000, 100_000, 1_000_000}
	if v := os.Getenv("SPECTRA_ORG_REPLAY_SIZES"); v != "" {
		sizes = sizes[:0]
		for _, f := range splitComma(v) {
			n, err := strconv.Atoi(f)
			if err != nil {
				b.Fatalf("SPECTRA_ORG_REPLAY_SIZES: %v", err)
			}
			sizes = append(sizes, n)
		}
	}
	for _, others := range sizes {
		for _, spread := range []bool{false, true} {
			layout := "history"
			if spread {
				layout = "spread"
			}
			b.Run(fmt.Sprintf("others=%d/%s", others, layout), func(b *testing.B) { benchOrgReplay(b, others, spread) })
		}
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

const (
	orgAEvents = 1000
	orgAPage   = 100
)

func benchOrgReplay(b *testing.B, others int, spread bool) {
	s := openStore(b, b.TempDir(), false)
	ctx := context.Background()
	t0 := time.Now()
	if spread {
		// org-a's events spread evenly over the log: one after every
		// others/1,000 of org-b's, from each of 20 writers.
		fillOrg(b, s, "org-b", "b", 1000, others/1000, 20, others/1000)
	} else {
		// org-a's history first, then org-b's fill.
		fillOrg(b, s, "org-a", "a", 20, orgAEvents/20, 4, 0)
		fillOrg(b, s, "org-b", "b", 1000, others/1000, 16, 0)
	}
	b.Logf("filled %d messages of org-b in %v", others, time.Since(t0).Round(time.Millisecond))
	claim := fmt.Sprintf("idem-claim%d%v", others, spread)
	if _, err := s.Append(ctx, claim, events.ExpectNoStream, orgEvent("org-a")); err != nil {
		b.Fatal(err)
	}
	// The same log through a store without the org index: reads filtered
	// by the server, as before it.
	plain, err := jetstream.New(ctx, s.Conn(), jetstream.Options{NoOrgIndex: true})
	if err != nil {
		b.Fatal(err)
	}
	defer plain.Close()
	f := events.Filter{Categories: []string{events.CategoryRun}, OrgID: "org-a"}
	replayOn := func(s *jetstream.Store) error {
		var after uint64
		n := 0
		for {
			recs, err := s.ReadAll(ctx, after, f, orgAPage)
			if err != nil {
				return err
			}
			n += len(recs)
			if len(recs) > 0 {
				after = recs[len(recs)-1].Position
			}
			if len(recs) < orgAPage {
				break
			}
		}
		if n != orgAEvents {
			return fmt.Errorf("replayed %d events of org-a, want %d", n, orgAEvents)
		}
		return nil
	}
	// The first indexed read starts the org index; measure once it has
	// read the log (its build is a cost paid once per process).
	t0 = time.Now()
	jetstream.StartIndex(s)
	for !jetstream.IndexReady(s) {
		if time.Since(t0) > 10*time.Minute {
			b.Fatal("org index not ready after 10 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Logf("org index built in %v", time.Since(t0).Round(time.Millisecond))
	runtime.GC()
	time.Sleep(time.Second) // let the fill's writes settle
	replays := func(s *jetstream.Store) func(b *testing.B) {
		return func(b *testing.B) {
			cpu := cpuNow()
			for range b.N {
				if err := replayOn(s); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/replay")
			reportCPU(b, cpu, orgAEvents*b.N)
		}
	}
	// Alternated, so that the machine's load falls on both alike.
	for i := range 2 {
		b.Run(fmt.Sprintf("replay_filtered#%d", i), replays(plain))
		b.Run(fmt.Sprintf("replay_indexed#%d", i), replays(s))
	}
	b.Run("claim_read", func(b *testing.B) {
		cpu := cpuNow()
		for range b.N {
			recs, err := s.ReadStream(ctx, claim, events.Forwards, 0, 1)
			if err != nil || len(recs) != 1 {
				b.Fatalf("ReadStream = %d, %v", len(recs), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/read")
		reportCPU(b, cpu, b.N)
	})
	// org-b's appends alone, then with org-a's replays looping beside them.
	appends := func(b *testing.B, replaying *jetstream.Store) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var replays int
		if replaying != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := replayOn(replaying); err != nil {
						b.Error(err)
						return
					}
					replays++
				}
			}()
		}
		stream := benchStream()
		exp := events.ExpectNoStream
		lat := make(latencies, 0, b.N)
		b.ResetTimer()
		for range b.N * 100 {
			t0 := time.Now()
			res, err := s.Append(ctx, stream, exp, orgEvent("org-b"))
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
			exp = events.ExpectRevision(res.Revision)
		}
		b.StopTimer()
		close(stop)
		wg.Wait()
		lat.report(b, 1)
		b.ReportMetric(float64(replays)/b.Elapsed().Seconds(), "replays/s")
	}
	for i := range 2 {
		b.Run(fmt.Sprintf("appends_alone#%d", i), func(b *testing.B) { appends(b, nil) })
		b.Run(fmt.Sprintf("appends_beside_filtered_replays#%d", i), func(b *testing.B) { appends(b, plain) })
		b.Run(fmt.Sprintf("appends_beside_indexed_replays#%d", i), func(b *testing.B) { appends(b, s) })
	}
}

func orgEvent(org string) events.Event {
	return events.Event{
		ID:       events.NewID(),
		Type:     "TelemetryRecorded.v1",
		Data:     benchPayload,
		Metadata: events.Metadata{OrgID: org, UserID: "u-1", Role: "engineer", CorrelationID: "c-1"},
	}
}

// fillOrg appends perStream events, one per append, to each of streams
// run-<prefix><i> of org, from writers goroutines, the streams interleaved
// in the log. With aEvery > 0 each writer also appends an event of org-a
// (to run-a<writer>) after every aEvery of its appends.
func fillOrg(b *testing.B, s *jetstream.Store, org, prefix string, streams, perStream, writers, aEvery int) {
	b.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := []string{}
			for i := w; i < streams; i += writers {
				mine = append(mine, fmt.Sprintf("run-%s%d", prefix, i))
			}
			exp := make([]events.Expected, len(mine))
			for i := range exp {
				exp[i] = events.ExpectNoStream
			}
			n := 0
			for range perStream {
				for i, stream := range mine {
					res, err := s.Append(ctx, stream, exp[i], orgEvent(org))
					if err != nil {
						errs <- err
						return
					}
					exp[i] = events.ExpectRevision(res.Revision)
					if n++; aEvery > 0 && n%aEvery == 0 {
						if _, err := s.Append(ctx, fmt.Sprintf("run-a%d", w), events.ExpectAny, orgEvent("org-a")); err != nil {
							errs <- err
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
