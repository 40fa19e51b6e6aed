package actors

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/spectra-fab/spectra/actors/actorspb"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/run"
)

// Messages a run actor sends itself or gets from its supervisor.
type (
	retryDue  struct{ attempt int }
	stepAgain struct{} // time scale 0: step the next batch at once
	retired   struct {
		runID string
		pid   *actor.PID
	}
	crashed struct {
		runID string
		pid   *actor.PID
		// unsure: the first event ids of this run's appends whose outcome
		// no activation has learned yet (see runActor.unsure); the next
		// activation gets them. reload: wake the run again at once, its
		// actor did not fail.
		unsure []string
		reload bool
	}
	appendDone struct{ f *inflight }
)

// inflight is an append of telemetry and alarms the actor did not wait
// for (time scale > 0): it steps on while the store fsyncs.
type inflight struct {
	ps   []events.Payload
	evs  []events.Event
	head string // the chain link of the last of evs
	res  events.AppendResult
	err  error
	done chan struct{} // closed once res and err are set
}

// runActor hosts one run's aggregate (package run): it loads the run's
// stream, asks the aggregate what a command or a control step causes,
// appends that with the expected revision, applies it and replies. Besides
// the aggregate it owns only what cannot be a value: the engine it steps,
// its slot with the scheduler, its place on the clock and a retry timer.
type runActor struct {
	svc   *Service
	runID string
	run   *run.Run

	loaded   bool
	gone     bool // the run does not exist, or the actor was fenced or crashed
	retiring bool // retired: commands go back to the supervisor
	grain    bool // a cluster grain: its run id is its cluster identity

	engine    process.Engine
	holdsSlot bool
	ticking   bool
	paceStart time.Time
	paceSteps int
	retryT    *time.Timer
	wakeT     *time.Timer // see wakeAfter
	wakeGen   uint64

	// At a time scale, telemetry is appended without waiting: at most one
	// append in flight, the records stepped meanwhile wait in queued and
	// go in the next. Anything else appended waits for both first.
	inflight *inflight
	queued   []events.Payload

	// unsure holds the first event id of each append of this run, by
	// this activation or an earlier one on this node, that failed without
	// telling whether it was written (a timeout, a store taken for down
	// while the server had the append): such an append may still land,
	// after the next activation has read the stream. When an append then
	// meets a conflict, the events in its way are this run's own if the
	// first is one of these: the actor reloads its stream instead of
	// standing down for another writer (lateOwnAppend). A successful
	// append settles them all: an append expects the revision it was
	// decided on, so one that has not landed by then never will.
	unsure []string
}

// maxUnsure bounds the appends of unknown outcome a run remembers (an id
// each): activations that fail in a row during an outage add one each.
const maxUnsure = 16

func (a *runActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if a.grain {
			a.runID = protocluster.GetClusterIdentity(ctx).Identity
		}
		a.load(ctx)
		a.activated()
	case *actor.Restarting, *actor.Stopping:
		a.stopTimers(ctx)
		if f := a.inflight; f != nil {
			<-f.done // bounded by the store timeout
		}
	case *wakeUp:
		if m.gen != a.wakeGen {
			return // disarmed or re-armed since
		}
		a.wakeT = nil
		switch {
		case a.idle():
			a.retire(ctx)
		case a.run.State() == run.Paused:
			a.checkHead(ctx)
		}
	case *actorspb.RunCommand:
		if a.retiring && a.grain {
			a.retiringReply(ctx)
			return
		}
		if a.retiring {
			// Queued behind our own retirement: the supervisor has
			// forgotten us by the time this arrives, and hands the
			// command to a fresh actor.
			ctx.Forward(ctx.Parent())
			return
		}
		a.command(ctx, m)
	case *admit:
		a.admitted(ctx)
	case *wait:
		if !a.gone && a.run.State() == run.Queued {
			a.decide(ctx, a.run.Creator, run.Queue{})
		}
	case *tick:
		m.done()
		a.advance(ctx)
	case *stepAgain:
		a.advance(ctx)
	case *appendDone:
		if a.inflight == m.f && a.landed(ctx) && len(a.queued) > 0 && a.run.State() == run.Running {
			ps := a.queued
			a.queued = nil
			a.appendAsync(ctx, ps)
		}
	case *retryDue:
		if a.run.State() == run.Retrying && a.run.NextAttempt() == m.attempt {
			a.enqueue(ctx)
		}
	}
}

func (a *runActor) idle() bool { return a.gone || a.run.State().Terminal() }

// wakeUp is the message of the actor's wake-up timer (wakeAfter); gen
// tells a current timer from one disarmed or re-armed since it fired.
type wakeUp struct{ gen uint64 }

// wakeAfter arms the actor's one wake-up timer to send it a wakeUp after d
// (0 disarms it): an idle actor then retires and a paused one checks its
// stream's head. It stands in for protoactor's ReceiveTimeout, whose timer
// goroutine clears the context's timer fields without a lock while the
// actor's own goroutine sets them: a data race the race detector reported
// in our tests (actor_context.go receiveTimeoutHandler).
func (a *runActor) wakeAfter(ctx actor.Context, d time.Duration) {
	if a.wakeT != nil {
		a.wakeT.Stop()
		a.wakeT = nil
	}
	a.wakeGen++
	if d <= 0 {
		return
	}
	msg, self, root := &wakeUp{gen: a.wakeGen}, ctx.Self(), ctx.ActorSystem().Root
	a.wakeT = time.AfterFunc(d, func() { root.Send(self, msg) })
}

// retire stops an actor with nothing left to do; its supervisor forgets it.
func (a *runActor) retire(ctx actor.Context) {
	a.retiring = true
	a.stopTimers(ctx)
	ctx.Send(a.svc.supervisor, &retired{runID: a.runID, pid: ctx.Self()})
	ctx.Poison(ctx.Self())
}

func (a *runActor) stopTimers(ctx actor.Context) {
	a.stopPacing(ctx)
	a.wakeAfter(ctx, 0)
	if a.retryT != nil {
		a.retryT.Stop()
		a.retryT = nil
	}
}

func (a *runActor) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(a.svc.ctx, a.svc.cfg.StoreTimeout)
}

// load folds the stream and carries on from where it stands.
func (a *runActor) load(ctx actor.Context) {
	a.run = run.New(a.runID, a.svc.cfg.policy())
	sctx, cancel := a.storeCtx()
	recs, err := a.svc.store.ReadStream(sctx, events.RunStream(a.runID), events.Forwards, 0, 0)
	cancel()
	if a.grain && len(recs) == 0 {
		recs, err = a.readAgain(err)
	}
	if err != nil && !errors.Is(err, events.ErrNotFound) {
		a.crash(ctx, fmt.Errorf("load %s: %w", a.runID, err))
		return
	}
	for _, rec := range recs {
		a.run.Apply(rec)
	}
	a.loaded = true
	if !a.run.Exists() {
		a.gone = true
		a.wakeAfter(ctx, time.Second)
		return
	}
	if a.run.Unknown > 0 {
		a.svc.log.Warn("run stream holds events of types this node does not know; carrying on",
			"run_id", a.runID, "unknown", a.run.Unknown)
	}
	st := a.run.State()
	if a.run.CancelRequest != nil && !st.Terminal() {
		// The log records a cancel request whose RunCancelled is missing:
		// carry it out, do not run on.
		if st == run.Running || st == run.Paused {
			if _, err := a.recover(); err != nil {
				a.engine = nil
			}
		}
		a.decide(ctx, a.run.CancelRequest.By, run.CompleteCancel{SafeState: a.safeState()})
		return
	}
	switch st {
	case run.Queued:
		a.enqueue(ctx)
	case run.Retrying:
		// A predecessor that crashed before its RunRetryScheduled was
		// acknowledged left its slot with the scheduler: the slot is
		// given back while the run waits.
		a.releaseSlot(ctx)
		a.scheduleRetry(ctx)
	case run.Running, run.Paused:
		missing, err := a.recover()
		if err != nil {
			a.decide(ctx, a.run.Creator, run.Fail{Error: fmt.Sprintf("recover engine: %v", err)})
			return
		}
		// What the recorded steps led to and the log lacks: their
		// alarms, then a fault or a time limit.
		if !a.append(ctx, a.run.Creator, missing...) || a.run.State() != st {
			return
		}
		a.svc.sched(ctx, &enqueue{runID: a.runID, queue: a.run.Queue(), org: a.run.Creator.OrgID, pid: ctx.Self(), running: true})
		if st == run.Paused {
			a.wakeAfter(ctx, pausedCheck)
		}
	default:
		// Finished. A predecessor that crashed before the final event was
		// acknowledged left its slot with the scheduler: give it back.
		a.releaseSlot(ctx)
		a.wakeAfter(ctx, 2*time.Second)
	}
}

// recover re-creates the engine of the current attempt and fast-forwards
// it through the recorded steps; it returns what the aggregate says the
// log lacks of them.
func (a *runActor) recover() ([]events.Payload, error) {
	f, ok := a.svc.engines[a.run.Request.Kind]
	if !ok {
		return nil, fmt.Errorf("no engine for kind %q", a.run.Request.Kind)
	}
	eng, err := f.New(a.run.Request.Recipe, a.run.Options())
	if err != nil {
		return nil, err
	}
	a.engine = eng
	var missing []events.Payload
	for !a.run.RecoveredTo() && !a.run.Done() {
		before := a.run.StepsTaken()
		missing = append(missing, a.run.Advance(eng.Step(), eng.SafeState())...)
		if a.run.StepsTaken() == before {
			return nil, fmt.Errorf("fast-forward stalled at step %d of %d", before, a.run.Steps)
		}
	}
	return missing, nil
}

func (a *runActor) safeState() string {
	if a.engine == nil {
		return ""
	}
	return a.engine.SafeState()
}

// pausedCheck is how often a paused actor, which appends nothing and so
// cannot be fenced, checks that no other writer has moved its stream on.
const pausedCheck = 2 * time.Second

// checkHead stands a paused actor down when its stream has moved on
// without it: another node's actor resumed (or cancelled) the run.
func (a *runActor) checkHead(ctx actor.Context) {
	sctx, cancel := a.storeCtx()
	recs, err := a.svc.store.ReadStream(sctx, events.RunStream(a.runID), events.Backwards, math.MaxUint64, 1)
	cancel()
	if err == nil && len(recs) == 1 && recs[0].Revision != a.run.Revision {
		switch own, err := a.lateOwnAppend(); {
		case err != nil:
			a.crash(ctx, fmt.Errorf("read %s after its head moved: %w", a.runID, err))
		case own:
			a.reload(ctx)
		default:
			a.fence(ctx, "run actor fenced: its paused stream moved on without it; stopping",
				"run_id", a.runID, "revision", a.run.Revision, "head", recs[0].Revision)
		}
		return
	}
	a.wakeAfter(ctx, pausedCheck)
}

// enqueue asks the scheduler for a slot. The run's RunQueued is recorded
// when the scheduler answers that it waits (wait), or else with its
// RunStarted, in one append (run.Start).
func (a *runActor) enqueue(ctx actor.Context) {
	a.svc.sched(ctx, &enqueue{runID: a.runID, queue: a.run.Queue(), org: a.run.Creator.OrgID, priority: a.run.Request.Priority,
		arrival: a.run.Request.CreatedAt, pid: ctx.Self()})
}

func (a *runActor) releaseSlot(ctx actor.Context) {
	a.holdsSlot = false
	a.svc.sched(ctx, &release{runID: a.runID, queue: a.run.Queue()})
}

// admitted: the run holds a slot. Start an attempt, or carry on one.
func (a *runActor) admitted(ctx actor.Context) {
	if a.gone || a.run.State().Terminal() {
		a.releaseSlot(ctx)
		return
	}
	a.holdsSlot = true
	switch a.run.State() {
	case run.Queued, run.Retrying:
		a.startAttempt(ctx)
	case run.Running:
		a.startPacing(ctx)
	case run.Paused:
		// Holds the slot; waits for resume.
	}
}

func (a *runActor) startAttempt(ctx actor.Context) {
	var adj map[string]float64
	var basis map[string]any
	if a.svc.r2r != nil {
		sctx, cancel := a.storeCtx()
		var err error
		adj, basis, err = a.svc.r2r.Adjustments(sctx, a.run.Creator.OrgID, a.run.Request.Kind, a.run.Request.ToolID, a.run.Request.Recipe)
		cancel()
		if err != nil {
			a.svc.log.Warn("r2r adjustments unavailable", "run_id", a.runID, "err", err)
			adj, basis = nil, nil
		}
	}
	opts := a.run.Options()
	opts.Attempt, opts.R2R = a.run.NextAttempt(), adj
	eng, err := a.svc.engines[a.run.Request.Kind].New(a.run.Request.Recipe, opts)
	if err != nil {
		a.decide(ctx, a.run.Creator, run.Fail{Error: fmt.Sprintf("engine: %v", err)})
		return
	}
	if !a.decide(ctx, a.run.Creator, run.Start{R2R: adj, R2RBasis: basis, Node: a.svc.cfg.Node, Setup: eng.SetupMarks(),
		Model: run.ModelVersion(a.run.Request.Kind)}) {
		return
	}
	a.engine = eng
	a.startPacing(ctx)
}

func (a *runActor) startPacing(ctx actor.Context) {
	if a.run.Done() {
		a.finish(ctx)
		return
	}
	a.paceSteps = a.run.StepsTaken()
	if a.svc.cfg.TimeScale <= 0 {
		a.paceStart = time.Now()
		ctx.Send(ctx.Self(), &stepAgain{})
		return
	}
	// Steps fall due from the time the actor's slot on the clock next
	// comes round, so each tick arrives as a step falls due.
	a.paceStart = a.svc.clock.add(ctx.Self())
	a.ticking = true
}

func (a *runActor) stopPacing(ctx actor.Context) {
	if a.ticking {
		a.svc.clock.remove(ctx.Self())
		a.ticking = false
	}
}

// maxStepsPerMessage bounds the work of one message so commands (cancel,
// pause) are handled between steps promptly: at a time scale, the steps
// one tick may catch up; as fast as possible (scale 0), 60 telemetry
// batches (60 s of process time, ~5 ms of engine steps), appended in one
// append: one message and one fsync instead of sixty. A seed ion run (50 s)
// is one block, appended with its completion. Measured end to end over
// HTTP (spectra bench, alternated builds, docs/performance.md): 20 batches
// gave 1.3–1.8× the runs/s of one batch per append; 60 with the
// completion folded in, 1.3× those of 20.
const (
	maxStepsPerMessage = 50
	maxStepsFast       = 60 * process.StepsPerBatch
)

// advance steps the engine up to the wall clock (or a block of steps at
// scale 0) and appends what the steps caused in one append.
func (a *runActor) advance(ctx actor.Context) {
	if a.gone || a.engine == nil || a.run.State() != run.Running || a.run.Done() || !a.holdsSlot {
		return
	}
	n := maxStepsFast
	var now time.Time
	if a.svc.cfg.TimeScale > 0 {
		// Step j falls due when its period has passed: at paceStart +
		// (j-paceSteps+1)·stepWall.
		now = time.Now()
		target := a.paceSteps + int(max(now.Sub(a.paceStart), 0)/a.svc.stepWall)
		n = min(target-a.run.StepsTaken(), maxStepsPerMessage)
	}
	var out []events.Payload
	for range n {
		if !now.IsZero() {
			due := a.paceStart.Add(time.Duration(a.run.StepsTaken()-a.paceSteps+1) * a.svc.stepWall)
			a.svc.lateness.observe(now.Sub(due))
		}
		ps := a.run.Advance(a.engine.Step(), a.engine.SafeState())
		out = append(out, ps...)
		// Telemetry and alarms accumulate; anything else (a fault's
		// retry or failure, a time limit) is decided on the applied log,
		// so it ends the block.
		if a.run.Done() || !recordsOnly(ps) {
			break
		}
	}
	if a.svc.cfg.TimeScale > 0 && !a.run.Done() && recordsOnly(out) {
		// The next step does not wait for these to be on disk.
		a.appendAsync(ctx, out)
		return
	}
	if a.run.Done() && recordsOnly(out) {
		// Processing is over: the last records go in the append that
		// completes the run.
		a.stopPacing(ctx)
		a.finish(ctx, out...)
		return
	}
	if !a.append(ctx, a.run.Creator, out...) || a.run.State() != run.Running {
		return
	}
	if a.run.Done() {
		a.stopPacing(ctx)
		a.finish(ctx)
		return
	}
	if a.svc.cfg.TimeScale <= 0 {
		ctx.Send(ctx.Self(), &stepAgain{})
	}
}

// recordsOnly reports whether ps holds only telemetry and alarms.
func recordsOnly(ps []events.Payload) bool {
	for _, p := range ps {
		switch p.(type) {
		case *events.TelemetryRecorded, *events.SPCViolation, *events.FDCAlarm:
		default:
			return false
		}
	}
	return true
}

// scheduleRetry waits out what is left of the back-off the log recorded:
// a restart during the wait does not start it over.
func (a *runActor) scheduleRetry(ctx actor.Context) {
	next := a.run.NextAttempt()
	d := max(a.svc.cfg.wall(a.run.RetryDelay.Seconds())-time.Since(a.run.RetryAt), 0)
	self, root := ctx.Self(), a.svc.system.Root
	if a.retryT != nil {
		a.retryT.Stop()
	}
	a.retryT = time.AfterFunc(d, func() { root.Send(self, &retryDue{attempt: next}) })
}

// finish stores the run's artifacts and completes it, in one append with
// records, the last steps' telemetry and alarms not appended yet.
func (a *runActor) finish(ctx actor.Context, records ...events.Payload) {
	marks := a.engine.FinishMarks()
	out := a.engine.Finish()
	var arts []process.Artifact
	for _, art := range out.Artifacts {
		if !a.run.Artifacts[art.Name] {
			arts = append(arts, art)
		}
	}
	uris, err := a.storeArtifacts(fmt.Sprintf("%s/%s", a.runID, a.run.JobID()), arts)
	if err != nil {
		a.crash(ctx, err)
		return
	}
	stored := make([]events.ArtifactStored, len(arts))
	for i, art := range arts {
		stored[i] = events.ArtifactStored{Name: art.Name, ContentType: art.ContentType, Size: len(art.Data), URI: uris[i]}
	}
	a.decide(ctx, a.run.Creator, run.Complete{Finish: marks, Artifacts: stored, Outcome: out}, records...)
}

// storeArtifacts stores arts under prefix/name, together when the
// artifact store can (ArtifactSet), and returns their URIs ("" each
// without an artifact store).
func (a *runActor) storeArtifacts(prefix string, arts []process.Artifact) ([]string, error) {
	uris := make([]string, len(arts))
	if a.svc.artifacts == nil || len(arts) == 0 {
		return uris, nil
	}
	sctx, cancel := a.storeCtx()
	defer cancel()
	if set, ok := a.svc.artifacts.(ArtifactSet); ok {
		uris, err := set.PutSet(sctx, prefix, arts)
		if err != nil {
			return nil, fmt.Errorf("store artifacts of %s: %w", prefix, err)
		}
		return uris, nil
	}
	for i, art := range arts {
		key := prefix + "/" + art.Name
		uri, err := a.svc.artifacts.Put(sctx, key, art.ContentType, art.Data)
		if err != nil {
			return nil, fmt.Errorf("store artifact %s: %w", key, err)
		}
		uris[i] = uri
	}
	return uris, nil
}

// command handles a command addressed to this run and replies to its sender.
func (a *runActor) command(ctx actor.Context, m *actorspb.RunCommand) {
	_, md, span := startSpan(context.Background(), metaFrom(m.Meta), "run."+verbName(m.Verb),
		attribute.String("spectra.run_id", a.runID)) // tracing.go
	defer span.End()
	reply := func(err error) {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		if ctx.Sender() == nil {
			return
		}
		r := &actorspb.CommandReply{RunId: a.runID}
		if a.run != nil {
			r.JobId, r.Status = a.run.JobID(), string(a.run.State())
			r.Position, r.Revision = a.run.Position, a.run.Revision
			r.CreatedAtUnixNano = a.run.Request.CreatedAt.UnixNano()
		}
		setReplyError(r, err)
		ctx.Respond(r)
	}
	if m.Verb == actorspb.Verb_VERB_WAKE {
		// Loaded, and (if it runs or waits) known to the scheduler.
		a.svc.sched(ctx, &settled{runID: a.runID})
	}
	if a.grain && a.gone && a.loaded && a.run.Exists() {
		a.retiringReply(ctx)
		return
	}
	if a.gone || !a.loaded || !a.run.Exists() || (m.Meta != nil && m.Meta.OrgId != a.run.Creator.OrgID) {
		reply(fmt.Errorf("run %s: %w", a.runID, ErrNotFound))
		return
	}
	if m.JobId != "" && m.JobId != a.run.JobID() && m.Verb != actorspb.Verb_VERB_WAKE {
		reply(&StateError{Command: verbName(m.Verb), State: a.run.State(),
			Reason: fmt.Sprintf("job %s is not the current job of run %s (now %s)", m.JobId, a.runID, a.run.JobID())})
		return
	}
	var cmd any
	switch m.Verb {
	case actorspb.Verb_VERB_WAKE:
		reply(nil)
		return
	case actorspb.Verb_VERB_CANCEL:
		cmd = run.Cancel{Reason: m.Reason, By: md.UserID}
	case actorspb.Verb_VERB_PAUSE:
		cmd = run.Pause{}
	case actorspb.Verb_VERB_RESUME:
		cmd = run.Resume{}
	case actorspb.Verb_VERB_RETRY:
		cmd = run.Retry{JobID: newJobID(), Seed: rand.Int64()}
	default:
		reply(&StateError{Command: verbName(m.Verb), State: a.run.State(), Reason: fmt.Sprintf("unknown command %v", m.Verb)})
		return
	}
	// Ask first: a refused command appends nothing, not even a flush.
	if _, err := a.run.Decide(cmd); err != nil && !errors.Is(err, run.ErrUnflushed) {
		reply(err)
		return
	}
	if c, ok := cmd.(run.Cancel); ok {
		c.SafeState = a.safeState()
		cmd = c
	}
	switch cmd.(type) {
	case run.Cancel, run.Pause:
		// The steps taken so far are recorded before the run stops.
		a.stopPacing(ctx)
		if !a.append(ctx, a.run.Creator, a.run.Flush()...) {
			reply(fmt.Errorf("%w: the run stopped before the %s was recorded; try again", ErrUnavailable, verbName(m.Verb)))
			return
		}
	}
	if !a.decide(ctx, md, cmd) {
		reply(fmt.Errorf("%w: the run stopped before the %s was recorded; try again", ErrUnavailable, verbName(m.Verb)))
		return
	}
	if _, ok := cmd.(run.Retry); ok {
		a.enqueue(ctx)
	}
	reply(nil)
}

// decide asks the aggregate what cmd causes and appends it with md, after
// records (telemetry and alarms stepped and not appended yet) in the same
// append. It returns false when the actor can no longer write (fenced,
// crashed) or the aggregate refused.
func (a *runActor) decide(ctx actor.Context, md events.Metadata, cmd any, records ...events.Payload) bool {
	_, md, span := startSpan(context.Background(), md, fmt.Sprintf("%T", cmd), attribute.String("spectra.run_id", a.runID))
	defer span.End()
	evs, err := a.run.Decide(cmd)
	if err != nil {
		a.svc.log.Warn("run decision refused", "run_id", a.runID, "command", fmt.Sprintf("%T", cmd), "err", err)
		return false
	}
	return a.append(ctx, md, append(records, evs...)...)
}

// appendAsync appends telemetry and alarms without waiting: the store's
// answer comes back as an appendDone. While one such append is in flight,
// ps waits in queued for the next.
func (a *runActor) appendAsync(ctx actor.Context, ps []events.Payload) {
	if len(ps) == 0 || a.gone {
		return
	}
	if a.inflight != nil {
		a.queued = append(a.queued, ps...)
		return
	}
	evs, head, ok := a.prepare(ctx, a.run.Creator, ps)
	if !ok {
		return
	}
	f := &inflight{ps: ps, evs: evs, head: head, done: make(chan struct{})}
	a.inflight = f
	stream, expected := events.RunStream(a.runID), events.ExpectRevision(a.run.Revision)
	self, root := ctx.Self(), a.svc.system.Root
	sctx, cancel := a.storeCtx()
	go func() {
		defer cancel()
		f.res, f.err = a.svc.store.Append(sctx, stream, expected, evs...)
		close(f.done)
		root.Send(self, &appendDone{f: f})
	}()
}

// landed waits for the append in flight and applies it. It returns false
// when the actor can no longer write.
func (a *runActor) landed(ctx actor.Context) bool {
	f := a.inflight
	<-f.done
	a.inflight = nil
	if !a.stored(ctx, f.ps, f.evs, f.head, f.res, f.err) {
		a.queued = nil
		return false
	}
	return true
}

// settle lands the append in flight and appends what queued behind it,
// so that the next append follows them.
func (a *runActor) settle(ctx actor.Context) bool {
	if a.inflight != nil && !a.landed(ctx) {
		return false
	}
	if len(a.queued) == 0 {
		return true
	}
	ps := a.queued
	a.queued = nil
	return a.appendNow(ctx, a.run.Creator, ps...)
}

// append writes the events of one decision in one append with the
// expected revision, applies them, and does what the run's new state
// asks of its host. On a conflict the actor has been fenced off by another
// writer: it stops. On another store error it crashes, to be re-activated
// from its log.
func (a *runActor) append(ctx actor.Context, md events.Metadata, ps ...events.Payload) bool {
	if !a.settle(ctx) {
		return false
	}
	return a.appendNow(ctx, md, ps...)
}

func (a *runActor) appendNow(ctx actor.Context, md events.Metadata, ps ...events.Payload) bool {
	if len(ps) == 0 {
		return !a.gone
	}
	evs, head, ok := a.prepare(ctx, md, ps)
	if !ok {
		return false
	}
	sctx, cancel := a.storeCtx()
	if !recordsOnly(ps) { // telemetry steps make no spans (tracing.go)
		sctx = withTrace(sctx, md)
	}
	res, err := a.svc.store.Append(sctx, events.RunStream(a.runID), events.ExpectRevision(a.run.Revision), evs...)
	cancel()
	return a.stored(ctx, ps, evs, head, res, err)
}

// prepare makes the events of ps with md, chained to the stream's head;
// it returns them and the link of the last.
func (a *runActor) prepare(ctx actor.Context, md events.Metadata, ps []events.Payload) ([]events.Event, string, bool) {
	if a.gone {
		return nil, "", false
	}
	md.Node = a.svc.cfg.Node
	md.CausationID = a.run.RequestID
	if md.CorrelationID == "" {
		md.CorrelationID = a.run.Creator.CorrelationID
	}
	evs := make([]events.Event, len(ps))
	for i, p := range ps {
		ev, err := events.New(p, md)
		if err != nil {
			a.crash(ctx, err)
			return nil, "", false
		}
		evs[i] = ev
	}
	// Each event links to its predecessor's hash; a terminal one seals
	// the chain (events.Chain). The aggregate's Head is the stream's.
	head := events.Chain(a.run.Head, evs, a.svc.cfg.SealKey)
	return evs, head, true
}

// stored takes the store's answer to an append of evs (made of ps, the
// last linked head): on success it applies them and does what the run's
// new state asks of its host.
func (a *runActor) stored(ctx actor.Context, ps []events.Payload, evs []events.Event, head string, res events.AppendResult, err error) bool {
	if a.gone {
		return false
	}
	if errors.Is(err, events.ErrConflict) {
		a.conflict(ctx, err)
		return false
	}
	if err != nil {
		// Written or not: the store did not say. The next activation
		// knows these events as ours if they land late.
		a.addUnsure(evs[0].ID)
		a.crash(ctx, fmt.Errorf("append %s to %s: %w", evs[0].Type, a.runID, err))
		return false
	}
	a.unsure = nil // what has not landed by now never will
	stream := events.RunStream(a.runID)
	prev := a.run.State()
	now := time.Now().UTC()
	for i, ev := range evs {
		back := uint64(len(evs) - 1 - i)
		rec := events.Record{ID: ev.ID, Stream: stream, Revision: res.Revision - back, Position: res.Position - back,
			Type: ev.Type, Time: now, Data: ev.Data, Metadata: ev.Metadata}
		if recordsOnly(ps[i : i+1]) {
			// Telemetry and alarms, most of what a run appends, are
			// folded from the payloads just encoded, not decoded back
			// (their fields survive JSON unchanged), with the links
			// Chain computed: each event's is the next one's Prev.
			link := head
			if i+1 < len(evs) {
				link = evs[i+1].Metadata.Prev
			}
			a.run.ApplyLinked(rec, ps[i], link)
		} else {
			a.run.Apply(rec)
		}
	}
	a.react(ctx, prev)
	return true
}

// react does what a change of the run's state asks of its host.
func (a *runActor) react(ctx actor.Context, prev run.State) {
	st := a.run.State()
	if st == prev {
		return
	}
	switch st {
	case run.Retrying:
		a.engine = nil
		a.stopPacing(ctx)
		a.releaseSlot(ctx)
		a.scheduleRetry(ctx)
	case run.Completed, run.Failed, run.Cancelled:
		a.engine = nil
		a.stopTimers(ctx)
		a.releaseSlot(ctx)
		a.wakeAfter(ctx, 2*time.Second)
	case run.Paused:
		a.stopPacing(ctx)
		a.wakeAfter(ctx, pausedCheck)
	case run.Running:
		if prev == run.Paused {
			a.wakeAfter(ctx, 0)
			if a.holdsSlot {
				a.startPacing(ctx)
			}
		}
	case run.Queued:
		a.wakeAfter(ctx, 0)
	}
}

// conflict handles an append refused because the stream has moved past
// the revision the actor decided on. If the events in the way are this
// run's own, from an append whose outcome an activation did not learn,
// the actor reloads its stream; else another writer has taken the run
// over and the actor stands down (fence; a grain re-activates through the
// cluster, refence).
func (a *runActor) conflict(ctx actor.Context, cerr error) {
	own, err := a.lateOwnAppend()
	switch {
	case err != nil:
		// Whose they are is unknown for now: recover from the log later;
		// the next activation asks again.
		a.crash(ctx, fmt.Errorf("read %s after a conflict (%v): %w", a.runID, cerr, err))
	case own:
		a.reload(ctx)
	case a.grain:
		a.refence(ctx, cerr)
	default:
		a.fence(ctx, "run actor fenced: another writer appended to its stream; stopping",
			"run_id", a.runID, "expected_revision", a.run.Revision, "err", cerr)
	}
}

// lateOwnAppend reports whether the record after the actor's revision is
// the first event of one of the run's appends of unknown outcome: that
// append landed late, it is no other writer's.
func (a *runActor) lateOwnAppend() (bool, error) {
	if len(a.unsure) == 0 {
		return false, nil
	}
	sctx, cancel := a.storeCtx()
	recs, err := a.svc.store.ReadStream(sctx, events.RunStream(a.runID), events.Forwards, a.run.Revision+1, 1)
	cancel()
	if err != nil {
		return false, err
	}
	return len(recs) == 1 && slices.Contains(a.unsure, recs[0].ID), nil
}

// addUnsure remembers the first event id of an append of unknown outcome.
func (a *runActor) addUnsure(id string) {
	a.unsure = append(a.unsure, id)
	if len(a.unsure) > maxUnsure {
		a.unsure = slices.Clone(a.unsure[len(a.unsure)-maxUnsure:])
	}
}

// reload ends an activation whose stream holds an append of its own that
// landed late (after the activation had read the stream): the supervisor
// wakes the run again at once, and the new activation folds the whole
// stream and carries on from it. Like a crash, the scheduler keeps the
// slot for the next activation; unlike a fence, the run is not given up.
func (a *runActor) reload(ctx actor.Context) {
	a.svc.log.Warn("run actor's stream holds an append of its own that landed late; reloading it",
		"run_id", a.runID, "revision", a.run.Revision)
	a.gone = true
	a.stopTimers(ctx)
	a.holdsSlot = false
	// Settled: the stream has moved past every revision they expected.
	ctx.Send(a.svc.supervisor, &crashed{runID: a.runID, pid: ctx.Self(), reload: true})
	ctx.Stop(ctx.Self())
}

// fence stops an actor that is no longer its stream's writer. The slot it
// held or waited for goes back to this node's queue: the run is another
// actor's now.
func (a *runActor) fence(ctx actor.Context, msg string, args ...any) {
	a.svc.log.Warn(msg, args...)
	a.svc.fenced.Add(1)
	a.gone = true
	a.stopTimers(ctx)
	if a.loaded && a.run.Exists() {
		a.releaseSlot(ctx)
	}
	ctx.Send(a.svc.supervisor, &retired{runID: a.runID, pid: ctx.Self()})
	ctx.Stop(ctx.Self())
}

// crash ends this activation after a store failure; the supervisor wakes
// the run again after a back-off and it recovers from its log.
func (a *runActor) crash(ctx actor.Context, err error) {
	a.svc.log.Error("run actor failed; will recover from its log", "run_id", a.runID, "err", err)
	a.gone = true
	a.stopTimers(ctx)
	// The scheduler keeps the slot: the re-activated actor reclaims it.
	a.holdsSlot = false
	if f := a.inflight; f != nil {
		// The next activation reads the stream after this append's
		// answer (bounded by the store timeout), so it sees it if it
		// was written; if the answer says nothing, it may land later.
		<-f.done
		a.inflight = nil
		if f.err != nil && !errors.Is(f.err, events.ErrConflict) {
			a.addUnsure(f.evs[0].ID)
		}
	}
	ctx.Send(a.svc.supervisor, &crashed{runID: a.runID, pid: ctx.Self(), unsure: a.unsure})
	ctx.Stop(ctx.Self())
}
