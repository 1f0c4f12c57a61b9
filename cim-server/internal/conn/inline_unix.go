//go:build unix

package conn

import (
	"errors"
	"syscall"
)

// writeNonblocking writes as much of b to rc's socket as it takes now,
// without waiting for it to take more. It returns how much went out.
func writeNonblocking(rc syscall.RawConn, b []byte) (int, error) {
	n := 0
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, err := syscall.Write(int(fd), b[n:])
			if m > 0 {
				n += m
			}
			switch {
			case errors.Is(err, syscall.EINTR):
				continue
			case errors.Is(err, syscall.EAGAIN):
				return true
			case err != nil:
				werr = err
				return true
			case m <= 0:
				return true
			}
		}
		return true // done either way: never wait for the socket here
	})
	if err != nil {
		return n, err
	}
	return n, werr
}
