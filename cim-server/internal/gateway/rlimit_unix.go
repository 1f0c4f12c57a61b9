//go:build unix

package gateway

import "syscall"

// openFileLimit returns the process's open-file limit (the soft
// RLIMIT_NOFILE, which Go raises to the hard limit at start), 0 if unknown.
func openFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return rl.Cur
}
