package client

import (
	"context"
	"time"

	"github.com/gocim/gocim/internal/backoff"
)

// newBackoff spaces login attempts: attempt n waits a uniformly random time
// in [min, min(max, min·2^(n+1))). The randomness covers the whole window
// (full jitter), so when a gateway dies the thousands of clients it held come
// back spread out instead of in waves; even the first retry is spread over
// [min, 2·min).
func newBackoff(min, max time.Duration) *backoff.Backoff {
	return backoff.New(min, max, backoff.Full)
}

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
