package store

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/noretry"
)

// resume:{uid} is a hash: login slot ("" under the kick and reject
// policies) -> "<sid>|<nonce>", the latest resume token issued there and
// the session it was issued with. Its TTL is the latest token's.
func (k keys) resume(uid string) string { return k.prefix + "resume:{" + uid + "}" }

// takeResumeScript replaces a slot's latest nonce if it is ARGV[2].
//
// KEYS[1] resume; ARGV: slot, nonce, "<sid>|<next>", ttl ms. Answers 1 if
// taken.
var takeResumeScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local bar = string.find(cur, '|', 1, true)
if not bar or string.sub(cur, bar + 1) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`)

// dropResumesScript deletes the slots whose latest token was issued with
// session ARGV[1]. KEYS[1] resume.
var dropResumesScript = redis.NewScript(`
local all = redis.call('HGETALL', KEYS[1])
local prefix = ARGV[1] .. '|'
for i = 1, #all, 2 do
  if string.sub(all[i + 1], 1, #prefix) == prefix then redis.call('HDEL', KEYS[1], all[i]) end
end
return 1
`)

// SetResume makes nonce, issued with session sid, the latest resume token
// of uid's slot, for ttl.
func (s *Store) SetResume(ctx context.Context, uid, slot, sid, nonce string, ttl time.Duration) error {
	key := s.k.resume(uid)
	cmds, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, slot, sid+"|"+nonce)
		p.PExpire(ctx, key, ttl)
		return nil
	})
	return unavailable(pipeErr(err, cmds))
}

// TakeResume replaces the latest resume token of uid's slot, if it is
// nonce, with next, issued with session sid, for ttl; false, with nothing
// changed, if it is not. At most once (noretry): an attempt Redis ran
// after its answer timed out would make a retry find next, not nonce.
func (s *Store) TakeResume(ctx context.Context, uid, slot, nonce, sid, next string, ttl time.Duration) (bool, error) {
	n, err := noretry.Run(ctx, s.rdb, takeResumeScript, []string{s.k.resume(uid)}, slot, nonce, sid+"|"+next, ttl.Milliseconds()).Int()
	if err != nil {
		return false, unavailable(err)
	}
	return n == 1, nil
}

// DropResumes forgets uid's latest resume tokens issued with session sid;
// with sid "", all of them.
func (s *Store) DropResumes(ctx context.Context, uid, sid string) error {
	if sid == "" {
		return unavailable(s.rdb.Del(ctx, s.k.resume(uid)).Err())
	}
	return unavailable(dropResumesScript.Run(ctx, s.rdb, []string{s.k.resume(uid)}, sid).Err())
}
