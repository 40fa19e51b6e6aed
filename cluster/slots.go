package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/spectra-fab/spectra/actors"
)

// SlotsBucket is the NATS KV bucket of queue slots.
const SlotsBucket = "spectra_slots"

// Slots keeps each queue's slot table in a NATS KV bucket, one key per
// queue, changed by compare-and-set on the key's revision. It implements
// actors.Slots.
type Slots struct {
	KV jetstream.KeyValue
}

var _ actors.Slots = (*Slots)(nil)

// queue names may hold any character a tool id does; keys may not.
func slotKey(queue string) string { return "q." + base64.RawURLEncoding.EncodeToString([]byte(queue)) }

func slotQueue(key string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(key, "q."))
	return string(b), err == nil && strings.HasPrefix(key, "q.")
}

// Update implements actors.Slots.
func (s *Slots) Update(ctx context.Context, queue string, change func(t *actors.SlotTable) bool) (actors.SlotTable, error) {
	key := slotKey(queue)
	for {
		var t actors.SlotTable
		var rev uint64
		e, err := s.KV.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return t, fmt.Errorf("slots of %s: %w", queue, err)
		default:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &t); err != nil {
				return t, fmt.Errorf("slots of %s: %w", queue, err)
			}
		}
		if !change(&t) {
			return t, nil
		}
		data, err := json.Marshal(t)
		if err != nil {
			return t, err
		}
		if rev == 0 {
			_, err = s.KV.Create(ctx, key, data)
		} else {
			_, err = s.KV.Update(ctx, key, data, rev)
		}
		if err == nil {
			return t, nil
		}
		var apiErr *jetstream.APIError
		if errors.Is(err, jetstream.ErrKeyExists) || (errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
			if ctx.Err() != nil {
				return t, ctx.Err()
			}
			continue // another node changed the table first
		}
		return t, fmt.Errorf("slots of %s: %w", queue, err)
	}
}

// Watch implements actors.Slots.
func (s *Slots) Watch(ctx context.Context, changed func(queue string)) error {
	w, err := s.KV.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil {
				continue
			}
			if q, ok := slotQueue(e.Key()); ok {
				changed(q)
			}
		}
	}
}

// Sweep drops from every table the runs finished says have ended: a node
// that died between a run's last event and giving its slot back leaves
// the slot taken. A run that is alive puts back anything swept from an
// older view within seconds (actors' re-assertion).
func (s *Slots) Sweep(ctx context.Context, finished func(runID string) bool) error {
	lister, err := s.KV.ListKeys(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil
		}
		return err
	}
	for key := range lister.Keys() {
		q, ok := slotQueue(key)
		if !ok {
			continue
		}
		if _, err := s.Update(ctx, q, func(t *actors.SlotTable) bool {
			changed := false
			for _, id := range append(append([]string{}, t.Running...), waitingIDs(t)...) {
				if finished(id) {
					changed = t.Drop(id) || changed
				}
			}
			return changed
		}); err != nil {
			return err
		}
	}
	return nil
}

func waitingIDs(t *actors.SlotTable) []string {
	out := make([]string, len(t.Waiting))
	for i, w := range t.Waiting {
		out[i] = w.RunID
	}
	return out
}
