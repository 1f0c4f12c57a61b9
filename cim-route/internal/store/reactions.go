package store

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/model"
)

// rxu:{conv} is a sorted set (every score 0, so ordered by member) of a
// conversation's reactions, one member "<uid>|<msgId>|<revId>|<emoji>" per
// user and message (the emoji empty once taken back): a user's reactions lie together, oldest message first, so
// its share is one ZLEXCOUNT and its oldest one ZRANGEBYLEX, and a viewer's
// reactions to a page of messages are one range.
func (k keys) rxu(conv string) string { return k.prefix + "rxu:{" + conv + "}" }

// rxc:{conv} is a hash msgId → that message's counts, "<emoji>\t<n>" lines
// in the order the emoji first came (an emoji has no whitespace), kept by
// reactScript with rxu.
func (k keys) rxc(conv string) string { return k.prefix + "rxc:{" + conv + "}" }

// reactScript records one user's reaction to one message, replacing an
// earlier one (a smaller revId; a later one stays); an empty emoji takes it
// back. A new emoji beyond the kinds a message may have is refused (-1). A
// user's reaction to one message more than its share drops its reaction on
// its oldest message. Both keys live for the TTL after the conversation's
// last reaction.
//
// KEYS[1] rxu, KEYS[2] rxc; ARGV: msgId, uid, emoji, share, kinds, ttl ms,
// revId. Returns 1, or -1 when refused.
var reactScript = redis.NewScript(`
local rxu, rxc, id, uid, emoji = KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3]
local function counts(mid)
  local t = {}
  local s = redis.call('HGET', rxc, mid)
  if s then
    for e, n in string.gmatch(s, '([^\t\n]+)\t(%d+)') do t[#t + 1] = {e, tonumber(n)} end
  end
  return t
end
local function add(mid, e, d)
  local t, p, found = counts(mid), {}, false
  for _, x in ipairs(t) do
    if x[1] == e then x[2] = x[2] + d; found = true end
  end
  if not found and d > 0 then t[#t + 1] = {e, d} end
  for _, x in ipairs(t) do
    if x[2] > 0 then p[#p + 1] = x[1] .. '\t' .. x[2] end
  end
  if #p == 0 then redis.call('HDEL', rxc, mid) else redis.call('HSET', rxc, mid, table.concat(p, '\n')) end
end
local pre, rev = uid .. '|' .. id .. '|', ARGV[7]
local cur = redis.call('ZRANGEBYLEX', rxu, '[' .. pre, '(' .. uid .. '|' .. id .. '}')
local old, oldrev = nil, nil
if cur[1] then
  local b = string.find(cur[1], '|', #pre + 1, true)
  oldrev, old = string.sub(cur[1], #pre + 1, b - 1), string.sub(cur[1], b + 1)
  if oldrev >= rev then return 1 end
end
if emoji ~= '' and emoji ~= old then
  local t, known = counts(id), false
  for _, x in ipairs(t) do
    if x[1] == emoji then known = true end
  end
  if not known and #t >= tonumber(ARGV[5]) then return -1 end
end
if cur[1] then
  redis.call('ZREM', rxu, cur[1])
  if old ~= '' then add(id, old, -1) end
end
redis.call('ZADD', rxu, 0, pre .. rev .. '|' .. emoji)
if emoji ~= '' then add(id, emoji, 1) end
if not cur[1] then
  local lo, hi = '[' .. uid .. '|', '(' .. uid .. '}'
  local over = redis.call('ZLEXCOUNT', rxu, lo, hi) - tonumber(ARGV[4])
  if over > 0 then
    for _, m in ipairs(redis.call('ZRANGEBYLEX', rxu, lo, hi, 'LIMIT', 0, over)) do
      redis.call('ZREM', rxu, m)
      local b = string.find(m, '|', #uid + 2, true)
      local c = string.find(m, '|', b + 1, true)
      local e = string.sub(m, c + 1)
      if e ~= '' then add(string.sub(m, #uid + 2, b - 1), e, -1) end
    end
  end
end
redis.call('PEXPIRE', rxu, ARGV[6])
redis.call('PEXPIRE', rxc, ARGV[6])
return 1
`)

// React records reactions, one script run each, pipelined in order: see
// router.Reactions.
func (s *Store) React(ctx context.Context, rs []model.Reaction) ([]bool, error) {
	ok := make([]bool, len(rs))
	calls := make([]scriptCall, 0, len(rs))
	of := make([]int, 0, len(rs))
	for i, r := range rs {
		if !validRef(r.MsgID) || !validRef(r.User) || !validRef(r.RevID) || r.Conv == "" {
			continue
		}
		of = append(of, i)
		calls = append(calls, scriptCall{
			keys: []string{s.k.rxu(r.Conv), s.k.rxc(r.Conv)},
			args: []any{r.MsgID, r.User, r.Emoji, model.ReactionShare, model.ReactionKinds, s.inbox.TTL.Milliseconds(), r.RevID},
		})
	}
	if len(calls) == 0 {
		return ok, nil
	}
	res, err := s.evalAll(ctx, reactScript, calls)
	if err != nil {
		return nil, err
	}
	for k, c := range res {
		n, err := c.Int64()
		if err != nil {
			return nil, unavailable(err)
		}
		ok[of[k]] = n == 1
	}
	return ok, nil
}

// ReactionsOf reads, in one pipeline, each conversation's counts of the
// messages asked (one HMGET) and the viewer's reactions in the range of
// their ids (one ZRANGEBYLEX); go-redis splits it by slot on Redis Cluster.
func (s *Store) ReactionsOf(ctx context.Context, viewer string, refs []model.ReactionRef) ([]model.Reactions, error) {
	out := make([]model.Reactions, len(refs))
	if len(refs) == 0 {
		return out, nil
	}
	type conv struct {
		at     []int // indexes into refs
		ids    []string
		counts *redis.SliceCmd
		mine   *redis.StringSliceCmd
	}
	convs := map[string]*conv{}
	var order []string
	for i, r := range refs {
		if r.Conv == "" || !validRef(r.MsgID) {
			continue
		}
		c := convs[r.Conv]
		if c == nil {
			c = &conv{}
			convs[r.Conv] = c
			order = append(order, r.Conv)
		}
		c.at, c.ids = append(c.at, i), append(c.ids, r.MsgID)
	}
	if len(order) == 0 {
		return out, nil
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, name := range order {
			c := convs[name]
			c.counts = p.HMGet(ctx, s.k.rxc(name), c.ids...)
			if viewer != "" && validRef(viewer) {
				lo, hi := slices.Min(c.ids), slices.Max(c.ids)
				c.mine = p.ZRangeByLex(ctx, s.k.rxu(name), &redis.ZRangeBy{Min: "[" + viewer + "|" + lo + "|", Max: "(" + viewer + "|" + hi + "}"})
			}
		}
		return nil
	})
	if err := pipeErr(err, cmds); err != nil {
		return nil, err
	}
	for _, name := range order {
		c := convs[name]
		mine := map[string]string{}
		if c.mine != nil {
			for _, m := range c.mine.Val() {
				// "<viewer>|<msgId>|<revId>|<emoji>"
				if parts := strings.SplitN(m, "|", 4); len(parts) == 4 && parts[0] == viewer {
					mine[parts[1]] = parts[3]
				}
			}
		}
		for k, v := range c.counts.Val() {
			i := c.at[k]
			if str, ok := v.(string); ok {
				out[i].Counts = parseCounts(str)
			}
			out[i].Mine = mine[c.ids[k]]
		}
	}
	return out, nil
}

// parseCounts reads a rxc value: "<emoji>\t<n>" lines.
func parseCounts(s string) []model.EmojiCount {
	var out []model.EmojiCount
	for line := range strings.SplitSeq(s, "\n") {
		emoji, n, ok := strings.Cut(line, "\t")
		if c, err := strconv.Atoi(n); ok && err == nil && c > 0 {
			out = append(out, model.EmojiCount{Emoji: emoji, Count: c})
		}
	}
	return out
}
