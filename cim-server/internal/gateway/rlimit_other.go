//go:build !unix

package gateway

// openFileLimit is unknown here: no cap is derived from it.
func openFileLimit() uint64 { return 0 }
