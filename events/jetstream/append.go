package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	// nats.go has no atomic batch publish (nor batch direct get); orbit.go
	// is Synadia's companion module that implements both protocols (ADR-50,
	// ADR-31) on top of nats.go, so we use it rather than re-implement them.
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/spectra-fab/spectra/events"
)

// JetStream API error codes the store acts on.
const (
	// Wrong last sequence: 10071, and 10164 on a cluster or inside an
	// atomic batch. Both mean the stream was not where we expected.
	codeWrongLastSeq         jetstream.ErrorCode = 10071
	codeWrongLastSeqConstant jetstream.ErrorCode = 10164
	// An atomic batch carried an event id already in the duplicate
	// window: possibly our own earlier attempt.
	codeBatchDuplicateMsgID jetstream.ErrorCode = 10201
)

// maxAnyRetries bounds how often an ExpectAny append retries when another
// writer slipped in between looking up the stream's end and appending.
const maxAnyRetries = 20

// errDuplicate says JetStream dropped an event as a duplicate of one it
// already stored at seq.
type errDuplicate struct{ seq uint64 }

func (e *errDuplicate) Error() string { return fmt.Sprintf("duplicate of the event at %d", e.seq) }

// Append implements events.Store. Optimistic concurrency is JetStream's
// own: the first message carries the sequence that the stream's last
// message must have (Nats-Expected-Last-Subject-Sequence, over the
// stream's subjects), so the server refuses a stale writer atomically.
// The events go as one message, one fsync (see codec.go); only an append
// spanning organisations or about 900 KiB takes an atomic batch of
// several. Appends may carry at most 1,000 events; more is ErrInvalid.
func (s *Store) Append(ctx context.Context, stream string, expected events.Expected, evs ...events.Event) (events.AppendResult, error) {
	if err := events.ValidateAppend(stream, expected, evs, maxBatch); err != nil {
		return events.AppendResult{}, fmt.Errorf("append %s: %w", stream, err)
	}
	if err := s.checkOpen(ctx); err != nil {
		return events.AppendResult{}, fmt.Errorf("append %s: %w", stream, err)
	}
	res, err := s.append(ctx, stream, expected, evs)
	if err != nil {
		var ce *events.ConflictError
		if errors.As(err, &ce) {
			return events.AppendResult{}, err // already names the stream
		}
		return events.AppendResult{}, fmt.Errorf("append %s: %w", stream, s.translate(err))
	}
	return res, nil
}

func (s *Store) append(ctx context.Context, stream string, expected events.Expected, evs []events.Event) (events.AppendResult, error) {
	subj := streamSubjects(stream)
	useCache := true
	for attempt := 0; ; attempt++ {
		// Where must the stream end for this append to go ahead?
		var at tail
		switch cached, ok := s.tails.get(stream); {
		case expected == events.ExpectNoStream:
			at = tail{rev: -1}
		case useCache && ok && (expected == events.ExpectAny || cached.rev == int64(expected)):
			at = cached
		default:
			cur, err := s.tail(ctx, subj)
			if err != nil {
				return events.AppendResult{}, err
			}
			if expected >= 0 && cur.rev != int64(expected) {
				return s.refused(ctx, stream, expected, evs, cur)
			}
			at = cur
		}

		res, err := s.publish(ctx, stream, at, evs)
		if err == nil {
			s.stats.events.Add(uint64(len(evs)))
			s.stats.ack(res.Position)
			s.tails.put(stream, tail{rev: int64(res.Revision), seq: messageOf(res.Position)})
			return res, nil
		}
		var apiErr *jetstream.APIError
		var dup *errDuplicate
		switch {
		case errors.As(err, &apiErr) && (apiErr.ErrorCode == codeWrongLastSeq || apiErr.ErrorCode == codeWrongLastSeqConstant || apiErr.ErrorCode == codeBatchDuplicateMsgID):
		case errors.As(err, &dup):
		default:
			return events.AppendResult{}, err
		}
		cur, err := s.tail(ctx, subj)
		if err != nil {
			return events.AppendResult{}, err
		}
		if expected == events.ExpectAny && attempt < maxAnyRetries {
			// Our own earlier attempt, or a writer that slipped in?
			if res, ok, err := s.stored(ctx, stream, expected, evs, cur); err != nil || ok {
				return res, err
			}
			useCache = false
			continue
		}
		return s.refused(ctx, stream, expected, evs, cur)
	}
}

// refused handles an append the stream's state refuses: it is a retry of
// an append that already succeeded (its acknowledgement lost), or a
// conflict.
func (s *Store) refused(ctx context.Context, stream string, expected events.Expected, evs []events.Event, cur tail) (events.AppendResult, error) {
	res, ok, err := s.stored(ctx, stream, expected, evs, cur)
	if err != nil {
		return events.AppendResult{}, err
	}
	if ok {
		return res, nil
	}
	return events.AppendResult{}, &events.ConflictError{Stream: stream, Expected: expected, Actual: cur.rev}
}

// stored reports whether evs are already in the stream exactly where
// expected would have put them (for ExpectAny: at its end), and if so the
// result of the append that stored them.
func (s *Store) stored(ctx context.Context, stream string, expected events.Expected, evs []events.Event, cur tail) (events.AppendResult, bool, error) {
	n := int64(len(evs))
	var start int64
	switch expected {
	case events.ExpectAny:
		start = cur.rev - n + 1
	case events.ExpectNoStream:
		start = 0
	default:
		start = int64(expected) + 1
	}
	if start < 0 || start+n-1 > cur.rev {
		return events.AppendResult{}, false, nil
	}
	recs, err := s.readRange(ctx, stream, streamSubjects(stream), uint64(start), int(n), cur)
	if err != nil {
		return events.AppendResult{}, false, err
	}
	if len(recs) != len(evs) {
		return events.AppendResult{}, false, nil
	}
	for i, rec := range recs {
		if rec.ID != evs[i].ID {
			return events.AppendResult{}, false, nil
		}
	}
	last := recs[len(recs)-1]
	return events.AppendResult{Revision: last.Revision, Position: last.Position}, true, nil
}

// publish appends evs after the stream's end at, which the server checks:
// one message when they fit, else an atomic batch.
func (s *Store) publish(ctx context.Context, stream string, at tail, evs []events.Event) (events.AppendResult, error) {
	groups := group(evs)
	msgs := make([]*nats.Msg, len(groups))
	rev := uint64(at.rev + 1)
	for i, g := range groups {
		m, err := encode(stream, g, rev)
		if err != nil {
			return events.AppendResult{}, err
		}
		msgs[i], rev = m, rev+uint64(len(g))
	}
	// Only the first message can carry the expectation: inside a batch
	// the server refuses it on a subject the batch already wrote. It
	// names every subject of the stream (any organisation token).
	msgs[0].Header.Set(hdrExpectedLastSubjSeq, strconv.FormatUint(at.seq, 10))
	msgs[0].Header.Set(hdrExpectedLastSubjSeqSubj, streamSubjects(stream))
	last := uint64(at.rev + int64(len(evs)))
	n := len(groups[len(groups)-1])
	s.stats.messages.Add(uint64(len(msgs)))
	if len(msgs) == 1 {
		var ack *jetstream.PubAck
		var err error
		if s.gc != nil {
			ack, err = s.gc.publish(ctx, msgs[0], streamSubjects(stream))
		} else {
			ack, err = s.js.PublishMsg(ctx, msgs[0])
		}
		if err != nil {
			return events.AppendResult{}, err
		}
		if ack.Duplicate {
			return events.AppendResult{}, &errDuplicate{seq: ack.Sequence}
		}
		return events.AppendResult{Revision: last, Position: position(ack.Sequence, n-1)}, nil
	}
	ack, err := jetstreamext.PublishMsgBatch(ctx, s.js, msgs)
	if err != nil {
		return events.AppendResult{}, err
	}
	return events.AppendResult{Revision: last, Position: position(ack.Sequence, n-1)}, nil
}
