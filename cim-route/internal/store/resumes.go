package store

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/cim-route/internal/noretry"
)

// resume:{uid} is a hash: login slot ("" under the kick and reject
// policies) -> "<sid>|<nonce>", the latest resume token issued there and
// the session it was issued with, and after a resume "|<taken nonce>|<its
// grace end, unix ms>". Its TTL is the latest token's.
func (k keys) resume(uid string) string { return k.prefix + "resume:{" + uid + "}" }

// takeResumeScript replaces a slot's latest nonce if it is ARGV[2],
// keeping the taken one for its grace; the taken one within its grace
// gets the same latest; an earlier nonce of the latest's chain
// (model.ResumeChain: the part before the first ".") clears the slot.
//
// KEYS[1] resume; ARGV: slot, nonce, sid, next, now ms, grace ms, ttl ms.
// Answers {1, the nonce to hand out} if taken, {2, the latest's session}
// if reused, {0} otherwise.
var takeResumeScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return {0} end
local f = {}
for part in string.gmatch(cur, '[^|]+') do f[#f + 1] = part end
local latest = f[2]
if not latest then return {0} end
local now = tonumber(ARGV[5])
if latest == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. '|' .. ARGV[4] .. '|' .. latest .. '|' .. (now + tonumber(ARGV[6])))
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
  return {1, ARGV[4]}
end
if f[3] == ARGV[2] and now < tonumber(f[4]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. '|' .. latest .. '|' .. f[3] .. '|' .. f[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
  return {1, latest}
end
local function chain(n)
  local dot = string.find(n, '.', 1, true)
  if dot then return string.sub(n, 1, dot - 1) end
  return n
end
if chain(latest) == chain(ARGV[2]) then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return {2, f[1]}
end
return {0}
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
// req.Nonce, with req.Next (see router.Resumes); the taken nonce comes
// back within req.Grace to the same latest; an earlier nonce of the
// latest's chain clears the slot and names the latest's session. Without
// go-redis's retries (noretry): a take whose answer timed out is the
// client's to try again, and its retry, within the grace, gets the nonce
// the take handed out.
func (s *Store) TakeResume(ctx context.Context, uid, slot string, req model.ResumeTakeReq) (model.ResumeTake, error) {
	res, err := noretry.Run(ctx, s.rdb, takeResumeScript, []string{s.k.resume(uid)},
		slot, req.Nonce, req.SID, req.Next, req.Now.UnixMilli(), req.Grace.Milliseconds(), req.TTL.Milliseconds()).Slice()
	if err != nil {
		return model.ResumeTake{}, unavailable(err)
	}
	switch code, _ := res[0].(int64); code {
	case 1:
		if len(res) == 2 {
			nonce, _ := res[1].(string)
			return model.ResumeTake{Taken: true, Nonce: nonce}, nil
		}
	case 2:
		if len(res) == 2 {
			sid, _ := res[1].(string)
			return model.ResumeTake{Reused: sid}, nil
		}
	}
	return model.ResumeTake{}, nil
}

// DropResumes forgets uid's latest resume tokens issued with session sid;
// with sid "", all of them.
func (s *Store) DropResumes(ctx context.Context, uid, sid string) error {
	if sid == "" {
		return unavailable(s.rdb.Del(ctx, s.k.resume(uid)).Err())
	}
	return unavailable(dropResumesScript.Run(ctx, s.rdb, []string{s.k.resume(uid)}, sid).Err())
}
