//go:build !unix

package app

// openFileLimit: unknown on this platform (no total cap by default).
func openFileLimit() int { return 0 }
