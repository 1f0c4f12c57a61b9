// Package ratelimit throttles attempts per key — a client IP, a user name —
// with token buckets. A request names one key per dimension and passes only
// if every dimension has a token; then one token is taken from each, else
// none.
//
// Two kinds of Limiter keep the buckets:
//   - New: in this process (golang.org/x/time/rate buckets in bounded LRU
//     caches; an attacker cycling through keys only evicts the least
//     recently used buckets);
//   - NewShared: in Redis, shared by every route process (standalone routes
//     and the gateways' replicas alike), so that a budget — the guesses at
//     one account's password, one user's uploads — is the cluster's and does
//     not grow with the number of processes that serve the API.
//
// A Limiter is safe for concurrent use; a nil *Limiter admits everything.
package ratelimit

import (
	"context"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// Config configures a Limiter.
type Config struct {
	// Name tells a shared limiter's buckets from another's in Redis
	// ("login", "history"); unused in memory.
	Name       string
	Rate       float64 // tokens per second per key; <= 0 turns limiting off
	Burst      int     // bucket size (at least 1)
	Dimensions int     // keys per request (e.g. 2: IP and name)
	Size       int     // buckets kept per dimension in memory (default 65536)
}

// Never is AllowN's answer for more tokens than a bucket holds.
const Never = time.Duration(1<<63 - 1)

// A Limiter admits or refuses attempts.
type Limiter struct {
	cfg     Config
	buckets buckets
}

// buckets is where a Limiter keeps its buckets: take takes n tokens from
// keys[i]'s bucket of dimension i (never an empty key), all or none,
// returning 0 or how long until the longest refusal clears.
type buckets interface {
	take(ctx context.Context, n int, keys []dimKey) (time.Duration, error)
}

// dimKey is one key of a request and its dimension.
type dimKey struct {
	dim int
	key string
}

// New returns a Limiter keeping its buckets in this process; nil (which
// admits everything) when cfg.Rate <= 0.
func New(cfg Config) *Limiter {
	cfg, ok := normalize(cfg)
	if !ok {
		return nil
	}
	return &Limiter{cfg: cfg, buckets: newMemory(cfg)}
}

// A Maker makes a Limiter from its Config: New, or Shared's answer.
type Maker func(Config) *Limiter

func normalize(cfg Config) (Config, bool) {
	if cfg.Rate <= 0 {
		return cfg, false
	}
	cfg.Burst = max(cfg.Burst, 1)
	cfg.Dimensions = max(cfg.Dimensions, 1)
	if cfg.Size <= 0 {
		cfg.Size = 1 << 16
	}
	return cfg, true
}

// Allow takes a token for keys[i] in dimension i (an empty key skips its
// dimension; missing keys too). It returns 0 when every bucket had one; else
// it takes none and returns how long until the longest refusal clears. An
// error (a shared limiter whose Redis failed) admits nothing.
func (l *Limiter) Allow(ctx context.Context, keys ...string) (time.Duration, error) {
	return l.AllowN(ctx, 1, keys...)
}

// AllowN is Allow for n tokens at once (an invitation of n users). More
// than the burst never passes: it returns Never.
func (l *Limiter) AllowN(ctx context.Context, n int, keys ...string) (time.Duration, error) {
	if l == nil || n <= 0 {
		return 0, nil
	}
	if n > l.cfg.Burst {
		return Never, nil
	}
	var buf [2]dimKey
	dks := buf[:0]
	for i, key := range keys {
		if i >= l.cfg.Dimensions {
			break
		}
		if key != "" {
			dks = append(dks, dimKey{i, key})
		}
	}
	if len(dks) == 0 {
		return 0, nil
	}
	return l.buckets.take(ctx, n, dks)
}

// memory keeps the buckets in LRU caches, one per dimension.
type memory struct {
	limit rate.Limit
	burst int
	dims  []*lru.Cache[string, *rate.Limiter]
	now   func() time.Time
}

func newMemory(cfg Config) *memory {
	m := &memory{limit: rate.Limit(cfg.Rate), burst: cfg.Burst, now: time.Now}
	for range cfg.Dimensions {
		c, _ := lru.New[string, *rate.Limiter](cfg.Size) // only fails for size <= 0
		m.dims = append(m.dims, c)
	}
	return m
}

func (m *memory) take(_ context.Context, n int, keys []dimKey) (time.Duration, error) {
	now := m.now()
	reserved := make([]*rate.Reservation, 0, len(keys))
	var wait time.Duration
	for _, k := range keys {
		r := m.bucket(k.dim, k.key).ReserveN(now, n)
		if !r.OK() {
			wait = Never
			continue
		}
		reserved = append(reserved, r)
		wait = max(wait, r.DelayFrom(now))
	}
	if wait > 0 {
		for _, r := range reserved {
			r.CancelAt(now)
		}
	}
	return wait, nil
}

func (m *memory) bucket(dim int, key string) *rate.Limiter {
	c := m.dims[dim]
	if b, ok := c.Get(key); ok {
		return b
	}
	b := rate.NewLimiter(m.limit, m.burst)
	if prev, ok, _ := c.PeekOrAdd(key, b); ok {
		return prev // another request created it first
	}
	return b
}
