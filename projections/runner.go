package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

// Selective is a projection that reads only some records: the runner
// hands it those Wants accepts, and only those (its position still moves
// past the others). Wants must depend on nothing but its arguments, and
// Apply must ignore the records it refuses: the runner remembers its
// answer for each stream category and base type.
type Selective interface {
	Wants(category, baseType string) bool
}

var (
	_ Selective = (*JobStatus)(nil)
	_ Selective = (*SPCCharts)(nil)
	_ Selective = (*R2RState)(nil)
	_ Selective = (*Security)(nil)
	_ Selective = (*Audit)(nil)
	_ Selective = (*Fab)(nil)
	_ Selective = (*Multivariate)(nil)
	_ Selective = (*Tools)(nil)
)

// decoder is a projection of this package that can take a record with its
// payload decoded by the runner, which then decodes each record once for
// all of them. The payload is shared: a projection keeps parts of it only
// to read them.
type decoder interface {
	// decodes reports whether applyDecoded takes the records of this
	// category and base type that Wants accepts (else Apply does).
	decodes(category, baseType string) bool
	// applyDecoded does what Apply does with the record decoded (its
	// payload, or the error events.Decode returned for it).
	applyDecoded(rec events.Record, d *decoded) error
}

var (
	_ decoder = (*JobStatus)(nil)
	_ decoder = (*SPCCharts)(nil)
	_ decoder = (*R2RState)(nil)
	_ decoder = (*Audit)(nil)
	_ decoder = (*Multivariate)(nil)
	_ decoder = (*Tools)(nil)
)

// Checkpoints keeps each projection's snapshot with the position it
// reflects.
type Checkpoints interface {
	// Load returns the last saved position and snapshot; ErrNoCheckpoint
	// when there is none.
	Load(ctx context.Context, name string) (position uint64, snapshot []byte, err error)
	Save(ctx context.Context, name string, position uint64, snapshot []byte) error
	Delete(ctx context.Context, name string) error
	// Names lists the projections that have a checkpoint.
	Names(ctx context.Context) ([]string, error)
}

// ErrNoCheckpoint is returned by Checkpoints.Load for a projection never
// saved.
var ErrNoCheckpoint = errors.New("no checkpoint")

// Subscriber is what the runner needs of the event store.
type Subscriber interface {
	Subscribe(ctx context.Context, after uint64, f events.Filter) (events.Subscription, error)
}

// Runner feeds projections from the log.
//
// A subscription that fails is opened again, after a back-off that grows
// from RetryMin to RetryMax; Live is false meanwhile. A projection whose
// Apply fails stops at that record: it applies nothing more, its checkpoint
// is no longer saved, and Failures reports it, while the other projections
// go on. Restarting the node (after a fix) or rebuilding the projection
// (Rebuild, or Runner.Restart while it runs) resumes it from its last
// checkpoint.
type Runner struct {
	store       Subscriber
	checkpoints Checkpoints
	log         *slog.Logger
	projections []Projection

	// SaveEvery and SaveInterval bound how often checkpoints are written:
	// after at least SaveEvery records and SaveInterval time.
	SaveEvery    int
	SaveInterval time.Duration
	// RetryMin and RetryMax bound the wait before a failed subscription is
	// opened again (doubling from RetryMin).
	RetryMin, RetryMax time.Duration

	mu       sync.Mutex
	pos      uint64        // applied by every running projection
	advanced chan struct{} // closed when pos moves; made by the first waiter
	caughtUp chan struct{}
	upOnce   sync.Once
	lagFn    func(uint64)
	live     bool               // subscribed and caught up
	failed   map[string]Failure // stopped projections by name
	restart  map[string]bool    // projections to rebuild at the next turn
	cancel   context.CancelFunc // ends the current subscription (Restart)
	resubs   uint64             // subscriptions opened again after an error

	appliedSeq uint64     // the last batch of this subscription whose position is out
	lagMu      sync.Mutex // orders applied's advances and lagFn calls
}

// Failure describes a projection stopped by an Apply error.
type Failure struct {
	Projection string    `json:"projection"`
	Position   uint64    `json:"position"` // of the record it failed on
	Stream     string    `json:"stream"`
	Revision   uint64    `json:"revision"`
	Type       string    `json:"type"`
	Error      string    `json:"error"`
	At         time.Time `json:"at"`
}

// StoppedError reports the projections stopped by an Apply error.
type StoppedError struct{ Failures []Failure }

func (e *StoppedError) Error() string {
	names := make([]string, len(e.Failures))
	for i, f := range e.Failures {
		names[i] = fmt.Sprintf("%s at position %d", f.Projection, f.Position)
	}
	return "projections stopped: " + strings.Join(names, ", ")
}

// NewRunner returns a runner for ps. checkpoints may be nil (always replay
// from the beginning).
func NewRunner(store Subscriber, checkpoints Checkpoints, log *slog.Logger, ps ...Projection) *Runner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{store: store, checkpoints: checkpoints, log: log, projections: ps,
		SaveEvery: 1000, SaveInterval: 5 * time.Second, RetryMin: 100 * time.Millisecond, RetryMax: 10 * time.Second,
		caughtUp: make(chan struct{}),
		failed:   map[string]Failure{}, restart: map[string]bool{}}
}

// OnApplied registers a function called with each applied position (for
// the projection-lag gauge). Call before Run.
func (r *Runner) OnApplied(fn func(position uint64)) { r.lagFn = fn }

// Names lists the runner's projections.
func (r *Runner) Names() []string {
	names := make([]string, len(r.projections))
	for i, p := range r.projections {
		names[i] = p.Name()
	}
	return names
}

// Position is the last position every running projection has applied.
func (r *Runner) Position() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pos
}

// CaughtUp is closed once the runner has applied the log as it stood when
// it first subscribed.
func (r *Runner) CaughtUp() <-chan struct{} { return r.caughtUp }

// Live reports whether the runner is subscribed and caught up: false
// before the first catch-up and while a failed subscription is retried.
func (r *Runner) Live() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.live
}

// Resubscriptions counts the subscriptions opened again after an error.
func (r *Runner) Resubscriptions() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resubs
}

// Failures lists the projections stopped by an Apply error, by name.
func (r *Runner) Failures() []Failure {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Failure, 0, len(r.failed))
	for _, f := range r.failed {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b Failure) int { return strings.Compare(a.Projection, b.Projection) })
	return out
}

// Stopped reports whether the named projection is stopped by a failure.
func (r *Runner) Stopped(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.failed[name]
	return ok
}

// Restart rebuilds the named projection while the runner runs: it is reset
// and replays the log from the beginning, clearing its failure. It returns
// ErrNotFound for a name the runner does not have.
func (r *Runner) Restart(name string) error {
	if !slices.Contains(r.Names(), name) {
		return fmt.Errorf("restart projection %q: %w", name, ErrNotFound)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.restart[name] = true
	if r.cancel != nil {
		r.cancel()
	}
	return nil
}

// WaitFor blocks until position has been applied or ctx ends.
func (r *Runner) WaitFor(ctx context.Context, position uint64) error {
	for {
		r.mu.Lock()
		if r.pos >= position {
			r.mu.Unlock()
			return nil
		}
		if r.advanced == nil {
			r.advanced = make(chan struct{})
		}
		ch := r.advanced
		r.mu.Unlock()
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
	if r.advanced != nil { // someone waits
		close(r.advanced)
		r.advanced = nil
	}
	r.mu.Unlock()
	if r.lagFn != nil {
		r.lagFn(pos)
	}
}

func (r *Runner) setLive(live bool) {
	r.mu.Lock()
	r.live = live
	r.mu.Unlock()
}

// Run restores the projections from their checkpoints, catches up from
// the log, then applies live records until ctx ends. It saves checkpoints
// as it goes and once more when it returns. It returns an error only when
// the first subscription cannot be opened; later subscription errors are
// retried.
func (r *Runner) Run(ctx context.Context) error {
	positions := make([]uint64, len(r.projections))
	for i, p := range r.projections {
		positions[i] = r.restore(ctx, p)
	}
	start := r.from(positions)
	r.advance(start)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.saveAll(sctx, positions)
	}()

	sub, err := r.store.Subscribe(ctx, start, events.Filter{})
	if err != nil {
		return fmt.Errorf("projections: subscribe: %w", err)
	}
	backoff := r.RetryMin
	for {
		subCtx, cancel := context.WithCancel(ctx)
		r.mu.Lock()
		r.cancel = cancel
		restarting := len(r.restart) > 0
		r.mu.Unlock()
		if restarting {
			cancel()
		}
		err := r.consume(subCtx, sub, positions, &backoff)
		cancel()
		sub.Close()
		r.setLive(false)
		if ctx.Err() != nil {
			return nil
		}
		if r.restarts(ctx, positions) {
			// Rebuilt projections replay from their reset position.
		} else if errors.Is(err, events.ErrClosed) {
			return nil
		} else {
			r.log.Warn("projection subscription failed; subscribing again", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, r.RetryMax)
		}
		for {
			start = r.from(positions)
			if sub, err = r.store.Subscribe(ctx, start, events.Filter{}); err == nil {
				break
			}
			if ctx.Err() != nil || errors.Is(err, events.ErrClosed) {
				return nil
			}
			r.log.Warn("projection subscribe failed; retrying", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, r.RetryMax)
		}
		r.mu.Lock()
		r.resubs++
		r.mu.Unlock()
	}
}

// batchSubscription is a subscription that hands over many records per
// call (the JetStream store's: the rest of a page, or one message's
// events). NextBatch appends them to dst, or returns dst unchanged with
// caughtUp set where Next would return the caught-up item.
type batchSubscription interface {
	NextBatch(ctx context.Context, dst []events.Record) (_ []events.Record, caughtUp bool, err error)
}

const (
	// batchRecords is how many records the runner gathers into one batch
	// while catching up (stored records come without waiting).
	batchRecords = 512
	// parallelMin: a batch of at least this many records is applied by
	// one goroutine per projection, all at once, each in log order;
	// smaller ones (live records, a few at a time) on the runner's own
	// goroutine, after the batches in flight.
	parallelMin = 64
	// batchesInFlight bounds the batches read ahead of the slowest
	// projection (the memory a rebuild holds).
	batchesInFlight = 4
)

// batch is a run of consecutive records with their routes and decoded
// payloads, applied by every projection in turn.
type batch struct {
	seq  uint64 // the order batches were read in
	recs []events.Record
	to   []routing
	dec  []decoded // dec[k] is recs[k]'s when to[k].decoded != 0
	left atomic.Int32
}

// consume applies the subscription's records until it fails, ctx ends or
// a restart is requested. It reads records in batches; a large batch is
// applied by one goroutine per projection at once (each projection still
// applies the log in order), so a rebuild uses more than one core; the
// subscription reads and the payloads are decoded once, on this goroutine,
// meanwhile.
func (r *Runner) consume(ctx context.Context, sub events.Subscription, positions []uint64, backoff *time.Duration) error {
	unsaved, lastSave := 0, time.Now()
	// stopped[i] is written by whoever applies projection i (stop), read
	// by the others only once it has applied what it was given; restarts
	// clears failures between two consumes.
	stopped := make([]bool, len(r.projections))
	for i, p := range r.projections {
		stopped[i] = r.Stopped(p.Name())
	}
	routes := map[route]routing{}
	var (
		lastKey route // most records follow one of the same route
		lastTo  routing
		routed  bool // lastKey is set
	)
	bs, batched := sub.(batchSubscription)
	parallel := batched && len(r.projections) > 1

	// The batches: free ones wait in free; one in flight goes to every
	// worker, and the last to apply it advances the position and frees it.
	free := make(chan *batch, batchesInFlight)
	for range batchesInFlight {
		free <- &batch{}
	}
	var (
		inflight sync.WaitGroup // batches handed to the workers
		workers  sync.WaitGroup
		work     []chan *batch
		seq      uint64
	)
	r.mu.Lock()
	r.appliedSeq = 0
	r.mu.Unlock()
	done := func(b *batch) {
		r.applied(b.seq, b.recs[len(b.recs)-1].Position)
		free <- b
		inflight.Done()
	}
	if parallel {
		work = make([]chan *batch, len(r.projections))
		for i := range r.projections {
			work[i] = make(chan *batch, batchesInFlight)
			workers.Add(1)
			go func() {
				defer workers.Done()
				for b := range work[i] {
					r.applyBatch(i, b, positions, stopped)
					if b.left.Add(-1) == 0 {
						done(b)
					}
				}
			}()
		}
	}
	// Every worker ends, and every batch is applied, before consume
	// returns: positions and the models are the caller's again.
	defer func() {
		for _, w := range work {
			close(w)
		}
		workers.Wait()
	}()

	live := false
	for {
		b := <-free
		b.recs = b.recs[:0]
		caughtUp := false
		var err error
		if batched {
			for {
				b.recs, caughtUp, err = bs.NextBatch(ctx, b.recs)
				// Catching up, stored records come at once: gather more.
				if err != nil || caughtUp || live || len(b.recs) >= batchRecords {
					break
				}
			}
		} else {
			var it events.Item
			if it, err = sub.Next(ctx); err == nil {
				if caughtUp = it.CaughtUp; !caughtUp {
					b.recs = append(b.recs, it.Record)
				}
			}
		}
		if n := len(b.recs); n > 0 {
			// Route and decode (once for every projection that reads the
			// payload decoded).
			b.to = slices.Grow(b.to[:0], n)[:n]
			if cap(b.dec) < n {
				b.dec = make([]decoded, n)
			}
			b.dec = b.dec[:n]
			for k := range b.recs {
				rec := &b.recs[k]
				key := route{events.Category(rec.Stream), events.BaseType(rec.Type)}
				to := lastTo
				if !routed || key != lastKey {
					var ok bool
					if to, ok = routes[key]; !ok {
						to = r.route(key)
						routes[key] = to
					}
					lastKey, lastTo, routed = key, to, true
				}
				b.to[k] = to
				d := &b.dec[k]
				if d.ok {
					d.reset()
				}
				if to.decoded != 0 {
					d.p, d.err = events.Decode(*rec)
					d.ok = true
				}
			}
			seq++
			b.seq = seq
			if parallel && n >= parallelMin {
				inflight.Add(1)
				b.left.Store(int32(len(work)))
				for _, w := range work {
					w <- b
				}
			} else {
				inflight.Wait() // what is in flight comes first
				inflight.Add(1)
				for i := range r.projections {
					r.applyBatch(i, b, positions, stopped)
				}
				done(b)
			}
			unsaved += n
		} else {
			free <- b
		}
		if err != nil {
			inflight.Wait()
			return err
		}
		*backoff = r.RetryMin
		if caughtUp {
			inflight.Wait()
			live = true
			r.setLive(true)
			r.upOnce.Do(func() { close(r.caughtUp) })
		}
		if r.checkpoints != nil && unsaved >= r.SaveEvery && time.Since(lastSave) >= r.SaveInterval {
			inflight.Wait()
			r.saveAll(ctx, positions)
			unsaved, lastSave = 0, time.Now()
		}
	}
}

// applyBatch applies b's records to projection i (those after its
// position, unless it is stopped).
func (r *Runner) applyBatch(i int, b *batch, positions []uint64, stopped []bool) {
	p := r.projections[i]
	bit := uint64(1) << (i & 63)
	for k := range b.recs {
		rec := &b.recs[k]
		if rec.Position <= positions[i] || stopped[i] {
			continue
		}
		to := &b.to[k]
		var err error
		switch {
		case i < 64 && to.decoded&bit != 0:
			err = p.(decoder).applyDecoded(*rec, &b.dec[k])
		case i >= 64 || to.wants&bit != 0:
			err = p.Apply(*rec)
		}
		if err != nil {
			r.stop(p.Name(), *rec, err)
			stopped[i] = true
			continue
		}
		positions[i] = rec.Position
	}
}

// applied advances the runner's position to pos, the last of batch seq,
// unless a later batch got there first.
func (r *Runner) applied(seq, pos uint64) {
	r.lagMu.Lock()
	defer r.lagMu.Unlock()
	r.mu.Lock()
	if seq < r.appliedSeq {
		r.mu.Unlock()
		return
	}
	r.appliedSeq = seq
	r.mu.Unlock()
	r.advance(pos)
}

// route is what the runner hands records to projections by.
type route struct{ category, baseType string }

// routing says which of the first 64 projections take records of a route,
// a bit each (the others take every record through Apply): wants through
// Apply, decoded through applyDecoded.
type routing struct{ wants, decoded uint64 }

func (r *Runner) route(k route) routing {
	var to routing
	for i, p := range r.projections[:min(len(r.projections), 64)] {
		if s, ok := p.(Selective); ok && !s.Wants(k.category, k.baseType) {
			continue
		}
		if d, ok := p.(decoder); ok && d.decodes(k.category, k.baseType) {
			to.decoded |= 1 << i
		} else {
			to.wants |= 1 << i
		}
	}
	return to
}

// from is where a subscription starts: the lowest position of the
// running projections (stopped ones need no record).
func (r *Runner) from(positions []uint64) uint64 {
	start, any := uint64(0), false
	for i, p := range r.projections {
		if r.Stopped(p.Name()) {
			continue
		}
		if !any || positions[i] < start {
			start, any = positions[i], true
		}
	}
	if !any {
		return r.Position()
	}
	return start
}

// stop records that projection name failed on rec and applies nothing
// more to it.
func (r *Runner) stop(name string, rec events.Record, err error) {
	r.log.Error("projection stopped: apply failed", "projection", name, "position", rec.Position,
		"stream", rec.Stream, "revision", rec.Revision, "type", rec.Type, "err", err)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed[name] = Failure{Projection: name, Position: rec.Position, Stream: rec.Stream, Revision: rec.Revision,
		Type: rec.Type, Error: err.Error(), At: time.Now().UTC()}
}

// restarts resets the projections Restart asked for, dropping their
// checkpoints and failures; it reports whether there were any.
func (r *Runner) restarts(ctx context.Context, positions []uint64) bool {
	r.mu.Lock()
	names := r.restart
	r.restart = map[string]bool{}
	r.mu.Unlock()
	for i, p := range r.projections {
		if !names[p.Name()] {
			continue
		}
		p.Reset()
		positions[i] = 0
		if r.checkpoints != nil {
			if err := r.checkpoints.Delete(ctx, p.Name()); err != nil && !errors.Is(err, ErrNoCheckpoint) {
				r.log.Warn("projection checkpoint not deleted", "projection", p.Name(), "err", err)
			}
		}
		r.mu.Lock()
		delete(r.failed, p.Name())
		r.mu.Unlock()
		r.log.Info("projection restarted from the beginning of the log", "projection", p.Name())
	}
	return len(names) > 0
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
		if r.Stopped(p.Name()) {
			// Its last checkpoint stands: the model may hold half of the
			// record it failed on.
			continue
		}
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
	if len(names) == 0 {
		all, err := cps.Names(ctx)
		if err != nil {
			return fmt.Errorf("rebuild: %w", err)
		}
		names = all
	}
	for _, n := range names {
		if err := cps.Delete(ctx, n); err != nil && !errors.Is(err, ErrNoCheckpoint) {
			return fmt.Errorf("rebuild %s: %w", n, err)
		}
	}
	return nil
}
