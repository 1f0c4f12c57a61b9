// Package ratelimit throttles attempts per key — a client IP, a user name —
// with golang.org/x/time/rate token buckets kept in bounded LRU caches (an
// attacker cycling through keys only evicts the least recently used
// buckets). A request names one key per dimension and passes only if every
// dimension has a token; then one token is taken from each, else none.
//
// A Limiter is safe for concurrent use.
package ratelimit

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// Config configures a Limiter.
type Config struct {
	Rate       float64 // tokens per second per key; <= 0 turns limiting off
	Burst      int     // bucket size (at least 1)
	Dimensions int     // keys per request (e.g. 2: IP and name)
	Size       int     // buckets kept per dimension (default 65536)
}

// Never is AllowN's answer for more tokens than a bucket holds.
const Never = time.Duration(1<<63 - 1)

// Limiter admits or refuses attempts.
type Limiter struct {
	limit rate.Limit
	burst int
	dims  []*lru.Cache[string, *rate.Limiter]
	now   func() time.Time
}

// New returns a Limiter; nil (which admits everything) when cfg.Rate <= 0.
func New(cfg Config) *Limiter {
	if cfg.Rate <= 0 {
		return nil
	}
	if cfg.Burst < 1 {
		cfg.Burst = 1
	}
	if cfg.Dimensions < 1 {
		cfg.Dimensions = 1
	}
	if cfg.Size <= 0 {
		cfg.Size = 1 << 16
	}
	l := &Limiter{limit: rate.Limit(cfg.Rate), burst: cfg.Burst, now: time.Now}
	for range cfg.Dimensions {
		c, _ := lru.New[string, *rate.Limiter](cfg.Size) // only fails for size <= 0
		l.dims = append(l.dims, c)
	}
	return l
}

// Allow takes a token for keys[i] in dimension i (an empty key skips its
// dimension; missing keys too). It returns 0 when every bucket had one; else
// it takes none and returns how long until the fullest refusal clears.
func (l *Limiter) Allow(keys ...string) time.Duration {
	return l.AllowN(1, keys...)
}

// AllowN is Allow for n tokens at once (an invitation of n users). More
// than the burst never passes: it returns Never.
func (l *Limiter) AllowN(n int, keys ...string) time.Duration {
	if l == nil || n <= 0 {
		return 0
	}
	now := l.now()
	reserved := make([]*rate.Reservation, 0, len(l.dims))
	var wait time.Duration
	for i, key := range keys {
		if i >= len(l.dims) {
			break
		}
		if key == "" {
			continue
		}
		r := l.bucket(i, key).ReserveN(now, n)
		if !r.OK() {
			wait = Never
			continue
		}
		reserved = append(reserved, r)
		if d := r.DelayFrom(now); d > wait {
			wait = d
		}
	}
	if wait > 0 {
		for _, r := range reserved {
			r.CancelAt(now)
		}
	}
	return wait
}

func (l *Limiter) bucket(dim int, key string) *rate.Limiter {
	c := l.dims[dim]
	if b, ok := c.Get(key); ok {
		return b
	}
	b := rate.NewLimiter(l.limit, l.burst)
	if prev, ok, _ := c.PeekOrAdd(key, b); ok {
		return prev // another request created it first
	}
	return b
}
