package actors

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/spectra-fab/spectra/actors/actorspb"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/run"
)

// Service is the actor layer of a node: the actor system, the supervisor of
// run actors, the scheduler and the shared clock. Its methods are the
// commands the API sends.
type Service struct {
	cfg       Config
	log       *slog.Logger
	store     Store
	artifacts Artifacts
	engines   map[process.Kind]EngineFactory
	r2r       R2R

	system     *actor.ActorSystem
	supervisor *actor.PID
	scheduler  *actor.PID
	clock      *clock
	workers    *workers      // the run actors' dispatcher (clock.go)
	stepWall   time.Duration // wall time of one step at the time scale (> 0)
	lateness   Lateness      // of paced steps (time scale > 0)

	ctx    context.Context // the actors' root context, cancelled by Close
	cancel context.CancelFunc
	closed atomic.Bool
	fenced atomic.Int64

	// placement, once set (cluster mode), routes commands to run grains
	// (placement.go); wakes are the goroutines delivering wakes to them.
	placement                  atomic.Pointer[placed]
	wakes                      sync.WaitGroup
	activations, reactivations atomic.Int64
}

// New starts the actor layer. engines maps each process kind to its
// factory; r2r may be nil.
func New(cfg Config, store Store, artifacts Artifacts, engines map[process.Kind]EngineFactory, r2r R2R) (*Service, error) {
	if store == nil {
		return nil, errors.New("actors: nil store")
	}
	cfg = cfg.withDefaults()
	logger := cfg.Logger
	// protoactor logs its own life (system started, actor restarted) at
	// INFO: keep its warnings and errors only.
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(minLevel{Handler: logger.Handler(), min: slog.LevelWarn}).With("component", "protoactor")
	}))
	s := &Service{cfg: cfg, log: logger, store: tracedStore{store}, artifacts: artifacts, engines: engines, r2r: r2r, system: system}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	if cfg.Slots != nil {
		s.scheduler = system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return newClusterScheduler(cfg, cfg.Slots) }))
	} else {
		s.scheduler = system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return newScheduler(cfg) }))
	}
	props := actor.PropsFromProducer(func() actor.Actor { return newSupervisor(s) },
		actor.WithSupervisor(backoffStrategy{svc: s}))
	s.supervisor = system.Root.Spawn(props)

	interval := 100 * time.Millisecond
	if cfg.TimeScale > 0 {
		s.stepWall = time.Duration(process.Period / cfg.TimeScale * float64(time.Second))
		interval = min(max(s.stepWall, clockSlot), time.Second)
	}
	s.clock = newClock(system.Root, interval)
	s.workers = newWorkers()
	return s, nil
}

// Close stops every run actor (they recover from their logs on the next
// start) and the actor system.
func (s *Service) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.clock.close()
	s.cancel()
	s.wakes.Wait()
	if p := s.placement.Load(); p != nil {
		p.Leave()
	}
	_ = s.system.Root.PoisonFuture(s.supervisor).Wait()
	_ = s.system.Root.PoisonFuture(s.scheduler).Wait()
	s.system.Shutdown()
	s.workers.close()
	return nil
}

// StepLateness counts how late the paced steps of this node's runs were
// stepped (time scale > 0).
func (s *Service) StepLateness() *Lateness { return &s.lateness }

// Fenced counts run actors stopped because another writer appended to
// their stream.
func (s *Service) Fenced() int64 { return s.fenced.Load() }

func (s *Service) sched(ctx actor.Context, msg any) { ctx.Send(s.scheduler, msg) }

// send delivers a command to its run's actor and waits for the reply. It
// is the one seam between the API and run actors.
func (s *Service) send(ctx context.Context, cmd *actorspb.RunCommand) (*actorspb.CommandReply, error) {
	if s.closed.Load() {
		return nil, ErrUnavailable
	}
	timeout := s.cfg.RequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 { // a future without a positive timeout waits for ever
		return nil, noReply(cmd.RunId, ctx.Err(), true)
	}
	if p := s.placement.Load(); p != nil {
		return s.sendPlaced(ctx, p, cmd, timeout)
	}
	res, err := s.system.Root.RequestFuture(s.supervisor, cmd, timeout).Result()
	if err != nil {
		return nil, noReply(cmd.RunId, err, errors.Is(err, actor.ErrTimeout))
	}
	reply, ok := res.(*actorspb.CommandReply)
	if !ok {
		return nil, fmt.Errorf("%w: unexpected reply %T", ErrUnavailable, res)
	}
	if err := errorOf(reply); err != nil {
		return nil, err
	}
	return reply, nil
}

func verbName(v actorspb.Verb) string {
	return strings.ToLower(strings.TrimPrefix(v.String(), "VERB_"))
}

// Wake activates runs by id (after a restart, every run that is not
// finished), without waiting for them. No queued run is admitted until
// each woken run has loaded (or a grace period has passed), so runs that
// were running reclaim their slots first.
func (s *Service) Wake(runIDs ...string) {
	if len(runIDs) > 0 && s.placement.Load() == nil {
		s.system.Root.Send(s.scheduler, &expect{runIDs: runIDs})
	}
	s.wake(runIDs...)
}

// wake activates runs without holding admission back: runs just created.
func (s *Service) wake(runIDs ...string) {
	if p := s.placement.Load(); p != nil {
		s.wakePlaced(p, runIDs)
		return
	}
	for _, id := range runIDs {
		s.system.Root.Send(s.supervisor, &actorspb.RunCommand{RunId: id, Verb: actorspb.Verb_VERB_WAKE})
	}
}

// CreateRun validates the recipe, records the request and wakes the run's
// actor, which queues it. Returns a *process.ValidationError for an invalid
// recipe and ErrFaultInjectionDisabled for an injected fault the server
// does not allow.
func (s *Service) CreateRun(ctx context.Context, c CreateRun) (acc Accepted, err error) {
	if s.closed.Load() {
		return Accepted{}, ErrUnavailable
	}
	var span trace.Span
	ctx, c.Meta, span = startSpan(ctx, c.Meta, "actors.CreateRun", attribute.String("spectra.kind", string(c.Kind)))
	defer func() { endSpan(span, err) }()
	f, ok := s.engines[c.Kind]
	if !ok {
		ve := &process.ValidationError{}
		ve.Add("kind", string(c.Kind), "ion, rtp", "unknown process kind")
		return Accepted{}, ve
	}
	if err := f.Validate(c.Recipe); err != nil {
		return Accepted{}, err
	}
	if (c.Fault != nil || c.Disturbance != nil) && !s.cfg.AllowFaultInjection {
		return Accepted{}, ErrFaultInjectionDisabled
	}
	now := time.Now().UTC()
	runID, jobID := newRunID(c.Kind, now), newJobID()
	existing := false // the key was claimed by an earlier request
	switch {
	case c.RunID != "" && c.IdempotencyKey != "":
		// The key names the run: recording it is the claim.
		if c.KeyRepeated {
			if err := s.checkOtherKinds(ctx, c); err != nil {
				return Accepted{}, err
			}
		}
		runID = c.RunID
	case c.IdempotencyKey != "":
		// The key names the run: ours if this request claims it first, else
		// the first request's. Recording the run below under the claimed
		// id also finishes a first request that crashed after its claim.
		claimed, before, err := s.claim(ctx, c, runID, jobID)
		if err != nil {
			return Accepted{}, err
		}
		runID, jobID, existing = claimed.RunID, claimed.JobID, before
	}
	req := &events.RunRequested{RunID: runID, JobID: jobID, Kind: c.Kind, Recipe: c.Recipe, ToolID: c.ToolID,
		Priority: c.Priority, Seed: mrand.Int64(), Fault: c.Fault, Disturbance: c.Disturbance,
		IdempotencyKey: c.IdempotencyKey, CreatedAt: now, Origin: c.Origin}
	md := c.Meta
	md.Node = s.cfg.Node
	if md.CorrelationID == "" {
		md.CorrelationID = md.RequestID
	}
	// A key claimed in its own stream derives the event's id, so that a
	// first request that crashed after its claim is finished, not doubled.
	// A key that names the run needs no such thing: a repetition finds
	// the run stream there and answers it (existing).
	id := events.NewID()
	if c.IdempotencyKey != "" && c.RunID == "" {
		id = events.DeriveID(md.OrgID, c.IdempotencyKey, "RunRequested")
	}
	ev, err := events.NewWithID(id, req, md)
	if err != nil {
		return Accepted{}, err
	}
	res, err := s.store.Append(ctx, events.RunStream(runID), events.ExpectNoStream, ev)
	if errors.Is(err, events.ErrConflict) && c.IdempotencyKey != "" {
		return s.existing(ctx, c, runID)
	}
	if err != nil {
		return Accepted{}, fmt.Errorf("create run: %w", err)
	}
	s.wake(runID)
	return Accepted{RunID: runID, JobID: jobID, Status: string(run.Queued), CreatedAt: now, Position: res.Position, Revision: res.Revision,
		Existing: existing}, nil
}

// claim records that the organisation's idempotency key names runID, or
// returns the run it already names (before). A key already claimed by a request
// with another fingerprint (kind and body) is a *process.ValidationError
// on the Idempotency-Key (422, as the IETF Idempotency-Key draft has it).
func (s *Service) claim(ctx context.Context, c CreateRun, runID, jobID string) (_ events.IdempotencyKeyClaimed, before bool, err error) {
	stream := events.IdempotencyStream(c.Meta.OrgID, c.IdempotencyKey)
	p := events.IdempotencyKeyClaimed{RunID: runID, JobID: jobID,
		Fingerprint: events.RequestFingerprint(string(c.Kind), c.Recipe)}
	ev, err := events.New(&p, c.Meta)
	if err != nil {
		return p, false, err
	}
	_, err = s.store.Append(ctx, stream, events.ExpectNoStream, ev)
	if err == nil {
		return p, false, nil
	}
	if !errors.Is(err, events.ErrConflict) {
		return p, false, fmt.Errorf("claim idempotency key: %w", err)
	}
	recs, err := s.store.ReadStream(ctx, stream, events.Forwards, 0, 1)
	if err != nil || len(recs) == 0 {
		return p, false, fmt.Errorf("read idempotency claim: %w", err)
	}
	dec, err := events.Decode(recs[0])
	if err != nil {
		return p, false, err
	}
	claimed := *dec.(*events.IdempotencyKeyClaimed)
	if claimed.Fingerprint != "" && claimed.Fingerprint != p.Fingerprint {
		return p, false, keyReused()
	}
	return claimed, true, nil
}

// checkOtherKinds returns keyReused's error when the key that names
// c.RunID already named a run of another kind: KeyRunID differs between
// kinds only in the prefix, so it is one read a kind, on the path only
// a client's repeated key takes.
func (s *Service) checkOtherKinds(ctx context.Context, c CreateRun) error {
	_, rest, ok := strings.Cut(c.RunID, "-")
	if !ok {
		return nil
	}
	for kind := range s.engines {
		if kind == c.Kind {
			continue
		}
		id := strings.ToUpper(string(kind)) + "-" + rest
		recs, err := s.store.ReadStream(ctx, events.RunStream(id), events.Forwards, 0, 1)
		if errors.Is(err, events.ErrNotFound) || (err == nil && len(recs) == 0) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read run %s: %w", id, err)
		}
		dec, err := events.Decode(recs[0])
		if err != nil {
			return err
		}
		if req, ok := dec.(*events.RunRequested); ok && req.IdempotencyKey == c.IdempotencyKey && recs[0].Metadata.OrgID == c.Meta.OrgID {
			return keyReused()
		}
	}
	return nil
}

// keyReused is the error of an idempotency key repeated with another
// request (another kind or body).
func keyReused() error {
	ve := &process.ValidationError{}
	ve.Add("Idempotency-Key", nil, "a new key for a different request",
		"the key was used for a different request (another kind or body)")
	return ve
}

// existing answers a repeated idempotent create with the run the first
// request recorded, as it stands now: its current status, job, position
// and revision.
func (s *Service) existing(ctx context.Context, c CreateRun, runID string) (Accepted, error) {
	recs, err := s.store.ReadStream(ctx, events.RunStream(runID), events.Forwards, 0, 0)
	if err != nil {
		return Accepted{}, fmt.Errorf("read run %s: %w", runID, err)
	}
	var req *events.RunRequested
	if len(recs) > 0 {
		dec, err := events.Decode(recs[0])
		if err != nil {
			return Accepted{}, err
		}
		req, _ = dec.(*events.RunRequested)
	}
	if c.RunID != "" && (req == nil || req.IdempotencyKey != c.IdempotencyKey || recs[0].Metadata.OrgID != c.Meta.OrgID) {
		// Another run has the id the key names (they are 32 bits):
		// claim the key in its own stream instead.
		c.RunID = ""
		return s.CreateRun(ctx, c)
	}
	if len(recs) == 0 || recs[0].Metadata.OrgID != c.Meta.OrgID {
		return Accepted{}, ErrNotFound
	}
	if req == nil {
		return Accepted{}, fmt.Errorf("run %s: first event is %s", runID, recs[0].Type)
	}
	if c.RunID != "" && events.RequestFingerprint(string(req.Kind), req.Recipe) != events.RequestFingerprint(string(c.Kind), c.Recipe) {
		return Accepted{}, keyReused()
	}
	state, jobID := run.Queued, req.JobID
	for _, rec := range recs {
		p, err := events.Decode(rec)
		if err != nil {
			continue // a type this node does not know changes no status here
		}
		if t, ok := run.TransitionOf(p); ok {
			if t.State != nil {
				state = *t.State
			}
			if t.JobID != nil {
				jobID = *t.JobID
			}
		}
	}
	if !state.Terminal() {
		s.wake(runID)
	}
	last := recs[len(recs)-1]
	return Accepted{RunID: runID, JobID: jobID, Status: string(state), CreatedAt: req.CreatedAt,
		Position: last.Position, Revision: last.Revision, Existing: true}, nil
}

func (s *Service) do(ctx context.Context, verb actorspb.Verb, c RunCommand) (acc Accepted, err error) {
	var span trace.Span
	ctx, c.Meta, span = startSpan(ctx, c.Meta, "actors."+verbName(verb), attribute.String("spectra.run_id", c.RunID))
	defer func() { endSpan(span, err) }()
	reply, err := s.send(ctx, &actorspb.RunCommand{RunId: c.RunID, JobId: c.JobID, Verb: verb, Reason: c.Reason, Meta: metaTo(c.Meta)})
	if err != nil {
		return Accepted{}, err
	}
	return Accepted{RunID: reply.RunId, JobID: reply.JobId, Status: reply.Status, Position: reply.Position,
		Revision: reply.Revision, CreatedAt: time.Unix(0, reply.CreatedAtUnixNano).UTC()}, nil
}

// CancelRun stops a queued, running or paused run. Returns ErrNotFound for
// an unknown run (or another organisation's) and a *StateError for a
// finished one.
func (s *Service) CancelRun(ctx context.Context, c RunCommand) (Accepted, error) {
	return s.do(ctx, actorspb.Verb_VERB_CANCEL, c)
}

// PauseRun stops a running run's process time until ResumeRun.
func (s *Service) PauseRun(ctx context.Context, c RunCommand) (Accepted, error) {
	return s.do(ctx, actorspb.Verb_VERB_PAUSE, c)
}

// ResumeRun lets a paused run go on.
func (s *Service) ResumeRun(ctx context.Context, c RunCommand) (Accepted, error) {
	return s.do(ctx, actorspb.Verb_VERB_RESUME, c)
}

// RetryJob starts a failed or cancelled run again as a new job on the same
// run stream; the reply names the new job.
func (s *Service) RetryJob(ctx context.Context, c RunCommand) (Accepted, error) {
	return s.do(ctx, actorspb.Verb_VERB_RETRY, c)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newRunID makes a run id in the seed's form, ION-20261128-A1B2C3D4.
func newRunID(kind process.Kind, t time.Time) string {
	return fmt.Sprintf("%s-%s-%s", strings.ToUpper(string(kind)), t.Format("20060102"), strings.ToUpper(randomHex(4)))
}

func newJobID() string { return "job-" + randomHex(6) }

// KeyRunID is the run id an idempotency key of organisation org names
// when the key carries its day (a key the server chose): the seed's form,
// KIND-<day>-<the first 32 bits of the key's hash>. A request repeated
// with the key on any later day names the same run.
func KeyRunID(kind process.Kind, day time.Time, org, key string) string {
	h := sha256.Sum256([]byte(org + "\x00" + key))
	return fmt.Sprintf("%s-%s-%s", strings.ToUpper(string(kind)), day.UTC().Format("20060102"), strings.ToUpper(hex.EncodeToString(h[:4])))
}

// RecordTuning appends a controller tuning, with who asked for it, to its
// own stream tuning-<id>.
func (s *Service) RecordTuning(ctx context.Context, t events.ControllerTuned, md events.Metadata) (string, uint64, error) {
	t.TuningID = strings.ReplaceAll(events.NewID(), "-", "")
	md.Node = s.cfg.Node
	if md.CorrelationID == "" {
		md.CorrelationID = md.RequestID
	}
	ev, err := events.New(&t, md)
	if err != nil {
		return "", 0, err
	}
	res, err := s.store.Append(ctx, events.CategoryTuning+"-"+t.TuningID, events.ExpectNoStream, ev)
	if err != nil {
		return "", 0, fmt.Errorf("record tuning: %w", err)
	}
	return t.TuningID, res.Position, nil
}

// minLevel drops records below min.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{Handler: h.Handler.WithAttrs(attrs), min: h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: h.Handler.WithGroup(name), min: h.min}
}
