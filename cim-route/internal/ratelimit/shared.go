package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/noretry"
)

// Shared returns a Maker of Limiters that keep their buckets in Redis under
// prefix + "limit:<name>:<dimension>:<key>", each bucket one string key
// that expires once it would be full again (Redis Cluster: one key per
// call, so the dimensions of a request may live on different nodes).
func Shared(rdb redis.UniversalClient, prefix string) Maker {
	return func(cfg Config) *Limiter {
		cfg, ok := normalize(cfg)
		if !ok {
			return nil
		}
		return &Limiter{cfg: cfg, buckets: &shared{rdb: rdb, name: cfg.Name, prefix: prefix + "limit:" + cfg.Name + ":",
			interval: max(time.Duration(float64(time.Second)/cfg.Rate), time.Microsecond), burst: cfg.Burst}}
	}
}

// shared keeps the buckets in Redis as GCRA (the generic cell rate
// algorithm, a token bucket told by one number): a bucket is its
// theoretical arrival time (TAT), the moment it would be full again, in
// microseconds of Redis's clock, so every route process sees one clock.
type shared struct {
	rdb      redis.UniversalClient
	name     string // the limiter's, for errors
	prefix   string
	interval time.Duration // one token's refill time
	burst    int
}

// maxKey bounds the part of a Redis key a caller names; a longer key is
// replaced by its SHA-256.
const maxKey = 64

// gcraScript takes ARGV[3] tokens from the bucket KEYS[1] (or gives back
// -ARGV[3] when negative, after a refusal in another dimension).
//
// ARGV: interval µs, tolerance µs (burst × interval), n.
// Returns 0 if taken (or given back), else the µs to wait.
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, tolerance, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat < now then tat = now end
local new = tat + n * interval
if n > 0 and new - now > tolerance then
  return math.ceil(new - now - tolerance)
end
if new <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000))
end
return 0
`)

func (s *shared) take(ctx context.Context, n int, keys []dimKey) (time.Duration, error) {
	interval := s.interval.Microseconds()
	tolerance := strconv.FormatInt(interval*int64(s.burst), 10)
	var wait time.Duration
	taken := make([]string, 0, len(keys))
	var err error
	for _, k := range keys {
		key := s.key(k)
		var us int64
		// At most once (noretry): Redis may run an attempt whose answer
		// timed out, and each go-redis retry would take again.
		us, err = noretry.Run(ctx, s.rdb, gcraScript, []string{key}, interval, tolerance, n).Int64()
		if err != nil {
			break
		}
		if us > 0 {
			wait = max(wait, time.Duration(us)*time.Microsecond)
			continue
		}
		taken = append(taken, key)
	}
	if err == nil && wait == 0 {
		return 0, nil
	}
	// A refusal (or a failure) takes nothing: give back what was taken.
	// Best effort: a token not given back is held until its bucket refills,
	// it never lets one more attempt through.
	for _, key := range taken {
		_ = noretry.Run(ctx, s.rdb, gcraScript, []string{key}, interval, tolerance, -n).Err()
	}
	if err != nil {
		return 0, fmt.Errorf("%s rate limit: %w", s.name, err)
	}
	return wait, nil
}

func (s *shared) key(k dimKey) string {
	key := k.key
	if len(key) > maxKey {
		sum := sha256.Sum256([]byte(key))
		key = hex.EncodeToString(sum[:])
	}
	return s.prefix + strconv.Itoa(k.dim) + ":" + key
}
