package fab

import "github.com/spectra-fab/spectra/events"

// ErrNotFound: no such recipe, version, lot or schedule in the caller's
// organisation (another organisation's is not found either). It is
// events.ErrNotFound: one not-found in every layer.
var ErrNotFound = events.ErrNotFound

// RuleError is a command the aggregate's rules refuse: an unapproved
// version for a production run, approving one's own version, a cancelled
// lot. Reason says why, for the client.
type RuleError struct {
	Reason string
}

func (e *RuleError) Error() string { return e.Reason }

func refuse(reason string) error { return &RuleError{Reason: reason} }
