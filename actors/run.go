package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/spectra-fab/spectra/actors/actorspb"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
)

// Messages a run actor sends itself or gets from its supervisor.
type (
	retryDue  struct{ attempt int }
	stepAgain struct{} // time scale 0: step the next batch at once
)

// runActor drives one run. It is the only writer of the run's stream.
type runActor struct {
	svc   *Service
	runID string

	st     *runState
	loaded bool
	gone   bool // the run does not exist, or the actor was fenced

	engine   process.Engine
	batch    map[string][]float64
	batchLen int
	first    int // engine step of the batch's first sample
	stepN    int // engine steps taken (recorded or in the batch)
	pending  []pendingAlarm
	lastProg float64
	lastName string

	holdsSlot bool
	ticking   bool
	retiring  bool           // retired: commands go back to the supervisor
	faultAt   *process.Fault // a fault the fast-forward met whose event the log lacks
	lastTime  float64        // process time of the last step taken
	paceStart time.Time
	paceSteps int
	retryT    *time.Timer
}

type pendingAlarm struct {
	step  int
	alarm process.Alarm
}

func (a *runActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.load(ctx)
	case *actor.Restarting:
		a.stopTimers(ctx)
	case *actor.Stopping:
		a.stopTimers(ctx)
	case *actor.ReceiveTimeout:
		switch {
		case a.idle():
			a.retire(ctx)
		case a.st.status == statusPaused:
			a.checkHead(ctx)
		}
	case *actorspb.RunCommand:
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
	case *tick:
		a.advance(ctx)
	case *stepAgain:
		a.advance(ctx)
	case *retryDue:
		if a.st.status == statusRetrying && a.st.attempt+1 == m.attempt {
			a.enqueue(ctx)
		}
	}
}

func (a *runActor) idle() bool {
	return a.gone || terminal(a.st.status)
}

// retire stops an actor with nothing left to do; its supervisor forgets it.
func (a *runActor) retire(ctx actor.Context) {
	a.retiring = true
	a.stopTimers(ctx)
	ctx.Send(ctx.Parent(), &retired{runID: a.runID, pid: ctx.Self()})
	ctx.Poison(ctx.Self())
}

func (a *runActor) stopTimers(ctx actor.Context) {
	if a.ticking {
		a.svc.clock.remove(ctx.Self())
		a.ticking = false
	}
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
	a.st = newRunState()
	sctx, cancel := a.storeCtx()
	recs, err := a.svc.store.ReadStream(sctx, events.RunStream(a.runID), events.Forwards, 0, 0)
	cancel()
	if errors.Is(err, events.ErrNotFound) {
		a.gone = true
		ctx.SetReceiveTimeout(time.Second)
		return
	}
	if err != nil {
		a.crash(ctx, fmt.Errorf("load %s: %w", a.runID, err))
		return
	}
	for _, rec := range recs {
		a.st.apply(rec)
	}
	a.loaded = true
	if !a.st.exists {
		a.gone = true
		ctx.SetReceiveTimeout(time.Second)
		return
	}
	if a.st.cancelReq != nil && !terminal(a.st.status) {
		// The log records a cancel request whose RunCancelled is missing:
		// carry it out, do not run on.
		if a.st.status == statusRunning || a.st.status == statusPaused {
			if err := a.rebuild(); err != nil {
				a.engine = nil
			}
			a.pending = nil
		}
		a.completeCancel(ctx)
		return
	}
	switch a.st.status {
	case statusQueued:
		a.enqueue(ctx)
	case statusRetrying:
		// A predecessor that crashed before its RunRetryScheduled was
		// acknowledged left its slot with the scheduler: the slot is
		// given back while the run waits.
		a.svc.sched(ctx, &release{runID: a.runID, queue: a.queue()})
		a.scheduleRetry(ctx)
	case statusRunning, statusPaused:
		if err := a.rebuild(); err != nil {
			a.failRun(ctx, fmt.Sprintf("recover engine: %v", err), a.st.creator, "")
			return
		}
		// What the step that was last recorded led to, and the log lacks:
		// its alarms, then its fault or time limit.
		if !a.flushPending(ctx) {
			return
		}
		if a.faultAt != nil {
			a.fault(ctx, a.faultAt)
			return
		}
		if !a.timeLimits(ctx, a.lastTime) {
			return
		}
		a.svc.sched(ctx, &enqueue{runID: a.runID, queue: a.queue(), pid: ctx.Self(), running: true})
		if a.st.status == statusPaused {
			ctx.SetReceiveTimeout(pausedCheck)
		}
	default:
		// Finished. A predecessor that crashed before the final event was
		// acknowledged left its slot with the scheduler: give it back.
		a.svc.sched(ctx, &release{runID: a.runID, queue: a.queue()})
		ctx.SetReceiveTimeout(2 * time.Second)
	}
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
	if err == nil && len(recs) == 1 && recs[0].Revision != a.st.revision {
		a.fence(ctx, "run actor fenced: its paused stream moved on without it; stopping",
			"run_id", a.runID, "revision", a.st.revision, "head", recs[0].Revision)
		return
	}
	ctx.SetReceiveTimeout(pausedCheck)
}

func (a *runActor) queue() string { return queueName(a.st.req.Kind, a.st.req.ToolID) }

func (a *runActor) enqueue(ctx actor.Context) {
	if !a.st.queuedOnce {
		if !a.append(ctx, a.st.creator, a.st.reqID, &events.RunQueued{JobID: a.st.jobID, Queue: a.queue()}) {
			return
		}
	}
	a.svc.sched(ctx, &enqueue{runID: a.runID, queue: a.queue(), priority: a.st.req.Priority,
		arrival: a.st.req.CreatedAt, pid: ctx.Self()})
}

func (a *runActor) releaseSlot(ctx actor.Context) {
	a.holdsSlot = false
	a.svc.sched(ctx, &release{runID: a.runID, queue: a.queue()})
}

// options are the engine inputs besides the recipe, as the stream records them.
func (a *runActor) options() process.Options {
	return process.Options{Seed: a.st.seed, R2R: a.st.r2r, Fault: a.st.fault,
		Attempt: a.st.attempt, Disturbance: a.st.req.Disturbance}
}

// rebuild re-creates the engine of the current attempt and fast-forwards it
// to the last recorded step without emitting. Alarms the log lacks for
// those steps (a crash between appends) are kept to be appended.
func (a *runActor) rebuild() error {
	f, ok := a.svc.engines[a.st.req.Kind]
	if !ok {
		return fmt.Errorf("no engine for kind %q", a.st.req.Kind)
	}
	eng, err := f.New(a.st.req.Recipe, a.options())
	if err != nil {
		return err
	}
	a.engine = eng
	a.resetBatch(0)
	a.stepN = 0
	a.pending = nil
	a.faultAt = nil
	for a.stepN < a.st.steps {
		r := eng.Step()
		a.stepN++
		for _, al := range r.Alarms {
			if !a.st.alarms[keyOf(r.N, al)] {
				a.pending = append(a.pending, pendingAlarm{step: r.N, alarm: al})
			}
		}
		a.lastProg, a.lastName, a.lastTime = r.Progress, r.StepName, r.TimeS
		if r.Fault != nil {
			// The fault's telemetry is recorded, its event is not (the
			// actor stopped between the two appends): the attempt ends
			// here, as it did the first time.
			a.faultAt = r.Fault
			break
		}
		if r.Done {
			a.st.done = true
			break
		}
	}
	a.resetBatch(a.stepN)
	return nil
}

func (a *runActor) resetBatch(first int) {
	a.batch = map[string][]float64{}
	a.batchLen = 0
	a.first = first
}

// admitted: the run holds a slot. Start an attempt, or carry on one.
func (a *runActor) admitted(ctx actor.Context) {
	if a.gone || terminal(a.st.status) {
		a.releaseSlot(ctx)
		return
	}
	a.holdsSlot = true
	switch a.st.status {
	case statusQueued, statusRetrying:
		a.startAttempt(ctx)
	case statusRunning:
		a.flushPending(ctx)
		a.startPacing(ctx)
	case statusPaused:
		// Holds the slot; waits for resume.
	}
}

func (a *runActor) startAttempt(ctx actor.Context) {
	attempt := 0
	if a.st.status == statusRetrying {
		attempt = a.st.attempt + 1
	}
	var adj map[string]float64
	var basis map[string]any
	if a.svc.r2r != nil {
		sctx, cancel := a.storeCtx()
		var err error
		adj, basis, err = a.svc.r2r.Adjustments(sctx, a.st.creator.OrgID, a.st.req.Kind, a.st.req.ToolID, a.st.req.Recipe)
		cancel()
		if err != nil {
			a.svc.log.Warn("r2r adjustments unavailable", "run_id", a.runID, "err", err)
			adj, basis = nil, nil
		}
	}
	started := &events.RunStarted{JobID: a.st.jobID, Attempt: attempt, Seed: a.st.seed, R2R: adj, R2RBasis: basis, Node: a.svc.cfg.Node}
	if !a.append(ctx, a.st.creator, a.st.reqID, started) {
		return
	}
	f := a.svc.engines[a.st.req.Kind]
	eng, err := f.New(a.st.req.Recipe, a.options())
	if err != nil {
		a.failRun(ctx, fmt.Sprintf("engine: %v", err), a.st.creator, "")
		return
	}
	a.engine = eng
	a.stepN = 0
	a.resetBatch(0)
	for _, m := range eng.SetupMarks() {
		if !a.mark(ctx, m) {
			return
		}
	}
	a.startPacing(ctx)
}

func (a *runActor) mark(ctx actor.Context, m process.Mark) bool {
	if a.st.marks[m.Name] {
		return true
	}
	a.lastProg, a.lastName = m.Progress, m.Name
	return a.append(ctx, a.st.creator, a.st.reqID,
		&events.RunPhaseChanged{JobID: a.st.jobID, Name: m.Name, Progress: m.Progress, Step: a.stepN})
}

func (a *runActor) startPacing(ctx actor.Context) {
	if a.st.done {
		a.finish(ctx)
		return
	}
	a.paceStart = time.Now()
	a.paceSteps = a.stepN
	if a.svc.cfg.TimeScale <= 0 {
		ctx.Send(ctx.Self(), &stepAgain{})
		return
	}
	if !a.ticking {
		a.svc.clock.add(ctx.Self())
		a.ticking = true
	}
}

func (a *runActor) stopPacing(ctx actor.Context) {
	if a.ticking {
		a.svc.clock.remove(ctx.Self())
		a.ticking = false
	}
}

// maxStepsPerMessage bounds the work of one message so commands (cancel,
// pause) are handled between steps promptly.
const maxStepsPerMessage = 50

// advance steps the engine up to the wall clock (or one batch at scale 0).
func (a *runActor) advance(ctx actor.Context) {
	if a.gone || a.engine == nil || a.st.status != statusRunning || a.st.done || !a.holdsSlot {
		return
	}
	var n int
	if a.svc.cfg.TimeScale <= 0 {
		n = process.StepsPerBatch - a.batchLen
	} else {
		elapsed := time.Since(a.paceStart).Seconds()
		target := a.paceSteps + int(math.Floor(elapsed*a.svc.cfg.TimeScale/process.Period))
		n = min(target-a.stepN, maxStepsPerMessage)
	}
	for i := 0; i < n; i++ {
		if !a.step(ctx) {
			return
		}
	}
	if a.svc.cfg.TimeScale <= 0 && a.st.status == statusRunning && !a.st.done && !a.gone {
		ctx.Send(ctx.Self(), &stepAgain{})
	}
}

// step runs one control period. It returns false when the run stopped
// stepping (done, failed, fenced).
func (a *runActor) step(ctx actor.Context) bool {
	r := a.engine.Step()
	a.stepN++
	for k, v := range r.Sample {
		a.batch[k] = append(a.batch[k], v)
	}
	a.batchLen++
	a.lastProg, a.lastName, a.lastTime = r.Progress, r.StepName, r.TimeS
	for _, al := range r.Alarms {
		a.pending = append(a.pending, pendingAlarm{step: r.N, alarm: al})
	}
	if r.Fault != nil {
		if !a.flushBatch(ctx) {
			return false
		}
		a.fault(ctx, r.Fault)
		return false
	}
	if a.batchLen >= process.StepsPerBatch || r.Done {
		if !a.flushBatch(ctx) {
			return false
		}
	}
	if !a.timeLimits(ctx, r.TimeS) {
		return false
	}
	if r.Done {
		a.st.done = true
		a.stopPacing(ctx)
		a.finish(ctx)
		return false
	}
	return true
}

// flushBatch appends the telemetry gathered so far, then the alarms of
// those steps.
func (a *runActor) flushBatch(ctx actor.Context) bool {
	if a.batchLen > 0 {
		ev := &events.TelemetryRecorded{JobID: a.st.jobID, Attempt: a.st.attempt, FirstStep: a.first,
			Samples: a.batch, Progress: round2(a.lastProg), CurrentStep: a.lastName}
		if !a.append(ctx, a.st.creator, a.st.reqID, ev) {
			return false
		}
		a.resetBatch(a.stepN)
	}
	return a.flushPending(ctx)
}

func (a *runActor) flushPending(ctx actor.Context) bool {
	for len(a.pending) > 0 {
		p := a.pending[0]
		if !a.st.alarms[keyOf(p.step, p.alarm)] {
			var ev events.Payload = &events.SPCViolation{JobID: a.st.jobID, Step: p.step, Alarm: p.alarm}
			if p.alarm.Source == process.SourceFDC {
				ev = &events.FDCAlarm{JobID: a.st.jobID, Step: p.step, Alarm: p.alarm}
			}
			if !a.append(ctx, a.st.creator, a.st.reqID, ev) {
				return false
			}
		}
		a.pending = a.pending[1:]
	}
	return true
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

func (a *runActor) timeLimits(ctx actor.Context, timeS float64) bool {
	cfg := a.svc.cfg
	if timeS >= cfg.HardLimit.Seconds() {
		a.failRun(ctx, fmt.Sprintf("hard time limit of %s process time exceeded", cfg.HardLimit), a.st.creator, a.engine.SafeState())
		return false
	}
	if timeS >= cfg.SoftLimit.Seconds() && !a.st.softWarned {
		return a.append(ctx, a.st.creator, a.st.reqID, &events.RunTimeLimitWarning{JobID: a.st.jobID, Limit: "soft",
			Step: a.stepN, Reason: fmt.Sprintf("soft time limit of %s process time exceeded", cfg.SoftLimit)})
	}
	return true
}

// fault handles a hardware fault the engine raised.
func (a *runActor) fault(ctx actor.Context, f *process.Fault) {
	a.stopPacing(ctx)
	msg := f.Message
	if msg == "" {
		msg = fmt.Sprintf("%s fault at %.0f%% progress", f.Kind, f.AtProgress)
	}
	if f.Kind == process.FaultTransient && a.st.retryCount < a.svc.cfg.MaxRetries {
		n := a.st.retryCount + 1
		delay := backoff{base: a.svc.cfg.RetryBase, cap: a.svc.cfg.RetryCap}.delay(n)
		ev := &events.RunRetryScheduled{JobID: a.st.jobID, Attempt: a.st.attempt + 1, DelayS: delay.Seconds(),
			RetryCount: n, Reason: msg}
		if !a.append(ctx, a.st.creator, a.st.reqID, ev) {
			return
		}
		a.engine = nil
		a.releaseSlot(ctx)
		a.scheduleRetry(ctx)
		return
	}
	a.failRun(ctx, msg, a.st.creator, a.engine.SafeState())
}

// scheduleRetry waits out what is left of the back-off the log recorded:
// a restart during the wait does not start it over.
func (a *runActor) scheduleRetry(ctx actor.Context) {
	next := a.st.attempt + 1
	d := max(a.svc.cfg.wall(a.st.retryDelay)-time.Since(a.st.retryAt), 0)
	self, root := ctx.Self(), a.svc.system.Root
	a.retryT = time.AfterFunc(d, func() { root.Send(self, &retryDue{attempt: next}) })
}

func (a *runActor) failRun(ctx actor.Context, msg string, md events.Metadata, safe string) {
	a.stopPacing(ctx)
	if !a.append(ctx, md, a.st.reqID, &events.RunFailed{JobID: a.st.jobID, Step: a.stepN, Error: msg, SafeState: safe}) {
		return
	}
	a.engine = nil
	a.releaseSlot(ctx)
	ctx.SetReceiveTimeout(2 * time.Second)
}

// finish runs the steps after processing and completes the run.
func (a *runActor) finish(ctx actor.Context) {
	if !a.flushBatch(ctx) {
		return
	}
	for _, m := range a.engine.FinishMarks() {
		if !a.mark(ctx, m) {
			return
		}
	}
	out := a.engine.Finish()
	for _, art := range out.Artifacts {
		if a.st.artifacts[art.Name] {
			continue
		}
		key := fmt.Sprintf("%s/%s/%s", a.runID, a.st.jobID, art.Name)
		uri := ""
		if a.svc.artifacts != nil {
			sctx, cancel := a.storeCtx()
			var err error
			uri, err = a.svc.artifacts.Put(sctx, key, art.ContentType, art.Data)
			cancel()
			if err != nil {
				a.crash(ctx, fmt.Errorf("store artifact %s: %w", key, err))
				return
			}
		}
		ev := &events.ArtifactStored{JobID: a.st.jobID, Name: art.Name, ContentType: art.ContentType, Size: len(art.Data), URI: uri}
		if !a.append(ctx, a.st.creator, a.st.reqID, ev) {
			return
		}
	}
	done := &events.RunCompleted{JobID: a.st.jobID, Step: a.stepN, DurationS: float64(a.stepN) * process.Period}
	var err error
	if done.Result, err = json.Marshal(out.Result); err != nil {
		a.crash(ctx, fmt.Errorf("encode result: %w", err))
		return
	}
	if out.R2R != nil {
		if done.R2R, err = json.Marshal(out.R2R); err != nil {
			a.crash(ctx, fmt.Errorf("encode observations: %w", err))
			return
		}
	}
	if !a.append(ctx, a.st.creator, a.st.reqID, done) {
		return
	}
	a.engine = nil
	a.releaseSlot(ctx)
	ctx.SetReceiveTimeout(2 * time.Second)
}

// append writes one event with the expected revision and folds it in. On a
// conflict the actor has been fenced off by another writer: it stops. On
// another store error it crashes, to be re-activated from its log.
func (a *runActor) append(ctx actor.Context, md events.Metadata, causation string, p events.Payload) bool {
	if a.gone {
		return false
	}
	md.Node = a.svc.cfg.Node
	md.CausationID = causation
	if md.CorrelationID == "" {
		md.CorrelationID = a.st.creator.CorrelationID
	}
	ev, err := events.New(p, md)
	if err != nil {
		a.crash(ctx, err)
		return false
	}
	sctx, cancel := a.storeCtx()
	res, err := a.svc.store.Append(sctx, events.RunStream(a.runID), events.ExpectRevision(a.st.revision), ev)
	cancel()
	if errors.Is(err, events.ErrConflict) {
		a.fence(ctx, "run actor fenced: another writer appended to its stream; stopping",
			"run_id", a.runID, "expected_revision", a.st.revision, "err", err)
		return false
	}
	if err != nil {
		a.crash(ctx, fmt.Errorf("append %s to %s: %w", p.EventType(), a.runID, err))
		return false
	}
	rec := events.Record{ID: ev.ID, Stream: events.RunStream(a.runID), Revision: res.Revision, Position: res.Position,
		Type: ev.Type, Time: time.Now().UTC(), Data: ev.Data, Metadata: ev.Metadata}
	a.st.apply(rec)
	return true
}

// fence stops an actor that is no longer its stream's writer. The slot it
// held or waited for goes back to this node's queue: the run is another
// actor's now.
func (a *runActor) fence(ctx actor.Context, msg string, args ...any) {
	a.svc.log.Warn(msg, args...)
	a.svc.fenced.Add(1)
	a.gone = true
	a.stopTimers(ctx)
	if a.loaded && a.st.exists {
		a.holdsSlot = false
		a.svc.sched(ctx, &release{runID: a.runID, queue: a.queue()})
	}
	ctx.Send(ctx.Parent(), &retired{runID: a.runID, pid: ctx.Self()})
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
	ctx.Send(ctx.Parent(), &crashed{runID: a.runID, pid: ctx.Self()})
	ctx.Stop(ctx.Self())
}
