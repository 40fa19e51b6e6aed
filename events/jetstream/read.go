package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
	first, n, err := revisions(m.Header)
	if err != nil {
		return tail{}, fmt.Errorf("last event %d: %w", m.Sequence, err)
	}
	return tail{rev: int64(first) + int64(n) - 1, seq: m.Sequence}, nil
}

// page reads up to max messages from sequence from on whose subject
// matches filter, in order, with one batch direct get (which answers at
// once, even when nothing matches), and expands them into records. next is
// the sequence after the last message read (from when none was), left how
// many matching messages followed when the server answered.
func (s *Store) page(ctx context.Context, from uint64, filter string, max int) (recs []events.Record, next uint64, left int, err error) {
	next = from
	err = s.batchGet(ctx, from, filter, max, func(m *nats.Msg) error {
		var seq uint64
		var err error
		if recs, seq, err = decodeDirect(recs, m); err != nil {
			return err
		}
		next = seq + 1
		if left, err = strconv.Atoi(m.Header.Get("Nats-Num-Pending")); err != nil {
			return fmt.Errorf("message %d: pending: %w", seq, err)
		}
		return nil
	})
	if err != nil {
		return nil, from, 0, fmt.Errorf("read from %d: %w", from, err)
	}
	return recs, next, left, nil
}

// decodeDirect expands the message of a direct get into records.
func decodeDirect(recs []events.Record, m *nats.Msg) ([]events.Record, uint64, error) {
	h := m.Header
	seq, err := strconv.ParseUint(h.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return recs, 0, fmt.Errorf("sequence: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, h.Get(jetstream.TimeStampHeaer))
	if err != nil {
		return recs, 0, fmt.Errorf("message %d: time: %w", seq, err)
	}
	recs, err = decode(recs, h.Get(jetstream.SubjectHeader), seq, t, h, m.Data)
	return recs, seq, err
}

// batchGet sends one batch direct get (up to max messages from sequence
// from on whose subject matches filter) and hands fn the replies, in
// order. Its inbox holds exactly what the server may send (max messages
// and the end of the batch), where a general request-many subscription
// would allocate room for 65,536 on every read.
func (s *Store) batchGet(ctx context.Context, from uint64, filter string, max int, fn func(*nats.Msg) error) error {
	nc := s.rjs.Conn()
	inbox := nc.NewRespInbox()
	replies := make(chan *nats.Msg, max+1)
	sub, err := nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	req, err := json.Marshal(batchRequest{Seq: from, NextBySubject: filter, Batch: max})
	if err != nil {
		return err
	}
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+s.name, inbox, req); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, nc.Opts.Timeout)
		defer cancel()
	}
	for {
		select {
		case m := <-replies:
			switch status := m.Header.Get("Status"); status {
			case "":
				if err := fn(m); err != nil {
					return err
				}
			case "204": // end of the batch
				return nil
			case "404": // nothing matches
				return nil
			default:
				return fmt.Errorf("batch get: status %s %s", status, m.Header.Get("Description"))
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// batchRequest is a batch direct get (nats-server's JSApiMsgGetRequest).
type batchRequest struct {
	Seq           uint64 `json:"seq"`
	NextBySubject string `json:"next_by_subj,omitempty"`
	Batch         int    `json:"batch"`
}

// scan hands fn, in order, the events of the messages from sequence from
// on whose subject matches filter and that were in the log when the scan
// started, until fn returns false. known is how many such messages the
// caller knows of, or -1; batch how many messages a direct get asks for. A few events come by batch direct gets; when more than pageSize are
// known to remain, an ordered consumer streams them: it costs a consumer
// but delivers about twice as fast (the server rewrites every message's
// headers for a direct get).
// expect, when set, hears how many more messages the scan will read
// once it knows (a caller collecting records grows its slice once).
func (s *Store) scan(ctx context.Context, from uint64, filter string, known, batch int, fn func(events.Record) bool, expect func(int)) error {
	left := known
	for {
		if left > consumeOver {
			if expect != nil {
				expect(left)
			}
			return s.consume(ctx, from, filter, left, fn)
		}
		recs, next, l, err := s.page(ctx, from, filter, batch)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if !fn(r) {
				return nil
			}
		}
		if l == 0 || next == from {
			return nil
		}
		from, left = next, l
	}
}

// consume streams the events of the next n messages on filter from
// sequence from on (they must exist: an ordered consumer waits for more)
// to fn.
func (s *Store) consume(ctx context.Context, from uint64, filter string, n int, fn func(events.Record) bool) error {
	cons, err := s.rjs.OrderedConsumer(ctx, s.name, jetstream.OrderedConsumerConfig{
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
	var recs []events.Record
	for range n {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("read from %d: %w", from, err)
		}
		if recs, err = decodeMsg(recs[:0], m); err != nil {
			return err
		}
		for _, r := range recs {
			if !fn(r) {
				return nil
			}
		}
	}
	return nil
}

func decodeMsg(out []events.Record, m jetstream.Msg) ([]events.Record, error) {
	md, err := m.Metadata()
	if err != nil {
		return out, err
	}
	return decode(out, m.Subject(), md.Sequence.Stream, md.Timestamp, m.Headers(), m.Data())
}

// seek returns a sequence at or before the message holding revision rev
// of the stream on subj, which ends at t (rev ≤ t.rev), with no message of
// the stream between the two. Revisions grow with sequences, so a binary
// search over sequences finds it in O(log n) direct gets, however long
// and interleaved the log.
func (s *Store) seek(ctx context.Context, subj string, rev uint64, t tail) (uint64, error) {
	if rev == uint64(t.rev) {
		// The last message holds it: a run actor loading a stream of
		// one event (a new run), a claim read back. A read from 1 on
		// would have the server walk the block that holds the stream's
		// first message, through every other stream's messages in it
		// (msgBlock.firstMatching with a wildcard filter): at thousands
		// of running runs, most of the node's CPU while runs are created.
		return t.seq, nil
	}
	if rev == 0 {
		return 1, nil // the first message on subj from 1 on
	}
	// Find the least sequence x whose next message on subj ends at a
	// revision ≥ rev; the message at t.seq does.
	lo, hi := uint64(1), t.seq
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, err := s.stream.GetMsg(ctx, mid, jetstream.WithGetMsgSubject(subj))
		if err != nil {
			return 0, fmt.Errorf("seek revision %d: %w", rev, err)
		}
		first, n, err := revisions(m.Header)
		if err != nil {
			return 0, fmt.Errorf("seek revision %d: event %d: %w", rev, m.Sequence, err)
		}
		switch {
		case first <= rev && rev < first+uint64(n):
			return m.Sequence, nil
		case first > rev:
			hi = mid
		default:
			lo = m.Sequence + 1
		}
	}
	return lo, nil
}

// readRange reads n events of the stream on subj from revision from on;
// the stream ends at t, past from+n-1.
// When the index (streamindex.go) can serve it, it does, but for a read
// from the last revision (seek's lookup of the tail finds it at once).
func (s *Store) readRange(ctx context.Context, stream, subj string, from uint64, n int, t tail) ([]events.Record, error) {
	if !s.noIdx && from != uint64(t.rev) {
		out, ok, err := s.readRangeIndexed(ctx, stream, subj, from, n, t)
		if err != nil || ok {
			return out, err
		}
	}
	seq, err := s.seek(ctx, subj, from, t)
	if err != nil {
		return nil, err
	}
	out := make([]events.Record, 0, n)
	// n is also a bound on the messages to read: each holds at least one
	// of the n records wanted (the first holds revision from), and fn
	// stops at the n-th, so a consumer never waits past the end.
	err = s.scan(ctx, seq, subj, n, min(n, pageSize), func(r events.Record) bool {
		if r.Revision >= from {
			out = append(out, r)
		}
		return len(out) < n
	}, nil)
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
	subj := streamSubjects(stream)
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
	recs, err := s.readRange(ctx, stream, subj, start, int(n), t)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, s.translate(err))
	}
	if dir == events.Backwards {
		slices.Reverse(recs)
	}
	return recs, nil
}

// filterSubject narrows a read to one category and to one organisation
// by subject, where it can: the server then skips the other events itself.
// It reports false when nothing can match.
func filterSubject(f events.Filter) (string, bool) {
	cat := "*"
	if len(f.Categories) == 1 {
		cat = f.Categories[0]
		if events.ValidateStream(cat+"-x") != nil || events.Category(cat+"-x") != cat {
			return "", false // no stream has this category
		}
	}
	if f.OrgID != "" {
		return subjectPrefix + cat + ".*." + orgToken(f.OrgID), true
	}
	if cat == "*" {
		return subjectPrefix + ">", true
	}
	return subjectPrefix + cat + ".>", true
}

// ReadAll implements events.Store. A single category and the organisation
// are filtered by the server (by subject); several categories and types
// here.
func (s *Store) ReadAll(ctx context.Context, after uint64, f events.Filter, limit int) ([]events.Record, error) {
	if err := s.checkOpen(ctx); err != nil {
		return nil, fmt.Errorf("read all: %w", err)
	}
	filter, ok := filterSubject(f)
	if !ok {
		return []events.Record{}, nil
	}
	out := []events.Record{}
	batch := pageSize // a limit caps the first page too: messages hold at least one event each
	if limit > 0 {
		batch = min(limit+1, pageSize)
	}
	from := max(1, messageOf(after))
	if key, ok := indexKey(f); ok && !s.noIdx {
		var done bool
		var err error
		if out, from, done, err = s.readIndexed(ctx, key, from, after, f, limit, batch, out); err != nil {
			return nil, fmt.Errorf("read all: %w", s.translate(err))
		}
		if done {
			return out, nil
		}
	}
	err := s.scan(ctx, from, filter, -1, batch, func(r events.Record) bool {
		if r.Position > after && f.Match(r) {
			out = append(out, r)
		}
		return limit <= 0 || len(out) < limit
	}, func(n int) {
		if limit > 0 {
			n = min(n, limit-len(out))
		}
		out = slices.Grow(out, n)
	})
	if err != nil {
		return nil, fmt.Errorf("read all: %w", s.translate(err))
	}
	return out, nil
}

// readIndexed serves ReadAll from the org index (orgindex.go), when it is
// ready: the messages it names from sequence from on, by sequence, then
// one unfiltered page of the messages it has not reached yet. done is
// false when the caller is to go on with a filtered scan from next: the
// index was not ready (next = from), or more of the log lies beyond its
// reach than one page.
func (s *Store) readIndexed(ctx context.Context, key string, from, after uint64, f events.Filter, limit, batch int,
	out []events.Record) (_ []events.Record, next uint64, done bool, err error) {
	x := s.index()
	full := func() bool { return limit > 0 && len(out) >= limit }
	keep := func(recs []events.Record) {
		for _, r := range recs {
			if !full() && r.Position > after && f.Match(r) {
				out = append(out, r)
			}
		}
	}
	var recs []events.Record
	for {
		seqs, covered, ok := x.from(key, from, batch)
		if !ok {
			return out, from, false, nil
		}
		if len(seqs) > 0 {
			if recs, err = s.fetch(ctx, recs[:0], seqs); err != nil {
				return out, from, false, err
			}
			keep(recs)
			if full() {
				return out, 0, true, nil
			}
			from = seqs[len(seqs)-1] + 1
		}
		if len(seqs) < batch {
			from = max(from, covered+1)
			break
		}
	}
	// The log's last messages, which the index may not have reached: one
	// unfiltered page (what matches is picked here by subject); beyond
	// that, the server filters.
	left := 0
	next = from
	err = s.batchGet(ctx, from, "", tailPage, func(m *nats.Msg) error {
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return fmt.Errorf("sequence: %w", err)
		}
		next = seq + 1
		if left, err = strconv.Atoi(m.Header.Get("Nats-Num-Pending")); err != nil {
			return fmt.Errorf("message %d: pending: %w", seq, err)
		}
		if k, ok := keyOfSubject(m.Header.Get(jetstream.SubjectHeader)); !ok || k != key || full() {
			return nil
		}
		if recs, _, err = decodeDirect(recs[:0], m); err != nil {
			return err
		}
		keep(recs)
		return nil
	})
	if err != nil {
		return out, from, false, fmt.Errorf("read from %d: %w", from, err)
	}
	return out, next, left == 0 || full(), nil
}

// tailPage is how many messages past the org index a read gets unfiltered
// (a batch direct get holds the stream's isolation lock, which appends
// take, for the whole batch): the index follows the log within
// milliseconds, so this is normally a handful.
const tailPage = 100

// consumeOver is the number of known remaining events above which scan
// streams them with an ordered consumer rather than batch direct gets.
var consumeOver = 100

// Head is the position of the last event in the log (0: none).
func (s *Store) Head(ctx context.Context) (uint64, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("log head: %w", s.translate(err))
	}
	if info.State.LastSeq == 0 {
		return 0, nil
	}
	m, err := s.stream.GetMsg(ctx, info.State.LastSeq)
	if err != nil {
		return 0, fmt.Errorf("log head: %w", s.translate(err))
	}
	_, n, err := revisions(m.Header)
	if err != nil {
		return 0, fmt.Errorf("log head %d: %w", m.Sequence, err)
	}
	return position(m.Sequence, n-1), nil
}
