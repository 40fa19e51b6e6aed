package run

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
)

// Policy is what a run's decisions depend on besides its events: the
// automatic retry rule and the time limits, in process time.
type Policy struct {
	// MaxRetries is the number of automatic retries after transient faults.
	MaxRetries int
	// RetryBase and RetryCap bound the exponential back-off between
	// automatic retries: base·2^(n−1), capped.
	RetryBase, RetryCap time.Duration
	// SoftLimit records a warning; HardLimit fails the run.
	SoftLimit, HardLimit time.Duration
}

// RetryDelay is the back-off before automatic retry n (n ≥ 1).
func (p Policy) RetryDelay(n int) time.Duration {
	n = max(n, 1)
	d := float64(p.RetryBase) * math.Pow(2, float64(n-1))
	if d > float64(p.RetryCap) || math.IsInf(d, 0) {
		return p.RetryCap
	}
	return time.Duration(d)
}

// AlarmKey identifies an alarm of an attempt: the step that raised it and
// what it says.
type AlarmKey struct {
	Step      int
	Source    process.AlarmSource
	Parameter string
	Rule      string
}

func keyOf(step int, a process.Alarm) AlarmKey {
	return AlarmKey{Step: step, Source: a.Source, Parameter: a.Parameter, Rule: a.Rule}
}

// CancelRequest is a recorded RunCancelRequested whose RunCancelled is not
// in the log yet: who asked, and why. Whoever hosts the run carries it out.
type CancelRequest struct {
	By     events.Metadata
	Reason string
}

// Run is the run aggregate: a run folded from its stream, and the
// decisions it takes. It does no I/O, reads no clock and starts no
// goroutine. Its host loads the stream with Apply, asks Decide (commands)
// and Advance (control steps) for the events to append, appends them with
// the expected revision Revision, and applies what it appended.
//
// Besides the fold, a Run holds what its current attempt has stepped but
// not recorded yet (a telemetry batch of up to a second, alarms of those
// steps): lost with the host, re-simulated by a fast-forward.
type Run struct {
	ID     string
	Policy Policy

	// Revision and Position are those of the last applied record, Head
	// its chain link (events.RecordLink): what the next event links to.
	Revision, Position uint64
	Head               string
	// Request is the run's RunRequested; Creator its metadata; RequestID
	// its event id, the causation of what follows.
	Request   events.RunRequested
	Creator   events.Metadata
	RequestID string
	// Status is the run's status view (see Status).
	Status Status

	Seed          int64
	Fault         *process.Fault // injected into the current job
	R2R           map[string]float64
	Queued        bool           // the current job's RunQueued is recorded
	CancelRequest *CancelRequest // pending cancel of the current job
	// Unknown counts events of types this node does not know (written by a
	// newer node): they are kept in the log and advance the revision, and
	// the run carries on.
	Unknown int

	// Per attempt, from the log.
	Steps      int // engine steps recorded in telemetry
	Marks      map[string]bool
	Alarms     map[AlarmKey]bool
	Artifacts  map[string]bool
	SoftWarned bool
	RetryDelay time.Duration // of the pending automatic retry, process time
	RetryAt    time.Time     // when that retry was scheduled (its event's time)

	// Per attempt, not recorded yet.
	stepN    int // engine steps taken (recorded or in the batch)
	batch    map[string][]float64
	batchLen int
	first    int // engine step of the batch's first sample
	pending  []pendingAlarm
	done     bool // the engine reported Done
	lastProg float64
	lastName string
	lastTime float64
}

type pendingAlarm struct {
	step  int
	alarm process.Alarm
}

// New returns the aggregate of run id before any event.
func New(id string, p Policy) *Run {
	r := &Run{ID: id, Policy: p}
	r.resetAttempt()
	return r
}

// Exists reports whether the run's RunRequested has been applied.
func (r *Run) Exists() bool { return r.Status.State != None }

// State is the current job's lifecycle state.
func (r *Run) State() State { return r.Status.State }

// JobID is the current job.
func (r *Run) JobID() string { return r.Status.JobID }

// Attempt is the current attempt of the current job, from 0.
func (r *Run) Attempt() int { return r.Status.Attempt }

// StepsTaken is the number of engine steps the attempt has taken,
// recorded or not.
func (r *Run) StepsTaken() int { return r.stepN }

// Done reports whether the attempt's processing has finished: the host
// completes the run next (Decide(Complete)).
func (r *Run) Done() bool { return r.done }

// Queue is the run's scheduling queue: its kind, and its tool when the
// recipe names one (ion, ion/IMP-01).
func (r *Run) Queue() string {
	if r.Request.ToolID == "" {
		return string(r.Request.Kind)
	}
	return fmt.Sprintf("%s/%s", r.Request.Kind, r.Request.ToolID)
}

// Options are the engine inputs of the current attempt besides the
// recipe, as the stream records them.
func (r *Run) Options() process.Options {
	return process.Options{Seed: r.Seed, R2R: r.R2R, Fault: r.Fault, Attempt: r.Status.Attempt,
		Disturbance: r.Request.Disturbance}
}

// NextAttempt is the attempt a Start begins: 0 for a queued job, the next
// one for a job waiting to retry.
func (r *Run) NextAttempt() int {
	if r.Status.State == Retrying {
		return r.Status.Attempt + 1
	}
	return 0
}

func (r *Run) resetAttempt() {
	r.Steps = 0
	r.Marks = map[string]bool{}
	r.Alarms = map[AlarmKey]bool{}
	r.Artifacts = map[string]bool{}
	r.SoftWarned = false
	r.stepN = 0
	r.resetBatch(0)
	r.pending = nil
	r.done = false
	r.lastProg, r.lastName, r.lastTime = 0, "", 0
}

func (r *Run) resetBatch(first int) {
	r.batch = map[string][]float64{}
	r.batchLen = 0
	r.first = first
}

// Apply folds one record of the run's stream into the aggregate. A type
// this node does not know advances the revision and is counted in
// Unknown; nothing else changes.
func (r *Run) Apply(rec events.Record) {
	p, err := events.Decode(rec)
	if err != nil {
		r.Revision, r.Position = rec.Revision, rec.Position
		r.Head = events.RecordLink(rec)
		r.Unknown++
		return
	}
	r.ApplyPayload(rec, p)
}

// ApplyPayload folds rec as Apply does, given its payload p: a host that
// has just appended p need not decode rec.Data back into it.
func (r *Run) ApplyPayload(rec events.Record, p events.Payload) {
	r.ApplyLinked(rec, p, events.RecordLink(rec))
}

// ApplyLinked folds rec as ApplyPayload does, given also its chain link
// (events.RecordLink(rec)): a host that chained the events it appended
// (events.Chain) has their links already.
func (r *Run) ApplyLinked(rec events.Record, p events.Payload, link string) {
	r.Revision, r.Position = rec.Revision, rec.Position
	r.Head = link
	r.Status = r.Status.Next(p)
	switch e := p.(type) {
	case *events.RunRequested:
		r.Request = *e
		r.Creator = rec.Metadata
		r.RequestID = rec.ID
		r.Seed = e.Seed
		r.Fault = e.Fault
	case *events.RunQueued:
		r.Queued = true
	case *events.RunStarted:
		r.Seed = e.Seed
		r.R2R = e.R2R
		if e.Policy != nil { // the run's policy governs it, whatever the host's
			r.Policy = PolicyOf(*e.Policy)
		}
		r.resetAttempt()
	case *events.RunPhaseChanged:
		r.Marks[e.Name] = true
	case *events.TelemetryRecorded:
		if n := firstLen(e.Samples); e.FirstStep+n > r.Steps {
			r.Steps = e.FirstStep + n
		}
	case *events.SPCViolation:
		r.Alarms[keyOf(e.Step, e.Alarm)] = true
	case *events.FDCAlarm:
		r.Alarms[keyOf(e.Step, e.Alarm)] = true
	case *events.RunCancelRequested:
		if e.JobID == r.Status.JobID {
			r.CancelRequest = &CancelRequest{By: rec.Metadata, Reason: e.Reason}
		}
	case *events.RunCancelled:
		r.CancelRequest = nil
		r.dropUnrecorded()
	case *events.RunFailed, *events.RunCompleted:
		r.dropUnrecorded()
	case *events.RunRetryScheduled:
		r.dropUnrecorded()
		r.RetryDelay = time.Duration(e.DelayS * float64(time.Second))
		r.RetryAt = rec.Time
	case *events.RunRetried:
		r.Seed = e.Seed
		r.Fault = e.Fault
		r.Queued = false
		r.CancelRequest = nil
		r.resetAttempt()
	case *events.ArtifactStored:
		r.Artifacts[e.Name] = true
	case *events.RunTimeLimitWarning:
		r.SoftWarned = true
	}
}

// dropUnrecorded forgets stepped samples and alarms the log will never
// hold: the attempt has ended.
func (r *Run) dropUnrecorded() {
	r.resetBatch(r.stepN)
	r.pending = nil
}

func firstLen(cols map[string][]float64) int {
	for _, v := range cols {
		return len(v)
	}
	return 0
}

// Commands. Decide takes one and returns the events it causes.
type (
	// Queue records that the current job waits for admission (once per job).
	Queue struct{}
	// Start begins the next attempt of a queued or retrying job: RunStarted
	// with the engine inputs it records (R2R adjustments and their basis,
	// the node), then the engine's set-up marks. A queued job whose
	// RunQueued is not recorded yet (admitted as soon as it asked) records
	// it first, in the same append.
	Start struct {
		R2R      map[string]float64
		R2RBasis map[string]any
		Node     string
		Setup    []process.Mark
		// Model is the engine's model version (ModelVersion).
		Model string
	}
	// Pause stops a running job's process time. Flush first.
	Pause struct{}
	// Resume lets a paused job go on.
	Resume struct{}
	// Cancel stops a job that has not ended: the request, then the
	// cancellation with the safe state the tool is left in (empty: the job
	// had not started processing). Flush first.
	Cancel struct {
		Reason    string
		By        string // the user asking, for the default reason
		SafeState string
	}
	// CompleteCancel carries out a cancel request the log records without
	// its RunCancelled (the host stopped between the two).
	CompleteCancel struct{ SafeState string }
	// Retry starts a failed or cancelled job again as a new job.
	Retry struct {
		JobID string
		Seed  int64
	}
	// Fail ends the job with an error the host met (its engine could not
	// be built or recovered).
	Fail struct {
		Error     string
		SafeState string
	}
	// Complete finishes a job whose processing is done: the engine's
	// finishing marks, the artifacts the host stored, the result.
	Complete struct {
		Finish    []process.Mark
		Artifacts []events.ArtifactStored
		Outcome   process.Outcome
	}
)

// idleSafeState is the safe state of a job cancelled before processing.
const idleSafeState = "idle: the run had not started processing"

// Decide returns the events cmd causes, or ErrNotFound, or a *StateError
// when cmd does not apply to the run's state. It changes nothing: the
// host appends the events and applies them.
func (r *Run) Decide(cmd any) ([]events.Payload, error) {
	if !r.Exists() {
		return nil, ErrNotFound
	}
	st, job := r.Status.State, r.Status.JobID
	refuse := func(name, reason string) error { return &StateError{Command: name, State: st, Reason: reason} }
	switch c := cmd.(type) {
	case Queue:
		if st != Queued || r.Queued {
			return nil, nil
		}
		return []events.Payload{&events.RunQueued{JobID: job, Queue: r.Queue()}}, nil
	case Start:
		if st != Queued && st != Retrying {
			return nil, refuse("start", fmt.Sprintf("run %s is %s; only a queued or retrying job starts", r.ID, st))
		}
		var out []events.Payload
		if st == Queued && !r.Queued {
			out = append(out, &events.RunQueued{JobID: job, Queue: r.Queue()})
		}
		out = append(out, &events.RunStarted{JobID: job, Attempt: r.NextAttempt(), Seed: r.Seed,
			R2R: c.R2R, R2RBasis: c.R2RBasis, Node: c.Node, Model: c.Model, Policy: r.Policy.Record()})
		for _, m := range c.Setup {
			out = append(out, &events.RunPhaseChanged{JobID: job, Name: m.Name, Progress: m.Progress, Step: 0})
		}
		return out, nil
	case Pause:
		if st != Running {
			return nil, refuse("pause", fmt.Sprintf("run %s is %s; only a running run can be paused", r.ID, st))
		}
		if err := r.unflushed(cmd); err != nil {
			return nil, err
		}
		return []events.Payload{&events.RunPaused{JobID: job, Step: r.stepN}}, nil
	case Resume:
		if st != Paused {
			return nil, refuse("resume", fmt.Sprintf("run %s is %s; only a paused run can be resumed", r.ID, st))
		}
		return []events.Payload{&events.RunResumed{JobID: job, Step: r.stepN}}, nil
	case Cancel:
		if st.Terminal() {
			return nil, refuse("cancel", fmt.Sprintf("run %s is already %s and cannot be cancelled", r.ID, st))
		}
		if err := r.unflushed(cmd); err != nil {
			return nil, err
		}
		reason := c.Reason
		if reason == "" {
			reason = "cancelled by " + c.By
		}
		var out []events.Payload
		if r.CancelRequest == nil {
			out = append(out, &events.RunCancelRequested{JobID: job, Reason: reason})
		} else {
			reason = r.CancelRequest.Reason
		}
		return append(out, r.cancelled(reason, c.SafeState)), nil
	case CompleteCancel:
		if r.CancelRequest == nil || st.Terminal() {
			return nil, nil
		}
		return []events.Payload{r.cancelled(r.CancelRequest.Reason, c.SafeState)}, nil
	case Retry:
		if st != Failed && st != Cancelled {
			return nil, refuse("retry", fmt.Sprintf("run %s is %s; only a failed or cancelled job can be retried", r.ID, st))
		}
		return []events.Payload{&events.RunRetried{JobID: c.JobID, FromJobID: job, Seed: c.Seed}}, nil
	case Fail:
		if st.Terminal() {
			return nil, refuse("fail", fmt.Sprintf("run %s is already %s", r.ID, st))
		}
		return []events.Payload{&events.RunFailed{JobID: job, Step: r.stepN, Error: c.Error, SafeState: c.SafeState}}, nil
	case Complete:
		if st != Running || !r.done {
			return nil, refuse("complete", fmt.Sprintf("run %s is %s and has not finished processing", r.ID, st))
		}
		return r.complete(c)
	}
	return nil, fmt.Errorf("decide: unknown command %T", cmd)
}

// unflushed refuses a command that stops the run while stepped
// telemetry is not recorded: the host flushes first.
func (r *Run) unflushed(cmd any) error {
	if r.batchLen > 0 || len(r.pending) > 0 {
		return fmt.Errorf("decide %T: %w", cmd, ErrUnflushed)
	}
	return nil
}

func (r *Run) cancelled(reason, safe string) events.Payload {
	if safe == "" {
		safe = idleSafeState
	}
	return &events.RunCancelled{JobID: r.Status.JobID, Step: r.stepN, Reason: reason, SafeState: safe}
}

func (r *Run) complete(c Complete) ([]events.Payload, error) {
	job := r.Status.JobID
	var out []events.Payload
	out = append(out, r.Flush()...)
	for _, m := range c.Finish {
		if !r.Marks[m.Name] {
			out = append(out, &events.RunPhaseChanged{JobID: job, Name: m.Name, Progress: m.Progress, Step: r.stepN})
		}
	}
	for _, a := range c.Artifacts {
		if !r.Artifacts[a.Name] {
			a.JobID = job
			out = append(out, &a)
		}
	}
	done := &events.RunCompleted{JobID: job, Step: r.stepN, DurationS: float64(r.stepN) * process.Period}
	var err error
	if done.Result, err = json.Marshal(c.Outcome.Result); err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	if c.Outcome.R2R != nil {
		if done.R2R, err = json.Marshal(c.Outcome.R2R); err != nil {
			return nil, fmt.Errorf("encode observations: %w", err)
		}
	}
	return append(out, done), nil
}

// Flush returns the telemetry batch stepped so far and the alarms of its
// steps, and empties it. The host flushes before a pause or a cancel.
func (r *Run) Flush() []events.Payload {
	var out []events.Payload
	if r.batchLen > 0 {
		out = append(out, &events.TelemetryRecorded{JobID: r.Status.JobID, Attempt: r.Status.Attempt, FirstStep: r.first,
			Samples: r.batch, Progress: round2(r.lastProg), CurrentStep: r.lastName})
		r.resetBatch(r.stepN)
	}
	return append(out, r.flushAlarms()...)
}

func (r *Run) flushAlarms() []events.Payload {
	var out []events.Payload
	for _, p := range r.pending {
		if r.Alarms[keyOf(p.step, p.alarm)] {
			continue
		}
		if p.alarm.Source == process.SourceFDC {
			out = append(out, &events.FDCAlarm{JobID: r.Status.JobID, Step: p.step, Alarm: p.alarm})
		} else {
			out = append(out, &events.SPCViolation{JobID: r.Status.JobID, Step: p.step, Alarm: p.alarm})
		}
	}
	r.pending = nil
	return out
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

// Advance takes the result of the attempt's next engine step and returns
// the events it causes: a telemetry batch each second of process time
// (then the alarms of its steps), a fault's retry or failure, a time
// limit's warning or failure. safe is the state the tool is left in if
// the step ends the run. A step the log already records (a host
// recovering its engine by fast-forward) records nothing again but what
// the log lacks of it: its alarms, its fault, its time limit.
func (r *Run) Advance(res process.StepResult, safe string) []events.Payload {
	recorded := res.N < r.Steps
	// A paused run's engine is fast-forwarded too (recovery), but steps
	// on only while running.
	if r.done || !(r.Status.State == Running || r.Status.State == Paused && recorded) {
		return nil
	}
	r.stepN = res.N + 1
	r.lastProg, r.lastName, r.lastTime = res.Progress, res.StepName, res.TimeS
	if !recorded {
		for k, v := range res.Sample {
			col, ok := r.batch[k]
			if !ok {
				// A second's samples: one allocation, not append's five.
				col = make([]float64, 0, process.StepsPerBatch)
			}
			r.batch[k] = append(col, v)
		}
		r.batchLen++
	} else {
		r.resetBatch(r.stepN)
	}
	for _, a := range res.Alarms {
		r.pending = append(r.pending, pendingAlarm{step: res.N, alarm: a})
	}
	var out []events.Payload
	if res.Fault != nil {
		out = append(out, r.Flush()...)
		return append(out, r.fault(res.Fault, safe))
	}
	if recorded || r.batchLen >= process.StepsPerBatch || res.Done {
		out = append(out, r.Flush()...)
	}
	switch {
	case res.TimeS >= r.Policy.HardLimit.Seconds():
		r.done = true // nothing more is stepped
		out = append(out, r.Flush()...)
		return append(out, &events.RunFailed{JobID: r.Status.JobID, Step: r.stepN, SafeState: safe,
			Error: fmt.Sprintf("hard time limit of %s process time exceeded", r.Policy.HardLimit)})
	case res.TimeS >= r.Policy.SoftLimit.Seconds() && !r.SoftWarned:
		out = append(out, &events.RunTimeLimitWarning{JobID: r.Status.JobID, Limit: "soft", Step: r.stepN,
			Reason: fmt.Sprintf("soft time limit of %s process time exceeded", r.Policy.SoftLimit)})
	}
	if res.Done {
		r.done = true
	}
	return out
}

// fault decides what a hardware fault does: a transient one retries after
// a back-off while retries are left, anything else fails the job.
func (r *Run) fault(f *process.Fault, safe string) events.Payload {
	r.done = true
	msg := f.Message
	if msg == "" {
		msg = fmt.Sprintf("%s fault at %.0f%% progress", f.Kind, f.AtProgress)
	}
	if f.Kind == process.FaultTransient && r.Status.RetryCount < r.Policy.MaxRetries {
		n := r.Status.RetryCount + 1
		return &events.RunRetryScheduled{JobID: r.Status.JobID, Attempt: r.Status.Attempt + 1,
			DelayS: r.Policy.RetryDelay(n).Seconds(), RetryCount: n, Reason: msg}
	}
	return &events.RunFailed{JobID: r.Status.JobID, Step: r.stepN, Error: msg, SafeState: safe}
}

// RecoveredTo reports whether a fast-forward has caught up with the log:
// every recorded step has been stepped again.
func (r *Run) RecoveredTo() bool { return r.stepN >= r.Steps }
