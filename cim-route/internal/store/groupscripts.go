package store

import "github.com/redis/go-redis/v9"

// The membership scripts touch only one group's keys (group:{gid},
// gmembers:{gid}, ginvited:{gid}), which share the {gid} hash tag, so every
// check and change is one atomic step on one Redis Cluster slot. The
// ugroups:{uid} mirror lives in other slots and is updated by the caller
// after.
//
// Every membership script answers {status, ...}: status "ok", "already"
// (join of a member), "nogroup", "full", or "forbidden" followed by a reason
// (see forbiddenReasons). A successful answer continues with the group's
// name, owner, open, created and member count.

// groupHead is the common start of the membership scripts: the group's
// fields, or the "nogroup" answer.
const groupHead = `
local g = redis.call('HMGET', KEYS[1], 'name', 'owner', 'open', 'created')
if not g[1] then return {'nogroup'} end
`

// createGroupScript creates a group with its owner as the only member.
//
// KEYS group, members; ARGV name, owner, open ("1"/"0"), created ms.
// Answers "ok" with the group, or "exists" when the id is taken (a group
// counter that went back, e.g. a restored Redis).
var createGroupScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'owner', ARGV[2], 'open', ARGV[3], 'created', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[2])
return {'ok', ARGV[1], ARGV[2], ARGV[3], ARGV[4], 1}
`)

// joinGroupScript adds a user: to an open group, or one it was invited to,
// while it has room. A member joining again is "already".
//
// KEYS group, members, invited; ARGV user, max members.
var joinGroupScript = redis.NewScript(groupHead + `
local st = 'already'
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then
  if g[3] ~= '1' and redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 0 then return {'forbidden', 'invite'} end
  if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[2]) then return {'full'} end
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[1])
  st = 'ok'
end
return {st, g[1], g[2], g[3], g[4], redis.call('SCARD', KEYS[2])}
`)

// inviteGroupScript records invitations: the owner invites, or any member
// of an open group; members and users already invited are skipped (a
// re-invite stores no second invitation); a full group invites nobody.
//
// KEYS group, members, invited; ARGV inviter, max members, users...
// Answers "ok", the group, then the list of users newly invited.
var inviteGroupScript = redis.NewScript(groupHead + `
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then return {'forbidden', 'member'} end
if g[3] ~= '1' and g[2] ~= ARGV[1] then return {'forbidden', 'owner'} end
local n = redis.call('SCARD', KEYS[2])
if n >= tonumber(ARGV[2]) then return {'full'} end
local out = {}
for i = 3, #ARGV do
  if redis.call('SISMEMBER', KEYS[2], ARGV[i]) == 0 and redis.call('SADD', KEYS[3], ARGV[i]) == 1 then
    out[#out + 1] = ARGV[i]
  end
end
return {'ok', g[1], g[2], g[3], g[4], n, out}
`)

// leaveGroupScript removes a member other than the owner.
//
// KEYS group, members; ARGV user.
var leaveGroupScript = redis.NewScript(groupHead + `
if g[2] == ARGV[1] then return {'forbidden', 'owner-leave'} end
if redis.call('SREM', KEYS[2], ARGV[1]) == 0 then return {'forbidden', 'member'} end
return {'ok', g[1], g[2], g[3], g[4], redis.call('SCARD', KEYS[2])}
`)

// kickGroupScript removes a member (and any invitation), by the owner only;
// the owner cannot be kicked. Kicking a non-member only drops its
// invitation.
//
// KEYS group, members, invited; ARGV owner, user.
var kickGroupScript = redis.NewScript(groupHead + `
if g[2] ~= ARGV[1] then return {'forbidden', 'owner'} end
if ARGV[2] == g[2] then return {'forbidden', 'kick-owner'} end
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('SREM', KEYS[3], ARGV[2])
return {'ok', g[1], g[2], g[3], g[4], redis.call('SCARD', KEYS[2])}
`)

// renameGroupScript renames a group, by the owner only.
//
// KEYS group, members; ARGV owner, name.
var renameGroupScript = redis.NewScript(groupHead + `
if g[2] ~= ARGV[1] then return {'forbidden', 'owner'} end
redis.call('HSET', KEYS[1], 'name', ARGV[2])
return {'ok', ARGV[2], g[2], g[3], g[4], redis.call('SCARD', KEYS[2])}
`)

// transferGroupScript hands a group to another member, by the owner only.
//
// KEYS group, members; ARGV owner, new owner.
var transferGroupScript = redis.NewScript(groupHead + `
if g[2] ~= ARGV[1] then return {'forbidden', 'owner'} end
if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 0 then return {'forbidden', 'heir'} end
redis.call('HSET', KEYS[1], 'owner', ARGV[2])
return {'ok', g[1], ARGV[2], g[3], g[4], redis.call('SCARD', KEYS[2])}
`)

// dissolveGroupScript deletes a group, by the owner only, and answers its
// members (whose ugroups the caller cleans).
//
// KEYS group, members, invited; ARGV owner.
var dissolveGroupScript = redis.NewScript(groupHead + `
if g[2] ~= ARGV[1] then return {'forbidden', 'owner'} end
local m = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return {'ok', g[1], g[2], g[3], g[4], #m, m}
`)

// groupDedupScript claims a group message's dedup key, or answers what an
// earlier attempt left there ("<msgId>|pending" or "<msgId>|done").
//
// KEYS[1] gdedup; ARGV "<msgId>|pending", ttl ms. Answers nil when claimed.
var groupDedupScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
`)

// groupReceiptScript adds members to one message's receipt set and answers
// its size.
//
// KEYS[1] grd or grr; ARGV ttl ms, members...
var groupReceiptScript = redis.NewScript(`
for i = 2, #ARGV do redis.call('SADD', KEYS[1], ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return redis.call('SCARD', KEYS[1])
`)
