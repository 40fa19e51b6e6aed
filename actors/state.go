package actors

import (
	"fmt"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
)

// Job statuses as the run actor sees them; the same strings as the API's.
const (
	statusQueued    = "queued"
	statusRunning   = "running"
	statusPaused    = "paused"
	statusRetrying  = "retrying"
	statusCompleted = "completed"
	statusFailed    = "failed"
	statusCancelled = "cancelled"
)

func terminal(status string) bool {
	return status == statusCompleted || status == statusFailed || status == statusCancelled
}

type alarmKey struct {
	step      int
	source    process.AlarmSource
	parameter string
	rule      string
}

// runState is a run folded from its stream: everything the actor needs to
// decide what to append next, and to re-create its engine after a crash.
type runState struct {
	exists   bool
	revision uint64 // of the last applied record
	position uint64

	req     events.RunRequested
	creator events.Metadata
	reqID   string // event id of RunRequested: the causation of what follows

	jobID      string
	status     string
	attempt    int // current attempt of the current job, from 0
	retryCount int // automatic retries of the current job
	seed       int64
	fault      *process.Fault // injected into the current job
	r2r        map[string]float64
	queuedOnce bool
	// cancelReq is the pending cancel of the current job: RunCancelRequested
	// is in the log, its RunCancelled not yet (the actor stopped between
	// the two appends). Whoever loads the run carries it out.
	cancelReq *cancelRequest

	// Per attempt.
	steps      int // engine steps recorded in telemetry
	marks      map[string]bool
	alarms     map[alarmKey]bool
	artifacts  map[string]bool
	done       bool // processing finished (engine reported Done)
	softWarned bool
	retryDelay float64   // of the pending automatic retry, process seconds
	retryAt    time.Time // when that retry was scheduled (the event's time)
}

// cancelRequest is a RunCancelRequested: who asked, and why.
type cancelRequest struct {
	md     events.Metadata
	reason string
}

func newRunState() *runState {
	return &runState{marks: map[string]bool{}, alarms: map[alarmKey]bool{}, artifacts: map[string]bool{}}
}

func (s *runState) resetAttempt() {
	s.steps = 0
	s.marks = map[string]bool{}
	s.alarms = map[alarmKey]bool{}
	s.artifacts = map[string]bool{}
	s.done = false
	s.softWarned = false
}

// apply folds one record into the state. Unknown event types are skipped,
// so newer writers never break older readers.
func (s *runState) apply(rec events.Record) {
	p, err := events.Decode(rec)
	if err != nil {
		return
	}
	s.revision, s.position = rec.Revision, rec.Position
	switch e := p.(type) {
	case *events.RunRequested:
		s.exists = true
		s.req = *e
		s.creator = rec.Metadata
		s.reqID = rec.ID
		s.jobID = e.JobID
		s.seed = e.Seed
		s.fault = e.Fault
		s.status = statusQueued
	case *events.RunQueued:
		s.queuedOnce = true
	case *events.RunStarted:
		s.status = statusRunning
		s.attempt = e.Attempt
		s.seed = e.Seed
		s.r2r = e.R2R
		s.resetAttempt()
	case *events.RunPhaseChanged:
		s.marks[e.Name] = true
	case *events.TelemetryRecorded:
		if n := firstLen(e.Samples); e.FirstStep+n > s.steps {
			s.steps = e.FirstStep + n
		}
	case *events.SPCViolation:
		s.alarms[keyOf(e.Step, e.Alarm)] = true
	case *events.FDCAlarm:
		s.alarms[keyOf(e.Step, e.Alarm)] = true
	case *events.RunPaused:
		s.status = statusPaused
	case *events.RunResumed:
		s.status = statusRunning
	case *events.RunCancelRequested:
		if e.JobID == s.jobID {
			s.cancelReq = &cancelRequest{md: rec.Metadata, reason: e.Reason}
		}
	case *events.RunCancelled:
		s.status = statusCancelled
		s.cancelReq = nil
	case *events.RunFailed:
		s.status = statusFailed
	case *events.RunRetryScheduled:
		s.status = statusRetrying
		s.retryCount = e.RetryCount
		s.retryDelay = e.DelayS
		s.retryAt = rec.Time
	case *events.RunRetried:
		s.jobID = e.JobID
		s.seed = e.Seed
		s.fault = e.Fault
		s.status = statusQueued
		s.attempt = 0
		s.retryCount = 0
		s.queuedOnce = false
		s.cancelReq = nil
		s.resetAttempt()
	case *events.ArtifactStored:
		s.artifacts[e.Name] = true
	case *events.RunCompleted:
		s.status = statusCompleted
	case *events.RunTimeLimitWarning:
		s.softWarned = true
	}
}

func keyOf(step int, a process.Alarm) alarmKey {
	return alarmKey{step: step, source: a.Source, parameter: a.Parameter, rule: a.Rule}
}

func firstLen(cols map[string][]float64) int {
	for _, v := range cols {
		return len(v)
	}
	return 0
}

// queueName is the scheduling queue of a run: its process kind, and its
// tool when the recipe names one.
func queueName(kind process.Kind, toolID string) string {
	if toolID == "" {
		return string(kind)
	}
	return fmt.Sprintf("%s/%s", kind, toolID)
}
