package jetstream_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/jetstream"
)

// BenchmarkGroupCommit measures durable appends (fsync on) from many
// writers at once, each on its own stream, as run actors write: the
// store's appends of 1 and of 10 events (one message each), without and
// with group commit (Options.GroupCommit), beside raw
// JetStream publishes of one message per event into one JetStream stream,
// and spread over 4 JetStream streams (separate files, separate locks: do
// their fsyncs overlap?).
//
//	go test -bench GroupCommit -run '^$' -benchtime 4000x ./events/jetstream
//
// b.N counts events; "fsyncs/s" counts messages stored (the server
// fsyncs each one with sync on).
func BenchmarkGroupCommit(b *testing.B) {
	writers := 50
	s := openStore(b, b.TempDir(), true)
	gs := openGroupStore(b, b.TempDir(), true)
	js := s.JetStream()
	ctx := context.Background()

	// parallel runs op(w, i) for the i-th operation of writer w, split
	// b.N events between writers doing perOp events per operation.
	parallel := func(b *testing.B, perOp int, op func(w, i int) error) {
		ops := max(1, b.N/perOp/writers)
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		lat := make([]latencies, writers)
		cpu := cpuNow()
		b.ResetTimer()
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range ops {
					t0 := time.Now()
					if err := op(w, i); err != nil {
						errs <- err
						return
					}
					lat[w] = append(lat[w], time.Since(t0))
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
		var all latencies
		for _, l := range lat {
			all = append(all, l...)
		}
		all.report(b, perOp)
		reportCPU(b, cpu, len(all)*perOp)
		// Every operation, store or raw, is one message: one fsync.
		b.ReportMetric(float64(len(all))/b.Elapsed().Seconds(), "fsyncs/s")
	}

	for _, c := range []struct{ writers, per int }{{50, 1}, {50, 10}, {500, 1}} {
		for _, st := range []struct {
			name string
			s    *jetstream.Store
		}{{"store", s}, {"groupcommit", gs}} {
			b.Run(fmt.Sprintf("%s_%dx%d", st.name, c.writers, c.per), func(b *testing.B) {
				writers = c.writers
				defer func() { writers = 50 }()
				streams := make([]string, writers)
				exp := make([]events.Expected, writers)
				for w := range streams {
					streams[w], exp[w] = benchStream(), events.ExpectNoStream
				}
				c0 := st.s.CommitStats()
				parallel(b, c.per, func(w, _ int) error {
					res, err := st.s.Append(ctx, streams[w], exp[w], benchEvents(c.per)...)
					exp[w] = events.ExpectRevision(res.Revision)
					return err
				})
				if c := st.s.CommitStats(); c.Commits > c0.Commits {
					// A single message is one fsync, a batch seven
					// synchronous writes (groupcommit.go): this
					// replaces parallel's count.
					commits, batches := c.Commits-c0.Commits, c.Batches-c0.Batches
					b.ReportMetric(float64(commits-batches+jetstream.FsyncsPerBatch*batches)/b.Elapsed().Seconds(), "fsyncs/s")
					b.ReportMetric(float64(c.Appends-c0.Appends)/float64(commits), "appends/commit")
					b.Logf("%d appends: %d commits, %d of them batches of %d appends", c.Appends-c0.Appends, commits, batches, c.Grouped-c0.Grouped)
				}
			})
		}
	}

	rawInto := func(jsStreams int) func(b *testing.B) {
		return func(b *testing.B) {
			prefix := "raw" + strconv.FormatInt(benchSeq.Add(1), 10) + "_"
			for i := range jsStreams {
				_, err := js.CreateStream(ctx, natsjs.StreamConfig{Name: strings.ToUpper(prefix) + strconv.Itoa(i),
					Subjects: []string{prefix + strconv.Itoa(i) + ".>"}, Storage: natsjs.FileStorage})
				if err != nil {
					b.Fatal(err)
				}
			}
			last := make([]uint64, writers)
			parallel(b, 1, func(w, i int) error {
				m := nats.NewMsg(fmt.Sprintf("%s%d.w%d", prefix, w%jsStreams, w))
				m.Data = benchPayload
				m.Header.Set("Nats-Expected-Last-Subject-Sequence", strconv.FormatUint(last[w], 10))
				ack, err := js.PublishMsg(ctx, m)
				if err != nil {
					return err
				}
				last[w] = ack.Sequence
				return nil
			})
		}
	}
	b.Run(fmt.Sprintf("raw_%dx1_1js", writers), rawInto(1))
	b.Run(fmt.Sprintf("raw_%dx1_4js", writers), rawInto(4))
}
