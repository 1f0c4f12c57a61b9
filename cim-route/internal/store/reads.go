package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// ReadQuery asks for the reader's inbox entries a READ names: the entry
// at Seqs[i] for MsgIDs[i].
type ReadQuery struct {
	UserID string // the reader, whose inbox is looked up
	Seqs   []uint64
	MsgIDs []string
}

// reads is the sorted set of the inbox seqs a user has read (member and
// score: the seq), in the user's slot; it is trimmed below the inbox's
// first seq and expires with the inbox.
func (k keys) reads(id string) string { return k.prefix + "rd:{" + id + "}" }

// readEntriesScript reads the entries a READ names: per pair, the entry at
// that seq when it is there and (a plain substring check; the caller
// decodes it and checks sender and id exactly) names the msgId.
//
// KEYS[1] inbox. ARGV: pairs seq, msgId. Returns, per pair, the entry's
// member, or false.
var readEntriesScript = redis.NewScript(inboxLua + `
local out = {}
for i = 1, #ARGV, 2 do
  local s = tonumber(ARGV[i])
  local m = s and s > 0 and entryAt(KEYS[1], s)
  if m and string.find(m, ARGV[i + 1], 1, true) then
    out[#out + 1] = m
  else
    out[#out + 1] = false
  end
end
return out
`)

// markReadScript marks inbox seqs read, each once, and trims the marks
// below the inbox's first seq.
//
// KEYS[1] inbox, KEYS[2] reads. ARGV[1] ttl ms, then seqs.
// Returns, per seq, 1 when it was newly marked, else 0.
var markReadScript = redis.NewScript(inboxLua + `
local out = {}
for i = 2, #ARGV do
  out[#out + 1] = redis.call('ZADD', KEYS[2], 'NX', ARGV[i], ARGV[i])
end
local f = redis.call('LINDEX', KEYS[1], 0)
if f then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. seqOf(f))
end
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return out
`)

// ReadEntries answers qs, one pipeline for all: per query, per seq, the
// entry there when it names the msgId (zero Seq otherwise).
func (s *Store) ReadEntries(ctx context.Context, qs []ReadQuery) ([][]Entry, error) {
	calls := make([]scriptCall, 0, len(qs))
	for _, q := range qs {
		if len(q.Seqs) != len(q.MsgIDs) {
			return nil, fmt.Errorf("store: %d seqs for %d msg ids", len(q.Seqs), len(q.MsgIDs))
		}
		args := make([]any, 0, 2*len(q.Seqs))
		for i, seq := range q.Seqs {
			args = append(args, seq, q.MsgIDs[i])
		}
		calls = append(calls, scriptCall{[]string{s.k.inbox(q.UserID)}, args})
	}
	if len(calls) == 0 {
		return nil, nil
	}
	res, err := s.evalAll(ctx, readEntriesScript, calls)
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

// ReadMark names inbox entries of a user to mark read.
type ReadMark struct {
	UserID string
	Seqs   []uint64
}

// MarkRead marks entries read, one pipeline for all, and reports per mark,
// per seq, whether it was newly marked: each entry is read once.
func (s *Store) MarkRead(ctx context.Context, ms []ReadMark) ([][]bool, error) {
	calls := make([]scriptCall, 0, len(ms))
	for _, m := range ms {
		args := make([]any, 1, 1+len(m.Seqs))
		args[0] = s.inbox.TTL.Milliseconds()
		for _, seq := range m.Seqs {
			args = append(args, seq)
		}
		calls = append(calls, scriptCall{[]string{s.k.inbox(m.UserID), s.k.reads(m.UserID)}, args})
	}
	if len(calls) == 0 {
		return nil, nil
	}
	res, err := s.evalAll(ctx, markReadScript, calls)
	if err != nil {
		return nil, err
	}
	out := make([][]bool, len(ms))
	for i, c := range res {
		v, _ := c.Slice()
		out[i] = make([]bool, len(ms[i].Seqs))
		for j, x := range v {
			if j < len(out[i]) {
				out[i][j] = u64(x) == 1
			}
		}
	}
	return out, nil
}
