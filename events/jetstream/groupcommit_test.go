package jetstream_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/jetstream"
)

// openGroupStore opens a store with group commit on an embedded server in
// dir; t.Cleanup closes it.
func openGroupStore(t testing.TB, dir string, sync bool) *jetstream.Store {
	t.Helper()
	return openStoreWith(t, dir, sync, jetstream.Options{GroupCommit: true})
}

func TestConformanceGroupCommit(t *testing.T) { conformance(t, openGroupStore) }

// TestGroupCommitGroups appends from many writers at once, each to its own
// stream, with fsync on: appends that wait while a commit is in flight go
// in one batch (fewer commits than appends), and every append's result is
// where its events are.
func TestGroupCommitGroups(t *testing.T) {
	const writers, rounds = 40, 5
	s := openGroupStore(t, t.TempDir(), true)
	ctx := t.Context()
	results := make([][]events.AppendResult, writers)
	ids := make([][]string, writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			<-start
			stream := fmt.Sprintf("run-gc%d", w)
			exp := events.ExpectNoStream
			for range rounds {
				ev := newEvent(t)
				res, err := s.Append(ctx, stream, exp, ev)
				if err != nil {
					errs <- fmt.Errorf("Append(%s, %d) = %v", stream, exp, err)
					return
				}
				results[w], ids[w] = append(results[w], res), append(ids[w], ev.ID)
				exp = events.ExpectRevision(res.Revision)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := s.CommitStats()
	if st.Appends != writers*rounds {
		t.Errorf("CommitStats().Appends = %d, want %d", st.Appends, writers*rounds)
	}
	if st.Batches == 0 || st.Commits >= st.Appends || st.Grouped < 2*st.Batches {
		t.Errorf("CommitStats() = %+v: want appends grouped into fewer commits", st)
	}
	if st.Refused != 0 {
		t.Errorf("CommitStats().Refused = %d, want 0 (no conflicts)", st.Refused)
	}
	t.Logf("%d appends in %d commits (%d batches of %d appends)", st.Appends, st.Commits, st.Batches, st.Grouped)
	seen := map[uint64]bool{}
	for w := range writers {
		recs, err := s.ReadStream(ctx, fmt.Sprintf("run-gc%d", w), events.Forwards, 0, 0)
		if err != nil || len(recs) != rounds {
			t.Fatalf("ReadStream(run-gc%d) = %d records, %v; want %d", w, len(recs), err, rounds)
		}
		for i, rec := range recs {
			res := results[w][i]
			if rec.ID != ids[w][i] || rec.Revision != uint64(i) || res.Revision != rec.Revision || res.Position != rec.Position {
				t.Fatalf("run-gc%d record %d = {id %s rev %d pos %d}, append returned %+v for id %s",
					w, i, rec.ID, rec.Revision, rec.Position, res, ids[w][i])
			}
			if seen[rec.Position] {
				t.Fatalf("position %d twice", rec.Position)
			}
			seen[rec.Position] = true
		}
	}
}

// TestGroupCommitConflictFailsAlone puts an append whose expected revision
// is stale (another writer moved its stream on behind the store's back)
// into one group with appends that are fine, and a retry of an append that
// already landed: the server refuses the batch, each member is published
// alone, and only the stale one gets a conflict.
func TestGroupCommitConflictFailsAlone(t *testing.T) {
	s := openGroupStore(t, t.TempDir(), false)
	ctx := t.Context()
	other, err := jetstream.New(ctx, s.Conn(), jetstream.Options{}) // the other writer
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	// A group of MinBatch: the stale one, the retry, and the rest fine.
	var fine []string
	for i := range jetstream.MinBatch() - 2 {
		fine = append(fine, fmt.Sprintf("run-ok%d", i))
	}
	for _, stream := range append([]string{"run-stale", "run-retry", "run-first"}, fine...) {
		if _, err := s.Append(ctx, stream, events.ExpectNoStream, newEvent(t)); err != nil {
			t.Fatalf("Append(%s) = %v", stream, err)
		}
	}
	if _, err := other.Append(ctx, "run-stale", events.ExpectRevision(0), newEvent(t)); err != nil {
		t.Fatalf("other Append(run-stale) = %v", err)
	}
	retried := newEvent(t)
	landed, err := other.Append(ctx, "run-retry", events.ExpectRevision(0), retried)
	if err != nil {
		t.Fatalf("other Append(run-retry) = %v", err)
	}

	// Hold the first commit until the others wait behind it, so they
	// form one group.
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	jetstream.BeforeCommit(s, func(n int) {
		mu.Lock()
		first := len(sizes) == 0
		sizes = append(sizes, n)
		mu.Unlock()
		if first {
			<-release
		}
	})
	type answer struct {
		res events.AppendResult
		err error
	}
	appendAsync := func(stream string, ev events.Event) <-chan answer {
		c := make(chan answer, 1)
		go func() {
			res, err := s.Append(ctx, stream, events.ExpectRevision(0), ev)
			c <- answer{res, err}
		}()
		return c
	}
	first := appendAsync("run-first", newEvent(t))
	for jetstream.Queued(s) != 0 || func() bool { mu.Lock(); defer mu.Unlock(); return len(sizes) == 0 }() {
		time.Sleep(time.Millisecond)
	}
	oks := map[string]<-chan answer{"run-first": first}
	for _, stream := range fine {
		oks[stream] = appendAsync(stream, newEvent(t))
	}
	stale, retry := appendAsync("run-stale", newEvent(t)), appendAsync("run-retry", retried)
	for jetstream.Queued(s) < len(fine)+2 {
		time.Sleep(time.Millisecond)
	}
	close(release)

	for name, c := range oks {
		if a := <-c; a.err != nil || a.res.Revision != 1 {
			t.Errorf("Append(%s) = %+v, %v; want revision 1", name, a.res, a.err)
		}
	}
	if a := <-stale; !errors.Is(a.err, events.ErrConflict) {
		t.Errorf("Append(run-stale) = %+v, %v; want ErrConflict", a.res, a.err)
	}
	if a := <-retry; a.err != nil || a.res != landed {
		t.Errorf("Append(run-retry) = %+v, %v; want the first landing %+v", a.res, a.err, landed)
	}
	mu.Lock()
	got := sizes
	mu.Unlock()
	if len(got) < 2 || got[0] != 1 || got[1] != len(fine)+2 {
		t.Errorf("group sizes = %v, want [1 %d …]", got, len(fine)+2)
	}
	if st := s.CommitStats(); st.Refused != 1 {
		t.Errorf("CommitStats().Refused = %d, want 1", st.Refused)
	}
	for _, stream := range append([]string{"run-stale", "run-retry"}, fine...) {
		recs, err := s.ReadStream(ctx, stream, events.Forwards, 0, 0)
		if err != nil || len(recs) != 2 {
			t.Errorf("ReadStream(%s) = %d records, %v; want 2", stream, len(recs), err)
		}
	}
}
