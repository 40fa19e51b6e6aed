package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spectra-fab/spectra/events"
)

// Projection is a read model fed from the log.
type Projection interface {
	// Name identifies the projection's checkpoint.
	Name() string
	// Apply folds one record in. Records arrive in position order, each
	// once; a projection skips the types it does not use.
	Apply(rec events.Record) error
	// Snapshot encodes the read model for a checkpoint; Restore loads one;
	// Reset empties the model.
	Snapshot() ([]byte, error)
	Restore(data []byte) error
	Reset()
}

// Checkpoints keeps each projection's snapshot with the position it
// reflects.
type Checkpoints interface {
	// Load returns the last saved position and snapshot; ErrNoCheckpoint
	// when there is none.
	Load(ctx context.Context, name string) (position uint64, snapshot []byte, err error)
	Save(ctx context.Context, name string, position uint64, snapshot []byte) error
	Delete(ctx context.Context, name string) error
}

// ErrNoCheckpoint is returned by Checkpoints.Load for a projection never
// saved.
var ErrNoCheckpoint = errors.New("no checkpoint")

// Subscriber is what the runner needs of the event store.
type Subscriber interface {
	Subscribe(ctx context.Context, after uint64, f events.Filter) (events.Subscription, error)
}

// Runner feeds projections from the log.
type Runner struct {
	store       Subscriber
	checkpoints Checkpoints
	log         *slog.Logger
	projections []Projection

	// SaveEvery and SaveInterval bound how often checkpoints are written:
	// after at least SaveEvery records and SaveInterval time.
	SaveEvery    int
	SaveInterval time.Duration

	mu       sync.Mutex
	pos      uint64        // applied by every projection
	advanced chan struct{} // closed and replaced when pos moves
	caughtUp chan struct{}
	upOnce   sync.Once
	lagFn    func(uint64)
}

// NewRunner returns a runner for ps. checkpoints may be nil (always replay
// from the beginning).
func NewRunner(store Subscriber, checkpoints Checkpoints, log *slog.Logger, ps ...Projection) *Runner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{store: store, checkpoints: checkpoints, log: log, projections: ps,
		SaveEvery: 1000, SaveInterval: 5 * time.Second,
		advanced: make(chan struct{}), caughtUp: make(chan struct{})}
}

// OnApplied registers a function called with each applied position (for
// the projection-lag gauge). Call before Run.
func (r *Runner) OnApplied(fn func(position uint64)) { r.lagFn = fn }

// Position is the last position every projection has applied.
func (r *Runner) Position() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pos
}

// CaughtUp is closed once the runner has applied the log as it stood when
// it subscribed.
func (r *Runner) CaughtUp() <-chan struct{} { return r.caughtUp }

// WaitFor blocks until position has been applied or ctx ends.
func (r *Runner) WaitFor(ctx context.Context, position uint64) error {
	for {
		r.mu.Lock()
		pos, ch := r.pos, r.advanced
		r.mu.Unlock()
		if pos >= position {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *Runner) advance(pos uint64) {
	r.mu.Lock()
	r.pos = pos
	close(r.advanced)
	r.advanced = make(chan struct{})
	r.mu.Unlock()
	if r.lagFn != nil {
		r.lagFn(pos)
	}
}

// Run restores the projections from their checkpoints, catches up from
// the log, then applies live records until ctx ends. It saves checkpoints
// as it goes and once more when it returns.
func (r *Runner) Run(ctx context.Context) error {
	positions := make([]uint64, len(r.projections))
	start := uint64(0)
	for i, p := range r.projections {
		positions[i] = r.restore(ctx, p)
		if i == 0 || positions[i] < start {
			start = positions[i]
		}
	}
	r.advance(start)
	sub, err := r.store.Subscribe(ctx, start, events.Filter{})
	if err != nil {
		return fmt.Errorf("projections: subscribe: %w", err)
	}
	defer sub.Close()

	unsaved, lastSave := 0, time.Now()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.saveAll(sctx, positions)
	}()
	for {
		it, err := sub.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, events.ErrClosed) {
				return nil
			}
			return fmt.Errorf("projections: %w", err)
		}
		if it.CaughtUp {
			r.upOnce.Do(func() { close(r.caughtUp) })
			continue
		}
		rec := it.Record
		for i, p := range r.projections {
			if rec.Position <= positions[i] {
				continue
			}
			if err := p.Apply(rec); err != nil {
				r.log.Error("projection apply failed; record skipped", "projection", p.Name(),
					"stream", rec.Stream, "revision", rec.Revision, "type", rec.Type, "err", err)
			}
			positions[i] = rec.Position
		}
		r.advance(rec.Position)
		unsaved++
		if r.checkpoints != nil && unsaved >= r.SaveEvery && time.Since(lastSave) >= r.SaveInterval {
			r.saveAll(ctx, positions)
			unsaved, lastSave = 0, time.Now()
		}
	}
}

func (r *Runner) restore(ctx context.Context, p Projection) uint64 {
	p.Reset()
	if r.checkpoints == nil {
		return 0
	}
	pos, snap, err := r.checkpoints.Load(ctx, p.Name())
	if err != nil {
		if !errors.Is(err, ErrNoCheckpoint) {
			r.log.Warn("projection checkpoint unreadable; rebuilding from the log", "projection", p.Name(), "err", err)
		}
		return 0
	}
	if err := p.Restore(snap); err != nil {
		r.log.Warn("projection snapshot unreadable; rebuilding from the log", "projection", p.Name(), "err", err)
		p.Reset()
		return 0
	}
	return pos
}

func (r *Runner) saveAll(ctx context.Context, positions []uint64) {
	if r.checkpoints == nil {
		return
	}
	for i, p := range r.projections {
		snap, err := p.Snapshot()
		if err == nil {
			err = r.checkpoints.Save(ctx, p.Name(), positions[i], snap)
		}
		if err != nil {
			r.log.Warn("projection checkpoint not saved", "projection", p.Name(), "err", err)
		}
	}
}

// Rebuild drops the checkpoints of the named projections (all when names
// is empty), so the next Run replays them from the beginning of the log.
func Rebuild(ctx context.Context, cps Checkpoints, names ...string) error {
	for _, n := range names {
		if err := cps.Delete(ctx, n); err != nil && !errors.Is(err, ErrNoCheckpoint) {
			return fmt.Errorf("rebuild %s: %w", n, err)
		}
	}
	return nil
}
