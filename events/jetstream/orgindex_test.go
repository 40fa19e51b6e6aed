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

// waitIndex waits until the org index of s has caught up with the log.
func waitIndex(t testing.TB, s *jetstream.Store) {
	t.Helper()
	jetstream.StartIndex(s)
	deadline := time.Now().Add(30 * time.Second)
	for !jetstream.IndexReady(s) {
		if time.Now().After(deadline) {
			t.Fatal("org index not ready after 30 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func orgEv(org string, i int) events.Event {
	return events.Event{
		ID:       events.NewID(),
		Type:     "StepCompleted.v1",
		Data:     fmt.Appendf(nil, `{"i":%d}`, i),
		Metadata: events.Metadata{OrgID: org, UserID: "u-" + org},
	}
}

// fillOrgs writes n appends of org-a and org-b interleaved over runs,
// some of several events (one message), some across both organisations
// (an atomic batch of two messages), and events of another category.
func fillOrgs(t *testing.T, s *jetstream.Store, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		var evs []events.Event
		switch i % 5 {
		case 0, 1:
			evs = []events.Event{orgEv("org-a", i)}
		case 2:
			evs = []events.Event{orgEv("org-a", i), orgEv("org-a", i), orgEv("org-a", i)}
		case 3:
			evs = []events.Event{orgEv("org-b", i), orgEv("org-a", i)}
		case 4:
			evs = []events.Event{orgEv("org-b", i)}
		}
		stream := fmt.Sprintf("run-r%d", i%7)
		if i%11 == 0 {
			stream = fmt.Sprintf("job-j%d", i%3)
		}
		if _, err := s.Append(ctx, stream, events.ExpectAny, evs...); err != nil {
			t.Error(err)
			return
		}
	}
}

// readAllPaged reads ReadAll(after, f) in pages of limit (0: one read).
func readAllPaged(t *testing.T, s events.Store, after uint64, f events.Filter, limit int) []events.Record {
	t.Helper()
	ctx := context.Background()
	var out []events.Record
	for {
		recs, err := s.ReadAll(ctx, after, f, limit)
		if err != nil {
			t.Fatalf("ReadAll(%d, %+v, %d) = %v", after, f, limit, err)
		}
		out = append(out, recs...)
		if limit == 0 || len(recs) < limit {
			return out
		}
		after = recs[len(recs)-1].Position
	}
}

func positions(recs []events.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Position
	}
	return out
}

// TestOrgIndexRead: reads served by the org index return what the
// server-filtered reads return (a store with NoOrgIndex on the same log),
// for every page size and starting point, including starts inside a
// message of several events and events appended after the index caught
// up (read at once: the index may not have them yet).
func TestOrgIndexRead(t *testing.T) {
	s := openStore(t, t.TempDir(), false)
	ctx := context.Background()
	plain := unindexed(t, s)
	fillOrgs(t, s, 300)
	waitIndex(t, s)
	check := func(t *testing.T) {
		t.Helper()
		for _, f := range []events.Filter{
			{Categories: []string{events.CategoryRun}, OrgID: "org-a"},
			{Categories: []string{events.CategoryRun}, OrgID: "org-b"},
			{Categories: []string{"job"}, OrgID: "org-a"},
			{Categories: []string{events.CategoryRun}, OrgID: "org-c"},
			{Categories: []string{events.CategoryRun}, OrgID: "org-a", Types: []string{"StepCompleted"}},
		} {
			want := readAllPaged(t, plain, 0, f, 0)
			if f.OrgID != "org-c" && len(want) == 0 {
				t.Fatalf("%+v: the reference read found nothing", f)
			}
			for _, r := range want {
				if r.Metadata.OrgID != f.OrgID || events.Category(r.Stream) != f.Categories[0] {
					t.Fatalf("%+v: reference read returned %s of %s", f, r.Stream, r.Metadata.OrgID)
				}
			}
			for _, limit := range []int{0, 7, 100} {
				got := readAllPaged(t, s, 0, f, limit)
				if !slices.Equal(positions(got), positions(want)) {
					t.Fatalf("%+v limit %d: indexed read %v, want %v", f, limit, positions(got), positions(want))
				}
			}
			// From inside the log, and inside a message of several events.
			for _, i := range []int{1, len(want) / 3, len(want) - 1} {
				if i <= 0 || i >= len(want) {
					continue
				}
				after := want[i].Position
				got := readAllPaged(t, s, after, f, 5)
				if !slices.Equal(positions(got), positions(want[i+1:])) {
					t.Fatalf("%+v after %d: indexed read %v, want %v", f, after, positions(got), positions(want[i+1:]))
				}
			}
		}
	}
	check(t)
	// Appended now: the first read may come before the index has them.
	for i := range 20 {
		res, err := s.Append(ctx, "run-late", events.ExpectAny, orgEv("org-a", 1000+i))
		if err != nil {
			t.Fatal(err)
		}
		recs, err := s.ReadAll(ctx, res.Position-1, events.Filter{Categories: []string{events.CategoryRun}, OrgID: "org-a"}, 0)
		if err != nil || len(recs) != 1 || recs[0].Position != res.Position {
			t.Fatalf("read after append at %d = %v, %v; want that event", res.Position, positions(recs), err)
		}
	}
	check(t)
}

// TestOrgIndexBehind: with the index held back while more than a page of
// messages is appended, reads still return every event: what the index
// has, then the messages past it (one unfiltered page, then filtered by
// the server).
func TestOrgIndexBehind(t *testing.T) {
	s := openStore(t, t.TempDir(), false)
	plain := unindexed(t, s)
	fillOrgs(t, s, 50)
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
	// More than a page (1,000 messages) past the index, written by four
	// writers at once.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fillOrgs(t, s, 300)
		}()
	}
	wg.Wait()
	if !jetstream.IndexReady(s) {
		t.Fatal("index not ready while held")
	}
	f := events.Filter{Categories: []string{events.CategoryRun}, OrgID: "org-a"}
	want := readAllPaged(t, plain, 0, f, 0)
	for _, limit := range []int{0, 100} {
		got := readAllPaged(t, s, 0, f, limit)
		if !slices.Equal(positions(got), positions(want)) {
			t.Fatalf("limit %d: %d events read with the index behind, want %d", limit, len(got), len(want))
		}
	}
	close(release)
	waitIndex(t, s)
	if got := readAllPaged(t, s, 0, f, 0); !slices.Equal(positions(got), positions(want)) {
		t.Fatalf("after the index caught up: %d events, want %d", len(got), len(want))
	}
}

// unindexed is a second store on s's log without the org index: its
// reads are the server-filtered ones the index must equal.
func unindexed(t *testing.T, s *jetstream.Store) *jetstream.Store {
	t.Helper()
	plain, err := jetstream.New(context.Background(), s.Conn(), jetstream.Options{NoOrgIndex: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plain.Close() })
	return plain
}
