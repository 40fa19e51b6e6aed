package jetstream

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/spectra-fab/spectra/events"
)

// subPage bounds how many messages the ordered consumer of a
// subscription holds at once.
const subPage = 256

// firstPage is how many messages a subscription's first batch direct get
// reads. A message holds up to PositionsPerMessage events, so it is kept
// small: it bounds the records a subscription holds at once, and the
// ordered consumer that reads the rest is the faster reader (the server
// rewrites every message's headers for a direct get).
const firstPage = 16

// Subscribe implements events.Store. The subscription first reads one page
// of stored events with a batch direct get, which answers at once even
// when nothing matches and says how many matching events follow. An
// ordered consumer starting right after that page then delivers those
// (the caught-up item comes after the last of them) and, with no switch,
// the live ones: no gap, no duplicate. Memory is bounded by the first
// page and the consumer's pull buffer.
func (s *Store) Subscribe(ctx context.Context, after uint64, f events.Filter) (events.Subscription, error) {
	if err := s.checkOpen(ctx); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	filter, ok := filterSubject(f)
	life, kill := context.WithCancel(s.life)
	sub := &subscription{
		store: s, filter: f, subject: filter, none: !ok,
		after: after, next: max(1, messageOf(after)), life: life, kill: kill,
	}
	// Whoever ends the subscription (its Close, the store's Close) also
	// stops its consumer.
	context.AfterFunc(life, sub.stopLive)
	return sub, nil
}

type subscription struct {
	store   *Store
	filter  events.Filter
	subject string
	none    bool // no stream can match the filter

	life context.Context // ends on Close of the subscription or the store
	kill context.CancelFunc

	mu      sync.Mutex // serialises Next
	after   uint64     // records at or before this position are not delivered
	next    uint64     // the message sequence to read or follow from
	buf     []events.Record
	head    int  // buf[head:] are still to deliver; the array is reused
	started bool // the first page is read
	behind  int  // stored events still to come before the caught-up item
	live    bool // the caught-up item is out

	liveMu sync.Mutex
	msgs   jetstream.MessagesContext // the ordered consumer, once live
}

// Next implements events.Subscription.
func (sub *subscription) Next(ctx context.Context) (events.Item, error) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	// Closing stops the consumer (stopLive), which ends a waiting Next.
	it, err := sub.next1(ctx)
	if err != nil {
		if sub.life.Err() != nil {
			return events.Item{}, events.ErrClosed
		}
		if ctx.Err() != nil {
			return events.Item{}, ctx.Err()
		}
		return events.Item{}, fmt.Errorf("subscription: %w", err)
	}
	return it, nil
}

// NextBatch is Next for a reader that takes many records per call: it
// appends to dst the records Next would deliver next — what is left of the
// first page, or the records of one message — and returns it, or returns
// dst unchanged with caughtUp set where Next would deliver the caught-up
// item. It blocks as Next does until there is something, with the same
// errors. The records' payloads share the message's body, as Next's do.
func (sub *subscription) NextBatch(ctx context.Context, dst []events.Record) (_ []events.Record, caughtUp bool, err error) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	n := len(dst)
	dst, caughtUp, err = sub.batch1(ctx, dst)
	if err != nil {
		dst = dst[:n]
		if sub.life.Err() != nil {
			return dst, false, events.ErrClosed
		}
		if ctx.Err() != nil {
			return dst, false, ctx.Err()
		}
		return dst, false, fmt.Errorf("subscription: %w", err)
	}
	return dst, caughtUp, nil
}

func (sub *subscription) batch1(ctx context.Context, dst []events.Record) ([]events.Record, bool, error) {
	if err := sub.start(ctx); err != nil {
		return dst, false, err
	}
	if sub.head < len(sub.buf) {
		dst = append(dst, sub.buf[sub.head:]...)
		sub.buf, sub.head = sub.buf[:0], 0
		return dst, false, nil
	}
	sub.buf, sub.head = sub.buf[:0], 0
	for {
		if !sub.live && sub.behind == 0 {
			sub.live = true
			return dst, true, nil
		}
		n := len(dst)
		var err error
		// Decoded straight into dst: no copy of the records.
		if dst, err = sub.read(ctx, dst); err != nil {
			return dst, false, err
		}
		if len(dst) > n {
			return dst, false, nil
		}
	}
}

// start reads the first page, once.
func (sub *subscription) start(ctx context.Context) error {
	if err := sub.life.Err(); err != nil {
		return err
	}
	if !sub.started {
		// One batch get: the first stored events, and how many more
		// there are; the consumer delivers those, then the live ones.
		if !sub.none {
			recs, next, left, err := sub.store.page(ctx, sub.next, sub.subject, firstPage)
			if err != nil {
				return err
			}
			sub.next = next
			sub.buf = sub.keep(recs, 0)
			sub.behind = left
		}
		sub.started = true
	}
	return nil
}

// read appends the records of the next message the subscription
// delivers to out (none when the filter or the starting position drops
// them all), waiting for one.
func (sub *subscription) read(ctx context.Context, out []events.Record) ([]events.Record, error) {
	if sub.none {
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-sub.life.Done():
			return out, sub.life.Err()
		}
	}
	msgs, err := sub.follow(ctx)
	if err != nil {
		return out, err
	}
	m, err := msgs.Next(jetstream.NextContext(ctx))
	if err != nil {
		return out, err
	}
	n := len(out)
	if out, err = decodeMsg(out, m); err != nil {
		return out[:n], err
	}
	if len(out) > n {
		sub.next = messageOf(out[n].Position) + 1
	}
	if !sub.live {
		sub.behind--
	}
	return sub.keep(out, n), nil
}

func (sub *subscription) next1(ctx context.Context) (events.Item, error) {
	if err := sub.start(ctx); err != nil {
		return events.Item{}, err
	}
	for {
		if sub.head < len(sub.buf) {
			sub.head++
			return events.Item{Record: sub.buf[sub.head-1]}, nil
		}
		// Delivered records are copies: the next message decodes into
		// the same array.
		sub.buf, sub.head = sub.buf[:0], 0
		if !sub.live && sub.behind == 0 {
			sub.live = true
			return events.Item{CaughtUp: true}, nil
		}
		var err error
		if sub.buf, err = sub.read(ctx, sub.buf); err != nil {
			return events.Item{}, err
		}
	}
}

// keep drops from recs[from:], in place, the records the subscription does
// not deliver.
func (sub *subscription) keep(recs []events.Record, from int) []events.Record {
	out := recs[:from]
	for _, r := range recs[from:] {
		if r.Position > sub.after && sub.filter.Match(r) {
			out = append(out, r)
		}
	}
	return out
}

// follow starts the ordered consumer at sub.next, once.
func (sub *subscription) follow(ctx context.Context) (jetstream.MessagesContext, error) {
	sub.liveMu.Lock()
	defer sub.liveMu.Unlock()
	if sub.msgs != nil {
		return sub.msgs, nil
	}
	if err := sub.life.Err(); err != nil {
		return nil, err
	}
	s := sub.store
	cons, err := s.rjs.OrderedConsumer(ctx, s.name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{sub.subject},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    sub.next,
	})
	if err != nil {
		return nil, fmt.Errorf("follow from %d: %w", sub.next, err)
	}
	msgs, err := cons.Messages(jetstream.PullMaxMessages(subPage))
	if err != nil {
		return nil, fmt.Errorf("follow from %d: %w", sub.next, err)
	}
	sub.msgs = msgs
	return msgs, nil
}

func (sub *subscription) stopLive() {
	sub.liveMu.Lock()
	defer sub.liveMu.Unlock()
	if sub.msgs != nil {
		sub.msgs.Stop()
	}
	sub.msgs = nil
}

// Close implements events.Subscription.
func (sub *subscription) Close() error {
	sub.kill()
	return nil
}
