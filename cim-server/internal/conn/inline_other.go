//go:build !unix

package conn

import "syscall"

// writeNonblocking writes nothing where there is no non-blocking write:
// the writer goroutine writes it all.
func writeNonblocking(syscall.RawConn, []byte) (int, error) { return 0, nil }
