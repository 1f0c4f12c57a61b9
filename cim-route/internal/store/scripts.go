package store

import "github.com/redis/go-redis/v9"

// Every script touches exactly one key (a route:{uid} hash) so it can run on
// Redis Cluster. Sets that mirror the routes are updated by the caller after.

// claimScript hands a route to a new pending session and returns the previous
// route. With ARGV[4] == "1" it refuses while another session is online,
// unless that session is ARGV[5] (an online session on a dead gateway that
// the caller decided to evict).
//
// KEYS[1] route; ARGV: gateway, session, ttl ms, refuse-online, evictable session.
// Returns {claimed 0|1, old gw, old sid, old state, old at}.
var claimScript = redis.NewScript(`
local old = redis.call('HMGET', KEYS[1], 'gw', 'sid', 'state', 'at')
local gw, sid, state, at = old[1] or '', old[2] or '', old[3] or '', old[4] or ''
if ARGV[4] == '1' and state == 'online' and sid ~= ARGV[5] then
  return {0, gw, sid, state, at}
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'gw', ARGV[1], 'sid', ARGV[2], 'state', 'pending')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, gw, sid, state, at}
`)

// onlineScript confirms a session: only when it is still the route's session.
//
// KEYS[1] route; ARGV: session, gateway, now ms. Returns 1 if confirmed.
var onlineScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'sid') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'gw', ARGV[2], 'state', 'online', 'at', ARGV[3])
redis.call('PERSIST', KEYS[1])
return 1
`)

// reassertScript is onlineScript for a gateway that re-registered after its
// ZooKeeper session expired: the route may have cleared its users meanwhile,
// so an absent route is re-created; a route now held by another session (the
// user logged in again elsewhere) is left alone.
//
// KEYS[1] route; ARGV: session, gateway, now ms. Returns 1 if confirmed.
var reassertScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'sid')
if cur and cur ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'sid', ARGV[1], 'gw', ARGV[2], 'state', 'online', 'at', ARGV[3])
redis.call('PERSIST', KEYS[1])
return 1
`)

// dropScript deletes a route if it still belongs to the session. With a
// minimum age it only deletes an online route confirmed at least that long
// ago: a gateway registers a connection in its hub just after /internal/online
// returns, so a push in that instant may report a fresh session missing.
//
// KEYS[1] route; ARGV: session, min age ms (0 = any), now ms.
// Returns {gw, state} if deleted, nil otherwise.
var dropScript = redis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'sid', 'gw', 'state', 'at')
if r[1] ~= ARGV[1] then return false end
local minAge = tonumber(ARGV[2])
if minAge > 0 and (r[3] ~= 'online' or tonumber(ARGV[3]) - (tonumber(r[4]) or 0) < minAge) then
  return false
end
redis.call('DEL', KEYS[1])
return {r[2] or '', r[3] or ''}
`)

// clearGatewayScript deletes a route only if it still points at the gateway.
//
// KEYS[1] route; ARGV[1] gateway. Returns 1 if deleted.
var clearGatewayScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'gw') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)
