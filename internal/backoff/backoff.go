// Package backoff spaces the retries of a failing operation: waits that
// double from a minimum up to a maximum, optionally jittered, and start over
// after a success. It is the one backoff of the gateway, the route and the
// client SDK; each caller keeps its own numbers.
//
// A Backoff is not safe for concurrent use: each retry loop owns one.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Jitter is how a wait is drawn from the current step.
type Jitter int

const (
	// None waits exactly the step: Min, 2·Min, 4·Min, … up to Max.
	None Jitter = iota
	// Equal waits a uniformly random time in [step/2, step]: never less
	// than half the step, and many callers that failed together spread out.
	Equal
	// Full waits a uniformly random time in [Min, min(2·step, Max)): the
	// whole window up to the next step, even the first wait spread over
	// [Min, 2·Min). Thousands of clients of one dead server come back
	// spread out instead of in waves.
	Full
)

// Backoff yields the waits between attempts. The zero value waits nothing;
// set Min and Max (and Jitter) before use.
type Backoff struct {
	Min, Max time.Duration
	Jitter   Jitter
	// Rand returns a uniformly random number in [0, n); nil is
	// math/rand/v2's Int64N. Tests replace it.
	Rand func(n int64) int64

	step time.Duration // the last step; 0 before the first wait
}

// New returns a Backoff from min to max with jitter j.
func New(min, max time.Duration, j Jitter) *Backoff {
	return &Backoff{Min: min, Max: max, Jitter: j}
}

// Next returns the wait before the next attempt and advances.
func (b *Backoff) Next() time.Duration {
	if b.step <= 0 {
		b.step = min(b.Min, b.Max)
	} else {
		b.step = double(b.step, b.Max)
	}
	switch b.Jitter {
	case Equal:
		half := b.step / 2
		return half + time.Duration(b.rand(int64(half)+1))
	case Full:
		ceil := double(b.step, b.Max)
		if ceil <= b.Min {
			return b.Min
		}
		return b.Min + time.Duration(b.rand(int64(ceil-b.Min)))
	default:
		return b.step
	}
}

// Reset starts over from Min: call it after a success.
func (b *Backoff) Reset() { b.step = 0 }

// double returns min(2·d, max) without overflowing.
func double(d, max time.Duration) time.Duration {
	if d > max-d {
		return max
	}
	return 2 * d
}

func (b *Backoff) rand(n int64) int64 {
	if n <= 0 {
		return 0
	}
	if b.Rand != nil {
		return b.Rand(n)
	}
	return rand.Int64N(n)
}
