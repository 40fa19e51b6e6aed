//go:build !unix

package api

import (
	"errors"
	"syscall"
)

// Elsewhere every socket gets a writer of its own, which waits.
const canWriteNonblocking = false

func writeNonblocking(syscall.RawConn, []byte) (int, error) {
	return 0, errors.ErrUnsupported
}
