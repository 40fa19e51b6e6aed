package run

import (
	"errors"
	"fmt"

	"github.com/spectra-fab/spectra/events"
)

// Errors Decide returns. Callers branch on them with errors.Is.
var (
	// ErrNotFound: the run does not exist (its stream holds no
	// RunRequested). It is events.ErrNotFound: one sentinel in every layer.
	ErrNotFound = events.ErrNotFound
	// ErrInvalidState: the command does not apply to the run's current
	// state. The error is a *StateError saying why.
	ErrInvalidState = errors.New("invalid state for command")
	// ErrUnflushed: a pause or cancel was asked of a run whose stepped
	// telemetry is not recorded yet. The host flushes first (Flush): a
	// programming error, never the user's.
	ErrUnflushed = errors.New("stepped telemetry not flushed")
)

// StateError says why a command does not apply. It matches
// ErrInvalidState.
type StateError struct {
	Command string
	State   State
	Reason  string
}

func (e *StateError) Error() string {
	return fmt.Sprintf("%s: %s (status %s)", e.Command, e.Reason, e.State)
}

// Unwrap makes errors.Is(err, ErrInvalidState) hold.
func (e *StateError) Unwrap() error { return ErrInvalidState }
