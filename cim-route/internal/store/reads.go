package store

import (
	"context"
	"fmt"

	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/redis/go-redis/v9"
)

// ReadQuery is model.ReadQuery (package model holds the shared types).
type ReadQuery = model.ReadQuery

// reads is the sorted set of the inbox seqs a user has read (member and
// score: the seq), in the user's slot; it is trimmed below the inbox's
// first seq and expires with the inbox.
func (k keys) reads(id string) string { return k.prefix + "rd:{" + id + "}" }

// claimReadScript claims the entries a READ names for read receipts: per
// pair, the entry at that seq is returned when it is there, names the msgId
// (a plain substring check; the caller decodes it and checks sender and id
// exactly) and was not claimed before — and it is marked claimed at once.
// An entry is so returned at most once ever: a user repeating READs over
// large entries of its own inbox makes Redis send each of them once, not
// once per READ. (A READ naming the wrong peer uses the reader's own entry
// up; the SDK names the right one.) Marks below the inbox's first seq are
// trimmed; the marks expire with the inbox.
//
// KEYS[1] inbox, KEYS[2] reads. ARGV[1] ttl ms, then pairs seq, msgId.
// Returns, per pair, the entry's member, or false.
var claimReadScript = redis.NewScript(inboxLua + `
local out = {}
for i = 2, #ARGV, 2 do
  local s = tonumber(ARGV[i])
  local m = s and s > 0 and entryAt(KEYS[1], s)
  if m and string.find(m, ARGV[i + 1], 1, true)
    and redis.call('ZADD', KEYS[2], 'NX', s, ARGV[i]) == 1 then
    out[#out + 1] = m
  else
    out[#out + 1] = false
  end
end
local f = redis.call('LINDEX', KEYS[1], 0)
if f then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. seqOf(f))
end
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return out
`)

// ClaimReads answers qs, one pipeline for all: per query, per seq, the
// entry there when it names the msgId and was not claimed before (zero Seq
// otherwise); see claimReadScript.
func (s *Store) ClaimReads(ctx context.Context, qs []ReadQuery) ([][]Entry, error) {
	calls := make([]scriptCall, 0, len(qs))
	for _, q := range qs {
		if len(q.Seqs) != len(q.MsgIDs) {
			return nil, fmt.Errorf("store: %d seqs for %d msg ids", len(q.Seqs), len(q.MsgIDs))
		}
		args := make([]any, 1, 1+2*len(q.Seqs))
		args[0] = s.inbox.TTL.Milliseconds()
		for i, seq := range q.Seqs {
			args = append(args, seq, q.MsgIDs[i])
		}
		calls = append(calls, scriptCall{[]string{s.k.inbox(q.UserID), s.k.reads(q.UserID)}, args})
	}
	if len(calls) == 0 {
		return nil, nil
	}
	res, err := s.evalAll(ctx, claimReadScript, calls)
	if err != nil {
		return nil, err
	}
	out := make([][]Entry, len(qs))
	for i, c := range res {
		v, _ := c.Slice()
		out[i] = make([]Entry, len(qs[i].Seqs))
		for j, m := range v {
			if member, ok := m.(string); ok && j < len(out[i]) {
				out[i][j], _ = parseEntry(member)
			}
		}
	}
	return out, nil
}
