package store

import "github.com/redis/go-redis/v9"

// Every route script touches exactly one key (a route:{uid} hash) so it can
// run on Redis Cluster. Sets that mirror the routes are updated by the caller
// after.

// claimScript hands a route to a new pending session and returns the previous
// route. With ARGV[4] == "1" it refuses while another session is online,
// unless that session is ARGV[5] (an online session on a dead gateway that
// the caller decided to evict).
//
// KEYS[1] route; ARGV: gateway, session, ttl ms, refuse-online, evictable
// session, platform.
// Returns {claimed 0|1, old gw, old sid, old state, old at, old platform}.
var claimScript = redis.NewScript(`
local old = redis.call('HMGET', KEYS[1], 'gw', 'sid', 'state', 'at', 'pf')
local gw, sid, state, at, pf = old[1] or '', old[2] or '', old[3] or '', old[4] or '', old[5] or ''
if ARGV[4] == '1' and state == 'online' and sid ~= ARGV[5] then
  return {0, gw, sid, state, at, pf}
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'gw', ARGV[1], 'sid', ARGV[2], 'state', 'pending')
if ARGV[6] and ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'pf', ARGV[6]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, gw, sid, state, at, pf}
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
// KEYS[1] route, KEYS[2] its cleared marker (removed: the route is back);
// ARGV: session, gateway, now ms. Returns 1 if confirmed.
var reassertScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'sid')
if cur and cur ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'sid', ARGV[1], 'gw', ARGV[2], 'state', 'online', 'at', ARGV[3])
redis.call('PERSIST', KEYS[1])
redis.call('DEL', KEYS[2])
return 1
`)

// reclaimScript takes back a route the route service cleared because its
// gateway looked dead (ClearGateway) for a gateway that forwards the
// session's frames: it is alive after all, and re-asserts its connections
// in a moment anyway. Only the exact session on the exact gateway the
// cleared marker names comes back; a route that exists again (the user
// logged in meanwhile) is left alone.
//
// KEYS[1] route, KEYS[2] cleared marker; ARGV: session, gateway, now ms.
// Returns 1 if the session holds the route on that gateway now.
var reclaimScript = redis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'sid', 'gw', 'state')
if r[1] then
  if r[1] == ARGV[1] and r[2] == ARGV[2] and r[3] == 'online' then return 1 end
  return 0
end
if redis.call('GET', KEYS[2]) ~= ARGV[2] .. '|' .. ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'sid', ARGV[1], 'gw', ARGV[2], 'state', 'online', 'at', ARGV[3])
redis.call('DEL', KEYS[2])
return 1
`)

// dropScript deletes a route if it still belongs to the session. (A gateway
// reports a session missing only when it has no connection for it: the
// connection is reachable from before the route confirms it.)
//
// KEYS[1] route, KEYS[2] its cleared marker; ARGV[1] session. Returns {gw,
// state} if deleted, nil otherwise. A cleared marker of the session goes
// too: the session is over.
var dropScript = redis.NewScript(`
local m = redis.call('GET', KEYS[2])
if m and string.sub(m, -string.len(ARGV[1]) - 1) == '|' .. ARGV[1] then redis.call('DEL', KEYS[2]) end
local r = redis.call('HMGET', KEYS[1], 'sid', 'gw', 'state', 'pf')
if r[1] ~= ARGV[1] then return false end
redis.call('DEL', KEYS[1])
return {r[2] or '', r[3] or '', r[4] or ''}
`)

// clearGatewayScript deletes a route only if it still points at the
// gateway, and leaves a marker "<gateway>|<session>" for a while: should the
// gateway turn out alive (it was frozen past its ZooKeeper session), what it
// forwards for that session is not taken for a stale session's (see
// reclaimScript).
//
// KEYS[1] route, KEYS[2] cleared marker; ARGV[1] gateway, ARGV[2] marker
// ttl ms. Returns 1 if deleted.
var clearGatewayScript = redis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'gw', 'sid')
if r[1] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if r[2] then redis.call('SET', KEYS[2], ARGV[1] .. '|' .. r[2], 'PX', ARGV[2]) end
  return 1
end
return 0
`)

// The inbox scripts touch only keys of one user (seq:{uid}, inbox:{uid},
// ack:{uid}, dedup:{uid}:...), which share the {uid} hash tag, so each is one
// atomic step on one Redis Cluster slot (except sharedAppendScript, see
// there). Seqs are formatted with %d: Lua's tostring switches to exponent
// notation above 1e14.
//
// An inbox is a list of "<seq>|<ts>|<frame>" in seq order with no gaps: a
// seq is only ever taken (INCR) by the script that pushes its entry, and
// trimming pops from the old end. So the entry with seq s sits at index
// s - (the first entry's seq), and a range of seqs is one LRANGE: appends
// are RPUSHes, much cheaper than sorted-set inserts of 200-byte members.

// inboxLua is shared by the inbox scripts.
const inboxLua = `
local function seqOf(m)
  return tonumber(string.sub(m, 1, string.find(m, '|', 1, true) - 1))
end
-- entryAt returns the entry with seq s, or nil once trimmed.
local function entryAt(inbox, s)
  local tail = redis.call('LINDEX', inbox, -1)
  if not tail then return nil end
  local i = s - seqOf(tail) - 1
  if i >= 0 then return nil end
  local m = redis.call('LINDEX', inbox, i)
  if m and seqOf(m) == s then return m end
  return nil
end
-- trimAge drops up to eight of the oldest entries older than cutoff.
local function trimAge(inbox, cutoff)
  for i = 1, 8 do
    local old = redis.call('LINDEX', inbox, 0)
    if not old then break end
    local a = string.find(old, '|', 1, true)
    local b = a and string.find(old, '|', a + 1, true)
    if b and (tonumber(string.sub(old, a + 1, b - 1)) or cutoff) >= cutoff then break end
    redis.call('LPOP', inbox)
  end
end
-- trim keeps at most maxLen entries (len: the inbox's length, as RPUSH
-- answered). By age it drops up to eight of the oldest entries older than
-- cutoff (unix ms), and only when the appends took a seq that is a multiple
-- of 16 (seqs from+1 to to): one call never does unbounded work, later
-- appends continue, and most appends skip the read of the oldest entry. A
-- busy inbox's oldest entries outlive --inbox-ttl by up to 16 appends; an
-- idle inbox expires as a whole (PEXPIRE).
local function trim(inbox, len, maxLen, cutoff, from, to)
  if len > maxLen then
    redis.call('LTRIM', inbox, -maxLen, -1)
  end
  if math.floor(to / 16) > math.floor(from / 16) then trimAge(inbox, cutoff) end
end

`

// appendRunLua defines appendRun, which stores one user's inbox entries of
// one batch, in order, or recognizes resends; appendScript runs it per
// user.
//
// A run's keys, from KEYS[kb]: seq, inbox, ack, share, blocks (blk), then
// one dedup key per entry that has one, in entry order. Its args, from
// ARGV[ab]: five per entry: msgId, timestamp ms, frame bytes, a flag, and
// its sender when it counts against the sender's share of the inbox or may
// be blocked ("" otherwise). The flag: "0"; "1" if it has a dedup key; "r":
// droppable, stored only while the inbox is below its max length, so a
// receipt never pushes a message out; for a private message, which is not
// stored when the user and its sender blocked one another, "p" ("P" with a
// dedup key), or "q" ("Q") when it does not count against the share; "o":
// a copy an earlier attempt may have stored, not stored again when one of
// the inbox's last 64 entries holds its msgId (answered as a resend with
// that entry's seq, without the entry). Every
// script's ARGV[1] is the max length, ARGV[2] the inbox ttl ms, ARGV[3] the
// age cutoff ms (older entries are trimmed), ARGV[4] the dedup ttl ms,
// ARGV[5] the share (0: none).
// appendRun adds four values per entry to out: {0, msgId, seq, false} for a
// new entry; {1, first msgId, first seq, the first entry's member or false
// once trimmed} for a resend; {2, msgId, 0, false} for a dropped one; {3,
// msgId, 0, false} for one refused because its sender's share is used up;
// {4, msgId, 0, false} when the user blocked its sender, {5, ...} when its
// sender blocked the user. It returns the index of the next run's first
// key.
//
// Blocks: blk:{uid} is a hash, peer -> a number whose bit 1 says the user
// blocks peer and bit 2 that peer blocks the user (written by
// blockFlagScript); a private message costs one HGET of it, once per
// sender in a run.
//
// The share: once an inbox holds at least ARGV[5] unread entries (seq
// above the user's ack), each sender may add ARGV[5] more until the user
// reads on (its ack moves). The share key is a hash, sender ->
// "<count>|<the ack when counted>", expiring with the inbox; a count taken
// at an older ack starts again from 0, so a reader's senders are never
// held back, and an absent user's are, at the share. Below the mark nothing
// is counted or read beyond one MGET of seq and ack, and only for runs with
// a sender.
//
// A run reads every dedup key with one MGET, takes all the new seqs with one
// INCRBY and adds all the new entries with one RPUSH: its cost barely grows
// with its entries. Trimming runs once per run, after the appends: by
// length, then by age (see trim); the inbox's own PEXPIRE removes an idle
// inbox as a whole.
//
// One entry, the common case, takes a shorter way with the same effects and
// answer: no tables, GET and INCR instead of MGET and INCRBY. Redis spends
// most of its time per message in these scripts.
const appendRunLua = `
local function put(out, a, b, c, d)
  local k = #out
  out[k + 1], out[k + 2], out[k + 3], out[k + 4] = a, b, c, d
end
local function hasDedup(f) return f == '1' or f == 'P' or f == 'Q' end
-- inTail answers the seq of the newest of the inbox's last 64 entries
-- that holds id (an 'o' entry's msgId), false when none does.
local function inTail(inbox, id)
  local ms = redis.call('LRANGE', inbox, -64, -1)
  for j = #ms, 1, -1 do
    if string.find(ms[j], id, 1, true) then return seqOf(ms[j]) end
  end
  return false
end
local function blockable(f) return f == 'p' or f == 'P' or f == 'q' or f == 'Q' end
local function counts(f, sender) return sender ~= '' and f ~= 'q' and f ~= 'Q' end
-- blocked answers 4 when the user (whose blk is the key) blocks sender, 5
-- when sender blocks the user, false when neither.
local function blocked(blk, sender)
  local v = tonumber(redis.call('HGET', blk, sender) or 0)
  if v % 2 == 1 then return 4 end
  if v >= 2 then return 5 end
  return false
end
-- shares reads what the share check of a run of n entries needs: nil when
-- the inbox will hold fewer unread entries than the share before its last.
local function shares(kb, n)
  local per = tonumber(ARGV[5])
  if per <= 0 then return nil end
  local v = redis.call('MGET', KEYS[kb], KEYS[kb + 2])
  local head, ack = tonumber(v[1]) or 0, tonumber(v[2]) or 0
  if head - ack + n <= per then return nil end
  return {per = per, head = head, ack = ack, key = KEYS[kb + 3], of = {}}
end
-- share is sender's count in st, read once per run.
local function share(st, sender)
  local c = st.of[sender]
  if c then return c end
  c = {n = 0}
  local v = redis.call('HGET', st.key, sender)
  if v then
    local bar = string.find(v, '|', 1, true)
    if tonumber(string.sub(v, bar + 1)) >= st.ack then c.n = tonumber(string.sub(v, 1, bar - 1)) end
  end
  st.of[sender] = c
  return c
end
-- admit counts a new entry of sender, the taken-th new one of its run:
-- false when the sender's share is used up.
local function admit(st, sender, taken)
  if st.head + taken - st.ack < st.per then return true end
  local c = share(st, sender)
  if c.n >= st.per then return false end
  c.n, c.dirty = c.n + 1, true
  return true
end
-- saveShares writes the counts a run changed, with the ack they were
-- counted at.
local function saveShares(st)
  local any = false
  for sender, c in pairs(st.of) do
    if c.dirty then
      redis.call('HSET', st.key, sender, string.format('%d|%d', c.n, st.ack))
      any = true
    end
  end
  if any then redis.call('PEXPIRE', st.key, ARGV[2]) end
end
local function appendOne(kb, ab, out)
  local inbox, key, k = KEYS[kb + 1], nil, kb + 5
  local flag, sender = ARGV[ab + 3], ARGV[ab + 4]
  if flag == 'r' then
    if tonumber(ARGV[1]) <= redis.call('LLEN', inbox) then
      put(out, 2, ARGV[ab], 0, false)
      return k
    end
  elseif flag == 'o' then
    local again = inTail(inbox, ARGV[ab])
    if again then
      put(out, 1, ARGV[ab], again, false)
      return k
    end
  elseif hasDedup(flag) then
    key, k = KEYS[kb + 5], kb + 6
    local d = redis.call('GET', key)
    if d then
      local bar = string.find(d, '|', 1, true)
      local first = tonumber(string.sub(d, bar + 1))
      put(out, 1, string.sub(d, 1, bar - 1), first, entryAt(inbox, first) or false)
      return k
    end
  end
  if blockable(flag) then
    local b = blocked(KEYS[kb + 4], sender)
    if b then
      put(out, b, ARGV[ab], 0, false)
      return k
    end
  end
  local st = counts(flag, sender) and shares(kb, 1)
  if st and not admit(st, sender, 0) then
    put(out, 3, ARGV[ab], 0, false)
    return k
  end
  local seq = redis.call('INCR', KEYS[kb])
  local s = string.format('%d', seq)
  if key then redis.call('SET', key, ARGV[ab] .. '|' .. s, 'PX', ARGV[4]) end
  local len = redis.call('RPUSH', inbox, s .. '|' .. ARGV[ab + 1] .. '|' .. ARGV[ab + 2])
  trim(inbox, len, tonumber(ARGV[1]), tonumber(ARGV[3]), seq - 1, seq)
  redis.call('PEXPIRE', inbox, ARGV[2])
  if st then saveShares(st) end
  put(out, 0, ARGV[ab], seq, false)
  return k
end
local function appendRun(kb, ab, n, out)
  if n == 1 then return appendOne(kb, ab, out) end
  local seqKey, inbox = KEYS[kb], KEYS[kb + 1]
  local dkey, dkeys, k = {}, {}, kb + 5
  local counted = false
  for i = 0, n - 1 do
    local flag = ARGV[ab + 3 + 5 * i]
    if hasDedup(flag) then
      dkey[i] = KEYS[k]
      dkeys[#dkeys + 1] = KEYS[k]
      k = k + 1
    end
    if counts(flag, ARGV[ab + 4 + 5 * i]) then counted = true end
  end
  -- The dedup keys, all read at once; a key set earlier in this run wins.
  local known = {}
  if #dkeys > 0 then
    local vals = redis.call('MGET', unpack(dkeys))
    for j, key in ipairs(dkeys) do
      local d = vals[j]
      if d and not known[key] then
        local bar = string.find(d, '|', 1, true)
        known[key] = {string.sub(d, 1, bar - 1), string.sub(d, bar + 1)}
      end
    end
  end
  local st = counted and shares(kb, n)
  local fresh = 0
  local claimed, dropped, again = {}, {}, {}
  local room = nil
  local blocks = {}
  for i = 0, n - 1 do
    local key, flag, sender = dkey[i], ARGV[ab + 3 + 5 * i], ARGV[ab + 4 + 5 * i]
    if flag == 'o' then again[i] = inTail(inbox, ARGV[ab + 5 * i]) end
    if again[i] then
    elseif flag == 'r' then
      if not room then room = tonumber(ARGV[1]) - redis.call('LLEN', inbox) end
      if fresh < room then fresh = fresh + 1 else dropped[i] = 2 end
    elseif not (key and (known[key] or claimed[key])) then
      local b = false
      if blockable(flag) then
        b = blocks[sender]
        if b == nil then
          b = blocked(KEYS[kb + 4], sender)
          blocks[sender] = b
        end
      end
      if b then
        dropped[i] = b
      elseif st and counts(flag, sender) and not admit(st, sender, fresh) then
        dropped[i] = 3
      else
        fresh = fresh + 1
        if key then claimed[key] = true end
      end
    end
  end
  local seq = 0
  if fresh > 0 then seq = redis.call('INCRBY', seqKey, fresh) - fresh end
  local push = {}
  for i = 0, n - 1 do
    local a, key = ab + 5 * i, dkey[i]
    local first = key and known[key]
    if again[i] then
      put(out, 1, ARGV[a], again[i], false)
    elseif dropped[i] then
      put(out, dropped[i], ARGV[a], 0, false)
    elseif first then
      local m = first[3]
      if not m then
        m = entryAt(inbox, tonumber(first[2])) or false
      end
      put(out, 1, first[1], tonumber(first[2]), m)
    else
      seq = seq + 1
      local s = string.format('%d', seq)
      local m = s .. '|' .. ARGV[a + 1] .. '|' .. ARGV[a + 2]
      push[#push + 1] = m
      if key then
        redis.call('SET', key, ARGV[a] .. '|' .. s, 'PX', ARGV[4])
        known[key] = {ARGV[a], s, m}
      end
      put(out, 0, ARGV[a], seq, false)
    end
  end
  if fresh > 0 then
    local len = redis.call('RPUSH', inbox, unpack(push))
    trim(inbox, len, tonumber(ARGV[1]), tonumber(ARGV[3]), seq - fresh, seq)
    redis.call('PEXPIRE', inbox, ARGV[2])
  end
  if st then saveShares(st) end
  return k
end
`

// appendScript stores the inbox entries of a batch as runs, one user's
// entries each (see appendRunLua): from ARGV[6], each run's number of
// entries then its entries' args; KEYS the runs' keys in the same order.
// The runs go in order, so a user's runs (the same user may come again
// after its first run filled up) keep its entries' order. On a single Redis
// node one script call carries the runs of many users: Redis's cost per
// script call and the client's per command are paid once per batch, not
// per recipient. On Redis Cluster, where a script may touch one user's keys
// only, each call carries one run.
var appendScript = redis.NewScript(inboxLua + appendRunLua + `
local out, kb, ab = {}, 1, 6
while ab <= #ARGV do
  local n = tonumber(ARGV[ab])
  kb = appendRun(kb, ab + 1, n, out)
  ab = ab + 1 + 5 * n
end
return out
`)

// sharedAppendScript stores one entry, the same frame, in many users'
// inboxes (a group message): one run instead of one per member. It names
// keys of many users, so it runs only on a single Redis node, never a
// cluster.
//
// KEYS: seq, inbox, ack and share of each user, in fours.
// ARGV[1] max length, ARGV[2] inbox ttl ms, ARGV[3] age cutoff ms,
// ARGV[4] timestamp ms, ARGV[5] frame bytes, ARGV[6] the share (0: none),
// ARGV[7] the sender whose share the copies count against ("": none).
// Returns each user's new seq, in KEYS order: 0 for a user whose inbox
// already holds the sender's share (see appendRunLua; nothing is stored
// and no seq taken).
//
// Each inbox is trimmed as by appendScript.
var sharedAppendScript = redis.NewScript(inboxLua + `
local maxLen, cutoff = tonumber(ARGV[1]), tonumber(ARGV[3])
local per, sender = tonumber(ARGV[6]), ARGV[7]
local counted = per > 0 and sender ~= ''
local tail = '|' .. ARGV[4] .. '|' .. ARGV[5]
local out = {}
for i = 1, #KEYS, 4 do
  local inbox, admitted = KEYS[i + 1], true
  if counted then
    local v = redis.call('MGET', KEYS[i], KEYS[i + 2])
    local head, ack = tonumber(v[1]) or 0, tonumber(v[2]) or 0
    if head - ack >= per then
      local n, c = 0, redis.call('HGET', KEYS[i + 3], sender)
      if c then
        local bar = string.find(c, '|', 1, true)
        if tonumber(string.sub(c, bar + 1)) >= ack then n = tonumber(string.sub(c, 1, bar - 1)) end
      end
      if n >= per then
        admitted = false
      else
        redis.call('HSET', KEYS[i + 3], sender, string.format('%d|%d', n + 1, ack))
        redis.call('PEXPIRE', KEYS[i + 3], ARGV[2])
      end
    end
  end
  if admitted then
    local seq = redis.call('INCR', KEYS[i])
    local len = redis.call('RPUSH', inbox, string.format('%d', seq) .. tail)
    trim(inbox, len, maxLen, cutoff, seq - 1, seq)
    redis.call('PEXPIRE', inbox, ARGV[2])
    out[#out + 1] = seq
  else
    out[#out + 1] = 0
  end
end
return out
`)

// rangeScript reads part of an inbox with the numbers a SYNC answer needs,
// as one consistent snapshot.
//
// KEYS[1] seq, KEYS[2] inbox, KEYS[3] ack.
// ARGV: after, upto (0: no bound), limit, from-acked ("1": start after the
// ack when it is larger), max bytes of the members (at least one member is
// returned when there is one, however large), "1" for the timestamp of the
// entry at the after used.
// Returns {after used, head, first retained (head+1 when empty), ack,
// members, that timestamp (0: not asked, or not retained)}.
//
// The members are read a few at a time, so neither the script nor the
// reply ever holds more than about max bytes: an inbox of large entries
// answers fewer of them, and the caller continues after the last one.
var rangeScript = redis.NewScript(inboxLua + `
local after = tonumber(ARGV[1])
local ack = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
if ARGV[4] == '1' and ack > after then after = ack end
local head = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local first = head + 1
local f = redis.call('LINDEX', KEYS[2], 0)
local m = {}
local ats = 0
if ARGV[6] == '1' and after > 0 then
  local e = entryAt(KEYS[2], after)
  if e then
    local a = string.find(e, '|', 1, true)
    local b = string.find(e, '|', a + 1, true)
    ats = tonumber(string.sub(e, a + 1, b - 1)) or 0
  end
end
if f then
  first = seqOf(f)
  local last = seqOf(redis.call('LINDEX', KEYS[2], -1))
  if ARGV[2] ~= '0' then last = math.min(last, tonumber(ARGV[2])) end
  local from = math.max(after + 1, first)
  last = math.min(last, from + tonumber(ARGV[3]) - 1)
  local budget = tonumber(ARGV[5])
  local i = from
  while i <= last do
    local part = redis.call('LRANGE', KEYS[2], i - first, math.min(last, i + 7) - first)
    if #part == 0 then break end
    for _, e in ipairs(part) do
      if #m > 0 and #e > budget then return {after, head, first, ack, m, ats} end
      budget = budget - #e
      m[#m + 1] = e
    end
    i = i + #part
  end
end
return {after, head, first, ack, m, ats}
`)

// historyScript reads up to n entries with a seq below before (0: from the
// newest), oldest first.
//
// KEYS[1] inbox; ARGV[1] before, ARGV[2] n.
var historyScript = redis.NewScript(inboxLua + `
local f = redis.call('LINDEX', KEYS[1], 0)
if not f then return {} end
local first = seqOf(f)
local top = seqOf(redis.call('LINDEX', KEYS[1], -1))
local before = tonumber(ARGV[1])
if before > 0 then top = math.min(top, before - 1) end
if top < first then return {} end
local bottom = math.max(first, top - tonumber(ARGV[2]) + 1)
return redis.call('LRANGE', KEYS[1], bottom - first, top - first)
`)

// raiseAckScript raises a user's acknowledged seq; it never goes down.
//
// KEYS[1] ack; ARGV[1] seq. Returns 1 if raised.
var raiseAckScript = redis.NewScript(`
if tonumber(ARGV[1]) > (tonumber(redis.call('GET', KEYS[1]) or '0') or 0) then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
`)
