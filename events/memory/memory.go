// Package memory is an in-memory events.Store: a fake for fast tests of
// actors and projections. It passes the same conformance suite
// (events/eventstest) as the real stores, so code tested against it
// behaves the same on them.
//
//	s := memory.New()
//	defer s.Close()
//	res, err := s.Append(ctx, "run-1", events.ExpectNoStream, ev)
//
// Nothing is persisted; Reopen gives a new handle on the same log, which is
// how tests simulate a restart.
package memory

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/spectra-fab/spectra/events"
)

var _ events.Store = (*Store)(nil)

// log is the data shared by every handle Reopen makes.
type log struct {
	mu      sync.Mutex
	records []events.Record  // all records; Position is index+1
	streams map[string][]int // stream → indexes into records
	// changed is closed and replaced on every append, waking waiting
	// subscriptions without making appenders wait for them.
	changed chan struct{}
}

// Store is an in-memory event store. It is safe for concurrent use.
type Store struct {
	log  *log
	once sync.Once
	done chan struct{} // closed by Close
}

// New returns an empty store.
func New() *Store {
	return &Store{
		log:  &log{streams: map[string][]int{}, changed: make(chan struct{})},
		done: make(chan struct{}),
	}
}

// Reopen returns a new store on the same log, as if the process had
// restarted on durable data. It does not close s.
func (s *Store) Reopen() *Store {
	return &Store{log: s.log, done: make(chan struct{})}
}

// Close closes the store; its subscriptions end with events.ErrClosed.
// Closing twice is harmless.
func (s *Store) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

func (s *Store) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Append implements events.Store.
func (s *Store) Append(ctx context.Context, stream string, expected events.Expected, evs ...events.Event) (events.AppendResult, error) {
	if err := events.ValidateAppend(stream, expected, evs, 0); err != nil {
		return events.AppendResult{}, fmt.Errorf("append %s: %w", stream, err)
	}
	if err := s.check(ctx); err != nil {
		return events.AppendResult{}, fmt.Errorf("append %s: %w", stream, err)
	}
	l := s.log
	l.mu.Lock()
	defer l.mu.Unlock()
	idx := l.streams[stream]
	last := int64(len(idx)) - 1
	if res, ok := l.retried(idx, expected, evs); ok {
		return res, nil
	}
	switch {
	case expected == events.ExpectAny:
	case expected == events.ExpectNoStream && last == -1:
	case expected >= 0 && int64(expected) == last:
	default:
		return events.AppendResult{}, &events.ConflictError{Stream: stream, Expected: expected, Actual: last}
	}
	now := time.Now().UTC().Round(0)
	for i, ev := range evs {
		l.records = append(l.records, events.Record{
			ID:       ev.ID,
			Stream:   stream,
			Revision: uint64(last + 1 + int64(i)),
			Position: uint64(len(l.records) + 1),
			Type:     ev.Type,
			Time:     now,
			Data:     slices.Clone(ev.Data),
			Metadata: ev.Metadata,
		})
		idx = append(idx, len(l.records)-1)
	}
	l.streams[stream] = idx
	close(l.changed)
	l.changed = make(chan struct{})
	last += int64(len(evs))
	return events.AppendResult{Revision: uint64(last), Position: uint64(len(l.records))}, nil
}

// retried reports whether evs are already in the stream where expected
// would have put them (a retry after a lost acknowledgement), and if so
// the original result. l.mu is held.
func (l *log) retried(idx []int, expected events.Expected, evs []events.Event) (events.AppendResult, bool) {
	var start int
	switch {
	case expected == events.ExpectAny:
		start = len(idx) - len(evs)
	case expected == events.ExpectNoStream:
		start = 0
	default:
		start = int(expected) + 1
	}
	if start < 0 || start+len(evs) > len(idx) {
		return events.AppendResult{}, false
	}
	for i, ev := range evs {
		if l.records[idx[start+i]].ID != ev.ID {
			return events.AppendResult{}, false
		}
	}
	rec := l.records[idx[start+len(evs)-1]]
	return events.AppendResult{Revision: rec.Revision, Position: rec.Position}, true
}

func (s *Store) check(ctx context.Context) error {
	if s.closed() {
		return events.ErrClosed
	}
	return ctx.Err()
}

// ReadStream implements events.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, dir events.Direction, from uint64, limit int) ([]events.Record, error) {
	if err := events.ValidateStream(stream); err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	l := s.log
	l.mu.Lock()
	defer l.mu.Unlock()
	idx, ok := l.streams[stream]
	if !ok {
		return nil, fmt.Errorf("read %s: %w", stream, events.ErrNotFound)
	}
	if limit <= 0 {
		limit = math.MaxInt
	}
	var out []events.Record
	if dir == events.Backwards {
		i := uint64(len(idx) - 1)
		i = min(i, from)
		for ; len(out) < limit; i-- {
			out = append(out, l.records[idx[i]])
			if i == 0 {
				break
			}
		}
		return out, nil
	}
	for i := from; i < uint64(len(idx)) && len(out) < limit; i++ {
		out = append(out, l.records[idx[i]])
	}
	return out, nil
}

// ReadAll implements events.Store.
func (s *Store) ReadAll(ctx context.Context, after uint64, f events.Filter, limit int) ([]events.Record, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("read all: %w", err)
	}
	if limit <= 0 {
		limit = math.MaxInt
	}
	l := s.log
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []events.Record
	for i := after; i < uint64(len(l.records)) && len(out) < limit; i++ {
		if f.Match(l.records[i]) {
			out = append(out, l.records[i])
		}
	}
	return out, nil
}

// Subscribe implements events.Store. A subscription reads the shared log
// directly, so it holds no buffer and never slows appenders down.
func (s *Store) Subscribe(ctx context.Context, after uint64, f events.Filter) (events.Subscription, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return &subscription{store: s, next: after, filter: f, done: make(chan struct{})}, nil
}

type subscription struct {
	store  *Store
	filter events.Filter

	mu       sync.Mutex // serialises Next
	next     uint64     // index of the next record to look at
	caughtUp bool       // the caught-up item was delivered

	once sync.Once
	done chan struct{}
}

// Next implements events.Subscription.
func (sub *subscription) Next(ctx context.Context) (events.Item, error) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	l := sub.store.log
	for {
		select {
		case <-sub.done:
			return events.Item{}, events.ErrClosed
		case <-sub.store.done:
			return events.Item{}, events.ErrClosed
		default:
		}
		if err := ctx.Err(); err != nil {
			return events.Item{}, err
		}
		l.mu.Lock()
		for sub.next < uint64(len(l.records)) {
			rec := l.records[sub.next]
			sub.next++
			if sub.filter.Match(rec) {
				l.mu.Unlock()
				return events.Item{Record: rec}, nil
			}
		}
		changed := l.changed
		l.mu.Unlock()
		if !sub.caughtUp {
			sub.caughtUp = true
			return events.Item{CaughtUp: true}, nil
		}
		select {
		case <-changed:
		case <-sub.done:
		case <-sub.store.done:
		case <-ctx.Done():
		}
	}
}

// Close implements events.Subscription.
func (sub *subscription) Close() error {
	sub.once.Do(func() { close(sub.done) })
	return nil
}
