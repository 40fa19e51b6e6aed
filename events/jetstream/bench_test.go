package jetstream_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/eventstest"
	"github.com/spectra-fab/spectra/events/jetstream"
)

// Benchmarks put our adapter beside bare JetStream doing the same work on
// the same embedded server, with a 200-byte payload:
//
//	go test -bench . -run '^$' ./events/jetstream
//
// Each parent benchmark builds its fixture once; the sub-benchmarks are
// what the testing package repeats.

var benchPayload = []byte(`{"job_id":"ION-20261128-A1B2C3D4","first_step":120,"progress":0.4,"current_step":"implant",` +
	`"samples":{"beam_current_ma":[1.01,1.02,1.0,0.99,1.01],"dose":[1.2e14,1.3e14,1.4e14]},"x":"` +
	strings.Repeat("p", 13) + `"}`)

var benchSeq atomic.Int64

func benchStream() string { return fmt.Sprintf("run-bench%d", benchSeq.Add(1)) }

func benchEvents(n int) []events.Event {
	evs := make([]events.Event, n)
	for i := range evs {
		evs[i] = events.Event{
			ID:       events.NewID(),
			Type:     "TelemetryRecorded.v1",
			Data:     benchPayload,
			Metadata: events.Metadata{OrgID: "org-a", UserID: "u-1", Role: "engineer", CorrelationID: "c-1"},
		}
	}
	return evs
}

// latencies collects per-operation durations and reports p50 and p99.
type latencies []time.Duration

func (l latencies) report(b *testing.B, perOp int) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(l)))) - 1
		return float64(l[max(i, 0)].Microseconds())
	}
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(float64(len(l)*perOp)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkAppend(b *testing.B) {
	for _, sync := range []bool{false, true} {
		s := openStore(b, b.TempDir(), sync)
		gs := openGroupStore(b, b.TempDir(), sync)
		js := s.JetStream()
		name := fmt.Sprintf("sync=%v", sync)

		one := func(s *jetstream.Store) func(b *testing.B) {
			return func(b *testing.B) {
				stream := benchStream()
				evs := benchEvents(b.N)
				lat := make(latencies, 0, b.N)
				ctx := context.Background()
				exp := events.ExpectNoStream
				b.ResetTimer()
				for i := range b.N {
					t0 := time.Now()
					res, err := s.Append(ctx, stream, exp, evs[i])
					if err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
					exp = events.ExpectRevision(res.Revision)
				}
				lat.report(b, 1)
			}
		}
		b.Run(name+"/store", one(s))
		// One writer: every append is a lone commit (the committer's
		// goroutine hop is what it adds).
		b.Run(name+"/groupcommit", one(gs))

		raw := func(msgID bool) func(b *testing.B) {
			return func(b *testing.B) {
				subj := "ev.run." + strings.TrimPrefix(benchStream(), "run-")
				lat := make(latencies, 0, b.N)
				ctx := context.Background()
				var last uint64
				b.ResetTimer()
				for range b.N {
					t0 := time.Now()
					m := nats.NewMsg(subj)
					m.Data = benchPayload
					m.Header.Set("Nats-Expected-Last-Subject-Sequence", strconv.FormatUint(last, 10))
					if msgID {
						m.Header.Set(nats.MsgIdHdr, events.NewID())
					}
					ack, err := js.PublishMsg(ctx, m)
					if err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
					last = ack.Sequence
				}
				lat.report(b, 1)
			}
		}
		b.Run(name+"/raw", raw(false))
		b.Run(name+"/raw_msgid", raw(true))

		b.Run(name+"/store_batch10", func(b *testing.B) {
			stream := benchStream()
			evs := benchEvents(10 * b.N)
			lat := make(latencies, 0, b.N)
			ctx := context.Background()
			exp := events.ExpectNoStream
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				res, err := s.Append(ctx, stream, exp, evs[10*i:10*i+10]...)
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
				exp = events.ExpectRevision(res.Revision)
			}
			lat.report(b, 10)
		})

		b.Run(name+"/raw_batch10", func(b *testing.B) {
			subj := "ev.run." + strings.TrimPrefix(benchStream(), "run-")
			lat := make(latencies, 0, b.N)
			ctx := context.Background()
			var last uint64
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				msgs := make([]*nats.Msg, 10)
				for j := range msgs {
					msgs[j] = nats.NewMsg(subj)
					msgs[j].Data = benchPayload
				}
				msgs[0].Header.Set("Nats-Expected-Last-Subject-Sequence", strconv.FormatUint(last, 10))
				ack, err := jetstreamext.PublishMsgBatch(ctx, js, msgs)
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
				last = ack.Sequence
			}
			lat.report(b, 10)
		})
	}
}

// fill appends n events to each of streams, round robin in batches of
// batch, so the streams interleave in the log.
func fill(b *testing.B, s *jetstream.Store, streams []string, n, batch int) {
	b.Helper()
	ctx := context.Background()
	exp := make([]events.Expected, len(streams))
	for i := range exp {
		exp[i] = events.ExpectNoStream
	}
	for done := 0; done < n; done += batch {
		for i, stream := range streams {
			res, err := s.Append(ctx, stream, exp[i], benchEvents(min(batch, n-done))...)
			if err != nil {
				b.Fatal(err)
			}
			exp[i] = events.ExpectRevision(res.Revision)
		}
	}
}

// rawRead reads count messages on filter with an ordered consumer.
func rawRead(b *testing.B, js natsjs.JetStream, filter string, count int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, jetstream.DefaultStream, natsjs.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		b.Fatal(err)
	}
	it, err := cons.Messages()
	if err != nil {
		b.Fatal(err)
	}
	defer it.Stop()
	for range count {
		if _, err := it.Next(natsjs.NextContext(ctx)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadStream3000(b *testing.B) {
	s := openStore(b, b.TempDir(), false)
	fill(b, s, []string{"run-read3000", "run-other"}, 3000, 1) // one message per event, as raw reads them
	ctx := context.Background()
	b.Run("store_forwards", func(b *testing.B) {
		cpu := cpuNow()
		for range b.N {
			recs, err := s.ReadStream(ctx, "run-read3000", events.Forwards, 0, 0)
			if err != nil || len(recs) != 3000 {
				b.Fatalf("ReadStream = %d, %v", len(recs), err)
			}
		}
		b.ReportMetric(3000*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		reportCPU(b, cpu, 3000*b.N)
	})
	b.Run("store_backwards", func(b *testing.B) {
		cpu := cpuNow()
		for range b.N {
			recs, err := s.ReadStream(ctx, "run-read3000", events.Backwards, math.MaxUint64, 0)
			if err != nil || len(recs) != 3000 {
				b.Fatalf("ReadStream = %d, %v", len(recs), err)
			}
		}
		b.ReportMetric(3000*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		reportCPU(b, cpu, 3000*b.N)
	})
	b.Run("store_tail100_from_2900", func(b *testing.B) {
		cpu := cpuNow()
		for range b.N {
			recs, err := s.ReadStream(ctx, "run-read3000", events.Forwards, 2900, 0)
			if err != nil || len(recs) != 100 {
				b.Fatalf("ReadStream = %d, %v", len(recs), err)
			}
		}
		reportCPU(b, cpu, 100*b.N)
	})
	b.Run("raw_ordered_consumer", func(b *testing.B) {
		cpu := cpuNow()
		for range b.N {
			rawRead(b, s.JetStream(), "ev.run.read3000.>", 3000)
		}
		b.ReportMetric(3000*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		reportCPU(b, cpu, 3000*b.N)
	})
	b.Run("raw_batch_get", func(b *testing.B) {
		cpu := cpuNow()
		for range b.N {
			n := 0
			for from := uint64(1); n < 3000; {
				it, err := jetstreamext.GetBatch(ctx, s.JetStream(), jetstream.DefaultStream, 1000,
					jetstreamext.GetBatchSeq(from), jetstreamext.GetBatchSubject("ev.run.read3000.>"))
				if err != nil {
					b.Fatal(err)
				}
				for m, err := range it {
					if err != nil {
						b.Fatal(err)
					}
					n++
					from = m.Sequence + 1
				}
			}
		}
		b.ReportMetric(3000*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		reportCPU(b, cpu, 3000*b.N)
	})
}

func BenchmarkReplay100k(b *testing.B) {
	const total = 100_000
	s := openStore(b, b.TempDir(), false)
	streams := make([]string, 100)
	for i := range streams {
		streams[i] = fmt.Sprintf("run-replay%d", i)
	}
	fill(b, s, streams, total/len(streams), 1) // one message per event, as raw reads them
	ctx := context.Background()
	b.Run("store_ReadAll", func(b *testing.B) {
		cpu := cpuNow()
		for range b.N {
			recs, err := s.ReadAll(ctx, 0, events.Filter{}, 0)
			if err != nil || len(recs) != total {
				b.Fatalf("ReadAll = %d, %v", len(recs), err)
			}
		}
		b.ReportMetric(total*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		reportCPU(b, cpu, total*b.N)
	})
	b.Run("store_Subscribe", func(b *testing.B) {
		cpu := cpuNow()
		for range b.N {
			sub, err := s.Subscribe(ctx, 0, events.Filter{Categories: []string{"run"}})
			if err != nil {
				b.Fatal(err)
			}
			n, err := eventstest.CatchUp(ctx, sub)
			if err != nil {
				b.Fatal(err)
			}
			sub.Close()
			if n != total {
				b.Fatalf("Subscribe delivered %d before caught-up, want %d", n, total)
			}
		}
		b.ReportMetric(total*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		reportCPU(b, cpu, total*b.N)
	})
	b.Run("raw_ordered_consumer", func(b *testing.B) {
		cpu := cpuNow()
		for range b.N {
			rawRead(b, s.JetStream(), "ev.>", total)
		}
		b.ReportMetric(total*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		reportCPU(b, cpu, total*b.N)
	})
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
