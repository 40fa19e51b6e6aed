package projections

import "errors"

// ErrNotFound means the read model holds no such run or job for the
// caller's organisation.
var ErrNotFound = errors.New("not found")
