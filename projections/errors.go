package projections

import "github.com/spectra-fab/spectra/events"

// ErrNotFound means the read model holds no such run or job for the
// caller's organisation. It is events.ErrNotFound: one sentinel in every
// layer.
var ErrNotFound = events.ErrNotFound
