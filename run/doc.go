// Package run is the run aggregate: a run's decisions as pure functions of
// its events, separate from the actor that hosts it.
//
// Apply folds a record of the run's stream into a Run; Decide returns the
// events a command causes (or ErrNotFound, or a *StateError); Advance
// returns what one control step of the engine causes (telemetry batches,
// alarms, a fault's retry or failure, time limits). Nothing here does
// I/O, reads a clock or starts a goroutine, so given/when/then tables test
// every command in every state without an actor system, a store or sleeps.
//
// The lifecycle is one explicit type, State, with its allowed transitions;
// Status is the run's status view (status, E40 state, current step,
// progress, retry count, message), derived by Status.Next from the same
// events by every reader: the job-status projection, the stream messages
// and the job logs.
//
// A host (actors) loads, decides, appends with the expected revision
// Run.Revision, applies what it appended and replies:
//
//	r := run.New(id, policy)
//	for _, rec := range recs {
//		r.Apply(rec)
//	}
//	evs, err := r.Decide(run.Pause{}) // after r.Flush() is appended
//	// append evs with events.ExpectRevision(r.Revision), then Apply them
package run
