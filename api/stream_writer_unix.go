//go:build unix

package api

import "syscall"

const canWriteNonblocking = true

// writeNonblocking writes what the socket's buffer takes of p now, without
// waiting for room (Go's sockets are non-blocking beneath): n < len(p)
// with no error means the buffer is full.
func writeNonblocking(rc syscall.RawConn, p []byte) (int, error) {
	var (
		n    int
		werr error
	)
	err := rc.Write(func(fd uintptr) bool {
		for {
			n, werr = syscall.Write(int(fd), p)
			if werr != syscall.EINTR {
				return true // done, whatever happened: never wait here
			}
		}
	})
	if err != nil {
		return 0, err
	}
	n = max(n, 0)
	if werr == syscall.EAGAIN {
		return n, nil
	}
	return n, werr
}
