package store

import (
	"context"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// seenScript moves the field seen of an existing hash (a user's, a
// device record) to ARGV[1] (ms) if later; a missing hash is left alone
// (a deleted account is not brought back, a user without a device record
// gets none). KEYS[1] the hash.
var seenScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if tonumber(ARGV[1]) > (tonumber(redis.call('HGET', KEYS[1], 'seen') or '0') or 0) then
  redis.call('HSET', KEYS[1], 'seen', ARGV[1])
end
return 1
`)

// moveSeen runs seenScript on key(uid) for each of uids: one pipeline.
func (s *Store) moveSeen(ctx context.Context, key func(string) string, uids []string, at int64) error {
	if len(uids) == 0 {
		return nil
	}
	calls := make([]scriptCall, len(uids))
	for i, uid := range uids {
		calls[i] = scriptCall{keys: []string{key(uid)}, args: []any{at}}
	}
	_, err := s.evalAll(ctx, seenScript, calls)
	return err
}

// UsersSeen records when (unix ms) a session of each user of seen ended:
// an account's last seen (its user hash's seen) moves there if later. One
// pipeline of script runs.
func (s *Store) UsersSeen(ctx context.Context, seen map[string]int64) error {
	if len(seen) == 0 {
		return nil
	}
	calls := make([]scriptCall, 0, len(seen))
	for uid, at := range seen {
		calls = append(calls, scriptCall{keys: []string{s.k.user(uid)}, args: []any{at}})
	}
	_, err := s.evalAll(ctx, seenScript, calls)
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
