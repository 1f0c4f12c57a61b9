package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// queue is one URL's queue in Redis: a stream of the events not delivered
// yet, a sorted set scheduling them and a hash counting their failed
// attempts (see the package doc). The three keys share a hash tag, so every
// script below runs on Redis Cluster.
type queue struct {
	rdb   redis.UniversalClient
	keys  []string // stream, due, tries
	limit int      // most events in the stream
}

func newQueue(rdb redis.UniversalClient, prefix, url string, limit int) *queue {
	base := prefix + "webhook:{" + urlTag(url) + "}"
	return &queue{rdb: rdb, keys: []string{base, base + ":due", base + ":tries"}, limit: limit}
}

// urlTag names a URL's keys: the first 16 hex digits of its SHA-256, so
// that keys do not show credentials a URL may carry.
func urlTag(url string) string {
	sum := sha256.Sum256([]byte(url))
	return hex.EncodeToString(sum[:8])
}

// record is an event ready to queue: its id and type (for the headers) and
// its JSON body.
type record struct {
	id, typ string
	body    []byte
}

// entry is a record claimed from the queue.
type entry struct {
	sid string // stream id "<ms>-<n>": ms is when it was queued
	record
	tries int // failed attempts so far
}

// queuedAt is when e was queued (the time part of its stream id).
func (e entry) queuedAt() time.Time {
	ms, _ := strconv.ParseInt(e.sid[:max(strings.IndexByte(e.sid, '-'), 0)], 10, 64)
	return time.UnixMilli(ms)
}

// enqueueBatch bounds the events one enqueue script run takes.
const enqueueBatch = 100

// enqueueScript appends events (ARGV[3..]: id, type, body per event) while
// the stream holds fewer than ARGV[1], each due at ARGV[2] (ms); it
// returns how many it took. Refused events are the last ones: nothing
// queued is ever trimmed.
var enqueueScript = redis.NewScript(`
local n = redis.call('XLEN', KEYS[1])
local limit = tonumber(ARGV[1])
local added = 0
for i = 3, #ARGV, 3 do
  if n >= limit then break end
  local sid = redis.call('XADD', KEYS[1], '*', 'id', ARGV[i], 't', ARGV[i+1], 'b', ARGV[i+2])
  redis.call('ZADD', KEYS[2], ARGV[2], sid)
  n = n + 1
  added = added + 1
end
return added`)

// enqueue appends recs and returns how many the bound let in (the first
// ones).
func (q *queue) enqueue(ctx context.Context, now time.Time, recs []record) (int, error) {
	added := 0
	for len(recs) > 0 {
		chunk := recs[:min(len(recs), enqueueBatch)]
		recs = recs[len(chunk):]
		args := make([]any, 0, 2+3*len(chunk))
		args = append(args, q.limit, now.UnixMilli())
		for _, r := range chunk {
			args = append(args, r.id, r.typ, r.body)
		}
		n, err := enqueueScript.Run(ctx, q.rdb, q.keys[:2], args...).Int()
		if err != nil {
			return added, err
		}
		added += n
		if n < len(chunk) {
			break // full
		}
	}
	return added, nil
}

// claimScript leases up to ARGV[3] events due at ARGV[1] (ms) until ARGV[2]
// (ms) and returns them as {stream id, fields, failed attempts}. A
// scheduled id whose event is gone is forgotten.
var claimScript = redis.NewScript(`
local sids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, sid in ipairs(sids) do
  local e = redis.call('XRANGE', KEYS[1], sid, sid)
  if #e == 0 then
    redis.call('ZREM', KEYS[2], sid)
    redis.call('HDEL', KEYS[3], sid)
  else
    redis.call('ZADD', KEYS[2], ARGV[2], sid)
    out[#out+1] = {sid, e[1][2], redis.call('HGET', KEYS[3], sid) or '0'}
  end
end
return out`)

// claim leases up to n due events until now+lease: no other claim returns
// them before the lease ends, unless they are released or rescheduled.
func (q *queue) claim(ctx context.Context, now time.Time, lease time.Duration, n int) ([]entry, error) {
	v, err := claimScript.Run(ctx, q.rdb, q.keys, now.UnixMilli(), now.Add(lease).UnixMilli(), n).Slice()
	if err != nil {
		return nil, err
	}
	out := make([]entry, 0, len(v))
	for _, it := range v {
		e, err := parseEntry(it)
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

// parseEntry reads one answer of claimScript.
func parseEntry(v any) (entry, error) {
	a, ok := v.([]any)
	if !ok || len(a) != 3 {
		return entry{}, fmt.Errorf("webhook: unexpected claim answer %T", v)
	}
	sid, _ := a[0].(string)
	fields, _ := a[1].([]any)
	tries, _ := a[2].(string)
	e := entry{sid: sid}
	e.tries, _ = strconv.Atoi(tries)
	for i := 0; i+1 < len(fields); i += 2 {
		k, _ := fields[i].(string)
		val, _ := fields[i+1].(string)
		switch k {
		case "id":
			e.id = val
		case "t":
			e.typ = val
		case "b":
			e.body = []byte(val)
		}
	}
	if sid == "" || e.id == "" {
		return entry{}, fmt.Errorf("webhook: malformed queue entry %q", sid)
	}
	return e, nil
}

// removeScript forgets an event: delivered, or given up.
var removeScript = redis.NewScript(`
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1`)

// remove forgets the event sid.
func (q *queue) remove(ctx context.Context, sid string) error {
	return removeScript.Run(ctx, q.rdb, q.keys, sid).Err()
}

// rescheduleScript makes a still scheduled event due at ARGV[2] (ms), and
// with ARGV[3] = 1 counts a failed attempt.
var rescheduleScript = redis.NewScript(`
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[3], ARGV[1], 1) end
return 1`)

// retry schedules the event sid, which just failed, for at: at the first
// millisecond not before it (claims compare whole milliseconds, so a due
// time rounded down could be claimed up to 1 ms before its backoff ends).
func (q *queue) retry(ctx context.Context, sid string, at time.Time) error {
	return rescheduleScript.Run(ctx, q.rdb, q.keys, sid, ceilMilli(at), 1).Err()
}

// ceilMilli is t in Unix milliseconds, rounded up.
func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

// release gives the lease on sid back, due at once and not counted as an
// attempt: the sender stopped before it knew the answer.
func (q *queue) release(ctx context.Context, sid string, now time.Time) error {
	return rescheduleScript.Run(ctx, q.rdb, q.keys, sid, now.UnixMilli(), 0).Err()
}

// length is how many events wait (the stream's length).
func (q *queue) length(ctx context.Context) (int64, error) {
	return q.rdb.XLen(ctx, q.keys[0]).Result()
}
