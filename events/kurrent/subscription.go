package kurrent

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/spectra-fab/spectra/events"
)

// subscription is a catch-up subscription to $all that survives drops.
type subscription struct {
	store  *Store
	filter events.Filter
	items  chan events.Item
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns

	mu     sync.Mutex
	closed bool
	err    error // why run ended
}

// Subscribe delivers the records after position after that pass f, then
// a caught-up item, then live records, until the subscription or the
// store is closed; ctx bounds only the call. A dropped server
// subscription is resumed from the last event received.
func (s *Store) Subscribe(ctx context.Context, after uint64, f events.Filter) (events.Subscription, error) {
	subCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	sub := &subscription{store: s, filter: f, items: make(chan events.Item, 256), cancel: cancel, done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		return nil, fmt.Errorf("subscribe: %w", events.ErrClosed)
	}
	s.subs[sub] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	es, err := s.subscribeAll(ctx, subCtx, after, f)
	if err != nil {
		cancel()
		s.subEnded(sub)
		return nil, fmt.Errorf("subscribe after %d: %w", after, translate(err))
	}
	go sub.run(subCtx, es, after)
	return sub, nil
}

func (s *Store) subEnded(sub *subscription) {
	s.mu.Lock()
	delete(s.subs, sub)
	s.mu.Unlock()
	s.wg.Done()
}

// subscribeAll opens a server subscription living as long as streamCtx,
// waiting for its confirmation as long as waitCtx. Subscriptions start
// after their position (exclusive); 0 starts at the beginning.
func (s *Store) subscribeAll(waitCtx, streamCtx context.Context, after uint64, f events.Filter) (*esdb.Subscription, error) {
	opts := esdb.SubscribeToAllOptions{From: esdb.Start{}, Filter: serverFilter(s.opts.Namespace, f)}
	if after > 0 {
		opts.From = esdb.Position{Commit: after, Prepare: after}
	}
	var es *esdb.Subscription
	err := s.call(waitCtx, func(c *esdb.Client) (err error) {
		es, err = c.SubscribeToAll(streamCtx, opts)
		return err
	})
	return es, err
}

// serverFilter is the part of f the server can apply: one filter, on
// stream names or on event types. Categories win, as they are the more
// selective in our log; without either, system events are left out.
func serverFilter(ns string, f events.Filter) *esdb.SubscriptionFilter {
	if len(f.Categories) > 0 {
		prefixes := make([]string, len(f.Categories))
		for i, c := range f.Categories {
			prefixes[i] = ns + c + "-"
		}
		return &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: prefixes}
	}
	if len(f.Types) > 0 {
		alts := make([]string, len(f.Types))
		for i, t := range f.Types {
			alts[i] = regexp.QuoteMeta(t)
		}
		// Stored types are "<base>.v<n>"; events.BaseType cuts at ".v".
		return &esdb.SubscriptionFilter{Type: esdb.EventFilterType, Regex: `^(?:` + strings.Join(alts, "|") + `)(?:\.v.*)?$`}
	}
	if ns != "" {
		return &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{ns}}
	}
	return esdb.ExcludeSystemEventsFilter()
}

func (sub *subscription) run(ctx context.Context, es *esdb.Subscription, after uint64) {
	defer sub.store.subEnded(sub)
	defer close(sub.done)
	last, have := after, after > 0
	caughtUp := false
	delay := sub.store.opts.RetryDelay
	for {
		e := es.Recv()
		switch {
		case e.EventAppeared != nil:
			rec, ours := sub.store.record(e.EventAppeared)
			if have && rec.Position <= last {
				continue // at or before the start, or already delivered
			}
			last, have = rec.Position, true
			delay = sub.store.opts.RetryDelay
			if !ours || !sub.filter.Match(rec) {
				continue
			}
			if !sub.emit(ctx, events.Item{Record: rec}) {
				es.Close()
				sub.end(ctx, nil)
				return
			}
		case e.CaughtUp != nil:
			if !caughtUp {
				caughtUp = true
				if !sub.emit(ctx, events.Item{CaughtUp: true}) {
					es.Close()
					sub.end(ctx, nil)
					return
				}
			}
		case e.SubscriptionDropped != nil:
			es.Close()
			if ctx.Err() != nil {
				sub.end(ctx, nil)
				return
			}
			sub.store.log.Warn("kurrentdb: subscription dropped, resuming", "after", last, "err", e.SubscriptionDropped.Error)
			var err error
			if es, err = sub.resume(ctx, last, &delay); err != nil {
				sub.end(ctx, err)
				return
			}
		}
		// Checkpoints are not resume points: a server's checkpoint may lie
		// past an event it has not sent yet. Fell-behind needs nothing.
	}
}

// resume subscribes again after last, backing off, until it works, ctx
// ends or the error is one that retrying cannot fix.
func (sub *subscription) resume(ctx context.Context, last uint64, delay *time.Duration) (*esdb.Subscription, error) {
	for {
		t := time.NewTimer(*delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		*delay = min(*delay*2, sub.store.opts.MaxRetryDelay)
		es, err := sub.store.subscribeAll(ctx, ctx, last, sub.filter)
		if err == nil {
			sub.store.log.Info("kurrentdb: subscription resumed", "after", last)
			return es, nil
		}
		if ctx.Err() != nil || errors.Is(err, events.ErrClosed) ||
			hasCode(err, esdb.ErrorCodeAccessDenied) || hasCode(err, esdb.ErrorCodeUnauthenticated) {
			return nil, err
		}
		sub.store.log.Warn("kurrentdb: resubscribe failed", "after", last, "err", err)
	}
}

func (sub *subscription) emit(ctx context.Context, it events.Item) bool {
	select {
	case sub.items <- it:
		return true
	case <-ctx.Done():
		return false
	}
}

// end records why the subscription ended: err, or ErrClosed when it was
// closed or its context ended.
func (sub *subscription) end(ctx context.Context, err error) {
	if err == nil || ctx.Err() != nil {
		err = events.ErrClosed
	}
	sub.mu.Lock()
	sub.err = fmt.Errorf("subscription: %w", err)
	sub.mu.Unlock()
}

// Next returns the next item. It returns ctx.Err() when ctx ends and
// events.ErrClosed once the subscription or its store is closed.
func (sub *subscription) Next(ctx context.Context) (events.Item, error) {
	sub.mu.Lock()
	closed := sub.closed
	sub.mu.Unlock()
	if closed {
		return events.Item{}, fmt.Errorf("subscription: %w", events.ErrClosed)
	}
	select {
	case it := <-sub.items:
		return it, nil
	case <-ctx.Done():
		return events.Item{}, ctx.Err()
	case <-sub.done:
		select {
		case it := <-sub.items: // delivered before it ended
			return it, nil
		default:
		}
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return events.Item{}, sub.err
	}
}

// Close ends the subscription and waits for its goroutine.
func (sub *subscription) Close() error {
	sub.mu.Lock()
	sub.closed = true
	sub.mu.Unlock()
	sub.cancel()
	<-sub.done
	return nil
}
