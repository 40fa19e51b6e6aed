package actors

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/memory"
	"github.com/spectra-fab/spectra/run"
)

// lateStore answers one chosen append with events.ErrUnavailable at once
// and writes it later, as a store whose server took the append and whose
// client gave up waiting for the answer does (KurrentDB's store returns
// ErrUnavailable to a call still inside its client once it takes the
// server for down). The write lands right after the next load of that
// stream has been read: the worst moment, the next activation folds the
// stream without it and its first append meets it.
type lateStore struct {
	events.Store
	mu      sync.Mutex
	typ     string // base type of the append to answer late; "" once chosen
	stream  string
	exp     events.Expected
	evs     []events.Event
	landed  bool
	landErr error
}

func (s *lateStore) Append(ctx context.Context, stream string, expected events.Expected, evs ...events.Event) (events.AppendResult, error) {
	s.mu.Lock()
	if s.typ != "" && slices.ContainsFunc(evs, func(ev events.Event) bool { return events.BaseType(ev.Type) == s.typ }) {
		s.typ, s.stream, s.exp, s.evs = "", stream, expected, evs
		s.mu.Unlock()
		return events.AppendResult{}, fmt.Errorf("append %s: %w: no answer in time", evs[0].Type, events.ErrUnavailable)
	}
	s.mu.Unlock()
	return s.Store.Append(ctx, stream, expected, evs...)
}

func (s *lateStore) ReadStream(ctx context.Context, stream string, dir events.Direction, from uint64, limit int) ([]events.Record, error) {
	recs, err := s.Store.ReadStream(ctx, stream, dir, from, limit)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.evs != nil && !s.landed && stream == s.stream && dir == events.Forwards && from == 0 {
		s.landed = true
		_, s.landErr = s.Store.Append(ctx, s.stream, s.exp, s.evs...)
	}
	return recs, err
}

func (s *lateStore) lands() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.landed, s.landErr
}

// An append the store answered with "unavailable" lands after all, after
// the run's next activation has loaded its stream: that activation's
// first append meets it (a conflict). The events are the run's own: the
// actor must not take them for another writer's and stop for good (no one
// would drive the run again); it reloads its stream and carries on, and
// the log holds every step once.
func TestChaosAppendAnsweredUnavailableLandsLate(t *testing.T) {
	for _, scale := range []float64{0, 20} {
		t.Run(fmt.Sprintf("scale-%g", scale), func(t *testing.T) {
			mem := memory.New()
			store := &lateStore{Store: mem}
			svc := newTestService(t, store, Config{TimeScale: scale})
			store.mu.Lock()
			store.typ = events.TypeTelemetryRecorded
			store.mu.Unlock()
			acc := create(t, svc, `{"steps":100}`)
			st := waitFinal(t, mem, acc.RunID)
			recs := readRun(t, mem, acc.RunID)
			checkJobs(t, recs)
			if landed, err := store.lands(); !landed || err != nil {
				t.Fatalf("the late append landed: %v, %v; want it written after the next load", landed, err)
			}
			if st.State() != run.Completed || svc.Fenced() != 0 {
				t.Fatalf("run ended %s with %d actors fenced; want completed, none fenced (events %v)", st.State(), svc.Fenced(), types(recs))
			}
		})
	}
}
