package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/memory"
	"github.com/spectra-fab/spectra/projections"
)

// counter is a projection that records the positions it applied and fails
// on records of the stream poison while poisoned is set (a bug, fixed by
// clearing it).
type counter struct {
	name     string
	poisoned atomic.Bool
	mu       sync.Mutex
	applied  []uint64
}

func (c *counter) Name() string { return c.name }
func (c *counter) Apply(rec events.Record) error {
	if rec.Stream == events.RunStream("poison") && c.poisoned.Load() {
		return errors.New("cannot fold this record")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.applied = append(c.applied, rec.Position)
	return nil
}
func (c *counter) Snapshot() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return json.Marshal(c.applied)
}
func (c *counter) Restore(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return json.Unmarshal(b, &c.applied)
}
func (c *counter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.applied = nil
}
func (c *counter) positions() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.applied)
}

// appendN appends n events to stream run-<id> and returns their positions.
func appendN(t *testing.T, s events.Store, id string, n int) []uint64 {
	t.Helper()
	var ps []uint64
	for range n {
		ps = append(ps, appendRun(t, s, id, md, &events.RunQueued{JobID: id, Queue: "ion"}))
	}
	return ps
}

func last(ps []uint64) uint64 { return ps[len(ps)-1] }

// runInBackground runs r until the returned stop is called or the test
// ends, and fails the test if Run returns an error.
func runInBackground(t *testing.T, r *projections.Runner) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A projection whose Apply fails stops at that record and is reported;
// the others go on; after a restart it resumes from where it stopped.
func TestRunnerStopsAFailingProjectionAndResumesIt(t *testing.T) {
	s, cps := startJetStream(t)
	good, bad := &counter{name: "good"}, &counter{name: "bad"}
	bad.poisoned.Store(true)
	r := projections.NewRunner(s, cps, nil, good, bad)
	r.SaveEvery, r.SaveInterval = 1, 0
	stop := runInBackground(t, r)

	before := appendN(t, s, "a", 3)
	poison := last(appendN(t, s, "poison", 1))
	all := append(append(slices.Clone(before), poison), appendN(t, s, "b", 3)...)
	if err := r.WaitFor(t.Context(), last(all)); err != nil {
		t.Fatalf("WaitFor(%d): %v", last(all), err)
	}
	if got, want := good.positions(), all; !slices.Equal(got, want) {
		t.Errorf("good applied %v, want %v", got, want)
	}
	if got, want := bad.positions(), before; !slices.Equal(got, want) {
		t.Errorf("bad applied %v, want %v (nothing at or after the record it failed on)", got, want)
	}
	fs := r.Failures()
	if len(fs) != 1 || fs[0].Projection != "bad" || fs[0].Position != poison || fs[0].Error != "cannot fold this record" ||
		fs[0].Stream != events.RunStream("poison") {
		t.Fatalf("Failures() = %+v, want bad at position %d", fs, poison)
	}
	if !r.Stopped("bad") || r.Stopped("good") {
		t.Errorf("Stopped(bad), Stopped(good) = %v, %v; want true, false", r.Stopped("bad"), r.Stopped("good"))
	}

	// The bug is fixed and the node restarts: bad resumes from its last
	// checkpoint (before the poison record) and catches up.
	stop()
	bad.poisoned.Store(false)
	good2, bad2 := &counter{name: "good"}, &counter{name: "bad"}
	r2 := projections.NewRunner(s, cps, nil, good2, bad2)
	runInBackground(t, r2)
	<-r2.CaughtUp()
	if got, want := bad2.positions(), all; !slices.Equal(got, want) {
		t.Errorf("bad after restart applied %v, want %v", got, want)
	}
	if got, want := good2.positions(), all; !slices.Equal(got, want) {
		t.Errorf("good after restart applied %v, want %v", got, want)
	}
	if fs := r2.Failures(); len(fs) != 0 {
		t.Errorf("Failures() after the fix = %+v, want none", fs)
	}
}

// Restart rebuilds a stopped projection while the runner runs.
func TestRunnerRestartRebuildsAStoppedProjection(t *testing.T) {
	s := memory.New()
	t.Cleanup(func() { s.Close() })
	bad := &counter{name: "bad"}
	bad.poisoned.Store(true)
	r := startRunner(t, s, nil, bad)
	all := append(appendN(t, s, "poison", 1), appendN(t, s, "a", 2)...)
	if err := r.WaitFor(t.Context(), last(all)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "bad is stopped", func() bool { return r.Stopped("bad") })
	bad.poisoned.Store(false)
	if err := r.Restart("bad"); err != nil {
		t.Fatalf("Restart(bad): %v", err)
	}
	waitUntil(t, "bad has applied the whole log", func() bool { return slices.Equal(bad.positions(), all) })
	if r.Stopped("bad") {
		t.Errorf("Stopped(bad) after Restart = true")
	}
	if err := r.Restart("nope"); !errors.Is(err, projections.ErrNotFound) {
		t.Errorf("Restart(nope) = %v, want ErrNotFound", err)
	}
}

// flakyStore fails the subscriptions it hands out after a few records.
type flakyStore struct {
	events.Store
	failAfter int
	fails     atomic.Int32 // subscriptions still to break
	opened    atomic.Int32
}

func (f *flakyStore) Subscribe(ctx context.Context, after uint64, filter events.Filter) (events.Subscription, error) {
	f.opened.Add(1)
	sub, err := f.Store.Subscribe(ctx, after, filter)
	if err != nil {
		return nil, err
	}
	if f.fails.Add(-1) < 0 {
		return sub, nil
	}
	return &flakySub{Subscription: sub, left: f.failAfter}, nil
}

type flakySub struct {
	events.Subscription
	left int
}

func (s *flakySub) Next(ctx context.Context) (events.Item, error) {
	if s.left == 0 {
		return events.Item{}, errors.New("connection reset")
	}
	it, err := s.Subscription.Next(ctx)
	if err == nil && !it.CaughtUp {
		s.left--
	}
	return it, err
}

// A failed subscription is opened again where the runner stood: every
// record is applied once, in order, and Live is false meanwhile.
func TestRunnerResubscribesAfterASubscriptionError(t *testing.T) {
	mem := memory.New()
	t.Cleanup(func() { mem.Close() })
	all := appendN(t, mem, "a", 10)
	s := &flakyStore{Store: mem, failAfter: 3}
	s.fails.Store(2)
	c := &counter{name: "c"}
	r := projections.NewRunner(s, nil, nil, c)
	r.RetryMin, r.RetryMax = 200*time.Millisecond, time.Second
	runInBackground(t, r)

	// The first subscription breaks after 3 records; the runner waits out
	// its back-off, not live.
	waitUntil(t, "the first subscription broke", func() bool { return len(c.positions()) == 3 })
	time.Sleep(50 * time.Millisecond)
	if r.Live() {
		t.Errorf("Live() = true while resubscribing")
	}
	<-r.CaughtUp()
	if !r.Live() {
		t.Errorf("Live() = false after catching up")
	}
	all = append(all, appendN(t, mem, "b", 2)...)
	if err := r.WaitFor(t.Context(), last(all)); err != nil {
		t.Fatal(err)
	}
	if got, want := c.positions(), all; !slices.Equal(got, want) {
		t.Errorf("applied %v, want %v (each record once, in order)", got, want)
	}
	if got := r.Resubscriptions(); got != 2 {
		t.Errorf("Resubscriptions() = %d, want 2", got)
	}
}

// Rebuild with no names drops every projection's checkpoint.
func TestRebuildWithoutNamesRebuildsEverything(t *testing.T) {
	s, cps := startJetStream(t)
	appendN(t, s, "a", 2)
	a, b := &counter{name: "a"}, &counter{name: "b"}
	runOnce(t, s, cps, a, b)
	for _, n := range []string{"a", "b"} {
		if _, _, err := cps.Load(t.Context(), n); err != nil {
			t.Fatalf("Load(%s) after a run: %v", n, err)
		}
	}
	if err := projections.Rebuild(t.Context(), cps); err != nil {
		t.Fatalf("Rebuild(): %v", err)
	}
	for _, n := range []string{"a", "b"} {
		if _, _, err := cps.Load(t.Context(), n); !errors.Is(err, projections.ErrNoCheckpoint) {
			t.Errorf("Load(%s) after Rebuild() = %v, want ErrNoCheckpoint", n, err)
		}
	}
}

// picky is a counter that wants only the records of one stream category
// and type.
type picky struct {
	counter
	category, baseType string
}

func (p *picky) Wants(category, baseType string) bool {
	return category == p.category && baseType == p.baseType
}

// A Selective projection is handed only the records it wants; its
// checkpoint still moves past the others, so a restart does not replay
// them.
func TestRunnerHandsSelectiveProjectionsTheirRecords(t *testing.T) {
	s, cps := startJetStream(t)
	queued := appendN(t, s, "a", 2)
	started := appendRun(t, s, "b", md, &events.RunStarted{JobID: "b"})
	queued = append(queued, appendN(t, s, "c", 1)...)
	p := &picky{counter: counter{name: "picky"}, category: events.CategoryRun, baseType: events.TypeRunStarted}
	all := &counter{name: "all"}
	runOnce(t, s, cps, p, all)
	if got := p.positions(); !slices.Equal(got, []uint64{started}) {
		t.Errorf("picky applied %v, want %v", got, []uint64{started})
	}
	if got := all.positions(); len(got) != 4 {
		t.Errorf("all applied %v, want 4 records", got)
	}
	if pos, _, err := cps.Load(t.Context(), "picky"); err != nil || pos != last(queued) {
		t.Errorf("picky checkpoint = %d, %v; want %d", pos, err, last(queued))
	}
}

// appendMany appends n events to stream run-<id> in one append (one
// message of the JetStream store) and returns their positions.
func appendMany(t *testing.T, s events.Store, id string, n int) []uint64 {
	t.Helper()
	evs := make([]events.Event, n)
	for k := range evs {
		ev, err := events.New(&events.RunQueued{JobID: id, Queue: "ion"}, md)
		if err != nil {
			t.Fatal(err)
		}
		evs[k] = ev
	}
	res, err := s.Append(t.Context(), events.RunStream(id), events.ExpectAny, evs...)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	ps := make([]uint64, n)
	for k := range ps {
		ps[k] = res.Position - uint64(n-1-k)
	}
	return ps
}

// waiter is a counter whose Apply of the record at position at waits
// until ahead has applied the record after it (or gives up after a while,
// and the test fails): it can only go on if the runner applies the two
// projections at once.
type waiter struct {
	counter
	at, next uint64
	ahead    *counter
	gaveUp   atomic.Bool
}

func (w *waiter) Apply(rec events.Record) error {
	if rec.Position == w.at {
		deadline := time.Now().Add(10 * time.Second)
		for !slices.Contains(w.ahead.positions(), w.next) {
			if time.Now().After(deadline) {
				w.gaveUp.Store(true)
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	return w.counter.Apply(rec)
}

// A catch-up applies large batches of records to every projection at
// once, each in log order: one projection runs ahead of another, a
// failing Apply stops only its own projection at that record (the others
// apply the rest), the caught-up position is that of every projection,
// and the checkpoints say so.
func TestRunnerAppliesProjectionsAtOnceWhileCatchingUp(t *testing.T) {
	s, cps := startJetStream(t)
	var all []uint64
	for _, id := range []string{"a", "b"} {
		all = append(all, appendMany(t, s, id, 100)...)
	}
	before := slices.Clone(all)
	poison := appendMany(t, s, "poison", 1)[0]
	all = append(append(all, poison), appendMany(t, s, "c", 100)...)

	ahead := &counter{name: "ahead"}
	behind := &waiter{counter: counter{name: "behind"}, at: all[10], next: all[11], ahead: ahead}
	bad := &counter{name: "bad"}
	bad.poisoned.Store(true)
	r := projections.NewRunner(s, cps, nil, behind, ahead, bad)
	stop := runInBackground(t, r)
	<-r.CaughtUp()
	if behind.gaveUp.Load() {
		t.Error("the runner did not apply two projections at once while catching up")
	}
	if got := r.Position(); got != last(all) {
		t.Errorf("Position() = %d after catching up, want %d", got, last(all))
	}
	for _, c := range []*counter{&behind.counter, ahead} {
		if got := c.positions(); !slices.Equal(got, all) {
			t.Errorf("%s applied %d records (%v…), want the %d of the log in order", c.name, len(got), got[:min(len(got), 3)], len(all))
		}
	}
	if got := bad.positions(); !slices.Equal(got, before) {
		t.Errorf("bad applied %d records, want the %d before the one it failed on", len(got), len(before))
	}
	if fs := r.Failures(); len(fs) != 1 || fs[0].Projection != "bad" || fs[0].Position != poison {
		t.Errorf("Failures() = %+v, want bad at %d", fs, poison)
	}
	stop()
	for _, name := range []string{"behind", "ahead"} {
		if pos, _, err := cps.Load(t.Context(), name); err != nil || pos != last(all) {
			t.Errorf("%s checkpoint at %d (%v), want %d", name, pos, err, last(all))
		}
	}
	if _, _, err := cps.Load(t.Context(), "bad"); !errors.Is(err, projections.ErrNoCheckpoint) {
		t.Errorf("bad has a checkpoint (%v): it failed before the first save", err)
	}
}
