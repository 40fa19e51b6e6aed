package jetstream_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

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
