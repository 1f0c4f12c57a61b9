package store

import (
	"context"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// userSeenScript moves an account's last seen (field seen of its user
// hash) to ARGV[1] (ms) if later; an id without an account is left alone
// (a deleted one is not brought back). KEYS[1] user.
var userSeenScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if tonumber(ARGV[1]) > (tonumber(redis.call('HGET', KEYS[1], 'seen') or '0') or 0) then
  redis.call('HSET', KEYS[1], 'seen', ARGV[1])
end
return 1
`)

// UsersSeen records that a session of each of uids ended at at (unix ms):
// one pipeline of script runs.
func (s *Store) UsersSeen(ctx context.Context, uids []string, at int64) error {
	if len(uids) == 0 {
		return nil
	}
	calls := make([]scriptCall, len(uids))
	for i, uid := range uids {
		calls[i] = scriptCall{keys: []string{s.k.user(uid)}, args: []any{at}}
	}
	_, err := s.evalAll(ctx, userSeenScript, calls)
	return err
}

// LastSeen returns when each of uids was last seen (unix ms; 0: never, or
// no account), in one pipelined round trip.
func (s *Store) LastSeen(ctx context.Context, uids []string) ([]int64, error) {
	out := make([]int64, len(uids))
	if len(uids) == 0 {
		return out, nil
	}
	got := make([]*redis.StringCmd, len(uids))
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, uid := range uids {
			got[i] = p.HGet(ctx, s.k.user(uid), "seen")
		}
		return nil
	})
	if err := pipeErr(err, cmds); err != nil {
		return nil, err
	}
	for i, c := range got {
		out[i], _ = strconv.ParseInt(c.Val(), 10, 64)
	}
	return out, nil
}
