package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/spectra-fab/spectra/events"
)

// pageSize is how many messages one batch direct get asks for: big enough
// to amortise the round trip, small enough to bound a reader's memory.
const pageSize = 1000

// tail looks up where the stream on subj ends (a direct get of its last
// message, tens of microseconds).
func (s *Store) tail(ctx context.Context, subj string) (tail, error) {
	m, err := s.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return tail{rev: -1}, nil
	}
	if err != nil {
		return tail{}, fmt.Errorf("last event: %w", err)
	}
	rev, err := strconv.ParseUint(m.Header.Get(hdrRevision), 10, 64)
	if err != nil {
		return tail{}, fmt.Errorf("last event %d: revision: %w", m.Sequence, err)
	}
	return tail{rev: int64(rev), seq: m.Sequence}, nil
}

// page reads up to max events from sequence from on whose subject matches
// filter, in order, with one batch direct get (which answers at once, even
// when nothing matches). left is how many matching events followed them
// when the server answered.
func (s *Store) page(ctx context.Context, from uint64, filter string, max int) (recs []events.Record, left int, err error) {
	it, err := jetstreamext.GetBatch(ctx, s.js, s.name, max,
		jetstreamext.GetBatchSeq(from), jetstreamext.GetBatchSubject(filter))
	if err != nil {
		return nil, 0, fmt.Errorf("read from %d: %w", from, err)
	}
	for m, err := range it {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			return recs, 0, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read from %d: %w", from, err)
		}
		rec, err := decode(m.Subject, m.Sequence, m.Time, m.Header, m.Data)
		if err != nil {
			return nil, 0, err
		}
		recs = append(recs, rec)
		left, err = strconv.Atoi(m.Header.Get("Nats-Num-Pending"))
		if err != nil {
			return nil, 0, fmt.Errorf("read from %d: pending: %w", from, err)
		}
	}
	return recs, left, nil
}

// scan hands fn, in order, the events from sequence from on whose subject
// matches filter and that were in the log when the scan started, until fn
// returns false. known is how many such events the caller knows of, or
// -1. A few events come by batch direct gets; when more than pageSize are
// known to remain, an ordered consumer streams them: it costs a consumer
// but delivers about twice as fast (the server rewrites every message's
// headers for a direct get).
func (s *Store) scan(ctx context.Context, from uint64, filter string, known int, fn func(events.Record) bool) error {
	left := known
	for {
		if left > consumeOver {
			return s.consume(ctx, from, filter, left, fn)
		}
		recs, l, err := s.page(ctx, from, filter, pageSize)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if !fn(r) {
				return nil
			}
		}
		if l == 0 || len(recs) == 0 {
			return nil
		}
		from, left = recs[len(recs)-1].Position+1, l
	}
}

// consume streams the next n events on filter from sequence from on (they
// must exist: an ordered consumer waits for more) to fn.
func (s *Store) consume(ctx context.Context, from uint64, filter string, n int, fn func(events.Record) bool) error {
	cons, err := s.js.OrderedConsumer(ctx, s.name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
	})
	if err != nil {
		return fmt.Errorf("read from %d: %w", from, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(pageSize))
	if err != nil {
		return fmt.Errorf("read from %d: %w", from, err)
	}
	defer it.Stop()
	for range n {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("read from %d: %w", from, err)
		}
		rec, err := decodeMsg(m)
		if err != nil {
			return err
		}
		if !fn(rec) {
			return nil
		}
	}
	return nil
}

func decodeMsg(m jetstream.Msg) (events.Record, error) {
	md, err := m.Metadata()
	if err != nil {
		return events.Record{}, err
	}
	return decode(m.Subject(), md.Sequence.Stream, md.Timestamp, m.Headers(), m.Data())
}

// seek returns the sequence of revision rev of the stream on subj, which
// ends at t (rev ≤ t.rev). Revisions grow with sequences, so a binary
// search over sequences finds it in O(log n) direct gets, however long
// and interleaved the log.
func (s *Store) seek(ctx context.Context, subj string, rev uint64, t tail) (uint64, error) {
	switch {
	case rev == 0:
		return 1, nil // the first message on subj from 1 on
	case int64(rev) == t.rev:
		return t.seq, nil
	}
	// The event at revision rev lies at least t.rev-rev messages before
	// the last one. Find the least sequence x whose next event on subj
	// has a revision ≥ rev.
	lo, hi := rev+1, t.seq-(uint64(t.rev)-rev)
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, err := s.stream.GetMsg(ctx, mid, jetstream.WithGetMsgSubject(subj))
		if err != nil {
			return 0, fmt.Errorf("seek revision %d: %w", rev, err)
		}
		r, err := strconv.ParseUint(m.Header.Get(hdrRevision), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("seek revision %d: event %d: %w", rev, m.Sequence, err)
		}
		switch {
		case r == rev:
			return m.Sequence, nil
		case r > rev:
			hi = mid
		default:
			lo = m.Sequence + 1
		}
	}
	return lo, nil
}

// readRange reads n events of the stream on subj from revision from on;
// the stream ends at t, past from+n-1.
func (s *Store) readRange(ctx context.Context, subj string, from uint64, n int, t tail) ([]events.Record, error) {
	seq, err := s.seek(ctx, subj, from, t)
	if err != nil {
		return nil, err
	}
	out := make([]events.Record, 0, n)
	err = s.scan(ctx, seq, subj, n, func(r events.Record) bool {
		if r.Revision >= from {
			out = append(out, r)
		}
		return len(out) < n
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ReadStream implements events.Store. It looks the stream's end up, finds
// the first revision wanted by binary search, and reads forwards in
// batches; a backwards read reads its window forwards and reverses it.
func (s *Store) ReadStream(ctx context.Context, stream string, dir events.Direction, from uint64, limit int) ([]events.Record, error) {
	if err := events.ValidateStream(stream); err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	if err := s.checkOpen(ctx); err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	subj := subject(stream)
	t, err := s.tail(ctx, subj)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, s.translate(err))
	}
	if t.rev < 0 {
		return nil, fmt.Errorf("read %s: %w", stream, events.ErrNotFound)
	}
	s.tails.put(stream, t)
	last := uint64(t.rev)
	var start, n uint64
	if dir == events.Backwards {
		top := min(from, last)
		n = top + 1
		if limit > 0 {
			n = min(n, uint64(limit))
		}
		start = top + 1 - n
	} else {
		if from > last {
			return []events.Record{}, nil
		}
		start, n = from, last-from+1
		if limit > 0 {
			n = min(n, uint64(limit))
		}
	}
	recs, err := s.readRange(ctx, subj, start, int(n), t)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, s.translate(err))
	}
	if dir == events.Backwards {
		slices.Reverse(recs)
	}
	return recs, nil
}

// filterSubject narrows a read to one category by subject, where it can;
// the server then skips other categories' events itself. It reports false
// when nothing can match.
func filterSubject(f events.Filter) (string, bool) {
	if len(f.Categories) != 1 {
		return subjectPrefix + ">", true
	}
	cat := f.Categories[0]
	if events.ValidateStream(cat+"-x") != nil || events.Category(cat+"-x") != cat {
		return "", false // no stream has this category
	}
	return subjectPrefix + cat + ".>", true
}

// ReadAll implements events.Store. A single category is filtered by the
// server (by subject); several categories, types and the organisation are
// filtered here.
func (s *Store) ReadAll(ctx context.Context, after uint64, f events.Filter, limit int) ([]events.Record, error) {
	if err := s.checkOpen(ctx); err != nil {
		return nil, fmt.Errorf("read all: %w", err)
	}
	filter, ok := filterSubject(f)
	if !ok {
		return []events.Record{}, nil
	}
	out := []events.Record{}
	err := s.scan(ctx, after+1, filter, -1, func(r events.Record) bool {
		if f.Match(r) {
			out = append(out, r)
		}
		return limit <= 0 || len(out) < limit
	})
	if err != nil {
		return nil, fmt.Errorf("read all: %w", s.translate(err))
	}
	return out, nil
}

// consumeOver is the number of known remaining events above which scan
// streams them with an ordered consumer rather than batch direct gets.
var consumeOver = 100
