package run

import (
	"fmt"

	"github.com/spectra-fab/spectra/events"
)

// Status is a run's status as every reader shows it: the job-status
// projection, the WebSocket stream messages and the job logs all derive it
// with Next from the same events, so they cannot disagree.
type Status struct {
	State       State   `json:"status"`
	E40         string  `json:"e40_state"`
	JobID       string  `json:"job_id"`
	Attempt     int     `json:"attempt"`
	Progress    float64 `json:"progress"`
	CurrentStep string  `json:"current_step"`
	RetryCount  int     `json:"retry_count"`
	// Message says why the job failed, was cancelled, or waits to retry.
	Message string `json:"error_message"`
}

// Transition is what one event does to a run's status: the fields it sets.
// Nil fields are left as they are.
type Transition struct {
	State       *State
	E40         *string // nil for RunCancelled: it depends on the state before (see Status.Apply)
	JobID       *string
	Attempt     *int
	Progress    *float64
	CurrentStep *string
	RetryCount  *int
	Message     *string
}

func ptr[T any](v T) *T { return &v }

// TransitionOf returns what p does to a run's status. ok is false for a
// payload that is not a run event; a run event that changes no status
// (an alarm, a cancel request, a time-limit warning) gives an empty
// Transition and ok true. Every run event type of the catalogue is named
// here: a test checks it.
func TransitionOf(p events.Payload) (t Transition, ok bool) {
	switch e := p.(type) {
	case *events.RunRequested:
		return Transition{State: ptr(Queued), E40: ptr(E40Queued), JobID: ptr(e.JobID), Attempt: ptr(0),
			Progress: ptr(0.0), CurrentStep: ptr("Queued"), RetryCount: ptr(0), Message: ptr("")}, true
	case *events.RunQueued:
		return Transition{State: ptr(Queued), E40: ptr(E40Queued), Progress: ptr(0.0), CurrentStep: ptr("Queued")}, true
	case *events.RunStarted:
		return Transition{State: ptr(Running), E40: ptr(E40SettingUp), Attempt: ptr(e.Attempt),
			Progress: ptr(0.0), CurrentStep: ptr("Started")}, true
	case *events.RunPhaseChanged:
		t := Transition{State: ptr(Running), Progress: ptr(e.Progress), CurrentStep: ptr(e.Name)}
		if e.Step > 0 { // post-processing is part of PROCESSING
			t.E40 = ptr(E40Processing)
		}
		return t, true
	case *events.TelemetryRecorded:
		return Transition{State: ptr(Running), E40: ptr(E40Processing), Progress: ptr(e.Progress),
			CurrentStep: ptr(e.CurrentStep)}, true
	case *events.RunPaused:
		return Transition{State: ptr(Paused), E40: ptr(E40Paused)}, true
	case *events.RunResumed:
		return Transition{State: ptr(Running), E40: ptr(E40Processing)}, true
	case *events.RunCancelled:
		return Transition{State: ptr(Cancelled), CurrentStep: ptr("Cancelled"), Message: ptr(e.Reason)}, true
	case *events.RunFailed:
		return Transition{State: ptr(Failed), E40: ptr(E40Aborted), CurrentStep: ptr("Failed"), Message: ptr(e.Error)}, true
	case *events.RunRetryScheduled:
		return Transition{State: ptr(Retrying), E40: ptr(E40Queued), RetryCount: ptr(e.RetryCount),
			CurrentStep: ptr(RetryingStep(e.Attempt)), Message: ptr(e.Reason)}, true
	case *events.RunRetried:
		return Transition{State: ptr(Queued), E40: ptr(E40Queued), JobID: ptr(e.JobID), Attempt: ptr(0),
			Progress: ptr(0.0), CurrentStep: ptr("Queued"), RetryCount: ptr(0), Message: ptr("")}, true
	case *events.ArtifactStored:
		return Transition{State: ptr(Running)}, true
	case *events.RunCompleted:
		return Transition{State: ptr(Completed), E40: ptr(E40ProcessComplete), Progress: ptr(100.0),
			CurrentStep: ptr("Completed")}, true
	case *events.SPCViolation, *events.FDCAlarm, *events.RunCancelRequested, *events.RunTimeLimitWarning:
		return Transition{}, true
	}
	return Transition{}, false
}

// RetryingStep is the current step of a job waiting for its automatic
// retry, attempt being the attempt that will run next (from 0).
func RetryingStep(attempt int) string { return fmt.Sprintf("Retrying (attempt %d)", attempt+1) }

// Apply returns s after t.
func (s Status) Apply(t Transition) Status {
	prev := s.State
	if t.State != nil {
		s.State = *t.State
	}
	switch {
	case t.E40 != nil:
		s.E40 = *t.E40
	case t.State != nil && *t.State == Cancelled:
		s.E40 = E40Aborted
		if prev == Queued || prev == Retrying {
			s.E40 = E40Removed
		}
	}
	if t.JobID != nil {
		s.JobID = *t.JobID
	}
	if t.Attempt != nil {
		s.Attempt = *t.Attempt
	}
	if t.Progress != nil {
		s.Progress = *t.Progress
	}
	if t.CurrentStep != nil {
		s.CurrentStep = *t.CurrentStep
	}
	if t.RetryCount != nil {
		s.RetryCount = *t.RetryCount
	}
	if t.Message != nil {
		s.Message = *t.Message
	}
	return s
}

// Next returns s after the event p.
func (s Status) Next(p events.Payload) Status {
	t, _ := TransitionOf(p)
	return s.Apply(t)
}
