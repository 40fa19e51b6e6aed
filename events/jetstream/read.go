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

// page reads up to max messages from sequence from on whose subject
// matches filter, in order. done reports that nothing matching was left
// after them when the server answered.
func (s *Store) page(ctx context.Context, from uint64, filter string, max int) (recs []events.Record, done bool, err error) {
	it, err := jetstreamext.GetBatch(ctx, s.js, s.name, max,
		jetstreamext.GetBatchSeq(from), jetstreamext.GetBatchSubject(filter))
	if err != nil {
		return nil, false, fmt.Errorf("read from %d: %w", from, err)
	}
	done = true
	for m, err := range it {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			return recs, true, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("read from %d: %w", from, err)
		}
		rec, err := decode(m.Subject, m.Sequence, m.Time, m.Header, m.Data)
		if err != nil {
			return nil, false, err
		}
		recs = append(recs, rec)
		done = m.Header.Get("Nats-Num-Pending") == "0"
	}
	return recs, done, nil
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
	lo, hi := uint64(1), t.seq-(uint64(t.rev)-rev)
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
	for len(out) < n {
		recs, done, err := s.page(ctx, seq, subj, min(n-len(out), pageSize))
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if r.Revision >= from && len(out) < n {
				out = append(out, r)
			}
		}
		if done || len(recs) == 0 {
			break
		}
		seq = recs[len(recs)-1].Position + 1
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
	from := after + 1
	for limit <= 0 || len(out) < limit {
		max := pageSize
		if limit > 0 && len(f.Types) == 0 && f.OrgID == "" && len(f.Categories) <= 1 {
			max = min(max, limit-len(out))
		}
		recs, done, err := s.page(ctx, from, filter, max)
		if err != nil {
			return nil, fmt.Errorf("read all: %w", s.translate(err))
		}
		for _, r := range recs {
			if f.Match(r) && (limit <= 0 || len(out) < limit) {
				out = append(out, r)
			}
		}
		if done || len(recs) == 0 {
			break
		}
		from = recs[len(recs)-1].Position + 1
	}
	return out, nil
}
