//go:build race

package codec

// raceEnabled: the race detector changes what allocates, so allocation
// counts are checked without it (make allocs).
const raceEnabled = true
