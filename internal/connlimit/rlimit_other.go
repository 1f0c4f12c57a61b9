//go:build !unix

package connlimit

// OpenFiles is the process's open-file limit: unknown here (0).
func OpenFiles() int { return 0 }
