package client

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff spaces login attempts: attempt n waits a uniformly random time in
// [min, min(max, min·2^(n+1))). The randomness covers the whole window (full
// jitter), so when a gateway dies the thousands of clients it held come back
// spread out instead of in waves; even the first retry is spread over
// [min, 2·min). Not safe for concurrent use; each retry loop owns one.
type backoff struct {
	min, max time.Duration
	n        int
	rand     func(n int64) int64 // rand.Int64N; replaced in tests
}

func newBackoff(min, max time.Duration) *backoff {
	return &backoff{min: min, max: max, rand: rand.Int64N}
}

// next returns the wait before the next attempt and advances.
func (b *backoff) next() time.Duration {
	// Double only while below max, so the window cannot overflow.
	ceil := b.min
	for i := 0; i <= b.n && ceil < b.max; i++ {
		ceil *= 2
	}
	ceil = min(ceil, b.max)
	b.n++
	if ceil <= b.min {
		return b.min
	}
	return b.min + time.Duration(b.rand(int64(ceil-b.min)))
}

// reset starts over from the smallest window.
func (b *backoff) reset() { b.n = 0 }

// sleep waits d or until ctx ends; it reports whether the full wait passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
