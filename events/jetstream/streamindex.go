package jetstream

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/spectra-fab/spectra/events"
)

// A stream's read from a revision (ReadStream) was a filtered read of
// subject ev.<category>.<id>.*: the server found the stream's next
// message by walking its message blocks through every other stream's
// messages in between (msgBlock.firstMatching with a wildcard filter). With
// thousands of runs appending at once, reading one run from revision 0
// walked nearly the whole log since the run began, tens of milliseconds
// of CPU per read at 3,000 runs.
//
// The same index (orgindex.go) keeps each stream's message sequences, so
// such a read gets the stream's messages by sequence (pipelined direct
// gets, a lookup each) and only what the index has not reached yet is read
// the filtered way, from the index's end on (normally a few messages).
// Until the index has caught up with the log, the read is as before.
//
// Memory: another 8 bytes per indexed message, plus a map entry per
// stream (its key and slice header, about 80 bytes).

// streamKey is the stream index's key of stream (<category>.<id>).
func streamKey(stream string) string {
	return events.Category(stream) + "." + events.StreamID(stream)
}

// streamSeqs returns the indexed sequences of the stream on key and the
// sequence the index covers (every message of the stream up to it is in
// seqs). ok is false while the index is not ready. seqs is shared with
// the index: the index only appends, so its first len(seqs) elements are
// never written again.
func (x *orgIndex) streamSeqs(key string) (seqs []uint64, covered uint64, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.ready {
		return nil, 0, false
	}
	all := x.streams[key]
	return all[:len(all):len(all)], x.covered, true
}

// readRangeIndexed is readRange served by the index: it finds the message
// holding revision from among the stream's indexed messages, gets them by
// sequence, and reads the rest (past the index) with a filtered scan from
// the index's end. ok is false when the index cannot serve the read (not
// ready); the caller reads as before.
func (s *Store) readRangeIndexed(ctx context.Context, stream, subj string, from uint64, n int, t tail) (_ []events.Record, ok bool, err error) {
	x := s.index()
	seqs, covered, ok := x.streamSeqs(streamKey(stream))
	if !ok {
		return nil, false, nil
	}
	defer func() {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			// A message the index names is gone: the log was made
			// again under it (its stream deleted and created anew).
			x.invalidate()
			ok, err = false, nil
		}
	}()
	// The stream's messages the index has not reached all lie past
	// covered: when revision from is not among the indexed ones (a
	// stream begun just now, or a read of its last few events), the read
	// starts there.
	i := len(seqs)
	if len(seqs) > 0 {
		j, in, err := s.seekIndexed(ctx, seqs, from)
		if err != nil {
			return nil, false, err
		}
		if in {
			i = j
		}
	}
	out := make([]events.Record, 0, n)
	var recs []events.Record
	// Each message holds at least one of the n events wanted (the first
	// holds revision from), so n messages suffice.
	for i < len(seqs) && len(out) < n {
		page := seqs[i:min(len(seqs), i+min(n-len(out), pageSize))]
		if recs, err = s.fetch(ctx, recs[:0], page); err != nil {
			return nil, false, err
		}
		for _, r := range recs {
			if r.Revision >= from && len(out) < n {
				out = append(out, r)
			}
		}
		i += len(page)
	}
	if len(out) < n && covered < t.seq {
		// The stream's messages the index has not reached: all of
		// them lie after covered, up to t.seq.
		left := n - len(out)
		err = s.scan(ctx, covered+1, subj, left, min(left, pageSize), func(r events.Record) bool {
			if r.Revision >= from {
				out = append(out, r)
			}
			return len(out) < n
		}, nil)
		if err != nil {
			return nil, false, err
		}
	}
	if len(out) < n {
		// Not what the tail promised (the index cannot be behind t and
		// hold none of it): read as before.
		x.short.Add(1)
		return nil, false, nil
	}
	for i, r := range out {
		if r.Stream != stream || r.Revision != from+uint64(i) {
			// Not the stream's revisions in order: the index names
			// other messages than those it read (the log made again).
			x.short.Add(1)
			x.invalidate()
			return nil, false, nil
		}
	}
	x.served.Add(1)
	return out, true, nil
}

// seekIndexed returns the index in seqs (a stream's messages, in order)
// of the message holding revision rev, by gets by sequence. Message k
// holds revisions from k on (each holds at least one), so it lies at or
// before k = rev; with one event a message, it is that one. ok is false
// when the indexed messages end before rev.
func (s *Store) seekIndexed(ctx context.Context, seqs []uint64, rev uint64) (int, bool, error) {
	revs := func(i int) (uint64, uint64, error) {
		m, err := s.stream.GetMsg(ctx, seqs[i])
		if err != nil {
			return 0, 0, fmt.Errorf("seek revision %d: %w", rev, err)
		}
		first, n, err := revisions(m.Header)
		if err != nil {
			return 0, 0, fmt.Errorf("seek revision %d: event %d: %w", rev, m.Sequence, err)
		}
		return first, first + uint64(n), nil
	}
	if rev == 0 {
		return 0, true, nil
	}
	hi := len(seqs) - 1
	if rev < uint64(hi) {
		hi = int(rev)
	}
	first, end, err := revs(hi)
	if err != nil {
		return 0, false, err
	}
	switch {
	case first <= rev && rev < end:
		return hi, true, nil
	case rev >= end:
		return 0, false, nil // past the index (hi is its last message)
	}
	// The least i < hi whose message ends past rev.
	lo := 0
	for lo < hi {
		mid := lo + (hi-lo)/2
		_, end, err := revs(mid)
		if err != nil {
			return 0, false, err
		}
		if end > rev {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, true, nil
}
