package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// rev:{uid} is a sorted set (every score 0, so ordered by member) of the
// revisions of uid's messages, one member "<msgId>|<revId>|<r|e>|<text>"
// per changed message: ordered by msgId, hence by the message's time, so
// the revisions of messages older than the inbox TTL go with one
// ZREMRANGEBYLEX, and beyond the inbox length the oldest ones with one
// ZREMRANGEBYRANK. One key per sender bounds what a sender can make Redis
// keep, however many ids it names.
func (k keys) rev(uid string) string { return k.prefix + "rev:{" + uid + "}" }

// hdel:{uid} is a sorted set of the msgIds uid deleted from its own
// history, bounded and trimmed like rev. Every score is 1, so that ZMSCORE
// tells a member (1) from none (nil, which go-redis reads as 0).
func (k keys) hdel(uid string) string { return k.prefix + "hdel:{" + uid + "}" }

// reviseScript records one revision: a recall replaces anything but a
// recall (it is final), an edit only an older edit. Then it trims the set
// by age and length and sets its TTL.
//
// KEYS[1] rev; ARGV: msgId, revId, r|e, text, max members, ttl ms, the
// msgId prefix of the oldest time kept. Returns 1 if recorded.
var reviseScript = redis.NewScript(`
local key, id, rev, op = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local cur = redis.call('ZRANGEBYLEX', key, '[' .. id .. '|', '(' .. id .. '}')
for _, m in ipairs(cur) do
  local a = string.find(m, '|', 1, true)
  local b = string.find(m, '|', a + 1, true)
  if string.sub(m, b + 1, b + 1) == 'r' then return 0 end
  if op == 'e' and string.sub(m, a + 1, b - 1) >= rev then return 0 end
end
for _, m in ipairs(cur) do redis.call('ZREM', key, m) end
redis.call('ZADD', key, 0, id .. '|' .. rev .. '|' .. op .. '|' .. ARGV[4])
redis.call('ZREMRANGEBYLEX', key, '-', '(' .. ARGV[7])
local n = redis.call('ZCARD', key)
local max = tonumber(ARGV[5])
if n > max then redis.call('ZREMRANGEBYRANK', key, 0, n - max - 1) end
redis.call('PEXPIRE', key, ARGV[6])
return 1
`)

// deleteScript adds msgIds to a deleted set, all or none: none when the
// set, trimmed by age first, would then hold more than the max.
//
// KEYS[1] hdel; ARGV: max members, ttl ms, the msgId prefix of the oldest
// time kept, then the msgIds (distinct). Returns how many were new, or -1.
var deleteScript = redis.NewScript(`
local key = KEYS[1]
redis.call('ZREMRANGEBYLEX', key, '-', '(' .. ARGV[3])
local add = {}
for i = 4, #ARGV do
  if not redis.call('ZSCORE', key, ARGV[i]) then
    add[#add + 1] = 1
    add[#add + 1] = ARGV[i]
  end
end
if #add == 0 then return 0 end
if redis.call('ZCARD', key) + #add / 2 > tonumber(ARGV[1]) then return -1 end
redis.call('ZADD', key, unpack(add))
redis.call('PEXPIRE', key, ARGV[2])
return #add / 2
`)

// maxDeleteIDs bounds the msgIds of one deleteScript run (a Lua unpack).
const maxDeleteIDs = 1000

// oldestKept is the msgId prefix below which revisions and deletions
// concern messages no inbox holds any more.
func (s *Store) oldestKept() string {
	return model.MsgIDPrefix(s.now().Add(-s.inbox.TTL).UnixMilli())
}

// Revise records revisions, one script run per revision, pipelined.
func (s *Store) Revise(ctx context.Context, rs []model.Revision) error {
	if len(rs) == 0 {
		return nil
	}
	oldest := s.oldestKept()
	calls := make([]scriptCall, 0, len(rs))
	for _, r := range rs {
		if !validRef(r.MsgID) || !validRef(r.RevID) {
			continue
		}
		op := "e"
		if r.Recall {
			op = "r"
		}
		calls = append(calls, scriptCall{
			keys: []string{s.k.rev(r.Sender)},
			args: []any{r.MsgID, r.RevID, op, r.Text, s.inbox.MaxLen, s.inbox.TTL.Milliseconds(), oldest},
		})
	}
	_, err := s.evalAll(ctx, reviseScript, calls)
	return err
}

// validRef: a revision's ids must not hold the member separator.
func validRef(id string) bool { return id != "" && !strings.ContainsRune(id, '|') }

// RevisionsOf reads the revisions (a ZRANGEBYLEX of each message's range
// in its sender's set) and the viewer's deletions (one ZMSCORE), one
// pipeline; go-redis splits it by slot on Redis Cluster.
func (s *Store) RevisionsOf(ctx context.Context, viewer string, refs []model.MsgRef) ([]model.Revision, []bool, error) {
	if len(refs) == 0 {
		return nil, nil, nil
	}
	revs := make([]*redis.StringSliceCmd, len(refs))
	var dels *redis.FloatSliceCmd
	ids := make([]string, len(refs))
	for i, r := range refs {
		ids[i] = r.MsgID
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range refs {
			if !validRef(r.MsgID) {
				continue
			}
			revs[i] = p.ZRangeByLex(ctx, s.k.rev(r.Sender), &redis.ZRangeBy{Min: "[" + r.MsgID + "|", Max: "(" + r.MsgID + "}"})
		}
		if viewer != "" {
			dels = p.ZMScore(ctx, s.k.hdel(viewer), ids...)
		}
		return nil
	})
	if err := pipeErr(err, cmds); err != nil {
		return nil, nil, err
	}
	out := make([]model.Revision, len(refs))
	for i, c := range revs {
		if c == nil {
			continue
		}
		for _, m := range c.Val() {
			if r, ok := parseRevision(refs[i], m); ok && r.Supersedes(out[i]) {
				out[i] = r
			}
		}
	}
	if dels == nil {
		return out, nil, nil
	}
	deleted := make([]bool, len(refs))
	for i, v := range dels.Val() {
		// go-redis reads ZMSCORE's nil (no such member) as 0: every
		// member's score is 1.
		deleted[i] = i < len(deleted) && v == 1
	}
	return out, deleted, nil
}

// parseRevision reads a member "<msgId>|<revId>|<r|e>|<text>" of ref's
// sender's set.
func parseRevision(ref model.MsgRef, m string) (model.Revision, bool) {
	parts := strings.SplitN(m, "|", 4)
	if len(parts) != 4 || parts[0] != ref.MsgID || (parts[2] != "r" && parts[2] != "e") {
		return model.Revision{}, false
	}
	r := model.Revision{Sender: ref.Sender, MsgID: ref.MsgID, RevID: parts[1], Recall: parts[2] == "r"}
	if !r.Recall {
		r.Text = []byte(parts[3])
	}
	return r, true
}

// DeleteFromHistory adds the msgIds of the last inbox TTL to uid's deleted
// set, at most maxDeleteIDs per script run; see router.Revisions.
func (s *Store) DeleteFromHistory(ctx context.Context, uid string, msgIDs []string) error {
	oldest := s.oldestKept()
	var ids []string
	for _, id := range msgIDs {
		if id >= oldest && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for chunk := range slices.Chunk(ids, maxDeleteIDs) {
		args := make([]any, 0, 3+len(chunk))
		args = append(args, s.inbox.MaxLen, s.inbox.TTL.Milliseconds(), oldest)
		for _, id := range chunk {
			args = append(args, id)
		}
		n, err := deleteScript.Run(ctx, s.rdb, []string{s.k.hdel(uid)}, args...).Int64()
		if err != nil {
			return unavailable(err)
		}
		if n < 0 {
			return fmt.Errorf("%w: at most %d messages of the last %v can be deleted from a history", errs.ErrQuotaExceeded, s.inbox.MaxLen, s.inbox.TTL)
		}
	}
	return nil
}
