//go:build race

package client

// raceEnabled: the race detector changes what allocates, so allocation
// counts are checked without it (make allocs).
const raceEnabled = true
