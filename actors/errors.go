package actors

import (
	"errors"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/run"
)

// Errors the actor layer returns to command senders. The API maps them to
// HTTP statuses in one place.
var (
	// ErrNotFound means no run or job with that id exists in the caller's
	// organisation. It is events.ErrNotFound: one sentinel in every layer.
	ErrNotFound = events.ErrNotFound
	// ErrInvalidState means the command does not apply to the run's current
	// state (cancelling a finished run, retrying a running job).
	ErrInvalidState = run.ErrInvalidState
	// ErrFaultInjectionDisabled means a recipe asked for a simulated fault on
	// a server not started with fault injection allowed.
	ErrFaultInjectionDisabled = errors.New("fault injection is disabled on this server")
	// ErrUnavailable means the actor system is shutting down or overloaded.
	ErrUnavailable = errors.New("actor system unavailable")
)

// StateError says why a command does not apply. It matches ErrInvalidState.
type StateError = run.StateError
