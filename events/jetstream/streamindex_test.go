package jetstream_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/jetstream"
)

// fillStreams is fillOrgs plus events with no organisation ("=") and an
// organisation escaped in hex on the same runs.
func fillStreams(t *testing.T, s *jetstream.Store, n int) {
	t.Helper()
	fillOrgs(t, s, n)
	ctx := context.Background()
	for i := range n / 4 {
		org := ""
		if i%2 == 1 {
			org = "org.x/y"
		}
		evs := []events.Event{orgEv(org, i)}
		if i%3 == 0 {
			evs = append(evs, orgEv(org, i))
		}
		if _, err := s.Append(ctx, fmt.Sprintf("run-r%d", i%7), events.ExpectAny, evs...); err != nil {
			t.Error(err) // called from other goroutines too
			return
		}
	}
}

var indexedStreams = []string{"run-r0", "run-r3", "run-r6", "job-j2"}

// checkStreamReads compares s's reads of every stream, from every
// stride-th start revision and the last three (and one past the end), for
// several limits, both directions, with plain's (no index).
func checkStreamReads(t *testing.T, s, plain *jetstream.Store, stride uint64) {
	t.Helper()
	ctx := context.Background()
	for _, stream := range indexedStreams {
		all, err := plain.ReadStream(ctx, stream, events.Forwards, 0, 0)
		if err != nil || len(all) < 3 {
			t.Fatalf("%s: reference read %d events, %v", stream, len(all), err)
		}
		for from := range uint64(len(all)) + 1 {
			if from%stride != 0 && from+3 < uint64(len(all)) {
				continue
			}
			for _, c := range []struct {
				dir   events.Direction
				limit int
			}{{events.Forwards, 0}, {events.Forwards, 1}, {events.Forwards, 3}, {events.Backwards, 0}, {events.Backwards, 2}} {
				want, err := plain.ReadStream(ctx, stream, c.dir, from, c.limit)
				if err != nil {
					t.Fatal(err)
				}
				got, err := s.ReadStream(ctx, stream, c.dir, from, c.limit)
				if err != nil {
					t.Fatal(err)
				}
				if n := jetstream.ShortStreamReads(s); n != 0 {
					t.Fatalf("%s from %d %v limit %d: the index fell short on %d reads", stream, from, c.dir, c.limit, n)
				}
				if !slices.Equal(positions(got), positions(want)) {
					t.Fatalf("%s from %d %v limit %d: indexed %v, want %v", stream, from, c.dir, c.limit, positions(got), positions(want))
				}
				for i := range got {
					if got[i].Revision != want[i].Revision || got[i].ID != want[i].ID || got[i].Stream != stream {
						t.Fatalf("%s from %d: record %d = %+v, want %+v", stream, from, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// TestStreamIndexRead: stream reads served by the index return what the
// reads without it return, for many interleaved streams, every start
// revision (inside messages of several events too), limits and both
// directions; and a stream appended to just now reads whole.
func TestStreamIndexRead(t *testing.T) {
	s := openStore(t, t.TempDir(), false)
	ctx := context.Background()
	plain, err := jetstream.New(ctx, s.Conn(), jetstream.Options{NoOrgIndex: true})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	fillStreams(t, s, 120)
	waitIndex(t, s)
	before := jetstream.IndexedStreamReads(s)
	checkStreamReads(t, s, plain, 1)
	if jetstream.IndexedStreamReads(s) == before {
		t.Fatal("no read was served by the index")
	}
	for i := range 20 {
		if _, err := s.Append(ctx, "run-r2", events.ExpectAny, orgEv("org-a", 1000+i), orgEv("org-a", 2000+i)); err != nil {
			t.Fatal(err)
		}
		want, err := plain.ReadStream(ctx, "run-r2", events.Forwards, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.ReadStream(ctx, "run-r2", events.Forwards, 1, 0)
		if err != nil || !slices.Equal(positions(got), positions(want)) {
			t.Fatalf("read after append: %v, %v; want %v", positions(got), err, positions(want))
		}
	}
}

// TestStreamIndexBehind: with the index held back while more is appended,
// stream reads return every event (the index's part, then the rest read
// filtered from its end).
func TestStreamIndexBehind(t *testing.T) {
	s := openStore(t, t.TempDir(), false)
	ctx := context.Background()
	plain, err := jetstream.New(ctx, s.Conn(), jetstream.Options{NoOrgIndex: true})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	fillStreams(t, s, 60)
	waitIndex(t, s)
	release := make(chan struct{})
	var once bool
	jetstream.BeforeIndex(s, func() {
		if !once {
			once = true
			<-release
		}
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fillStreams(t, s, 60)
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if !jetstream.IndexReady(s) {
		t.Fatal("index not ready while held")
	}
	before := jetstream.IndexedStreamReads(s)
	checkStreamReads(t, s, plain, 4)
	if jetstream.IndexedStreamReads(s) == before {
		t.Fatal("no read was served by the index while it was behind")
	}
	close(release)
	waitIndex(t, s)
}

// TestStreamIndexLogMadeAgain: when the log's stream is deleted and made
// again under a store (what someone holding the NATS account can do), the
// sequences the index holds name other messages; reads notice, return
// what the server holds, and the index is rebuilt and serves reads again.
func TestStreamIndexLogMadeAgain(t *testing.T) {
	s := openStore(t, t.TempDir(), false)
	ctx := context.Background()
	for i := range 6 {
		for _, stream := range []string{"run-a", "run-b"} {
			if _, err := s.Append(ctx, stream, events.ExpectAny, orgEv("org-a", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitIndex(t, s)
	if recs, err := s.ReadStream(ctx, "run-a", events.Forwards, 0, 0); err != nil || len(recs) != 6 {
		t.Fatalf("ReadStream = %d events, %v", len(recs), err)
	}
	// The index held on one more message, so that only reads can
	// notice what follows.
	release := make(chan struct{})
	var held bool
	jetstream.BeforeIndex(s, func() {
		if !held {
			held = true
			<-release
		}
	})
	released := false
	unhold := func() {
		if !released {
			released = true
			close(release)
		}
	}
	t.Cleanup(unhold)
	if _, err := s.Append(ctx, "run-z", events.ExpectAny, orgEv("org-a", 0)); err != nil {
		t.Fatal(err)
	}
	js := s.JetStream()
	st, err := js.Stream(ctx, jetstream.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if err := js.DeleteStream(ctx, jetstream.DefaultStream); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	// Another layout, longer than the old log: run-c's 20 messages, then
	// run-a's 4 events (one message of 2).
	var want []string
	for i := range 20 {
		if _, err := s.Append(ctx, "run-c", events.ExpectAny, orgEv("org-a", 100+i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, evs := range [][]events.Event{{orgEv("org-a", 20)}, {orgEv("org-a", 21), orgEv("org-a", 22)}, {orgEv("org-a", 23)}} {
		for _, e := range evs {
			want = append(want, e.ID)
		}
		if _, err := s.Append(ctx, "run-a", events.ExpectAny, evs...); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(recs []events.Record) []string {
		out := make([]string, len(recs))
		for i, r := range recs {
			out[i] = r.ID
		}
		return out
	}
	for from := range uint64(len(want)) {
		recs, err := s.ReadStream(ctx, "run-a", events.Forwards, from, 0)
		if err != nil || !slices.Equal(ids(recs), want[from:]) {
			t.Fatalf("after the log was made again, from %d: %v, %v; want %v", from, ids(recs), err, want[from:])
		}
	}
	if jetstream.IndexReady(s) {
		t.Error("reads found the index wrong, yet it is ready")
	}
	unhold()
	// Rebuilt: ready again, and serving reads of the new log.
	deadline := time.Now().Add(30 * time.Second)
	for {
		before := jetstream.IndexedStreamReads(s)
		recs, err := s.ReadStream(ctx, "run-a", events.Forwards, 0, 0)
		if err != nil || !slices.Equal(ids(recs), want) {
			t.Fatalf("ReadStream = %v, %v; want %v", ids(recs), err, want)
		}
		if jetstream.IndexedStreamReads(s) > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the index serves no read 30 s after the log was made again")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
