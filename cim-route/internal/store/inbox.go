package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Inbox defaults (docs/ARCHITECTURE.md, "Reliable delivery").
const (
	DefaultInboxMaxLen = 10000
	DefaultInboxTTL    = 7 * 24 * time.Hour
	DefaultDedupWindow = 24 * time.Hour
)

// InboxLimits bound every user's inbox.
type InboxLimits struct {
	// MaxLen is how many entries an inbox keeps; older ones are trimmed.
	MaxLen int
	// TTL: entries older than this are trimmed, and an inbox nobody wrote
	// to for this long expires as a whole. The seq counter never expires.
	TTL time.Duration
	// DedupWindow is how long a (sender, clientMsgId) pair is remembered.
	DedupWindow time.Duration
}

func (l InboxLimits) withDefaults() InboxLimits {
	if l.MaxLen <= 0 {
		l.MaxLen = DefaultInboxMaxLen
	}
	if l.TTL <= 0 {
		l.TTL = DefaultInboxTTL
	}
	if l.DedupWindow <= 0 {
		l.DedupWindow = DefaultDedupWindow
	}
	return l
}

// Option configures a Store.
type Option func(*Store)

// WithInbox sets the inbox limits; zero fields keep their defaults.
func WithInbox(l InboxLimits) Option {
	return func(s *Store) { s.inbox = l.withDefaults() }
}

// Append is one entry for a user's inbox.
type Append struct {
	UserID string // whose inbox
	Frame  []byte // a marshalled MSG or RECEIPT frame, without seq
	TS     int64  // unix ms, kept in the entry (age trimming, history)
	// MsgID is remembered under Dedup, so a resend learns the first id.
	MsgID string
	// Dedup, when set, is "<senderId>:<clientMsgId>": a second append with
	// the same key within the dedup window stores nothing and reports the
	// first one.
	Dedup string
}

// Appended is what became of one Append.
type Appended struct {
	Seq    uint64
	MsgID  string // the Append's, or the first one's for a resend
	Resend bool
	// Stored is, for a resend, the first entry as stored (zero Seq once it
	// was trimmed).
	Stored Entry
}

// Entry is one stored inbox entry.
type Entry struct {
	Seq   uint64
	TS    int64  // unix ms
	Frame []byte // as appended: without seq
}

// RangeQuery asks for part of one inbox.
type RangeQuery struct {
	UserID string
	After  uint64 // entries with a larger seq
	// FromAcked starts after the user's acknowledged seq when it is larger
	// than After.
	FromAcked bool
	Upto      uint64 // the largest seq wanted; 0: no bound
	Limit     int    // at most this many entries (>= 1)
}

// Range is one answered RangeQuery: a consistent snapshot of the inbox.
type Range struct {
	After   uint64 // the seq the entries follow (After, or the ack)
	Head    uint64 // the newest seq ever assigned (0: none yet)
	First   uint64 // the oldest seq retained; Head+1 when the inbox is empty
	Acked   uint64 // the user's acknowledged seq
	Entries []Entry
}

// Ack raises one user's acknowledged seq.
type Ack struct {
	UserID string
	Seq    uint64
}

// scriptCall is one run of a script in a pipeline.
type scriptCall struct {
	keys []string
	args []any
}

// Append stores entries, in order, as pipelines (of up to maxPipeline
// entries each: one round trip per thousand) of one script per entry (seq,
// inbox and dedup of a recipient change atomically). The answer is
// aligned with entries. On error some entries may be stored and others not:
// the caller fails as a whole and a retry is deduplicated.
func (s *Store) Append(ctx context.Context, entries []Append) ([]Appended, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	lim := s.inbox
	now := s.now().UnixMilli()
	// The same for every entry: boxed once.
	var maxLen, ttl, cutoff, dedupTTL any = lim.MaxLen, lim.TTL.Milliseconds(), now - lim.TTL.Milliseconds(), lim.DedupWindow.Milliseconds()
	calls := make([]scriptCall, len(entries))
	for i, e := range entries {
		ts := e.TS
		if ts == 0 {
			ts = now
		}
		keys := []string{s.k.inboxSeq(e.UserID), s.k.inbox(e.UserID)}
		if e.Dedup != "" {
			keys = append(keys, s.k.dedup(e.UserID, e.Dedup))
		}
		calls[i] = scriptCall{keys, []any{e.MsgID, ts, e.Frame, maxLen, ttl, cutoff, dedupTTL}}
	}
	res, err := s.evalAll(ctx, appendScript, calls)
	if err != nil {
		return nil, err
	}
	out := make([]Appended, len(entries))
	for i, c := range res {
		v, _ := c.Slice()
		if len(v) < 3 {
			return nil, unavailable(fmt.Errorf("append script answered %v", v))
		}
		a := Appended{MsgID: str(v[1]), Resend: str(v[0]) == "1"}
		n, _ := v[2].(int64)
		a.Seq = uint64(n)
		if a.Resend && len(v) > 3 {
			a.Stored, _ = parseEntry(str(v[3]))
		}
		out[i] = a
	}
	return out, nil
}

// Ranges answers queries, one pipeline for all. The answer is aligned with qs.
func (s *Store) Ranges(ctx context.Context, qs []RangeQuery) ([]Range, error) {
	if len(qs) == 0 {
		return nil, nil
	}
	calls := make([]scriptCall, len(qs))
	for i, q := range qs {
		fromAcked := "0"
		if q.FromAcked {
			fromAcked = "1"
		}
		limit := max(q.Limit, 1)
		calls[i] = scriptCall{
			[]string{s.k.inboxSeq(q.UserID), s.k.inbox(q.UserID), s.k.ack(q.UserID)},
			[]any{q.After, q.Upto, limit, fromAcked},
		}
	}
	res, err := s.evalAll(ctx, rangeScript, calls)
	if err != nil {
		return nil, err
	}
	out := make([]Range, len(qs))
	for i, c := range res {
		v, _ := c.Slice()
		if len(v) != 5 {
			return nil, unavailable(fmt.Errorf("range script answered %v", v))
		}
		r := Range{After: u64(v[0]), Head: u64(v[1]), First: u64(v[2]), Acked: u64(v[3])}
		members, _ := v[4].([]any)
		r.Entries = make([]Entry, 0, len(members))
		for _, m := range members {
			if e, ok := parseEntry(str(m)); ok {
				r.Entries = append(r.Entries, e)
			}
		}
		out[i] = r
	}
	return out, nil
}

// RaiseAcks raises each user's acknowledged seq (never lowers it), one
// pipeline for all.
func (s *Store) RaiseAcks(ctx context.Context, acks []Ack) error {
	if len(acks) == 0 {
		return nil
	}
	calls := make([]scriptCall, len(acks))
	for i, a := range acks {
		calls[i] = scriptCall{[]string{s.k.ack(a.UserID)}, []any{a.Seq}}
	}
	_, err := s.evalAll(ctx, raiseAckScript, calls)
	return err
}

// InboxBefore returns up to n entries of uid's inbox with a seq below before
// (0: from the newest), newest first. History scans page with it.
func (s *Store) InboxBefore(ctx context.Context, uid string, before uint64, n int) ([]Entry, error) {
	maxScore := "+inf"
	if before > 0 {
		maxScore = "(" + strconv.FormatUint(before, 10)
	}
	members, err := s.rdb.ZRevRangeByScore(ctx, s.k.inbox(uid), &redis.ZRangeBy{
		Max: maxScore, Min: "-inf", Count: int64(max(n, 1)),
	}).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]Entry, 0, len(members))
	for _, m := range members {
		if e, ok := parseEntry(m); ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// maxPipeline bounds the commands of one pipeline: a group message to
// thousands of members goes out as pipelines of this many appends, one
// round trip each, so neither side buffers an unbounded batch.
const maxPipeline = 1000

// evalAll runs script once per call, in pipelines of EVALSHA of at most
// maxPipeline calls each, one after the other (so a user's entries keep
// their order). Calls that found the script missing (NOSCRIPT: a restarted
// or flushed Redis, or a new cluster node) did not run; they go again with
// EVAL, which also caches the script for next time.
func (s *Store) evalAll(ctx context.Context, script *redis.Script, calls []scriptCall) ([]*redis.Cmd, error) {
	res := make([]*redis.Cmd, 0, len(calls))
	for chunk := range slices.Chunk(calls, maxPipeline) {
		r, err := s.evalPipeline(ctx, script, chunk)
		if err != nil {
			return nil, err
		}
		res = append(res, r...)
	}
	return res, nil
}

func (s *Store) evalPipeline(ctx context.Context, script *redis.Script, calls []scriptCall) ([]*redis.Cmd, error) {
	res := make([]*redis.Cmd, len(calls))
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range calls {
			res[i] = script.EvalSha(ctx, p, c.keys, c.args...)
		}
		return nil
	})
	var again []int
	for i, c := range res {
		if e := c.Err(); e != nil && redis.HasErrorPrefix(e, "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return res, pipeErr(err, cmds)
	}
	cmds, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, i := range again {
			res[i] = script.Eval(ctx, p, calls[i].keys, calls[i].args...)
		}
		return nil
	})
	if err := pipeErr(err, cmds); err != nil {
		return nil, err
	}
	for _, c := range res {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return nil, unavailable(err)
		}
	}
	return res, nil
}

// parseEntry splits a member "<seq>|<ts_ms>|<frame bytes>".
func parseEntry(m string) (Entry, bool) {
	a := strings.IndexByte(m, '|')
	if a < 0 {
		return Entry{}, false
	}
	b := strings.IndexByte(m[a+1:], '|')
	if b < 0 {
		return Entry{}, false
	}
	b += a + 1
	seq, err1 := strconv.ParseUint(m[:a], 10, 64)
	ts, err2 := strconv.ParseInt(m[a+1:b], 10, 64)
	if err1 != nil || err2 != nil {
		return Entry{}, false
	}
	return Entry{Seq: seq, TS: ts, Frame: []byte(m[b+1:])}, true
}

func u64(v any) uint64 {
	n, _ := v.(int64)
	if n < 0 {
		return 0
	}
	return uint64(n)
}
