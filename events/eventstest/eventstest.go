// Package eventstest is the conformance suite of the events.Store port.
// Every store (events/jetstream, events/kurrent, events/memory) runs it, so
// code written against the port behaves the same on each, much like the
// Akka Persistence TCK:
//
//	func TestConformance(t *testing.T) {
//		eventstest.Run(t, eventstest.Harness{
//			Open:   func(t *testing.T) events.Store { … a fresh, empty store … },
//			Reopen: func(t *testing.T, s events.Store) events.Store { … },
//		})
//	}
//
// The suite covers expected revisions and their typed conflicts, racing
// writers, idempotent retries, atomic multi-event appends, reads both
// ways, reads over all streams with filters, catch-up subscriptions (also
// while appends go on), a 10,000-event stream, restarts, invalid input and
// closing.
package eventstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/spectra-fab/spectra/events"
)

// Harness tells the suite how to get stores.
type Harness struct {
	// Open returns a fresh, empty store; the harness cleans it up with
	// t.Cleanup. The suite may Close it earlier, so Close must be
	// idempotent.
	Open func(t *testing.T) events.Store
	// Reopen closes s and opens a store on the same data, as a restarted
	// process would. Nil skips the restart test.
	Reopen func(t *testing.T, s events.Store) events.Store
}

// timeout bounds every blocking call of the suite, so a broken store fails
// instead of hanging.
const timeout = 20 * time.Second

// Run runs the whole suite against the stores h makes.
func Run(t *testing.T, h Harness) {
	t.Run("AppendAndRead", func(t *testing.T) { testAppendAndRead(t, h) })
	t.Run("ExpectedRevision", func(t *testing.T) { testExpectedRevision(t, h) })
	t.Run("ConcurrentAppenders", func(t *testing.T) { testConcurrentAppenders(t, h) })
	t.Run("Idempotency", func(t *testing.T) { testIdempotency(t, h) })
	t.Run("MultiEventAppend", func(t *testing.T) { testMultiEventAppend(t, h) })
	t.Run("ReadStream", func(t *testing.T) { testReadStream(t, h) })
	t.Run("ReadAll", func(t *testing.T) { testReadAll(t, h) })
	t.Run("Subscribe", func(t *testing.T) { testSubscribe(t, h) })
	t.Run("LargeStream", func(t *testing.T) { testLargeStream(t, h) })
	t.Run("Restart", func(t *testing.T) { testRestart(t, h) })
	t.Run("Invalid", func(t *testing.T) { testInvalid(t, h) })
	t.Run("Close", func(t *testing.T) { testClose(t, h) })
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

var seq struct {
	sync.Mutex
	n int
}

// newEvent makes an event of a type chosen by kind ("queued", "started",
// "completed", "denied") for org.
func newEvent(t testing.TB, kind, org string) events.Event {
	t.Helper()
	seq.Lock()
	seq.n++
	n := seq.n
	seq.Unlock()
	var p events.Payload
	switch kind {
	case "queued":
		p = events.RunQueued{JobID: fmt.Sprintf("job-%d", n), Queue: "ion"}
	case "started":
		p = events.RunStarted{JobID: fmt.Sprintf("job-%d", n), Attempt: 1, Seed: int64(n)}
	case "completed":
		p = events.RunCompleted{JobID: fmt.Sprintf("job-%d", n), Step: n, Result: json.RawMessage(`{"dose":1.5e15}`)}
	case "denied":
		p = events.AccessDenied{Status: 403, Method: "GET", Path: fmt.Sprintf("/jobs/%d", n)}
	default:
		t.Fatalf("newEvent: unknown kind %q", kind)
	}
	md := events.Metadata{OrgID: org, UserID: "u-1", Role: "engineer", RequestID: fmt.Sprintf("req-%d", n), CorrelationID: "corr-\"quoted\"\n"}
	ev, err := events.New(p, md)
	if err != nil {
		t.Fatalf("events.New: %v", err)
	}
	return ev
}

func newEvents(t testing.TB, n int) []events.Event {
	t.Helper()
	kinds := []string{"queued", "started", "completed"}
	evs := make([]events.Event, n)
	for i := range evs {
		evs[i] = newEvent(t, kinds[i%len(kinds)], "org-a")
	}
	return evs
}

func mustAppend(t testing.TB, s events.Store, stream string, exp events.Expected, evs ...events.Event) events.AppendResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res, err := s.Append(ctx, stream, exp, evs...)
	if err != nil {
		t.Fatalf("Append(%s, %v, %d events) = %v", stream, exp, len(evs), err)
	}
	return res
}

func mustReadStream(t testing.TB, s events.Store, stream string, dir events.Direction, from uint64, limit int) []events.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	recs, err := s.ReadStream(ctx, stream, dir, from, limit)
	if err != nil {
		t.Fatalf("ReadStream(%s, %v, %d, %d) = %v", stream, dir, from, limit, err)
	}
	return recs
}

func mustReadAll(t testing.TB, s events.Store, after uint64, f events.Filter, limit int) []events.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	recs, err := s.ReadAll(ctx, after, f, limit)
	if err != nil {
		t.Fatalf("ReadAll(%d, %+v, %d) = %v", after, f, limit, err)
	}
	return recs
}

// checkRecords checks that recs are evs stored in stream from revision
// first on, with the envelope intact.
func checkRecords(t testing.TB, recs []events.Record, stream string, first uint64, evs []events.Event) {
	t.Helper()
	if len(recs) != len(evs) {
		t.Fatalf("got %d records, want %d", len(recs), len(evs))
	}
	for i, rec := range recs {
		ev := evs[i]
		if rec.ID != ev.ID || rec.Stream != stream || rec.Revision != first+uint64(i) || rec.Type != ev.Type ||
			string(rec.Data) != string(ev.Data) || rec.Metadata != ev.Metadata {
			t.Fatalf("record %d = %+v,\nwant id %s stream %s revision %d type %s data %s metadata %+v",
				i, rec, ev.ID, stream, first+uint64(i), ev.Type, ev.Data, ev.Metadata)
		}
		if rec.Time.IsZero() || time.Since(rec.Time) > time.Hour || time.Until(rec.Time) > time.Minute {
			t.Fatalf("record %d time = %v, want about now", i, rec.Time)
		}
		if rec.Position == 0 {
			t.Fatalf("record %d position = 0, want > 0", i)
		}
		if i > 0 && rec.Position <= recs[i-1].Position {
			t.Fatalf("record %d position %d <= previous %d", i, rec.Position, recs[i-1].Position)
		}
	}
}

func revisions(recs []events.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Revision
	}
	return out
}

func ids(recs []events.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func eventIDs(evs []events.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func testAppendAndRead(t *testing.T, h Harness) {
	s := h.Open(t)
	evs := newEvents(t, 3)
	res := mustAppend(t, s, "run-basic", events.ExpectNoStream, evs[0])
	if res.Revision != 0 || res.Position == 0 {
		t.Fatalf("first Append = %+v, want revision 0 and a position > 0", res)
	}
	res2 := mustAppend(t, s, "run-basic", events.ExpectRevision(0), evs[1:]...)
	if res2.Revision != 2 || res2.Position <= res.Position {
		t.Fatalf("second Append = %+v, want revision 2 and position > %d", res2, res.Position)
	}
	recs := mustReadStream(t, s, "run-basic", events.Forwards, 0, 0)
	checkRecords(t, recs, "run-basic", 0, evs)
	if recs[0].Position != res.Position || recs[2].Position != res2.Position {
		t.Errorf("positions %d, %d; want the appends' %d, %d", recs[0].Position, recs[2].Position, res.Position, res2.Position)
	}
	// The stored type decodes back to the payload.
	if _, err := events.Decode(recs[1]); err != nil {
		t.Errorf("Decode(%s) = %v", recs[1].Type, err)
	}
	// Reads return the same records every time, Time included.
	again := mustReadStream(t, s, "run-basic", events.Forwards, 0, 0)
	if d := cmp.Diff(recs, again); d != "" {
		t.Errorf("second ReadStream differs (-first +second):\n%s", d)
	}
	all := mustReadAll(t, s, 0, events.Filter{}, 0)
	if d := cmp.Diff(recs, all); d != "" {
		t.Errorf("ReadAll differs from ReadStream (-stream +all):\n%s", d)
	}
}

func wantConflict(t *testing.T, err error, stream string, exp events.Expected, actual int64) {
	t.Helper()
	if !errors.Is(err, events.ErrConflict) {
		t.Fatalf("Append(%s, %v) = %v, want ErrConflict", stream, exp, err)
	}
	var ce *events.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("Append(%s, %v) = %v (%T), want a *events.ConflictError", stream, exp, err, err)
	}
	if ce.Stream != stream || ce.Expected != exp || ce.Actual != actual {
		t.Fatalf("ConflictError = %+v, want stream %s expected %v actual %d", ce, stream, exp, actual)
	}
}

func testExpectedRevision(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxFor(t)
	type step struct {
		exp    events.Expected
		ok     bool
		rev    uint64 // the revision on success
		actual int64  // the conflict's actual revision otherwise
	}
	tests := []struct {
		name  string
		given int // events already in the stream
		step  step
	}{
		{"any_on_new", 0, step{exp: events.ExpectAny, ok: true, rev: 0}},
		{"any_on_existing", 3, step{exp: events.ExpectAny, ok: true, rev: 3}},
		{"no_stream_on_new", 0, step{exp: events.ExpectNoStream, ok: true, rev: 0}},
		{"no_stream_on_existing", 2, step{exp: events.ExpectNoStream, actual: 1}},
		{"exact_right", 2, step{exp: events.ExpectRevision(1), ok: true, rev: 2}},
		{"exact_zero_right", 1, step{exp: events.ExpectRevision(0), ok: true, rev: 1}},
		{"exact_behind", 3, step{exp: events.ExpectRevision(1), actual: 2}},
		{"exact_ahead", 2, step{exp: events.ExpectRevision(5), actual: 1}},
		{"exact_on_missing", 0, step{exp: events.ExpectRevision(0), actual: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := "run-exp_" + tt.name
			if tt.given > 0 {
				mustAppend(t, s, stream, events.ExpectNoStream, newEvents(t, tt.given)...)
			}
			ev := newEvent(t, "queued", "org-a")
			res, err := s.Append(ctx, stream, tt.step.exp, ev)
			if tt.step.ok {
				if err != nil {
					t.Fatalf("Append(%s, %v) = %v, want success", stream, tt.step.exp, err)
				}
				if res.Revision != tt.step.rev {
					t.Fatalf("Append(%s, %v) revision = %d, want %d", stream, tt.step.exp, res.Revision, tt.step.rev)
				}
				recs := mustReadStream(t, s, stream, events.Forwards, 0, 0)
				if got := recs[len(recs)-1]; got.ID != ev.ID || got.Position != res.Position {
					t.Fatalf("last record = %s at %d, want %s at %d", got.ID, got.Position, ev.ID, res.Position)
				}
				return
			}
			wantConflict(t, err, stream, tt.step.exp, tt.step.actual)
			// A refused append writes nothing.
			recs, err := s.ReadStream(ctx, stream, events.Forwards, 0, 0)
			if tt.given == 0 {
				if !errors.Is(err, events.ErrNotFound) {
					t.Fatalf("ReadStream after refused append = %d records, %v; want ErrNotFound", len(recs), err)
				}
				return
			}
			if err != nil || len(recs) != tt.given {
				t.Fatalf("ReadStream after refused append = %d records, %v; want %d", len(recs), err, tt.given)
			}
		})
	}
}

func testConcurrentAppenders(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxFor(t)
	const writers, revs = 4, 25
	const stream = "run-race"
	type outcome struct {
		writer int
		rev    uint64
		id     string
	}
	var (
		mu       sync.Mutex
		wins     []outcome
		failures []error
	)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			<-start
			// Each writer tries every revision in turn, as a stale
			// writer would, expecting the one before.
			for rev := range uint64(revs) {
				exp := events.ExpectNoStream
				if rev > 0 {
					exp = events.ExpectRevision(rev - 1)
				}
				ev := newEvent(t, "queued", "org-a")
				res, err := s.Append(ctx, stream, exp, ev)
				mu.Lock()
				switch {
				case err == nil:
					wins = append(wins, outcome{w, res.Revision, ev.ID})
				case !errors.Is(err, events.ErrConflict):
					failures = append(failures, err)
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	for _, err := range failures {
		t.Errorf("Append = %v, want success or ErrConflict", err)
	}
	if len(wins) != revs {
		t.Fatalf("%d appends won, want exactly one per revision (%d)", len(wins), revs)
	}
	byRev := map[uint64]outcome{}
	for _, w := range wins {
		if prev, dup := byRev[w.rev]; dup {
			t.Fatalf("revision %d won twice: by writers %d and %d", w.rev, prev.writer, w.writer)
		}
		byRev[w.rev] = w
	}
	recs := mustReadStream(t, s, stream, events.Forwards, 0, 0)
	if len(recs) != revs {
		t.Fatalf("stream has %d records, want %d", len(recs), revs)
	}
	for _, rec := range recs {
		if w := byRev[rec.Revision]; w.id != rec.ID {
			t.Errorf("revision %d holds %s, want the winner's %s", rec.Revision, rec.ID, w.id)
		}
	}
}

func testIdempotency(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxFor(t)
	retry := func(t *testing.T, stream string, exp events.Expected, want events.AppendResult, evs ...events.Event) {
		t.Helper()
		got, err := s.Append(ctx, stream, exp, evs...)
		if err != nil {
			t.Fatalf("retried Append(%s, %v) = %v, want the original result %+v", stream, exp, err, want)
		}
		if got != want {
			t.Fatalf("retried Append(%s, %v) = %+v, want the original %+v", stream, exp, got, want)
		}
	}
	wantLen := func(t *testing.T, stream string, n int) {
		t.Helper()
		if recs := mustReadStream(t, s, stream, events.Forwards, 0, 0); len(recs) != n {
			t.Fatalf("stream %s has %d records (%v), want %d: written twice?", stream, len(recs), ids(recs), n)
		}
	}
	t.Run("single_no_stream", func(t *testing.T) {
		ev := newEvent(t, "queued", "org-a")
		res := mustAppend(t, s, "run-idem1", events.ExpectNoStream, ev)
		retry(t, "run-idem1", events.ExpectNoStream, res, ev)
		wantLen(t, "run-idem1", 1)
	})
	t.Run("single_exact", func(t *testing.T) {
		mustAppend(t, s, "run-idem2", events.ExpectNoStream, newEvent(t, "queued", "org-a"))
		ev := newEvent(t, "started", "org-a")
		res := mustAppend(t, s, "run-idem2", events.ExpectRevision(0), ev)
		retry(t, "run-idem2", events.ExpectRevision(0), res, ev)
		retry(t, "run-idem2", events.ExpectRevision(0), res, ev)
		wantLen(t, "run-idem2", 2)
	})
	t.Run("single_any", func(t *testing.T) {
		mustAppend(t, s, "run-idem3", events.ExpectNoStream, newEvent(t, "queued", "org-a"))
		ev := newEvent(t, "started", "org-a")
		res := mustAppend(t, s, "run-idem3", events.ExpectAny, ev)
		retry(t, "run-idem3", events.ExpectAny, res, ev)
		wantLen(t, "run-idem3", 2)
	})
	t.Run("batch", func(t *testing.T) {
		mustAppend(t, s, "run-idem4", events.ExpectNoStream, newEvent(t, "queued", "org-a"))
		evs := newEvents(t, 4)
		res := mustAppend(t, s, "run-idem4", events.ExpectRevision(0), evs...)
		retry(t, "run-idem4", events.ExpectRevision(0), res, evs...)
		wantLen(t, "run-idem4", 5)
		evs2 := newEvents(t, 3)
		res2 := mustAppend(t, s, "run-idem4", events.ExpectAny, evs2...)
		retry(t, "run-idem4", events.ExpectAny, res2, evs2...)
		wantLen(t, "run-idem4", 8)
	})
	t.Run("after_later_appends", func(t *testing.T) {
		// A retry of an append with an exact expectation is recognised
		// even after the stream moved on.
		evs := newEvents(t, 2)
		res := mustAppend(t, s, "run-idem5", events.ExpectNoStream, evs...)
		mustAppend(t, s, "run-idem5", events.ExpectRevision(1), newEvents(t, 3)...)
		retry(t, "run-idem5", events.ExpectNoStream, res, evs...)
		wantLen(t, "run-idem5", 5)
		other := mustAppend(t, s, "run-idem5", events.ExpectRevision(4), newEvents(t, 1)...)
		if other.Revision != 5 {
			t.Fatalf("Append after retry = revision %d, want 5", other.Revision)
		}
	})
	t.Run("partial_overlap_conflicts", func(t *testing.T) {
		evs := newEvents(t, 2)
		mustAppend(t, s, "run-idem6", events.ExpectNoStream, evs...)
		_, err := s.Append(ctx, "run-idem6", events.ExpectNoStream, evs[0], newEvent(t, "completed", "org-a"))
		wantConflict(t, err, "run-idem6", events.ExpectNoStream, 1)
		wantLen(t, "run-idem6", 2)
	})
}

func testMultiEventAppend(t *testing.T, h Harness) {
	t.Run("contiguous", func(t *testing.T) {
		s := h.Open(t)
		evs := newEvents(t, 7)
		res := mustAppend(t, s, "run-multi", events.ExpectNoStream, evs...)
		if res.Revision != 6 {
			t.Fatalf("Append of 7 = revision %d, want 6", res.Revision)
		}
		recs := mustReadStream(t, s, "run-multi", events.Forwards, 0, 0)
		checkRecords(t, recs, "run-multi", 0, evs)
		if recs[6].Position != res.Position {
			t.Errorf("last position = %d, want the append's %d", recs[6].Position, res.Position)
		}
	})
	t.Run("refused_writes_nothing", func(t *testing.T) {
		s := h.Open(t)
		mustAppend(t, s, "run-multi", events.ExpectNoStream, newEvents(t, 2)...)
		_, err := s.Append(ctx(t), "run-multi", events.ExpectRevision(0), newEvents(t, 5)...)
		wantConflict(t, err, "run-multi", events.ExpectRevision(0), 1)
		bad := newEvents(t, 3)
		bad[2].Type = ""
		if _, err := s.Append(ctx(t), "run-multi", events.ExpectRevision(1), bad...); !errors.Is(err, events.ErrInvalid) {
			t.Fatalf("Append with an untyped event = %v, want ErrInvalid", err)
		}
		if recs := mustReadAll(t, s, 0, events.Filter{}, 0); len(recs) != 2 {
			t.Fatalf("log has %d records after refused appends, want 2", len(recs))
		}
	})
	t.Run("atomic_under_concurrency", func(t *testing.T) {
		// Writers append batches to shared streams at once; every batch
		// must land whole, in consecutive revisions, with no other event
		// between its events in the global order.
		s := h.Open(t)
		c := ctx(t)
		const writers, batches, size = 3, 8, 5
		var wg sync.WaitGroup
		errs := make(chan error, writers*batches)
		for w := range writers {
			wg.Go(func() {
				for b := range batches {
					stream := fmt.Sprintf("run-atomic%d", b%2)
					evs := newEvents(t, size)
					for i := range evs {
						evs[i].Metadata.RequestID = fmt.Sprintf("w%d-b%d", w, b)
					}
					if _, err := s.Append(c, stream, events.ExpectAny, evs...); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("Append(ExpectAny) = %v", err)
		}
		all := mustReadAll(t, s, 0, events.Filter{}, 0)
		if len(all) != writers*batches*size {
			t.Fatalf("log has %d records, want %d", len(all), writers*batches*size)
		}
		for i := 0; i < len(all); i += size {
			first := all[i]
			for j := 1; j < size; j++ {
				rec := all[i+j]
				if rec.Metadata.RequestID != first.Metadata.RequestID || rec.Stream != first.Stream ||
					rec.Revision != first.Revision+uint64(j) {
					t.Fatalf("record %d (%s rev %d of batch %s) breaks the batch starting at %d (%s rev %d of %s)",
						i+j, rec.Stream, rec.Revision, rec.Metadata.RequestID, i, first.Stream, first.Revision, first.Metadata.RequestID)
				}
			}
		}
	})
}

func ctx(t *testing.T) context.Context { return ctxFor(t) }

func testReadStream(t *testing.T, h Harness) {
	s := h.Open(t)
	c := ctx(t)
	evs := newEvents(t, 10)
	mustAppend(t, s, "run-read", events.ExpectNoStream, evs[:4]...)
	mustAppend(t, s, "tuning-other", events.ExpectNoStream, newEvents(t, 3)...) // interleaved
	mustAppend(t, s, "run-read", events.ExpectRevision(3), evs[4:]...)
	all := mustReadStream(t, s, "run-read", events.Forwards, 0, 0)
	checkRecords(t, all, "run-read", 0, evs)
	rev := func(xs ...uint64) []uint64 { return xs }
	tests := []struct {
		name  string
		dir   events.Direction
		from  uint64
		limit int
		want  []uint64
	}{
		{"forwards_all", events.Forwards, 0, 0, rev(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
		{"forwards_from", events.Forwards, 7, 0, rev(7, 8, 9)},
		{"forwards_limit", events.Forwards, 0, 3, rev(0, 1, 2)},
		{"forwards_from_limit", events.Forwards, 4, 2, rev(4, 5)},
		{"forwards_limit_past_end", events.Forwards, 8, 5, rev(8, 9)},
		{"forwards_from_last", events.Forwards, 9, 0, rev(9)},
		{"forwards_past_end", events.Forwards, 10, 0, rev()},
		{"backwards_from_end", events.Backwards, math.MaxUint64, 0, rev(9, 8, 7, 6, 5, 4, 3, 2, 1, 0)},
		{"backwards_from_end_limit", events.Backwards, math.MaxUint64, 3, rev(9, 8, 7)},
		{"backwards_from", events.Backwards, 5, 0, rev(5, 4, 3, 2, 1, 0)},
		{"backwards_from_limit", events.Backwards, 5, 3, rev(5, 4, 3)},
		{"backwards_from_zero", events.Backwards, 0, 0, rev(0)},
		{"backwards_past_end", events.Backwards, 42, 2, rev(9, 8)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := mustReadStream(t, s, "run-read", tt.dir, tt.from, tt.limit)
			if d := cmp.Diff(tt.want, revisions(recs), cmpNilEmpty); d != "" {
				t.Fatalf("ReadStream(%v, %d, %d) revisions (-want +got):\n%s", tt.dir, tt.from, tt.limit, d)
			}
			for _, rec := range recs {
				if d := cmp.Diff(all[rec.Revision], rec); d != "" {
					t.Fatalf("record %d differs from the forward read (-want +got):\n%s", rec.Revision, d)
				}
			}
		})
	}
	t.Run("missing_stream", func(t *testing.T) {
		for _, dir := range []events.Direction{events.Forwards, events.Backwards} {
			recs, err := s.ReadStream(c, "run-missing", dir, 0, 0)
			if !errors.Is(err, events.ErrNotFound) {
				t.Errorf("ReadStream(run-missing, %v) = %d records, %v; want ErrNotFound", dir, len(recs), err)
			}
		}
		// A stream whose name extends an existing one is still missing.
		if _, err := s.ReadStream(c, "run-rea", events.Forwards, 0, 0); !errors.Is(err, events.ErrNotFound) {
			t.Errorf("ReadStream(run-rea) = %v, want ErrNotFound", err)
		}
	})
}

func testReadAll(t *testing.T, h Harness) {
	s := h.Open(t)
	type app struct {
		stream string
		kind   string
		org    string
	}
	apps := []app{
		{"run-a", "queued", "org-a"}, {"tuning-x", "completed", "org-b"}, {"run-b", "queued", "org-b"},
		{"run-a", "started", "org-a"}, {"audit-org-a", "denied", "org-a"}, {"run-b", "started", "org-b"},
		{"run-a", "completed", "org-a"}, {"tuning-x", "completed", "org-a"}, {"run-b", "completed", "org-b"},
		{"apikey-k1", "denied", ""},
	}
	var want []events.Record
	for _, a := range apps {
		ev := newEvent(t, a.kind, a.org)
		res := mustAppend(t, s, a.stream, events.ExpectAny, ev)
		want = append(want, events.Record{ID: ev.ID, Stream: a.stream, Revision: res.Revision, Position: res.Position})
	}
	all := mustReadAll(t, s, 0, events.Filter{}, 0)
	if d := cmp.Diff(eventIDsOf(want), ids(all)); d != "" {
		t.Fatalf("ReadAll ids (-want +got):\n%s", d)
	}
	for i, rec := range all {
		if rec.Position != want[i].Position || rec.Revision != want[i].Revision || rec.Stream != want[i].Stream {
			t.Errorf("ReadAll[%d] = %s rev %d pos %d, want %s rev %d pos %d", i, rec.Stream, rec.Revision, rec.Position,
				want[i].Stream, want[i].Revision, want[i].Position)
		}
		if i > 0 && rec.Position <= all[i-1].Position {
			t.Errorf("ReadAll[%d] position %d not after %d", i, rec.Position, all[i-1].Position)
		}
	}
	for _, stream := range []string{"run-a", "run-b", "tuning-x"} {
		for _, rec := range mustReadStream(t, s, stream, events.Forwards, 0, 0) {
			i := slices.IndexFunc(all, func(r events.Record) bool { return r.ID == rec.ID })
			if d := cmp.Diff(rec, all[i]); d != "" {
				t.Errorf("ReadAll record differs from ReadStream's (-stream +all):\n%s", d)
			}
		}
	}
	pick := func(idx ...int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, all[i].ID)
		}
		return out
	}
	tests := []struct {
		name  string
		after uint64
		f     events.Filter
		limit int
		want  []string
	}{
		{"after_exclusive", all[3].Position, events.Filter{}, 0, pick(4, 5, 6, 7, 8, 9)},
		{"after_last", all[9].Position, events.Filter{}, 0, nil},
		{"after_far", all[9].Position + 1000, events.Filter{}, 0, nil},
		{"limit", 0, events.Filter{}, 4, pick(0, 1, 2, 3)},
		{"after_limit", all[1].Position, events.Filter{}, 2, pick(2, 3)},
		{"category", 0, events.Filter{Categories: []string{"run"}}, 0, pick(0, 2, 3, 5, 6, 8)},
		{"categories", 0, events.Filter{Categories: []string{"tuning", "audit"}}, 0, pick(1, 4, 7)},
		{"category_none", 0, events.Filter{Categories: []string{"session"}}, 0, nil},
		{"category_prefix_is_not_category", 0, events.Filter{Categories: []string{"ru"}}, 0, nil},
		{"type", 0, events.Filter{Types: []string{events.TypeRunCompleted}}, 0, pick(1, 6, 7, 8)},
		{"types", 0, events.Filter{Types: []string{events.TypeRunQueued, events.TypeAccessDenied}}, 0, pick(0, 2, 4, 9)},
		{"org", 0, events.Filter{OrgID: "org-a"}, 0, pick(0, 3, 4, 6, 7)},
		{"combined", 0, events.Filter{Categories: []string{"run", "tuning"}, Types: []string{events.TypeRunCompleted}, OrgID: "org-b"}, 0, pick(1, 8)},
		{"filter_after_limit", all[0].Position, events.Filter{Categories: []string{"run"}}, 2, pick(2, 3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustReadAll(t, s, tt.after, tt.f, tt.limit)
			if d := cmp.Diff(tt.want, ids(got), cmpNilEmpty); d != "" {
				t.Fatalf("ReadAll(%d, %+v, %d) ids (-want +got):\n%s", tt.after, tt.f, tt.limit, d)
			}
		})
	}
}

var cmpNilEmpty = cmpopts.EquateEmpty()

func eventIDsOf(recs []events.Record) []string { return ids(recs) }

// next gets the next item of sub, failing the test after timeout.
func next(t testing.TB, sub events.Subscription) events.Item {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	it, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("Subscription.Next = %v", err)
	}
	return it
}

// collect reads n records from sub, failing on a caught-up item unless
// allowCaughtUp; it returns the records and how many caught-up items came.
func collect(t testing.TB, sub events.Subscription, n int) (recs []events.Record, caughtUp int) {
	t.Helper()
	for len(recs) < n {
		it := next(t, sub)
		if it.CaughtUp {
			caughtUp++
			continue
		}
		recs = append(recs, it.Record)
	}
	return recs, caughtUp
}

func subscribe(t testing.TB, s events.Store, after uint64, f events.Filter) events.Subscription {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sub, err := s.Subscribe(ctx, after, f)
	if err != nil {
		t.Fatalf("Subscribe(%d, %+v) = %v", after, f, err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub
}

// expectQuiet checks that sub delivers nothing more for a short while.
func expectQuiet(t testing.TB, sub events.Subscription) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	it, err := sub.Next(ctx)
	if err == nil {
		t.Fatalf("Subscription.Next = %+v, want nothing more", it)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Subscription.Next = %v, want context.DeadlineExceeded", err)
	}
}

func testSubscribe(t *testing.T, h Harness) {
	t.Run("empty_store_caught_up_at_once", func(t *testing.T) {
		s := h.Open(t)
		sub := subscribe(t, s, 0, events.Filter{})
		if it := next(t, sub); !it.CaughtUp {
			t.Fatalf("first item = %+v, want caught-up", it)
		}
		ev := newEvent(t, "queued", "org-a")
		res := mustAppend(t, s, "run-s", events.ExpectNoStream, ev)
		if it := next(t, sub); it.CaughtUp || it.Record.ID != ev.ID || it.Record.Position != res.Position {
			t.Fatalf("live item = %+v, want record %s at %d", it, ev.ID, res.Position)
		}
	})
	t.Run("catch_up_then_live", func(t *testing.T) {
		s := h.Open(t)
		mustAppend(t, s, "run-s1", events.ExpectNoStream, newEvents(t, 6)...)
		mustAppend(t, s, "run-s2", events.ExpectNoStream, newEvents(t, 4)...)
		stored := mustReadAll(t, s, 0, events.Filter{}, 0)
		sub := subscribe(t, s, 0, events.Filter{})
		got, cu := collect(t, sub, len(stored))
		if cu != 0 {
			t.Fatalf("caught-up came before the stored records ended")
		}
		if d := cmp.Diff(stored, got); d != "" {
			t.Fatalf("catch-up records differ from ReadAll (-all +sub):\n%s", d)
		}
		if it := next(t, sub); !it.CaughtUp {
			t.Fatalf("item after the stored records = %+v, want caught-up", it)
		}
		live := newEvents(t, 3)
		mustAppend(t, s, "run-s1", events.ExpectRevision(5), live[:2]...)
		mustAppend(t, s, "run-s3", events.ExpectNoStream, live[2])
		got, cu = collect(t, sub, 3)
		if cu != 0 || !slices.Equal(ids(got), eventIDs(live)) {
			t.Fatalf("live records = %v (caught-up %d), want %v", ids(got), cu, eventIDs(live))
		}
		if d := cmp.Diff(mustReadAll(t, s, stored[len(stored)-1].Position, events.Filter{}, 0), got); d != "" {
			t.Fatalf("live records differ from ReadAll (-all +sub):\n%s", d)
		}
		expectQuiet(t, sub)
	})
	t.Run("from_position", func(t *testing.T) {
		s := h.Open(t)
		mustAppend(t, s, "run-p", events.ExpectNoStream, newEvents(t, 8)...)
		stored := mustReadAll(t, s, 0, events.Filter{}, 0)
		sub := subscribe(t, s, stored[4].Position, events.Filter{})
		got, _ := collect(t, sub, 3)
		if d := cmp.Diff(ids(stored[5:]), ids(got)); d != "" {
			t.Fatalf("records after position %d (-want +got):\n%s", stored[4].Position, d)
		}
		if it := next(t, sub); !it.CaughtUp {
			t.Fatalf("item = %+v, want caught-up", it)
		}
		// From the last position: caught up at once.
		sub2 := subscribe(t, s, stored[7].Position, events.Filter{})
		if it := next(t, sub2); !it.CaughtUp {
			t.Fatalf("first item from the end = %+v, want caught-up", it)
		}
	})
	t.Run("filter", func(t *testing.T) {
		s := h.Open(t)
		mustAppend(t, s, "tuning-f", events.ExpectNoStream, newEvent(t, "completed", "org-a"))
		f := events.Filter{Categories: []string{"run"}, Types: []string{events.TypeRunCompleted}}
		sub := subscribe(t, s, 0, f)
		if it := next(t, sub); !it.CaughtUp {
			t.Fatalf("first item with nothing matching = %+v, want caught-up", it)
		}
		want := newEvent(t, "completed", "org-a")
		mustAppend(t, s, "run-f", events.ExpectNoStream, newEvent(t, "queued", "org-a"))
		mustAppend(t, s, "tuning-f", events.ExpectAny, newEvent(t, "completed", "org-a"))
		mustAppend(t, s, "run-f", events.ExpectRevision(0), want)
		if it := next(t, sub); it.CaughtUp || it.Record.ID != want.ID {
			t.Fatalf("filtered live item = %+v, want record %s", it, want.ID)
		}
		expectQuiet(t, sub)
		sub2 := subscribe(t, s, 0, events.Filter{OrgID: "org-a", Types: []string{events.TypeRunCompleted}})
		got, _ := collect(t, sub2, 3)
		if it := next(t, sub2); !it.CaughtUp {
			t.Fatalf("item after filtered catch-up = %+v, want caught-up", it)
		}
		if got[2].ID != want.ID || got[0].Stream != "tuning-f" {
			t.Fatalf("org filter delivered %v", ids(got))
		}
	})
	t.Run("append_storm", func(t *testing.T) { testAppendStorm(t, h) })
	t.Run("context_ends_next", func(t *testing.T) {
		s := h.Open(t)
		sub := subscribe(t, s, 0, events.Filter{})
		next(t, sub) // caught up
		c, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		if _, err := sub.Next(c); !errors.Is(err, context.Canceled) {
			t.Fatalf("Next with a cancelled ctx = %v, want context.Canceled", err)
		}
		// The subscription still works afterwards.
		ev := newEvent(t, "queued", "org-a")
		mustAppend(t, s, "run-c", events.ExpectNoStream, ev)
		if it := next(t, sub); it.Record.ID != ev.ID {
			t.Fatalf("Next after a cancelled call = %+v, want %s", it, ev.ID)
		}
	})
	t.Run("close_ends_subscription", func(t *testing.T) {
		s := h.Open(t)
		mustAppend(t, s, "run-c", events.ExpectNoStream, newEvents(t, 2)...)
		sub := subscribe(t, s, 0, events.Filter{})
		next(t, sub)
		blocked := subscribe(t, s, 0, events.Filter{})
		collect(t, blocked, 2)
		next(t, blocked) // caught up, the next call blocks
		done := make(chan error, 1)
		go func() {
			_, err := blocked.Next(ctx(t))
			done <- err
		}()
		time.Sleep(50 * time.Millisecond)
		if err := blocked.Close(); err != nil {
			t.Fatalf("Subscription.Close = %v", err)
		}
		select {
		case err := <-done:
			if !errors.Is(err, events.ErrClosed) {
				t.Fatalf("blocked Next after Close = %v, want ErrClosed", err)
			}
		case <-time.After(timeout):
			t.Fatal("blocked Next did not return after Close")
		}
		if err := sub.Close(); err != nil {
			t.Fatalf("Subscription.Close = %v", err)
		}
		if _, err := sub.Next(ctx(t)); !errors.Is(err, events.ErrClosed) {
			t.Fatalf("Next after Close = %v, want ErrClosed", err)
		}
	})
}

// testAppendStorm subscribes while writers append without pause, and
// checks that each subscriber sees exactly the log: no gap and no
// duplicate around the switch from catch-up to live.
func testAppendStorm(t *testing.T, h Harness) {
	s := h.Open(t)
	c := ctx(t)
	mustAppend(t, s, "run-storm0", events.ExpectNoStream, newEvents(t, 50)...)
	const writers, perWriter = 2, 150
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			stream := fmt.Sprintf("run-storm%d", w+1)
			for i := range perWriter {
				exp := events.ExpectAny
				n := 1 + i%3
				if _, err := s.Append(c, stream, exp, newEvents(t, n)...); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	type result struct {
		recs     []events.Record
		caughtUp int
		err      error
	}
	const subscribers = 3
	results := make([]result, subscribers)
	var target atomic.Int64 // the log's length once the writers are done
	target.Store(-1)
	var subs sync.WaitGroup
	for i := range subscribers {
		subs.Go(func() {
			// Start one subscriber at once, the others a little later,
			// so some switch to live in the middle of the storm.
			time.Sleep(time.Duration(i) * 20 * time.Millisecond)
			sub, err := s.Subscribe(c, 0, events.Filter{Categories: []string{"run"}})
			if err != nil {
				results[i].err = err
				return
			}
			defer sub.Close()
			for {
				// A quiet period once the whole log arrived ends the
				// subscriber; duplicates would show as extra records.
				sc, cancel := context.WithTimeout(c, 300*time.Millisecond)
				it, err := sub.Next(sc)
				cancel()
				if errors.Is(err, context.DeadlineExceeded) && c.Err() == nil {
					if n := target.Load(); n >= 0 && int64(len(results[i].recs)) >= n {
						return
					}
					continue
				}
				if err != nil {
					results[i].err = err
					return
				}
				if it.CaughtUp {
					results[i].caughtUp++
					continue
				}
				results[i].recs = append(results[i].recs, it.Record)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Append during the storm = %v", err)
	}
	all := mustReadAll(t, s, 0, events.Filter{}, 0)
	target.Store(int64(len(all)))
	subs.Wait()
	for i, r := range results {
		if r.err != nil {
			t.Errorf("subscriber %d: %v", i, r.err)
			continue
		}
		if r.caughtUp != 1 {
			t.Errorf("subscriber %d got %d caught-up items, want 1", i, r.caughtUp)
		}
		if d := cmp.Diff(ids(all), ids(r.recs)); d != "" {
			t.Errorf("subscriber %d records differ from the log (-log +sub):\n%s", i, d)
		}
	}
}

func testLargeStream(t *testing.T, h Harness) {
	if testing.Short() {
		t.Skip("10,000 events: skipped with -short")
	}
	s := h.Open(t)
	const total, batch = 10_000, 250
	const stream = "run-large"
	var evs []events.Event
	exp := events.ExpectNoStream
	for len(evs) < total {
		b := newEvents(t, batch)
		res := mustAppend(t, s, stream, exp, b...)
		evs = append(evs, b...)
		if res.Revision != uint64(len(evs)-1) {
			t.Fatalf("Append of batch = revision %d, want %d", res.Revision, len(evs)-1)
		}
		exp = events.ExpectRevision(res.Revision)
	}
	fwd := mustReadStream(t, s, stream, events.Forwards, 0, 0)
	checkRecords(t, fwd, stream, 0, evs)
	back := mustReadStream(t, s, stream, events.Backwards, math.MaxUint64, 0)
	if len(back) != total {
		t.Fatalf("backwards read = %d records, want %d", len(back), total)
	}
	for i, rec := range back {
		if want := fwd[total-1-i]; rec.ID != want.ID || rec.Revision != want.Revision {
			t.Fatalf("backwards[%d] = %s rev %d, want %s rev %d", i, rec.ID, rec.Revision, want.ID, want.Revision)
		}
	}
	tail := mustReadStream(t, s, stream, events.Forwards, 9_990, 0)
	if d := cmp.Diff(fwd[9_990:], tail); d != "" {
		t.Fatalf("tail read (-want +got):\n%s", d)
	}
	mid := mustReadStream(t, s, stream, events.Backwards, 5_000, 10)
	if got := revisions(mid); got[0] != 5_000 || got[9] != 4_991 || len(got) != 10 {
		t.Fatalf("backwards from 5000 limit 10 = %v", got)
	}
	all := mustReadAll(t, s, 0, events.Filter{}, 0)
	if len(all) != total {
		t.Fatalf("ReadAll = %d records, want %d", len(all), total)
	}
}

func testRestart(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("the harness has no Reopen: this store cannot be restarted on the same data")
	}
	s := h.Open(t)
	first := newEvents(t, 5)
	mustAppend(t, s, "run-r1", events.ExpectNoStream, first...)
	mustAppend(t, s, "tuning-r2", events.ExpectNoStream, newEvents(t, 2)...)
	last := newEvent(t, "completed", "org-a")
	lastRes := mustAppend(t, s, "run-r1", events.ExpectRevision(4), last)
	before := mustReadAll(t, s, 0, events.Filter{}, 0)
	beforeStream := mustReadStream(t, s, "run-r1", events.Forwards, 0, 0)

	s = h.Reopen(t, s)
	if d := cmp.Diff(before, mustReadAll(t, s, 0, events.Filter{}, 0)); d != "" {
		t.Fatalf("ReadAll after restart (-before +after):\n%s", d)
	}
	if d := cmp.Diff(beforeStream, mustReadStream(t, s, "run-r1", events.Forwards, 0, 0)); d != "" {
		t.Fatalf("ReadStream after restart (-before +after):\n%s", d)
	}
	// A retry of the last append is still recognised.
	if res, err := s.Append(ctx(t), "run-r1", events.ExpectRevision(4), last); err != nil || res != lastRes {
		t.Fatalf("retried Append after restart = %+v, %v; want %+v", res, err, lastRes)
	}
	// A stale writer is still fenced.
	_, err := s.Append(ctx(t), "run-r1", events.ExpectRevision(4), newEvent(t, "queued", "org-a"))
	wantConflict(t, err, "run-r1", events.ExpectRevision(4), 5)
	// Appends go on at the right revision and position.
	res := mustAppend(t, s, "run-r1", events.ExpectRevision(5), newEvent(t, "queued", "org-a"))
	if res.Revision != 6 || res.Position <= before[len(before)-1].Position {
		t.Fatalf("Append after restart = %+v, want revision 6 and a position after %d", res, before[len(before)-1].Position)
	}
	res = mustAppend(t, s, "run-r3", events.ExpectNoStream, newEvent(t, "queued", "org-a"))
	if res.Revision != 0 {
		t.Fatalf("Append to a new stream after restart = revision %d, want 0", res.Revision)
	}
	sub := subscribe(t, s, 0, events.Filter{})
	got, cu := collect(t, sub, len(before)+2)
	if cu != 0 || !slices.Equal(ids(before), ids(got[:len(before)])) {
		t.Fatalf("subscription after restart = %v (caught-up %d), want %v first", ids(got), cu, ids(before))
	}
	if it := next(t, sub); !it.CaughtUp {
		t.Fatalf("item = %+v, want caught-up", it)
	}
}

func testInvalid(t *testing.T, h Harness) {
	s := h.Open(t)
	c := ctx(t)
	ev := newEvent(t, "queued", "org-a")
	for _, stream := range []string{"", "run", "run-", "-id", "run-a.b", "run-a b", "run-*", "run->", "run-a\tb", "run-ü", "run-a/b"} {
		if _, err := s.Append(c, stream, events.ExpectAny, ev); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("Append(%q) = %v, want ErrInvalid", stream, err)
		}
		if _, err := s.ReadStream(c, stream, events.Forwards, 0, 0); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("ReadStream(%q) = %v, want ErrInvalid", stream, err)
		}
	}
	noID := newEvent(t, "queued", "org-a")
	noID.ID = ""
	noType := newEvent(t, "queued", "org-a")
	noType.Type = ""
	dup := newEvent(t, "queued", "org-a")
	tests := []struct {
		name string
		evs  []events.Event
	}{
		{"empty_append", nil},
		{"event_without_id", []events.Event{noID}},
		{"event_without_type", []events.Event{ev, noType}},
		{"duplicate_ids", []events.Event{dup, dup}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Append(c, "run-inv", events.ExpectAny, tt.evs...); !errors.Is(err, events.ErrInvalid) {
				t.Fatalf("Append = %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := s.Append(c, "run-inv", events.Expected(-7), ev); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("Append(expected -7) = %v, want ErrInvalid", err)
	}
	if recs := mustReadAll(t, s, 0, events.Filter{}, 0); len(recs) != 0 {
		t.Fatalf("log has %d records after invalid requests, want none", len(recs))
	}
}

func testClose(t *testing.T, h Harness) {
	s := h.Open(t)
	mustAppend(t, s, "run-close", events.ExpectNoStream, newEvent(t, "queued", "org-a"))
	sub := subscribe(t, s, 0, events.Filter{})
	collect(t, sub, 1)
	next(t, sub) // caught up; the next call waits for live records
	done := make(chan error, 1)
	go func() {
		_, err := sub.Next(ctx(t))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, events.ErrClosed) {
			t.Fatalf("Next after the store closed = %v, want ErrClosed", err)
		}
	case <-time.After(timeout):
		t.Fatal("Next did not return after the store closed")
	}
	if _, err := s.Append(ctx(t), "run-close", events.ExpectAny, newEvent(t, "queued", "org-a")); !errors.Is(err, events.ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if _, err := s.ReadStream(ctx(t), "run-close", events.Forwards, 0, 0); !errors.Is(err, events.ErrClosed) {
		t.Errorf("ReadStream after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Subscribe(ctx(t), 0, events.Filter{}); !errors.Is(err, events.ErrClosed) {
		t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

// JSON encodes v for an event field that holds a JSON object (a run's
// result, a recipe), panicking on values that cannot be encoded: test
// fixtures only.
func JSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
