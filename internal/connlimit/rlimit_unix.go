//go:build unix

package connlimit

import "syscall"

// OpenFiles is the process's open-file limit (the soft RLIMIT_NOFILE, which
// Go raises to the hard limit at start), 0 when unknown: servers derive
// their default connection caps from it, keeping a reserve for their own
// files.
func OpenFiles() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur > 1<<30 {
		return 0
	}
	return int(r.Cur)
}
