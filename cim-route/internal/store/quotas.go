package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/noretry"
)

// uploadQuotaTTL keeps a day's counter a little past its day.
const uploadQuotaTTL = 25 * time.Hour

// upquota:{uid}:<yyyymmdd> counts the bytes uid uploaded on that UTC day.
func (k keys) upquota(uid, day string) string { return k.prefix + "upquota:{" + uid + "}:" + day }

// chargeScript adds ARGV[1] bytes to a counter unless that takes it over
// ARGV[2]; the first charge of a day sets its TTL (ARGV[3] ms). Answers the
// new total, or -1 (nothing charged) when over.
//
// KEYS[1] counter.
var chargeScript = redis.NewScript(`
local n = tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur + n > tonumber(ARGV[2]) then return -1 end
local v = redis.call('INCRBY', KEYS[1], n)
if v == n then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return v
`)

// ChargeUpload counts n more upload bytes against uid's quota for the day
// of now; errs.ErrQuotaExceeded (and nothing counted) when that would pass
// quota. Refund gives back part of the charge (an upload that failed or came
// out smaller than announced), to the day it was charged to; it is best
// effort: a refund lost to a Redis failure only makes the quota stricter.
func (s *Store) ChargeUpload(ctx context.Context, uid string, n, quota int64) (refund func(ctx context.Context, n int64), err error) {
	key := s.k.upquota(uid, s.now().UTC().Format("20060102"))
	// At most once (noretry): Redis may run an attempt whose answer timed
	// out, so each go-redis retry could charge again.
	v, err := noretry.Run(ctx, s.rdb, chargeScript, []string{key}, n, quota, uploadQuotaTTL.Milliseconds()).Int64()
	if err != nil {
		return nil, unavailable(err)
	}
	if v < 0 {
		return nil, fmt.Errorf("%w: uploads are limited to %d bytes per user and day", errs.ErrQuotaExceeded, quota)
	}
	return func(ctx context.Context, n int64) {
		if n > 0 {
			_ = noretry.Do(ctx, s.rdb, "decrby", key, n).Err()
		}
	}, nil
}
