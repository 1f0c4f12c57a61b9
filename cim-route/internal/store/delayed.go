package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// Delayed messages (the terminal's :delay, POST /delay): kept in Redis until
// due, so that they are sent even if their sender's client has quit and
// whichever route replica is up. One ZSET holds them all, scored by the time
// each is due (unix ms); a member is the whole message. A per-user ZSET of
// the same members bounds how many one user has pending.
func (k keys) delayq() string           { return k.prefix + "delayq" }
func (k keys) udelay(uid string) string { return k.prefix + "udelay:{" + uid + "}" }
func (k keys) delaySeq() string         { return k.prefix + "delay:seq" }

// DelayedMsg is model.DelayedMsg (package model holds the shared types).
type DelayedMsg = model.DelayedMsg

// member encodes m as a ZSET member: "<id> <from> <to> <text>".
func member(m DelayedMsg) string { return m.ID + " " + m.From + " " + m.To + " " + m.Text }

func parseDelayed(member string, due float64) (DelayedMsg, bool) {
	p := strings.SplitN(member, " ", 4)
	if len(p) != 4 {
		return DelayedMsg{}, false
	}
	return DelayedMsg{ID: p[0], From: p[1], To: p[2], Text: p[3], Due: time.UnixMilli(int64(due))}, true
}

// reserveDelayScript adds a member to a user's pending set unless it holds
// ARGV[2] already (entries due before ARGV[3] ms ago are stale: dropped
// first). KEYS[1] udelay; ARGV member, max, stale-before ms, score. Answers
// 1, or 0 when full.
var reserveDelayScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
return 1
`)

// ScheduleMessage keeps m (its ID is set here) until m.Due; at most max
// pending per sender (errs.ErrQuotaExceeded beyond).
func (s *Store) ScheduleMessage(ctx context.Context, m DelayedMsg, max int) (DelayedMsg, error) {
	n, err := s.rdb.Incr(ctx, s.k.delaySeq()).Result()
	if err != nil {
		return m, unavailable(err)
	}
	m.ID = strconv.FormatInt(n, 10)
	due := float64(m.Due.UnixMilli())
	// A member whose send failed for long stays in the user's set at most a
	// day past its due time.
	stale := s.now().Add(-24 * time.Hour).UnixMilli()
	ok, err := reserveDelayScript.Run(ctx, s.rdb, []string{s.k.udelay(m.From)}, member(m), max, stale, due).Int()
	if err != nil {
		return m, unavailable(err)
	}
	if ok != 1 {
		return m, fmt.Errorf("%w: at most %d delayed messages pending per user", errs.ErrQuotaExceeded, max)
	}
	if err := s.rdb.ZAdd(ctx, s.k.delayq(), redis.Z{Score: due, Member: member(m)}).Err(); err != nil {
		s.rdb.ZRem(context.WithoutCancel(ctx), s.k.udelay(m.From), member(m))
		return m, unavailable(err)
	}
	return m, nil
}

// claimDelayScript leases up to ARGV[2] members due by ARGV[1] ms: each is
// rescored to ARGV[3] ms (now + the lease), so that other route replicas
// skip it, and comes back due by itself if the claimer dies before
// DelayedSent. KEYS[1] delayq. Answers {member, due, ...}.
var claimDelayScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], due[i])
end
return due
`)

// ClaimDueMessages leases up to n delayed messages due by now for lease:
// the caller sends them and calls DelayedSent; one it does not is due
// again when the lease ends (a message is then sent twice only if the
// first send got through and DelayedSent did not: the send's dedup key,
// the message id, makes that a resend the inbox recognizes).
func (s *Store) ClaimDueMessages(ctx context.Context, now time.Time, n int, lease time.Duration) ([]DelayedMsg, error) {
	v, err := claimDelayScript.Run(ctx, s.rdb, []string{s.k.delayq()}, now.UnixMilli(), n, now.Add(lease).UnixMilli()).Slice()
	if err != nil {
		return nil, unavailable(err)
	}
	var out []DelayedMsg
	for i := 0; i+1 < len(v); i += 2 {
		score, _ := strconv.ParseFloat(str(v[i+1]), 64)
		if m, ok := parseDelayed(str(v[i]), score); ok {
			out = append(out, m)
		}
	}
	return out, nil
}

// DelayedSent forgets delayed messages that were sent (or can never be).
func (s *Store) DelayedSent(ctx context.Context, ms []DelayedMsg) error {
	if len(ms) == 0 {
		return nil
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, m := range ms {
			p.ZRem(ctx, s.k.delayq(), member(m))
			p.ZRem(ctx, s.k.udelay(m.From), member(m))
		}
		return nil
	})
	return pipeErr(err, cmds)
}
