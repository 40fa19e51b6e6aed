package jetstream

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/spectra-fab/spectra/events"
)

// subPage bounds how many records a subscription holds at once while it
// catches up; live, the ordered consumer's own buffer bounds it.
const subPage = 256

// Subscribe implements events.Store. The subscription first reads the
// stored events page by page (batch direct gets, which answer at once even
// when nothing matches), delivers the caught-up item when a page reaches
// the end of the log, and then follows the log with an ordered consumer
// that starts right after the last event it read: no gap, no duplicate.
func (s *Store) Subscribe(ctx context.Context, after uint64, f events.Filter) (events.Subscription, error) {
	if err := s.checkOpen(ctx); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	filter, ok := filterSubject(f)
	life, kill := context.WithCancel(s.life)
	sub := &subscription{
		store: s, filter: f, subject: filter, none: !ok,
		next: after + 1, life: life, kill: kill,
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

	mu       sync.Mutex // serialises Next
	next     uint64     // the sequence to read or follow from
	buf      []events.Record
	caughtUp bool // the stored events are read; deliver the caught-up item
	live     bool // the caught-up item is out; follow the log

	liveMu sync.Mutex
	msgs   jetstream.MessagesContext // the ordered consumer, once live
}

// Next implements events.Subscription.
func (sub *subscription) Next(ctx context.Context) (events.Item, error) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	// Next waits on ctx and on the subscription's life, whichever ends
	// first.
	nctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(sub.life, cancel)()
	it, err := sub.next1(nctx)
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

func (sub *subscription) next1(ctx context.Context) (events.Item, error) {
	if err := sub.life.Err(); err != nil {
		return events.Item{}, err
	}
	for !sub.live {
		if len(sub.buf) > 0 {
			rec := sub.buf[0]
			sub.buf = sub.buf[1:]
			return events.Item{Record: rec}, nil
		}
		if sub.caughtUp {
			sub.live = true
			return events.Item{CaughtUp: true}, nil
		}
		if sub.none {
			sub.caughtUp = true
			continue
		}
		recs, done, err := sub.store.page(ctx, sub.next, sub.subject, subPage)
		if err != nil {
			return events.Item{}, err
		}
		if len(recs) > 0 {
			sub.next = recs[len(recs)-1].Position + 1
		}
		for _, r := range recs {
			if sub.filter.Match(r) {
				sub.buf = append(sub.buf, r)
			}
		}
		sub.caughtUp = done || len(recs) == 0
	}
	if sub.none {
		<-ctx.Done()
		return events.Item{}, ctx.Err()
	}
	msgs, err := sub.follow(ctx)
	if err != nil {
		return events.Item{}, err
	}
	for {
		m, err := msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			return events.Item{}, err
		}
		md, err := m.Metadata()
		if err != nil {
			return events.Item{}, err
		}
		rec, err := decode(m.Subject(), md.Sequence.Stream, md.Timestamp, m.Headers(), m.Data())
		if err != nil {
			return events.Item{}, err
		}
		sub.next = rec.Position + 1
		if sub.filter.Match(rec) {
			return events.Item{Record: rec}, nil
		}
	}
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
	cons, err := s.js.OrderedConsumer(ctx, s.name, jetstream.OrderedConsumerConfig{
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
