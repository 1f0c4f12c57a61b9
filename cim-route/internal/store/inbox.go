package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/cim-route/internal/noretry"
	"github.com/gocim/gocim/internal/contract"
	"github.com/redis/go-redis/v9"
)

// Inbox defaults: model's.
const (
	DefaultInboxMaxLen = model.DefaultInboxMaxLen
	DefaultInboxTTL    = model.DefaultInboxTTL
	DefaultDedupWindow = model.DefaultDedupWindow
)

// InboxLimits is model.InboxLimits (package model holds the shared types).
type InboxLimits = model.InboxLimits

func withDefaults(l InboxLimits) InboxLimits {
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
	return func(s *Store) { s.inbox = withDefaults(l) }
}

// WithDeviceSlots makes every read of a route read each device slot's
// (--login-policy platform: a session per platform, contract.Slots).
func WithDeviceSlots() Option {
	return func(s *Store) { s.slots = append([]string{""}, contract.Slots...) }
}

// Append is model.Append (package model holds the shared types).
type Append = model.Append

// Appended is model.Appended (package model holds the shared types).
type Appended = model.Appended

// Entry is model.Entry (package model holds the shared types).
type Entry = model.Entry

// RangeQuery is model.RangeQuery (package model holds the shared types).
type RangeQuery = model.RangeQuery

// DefaultRangeBytes is model's.
const DefaultRangeBytes = model.DefaultRangeBytes

// rangeTripBytes bounds the entries of one pipeline of range reads (the
// sum of their MaxBytes): 32 SYNC answers of DefaultRangeBytes per round
// trip, so one Redis reply stays within 8 MiB.
const rangeTripBytes = 8 << 20

// Range is model.Range (package model holds the shared types).
type Range = model.Range

// Ack is model.Ack (package model holds the shared types).
type Ack = model.Ack

// maxEntriesPerRun bounds a user's entries in one run of the append script
// and maxEntriesPerCall the entries of one script call (several users' runs
// on a single Redis node), so a burst never holds Redis long;
// maxSharedPerCall bounds the users of one shared run (a group message).
const (
	maxEntriesPerRun  = 64
	maxEntriesPerCall = 256
	maxSharedPerCall  = 256
)

// appendCall is one append script call: runs of one user's entries each,
// or (shared) one entry each of many users, all with the same frame.
type appendCall struct {
	op
	shared  bool
	entries []int // indexes into the Append slice, in the order answered
	size    int   // entries in runs, while building
}

// appendRun is one user's entries in an append call, while building.
type appendRun struct {
	call      int
	user      string
	n, dedups int
}

// appendCalls turns entries into script calls. Each user's entries go in
// runs, in order, of up to maxEntriesPerRun; on a single Redis node one call
// carries the runs of many users (up to maxEntriesPerCall entries), on a
// cluster each run is a call of its own. Users' inboxes are independent, so
// only the order within a user matters.
//
// On a single Redis node a run of entries sharing one frame without dedup
// keys, a group message's copies, goes as shared calls of up to
// maxSharedPerCall users instead. A user's later entries then open a new
// run in a call after it, so its order holds.
//
// The runs are counted first, then each call's keys and args are laid out
// once at their final size: this runs for every uplink batch.
func (s *Store) appendCalls(entries []Append) []appendCall {
	lim := s.inbox
	now := s.now().UnixMilli()
	head := []any{lim.MaxLen, lim.TTL.Milliseconds(), now - lim.TTL.Milliseconds(), lim.DedupWindow.Milliseconds(), lim.PerSender}
	var calls []appendCall
	var runs []appendRun
	runOf := make([]int, len(entries)) // each entry's run; -1: in a shared call
	open := map[string]int{}           // user -> its open run
	shared := -1                       // the open shared call
	var inShared map[string]bool
	for i, e := range entries {
		runOf[i] = -1
		if !s.cluster && e.Dedup == "" && !e.Droppable && e.From == "" && !e.Once && len(e.Frame) > 0 {
			if shared >= 0 && !s.sameCopy(entries[calls[shared].entries[0]], e) {
				shared = -1
			}
			if shared < 0 || inShared[e.UserID] || len(calls[shared].entries) == maxSharedPerCall {
				if i+1 < len(entries) && s.sameCopy(e, entries[i+1]) {
					shared = len(calls)
					inShared = map[string]bool{}
					calls = append(calls, appendCall{shared: true, op: op{
						script: sharedAppendScript, once: true,
						// max length, ttl, cutoff; the share
						args: append(head[:3:3], tsOr(e.TS, now), e.Frame, lim.PerSender, e.Sender),
					}})
				} else {
					shared = -1
				}
			}
			if shared >= 0 {
				c := &calls[shared]
				c.keys = append(c.keys, s.k.inboxSeq(e.UserID), s.k.inbox(e.UserID), s.k.ack(e.UserID), s.k.share(e.UserID))
				c.entries = append(c.entries, i)
				inShared[e.UserID] = true
				delete(open, e.UserID)
				continue
			}
		} else {
			shared = -1
		}
		ri, ok := open[e.UserID]
		if !ok || runs[ri].n == maxEntriesPerRun || calls[runs[ri].call].size >= maxEntriesPerCall {
			// A new run, in the last call while that takes runs and has
			// room: after every earlier entry of the user.
			last := len(calls) - 1
			if s.cluster || last < 0 || calls[last].shared || calls[last].size >= maxEntriesPerCall {
				calls = append(calls, appendCall{op: op{script: appendScript}})
				last++
			}
			ri = len(runs)
			runs = append(runs, appendRun{call: last, user: e.UserID})
			open[e.UserID] = ri
		}
		runOf[i] = ri
		r := &runs[ri]
		r.n++
		if e.Dedup != "" {
			r.dedups++
		} else if !e.Once && !e.Droppable {
			// Stored again if run again: a group message's copy.
			calls[r.call].once = true
		}
		calls[r.call].size++
	}
	// Each run's entries in order, the runs one after another (a call's
	// runs are consecutive: a run only ever opens in the last call).
	next := make([]int, len(runs))
	total := 0
	for ri, r := range runs {
		next[ri] = total
		total += r.n
	}
	order := make([]int, total)
	for i, ri := range runOf {
		if ri >= 0 {
			order[next[ri]] = i
			next[ri]++
		}
	}
	pos, ri := 0, 0
	for ci := range calls {
		c := &calls[ci]
		if c.shared {
			continue
		}
		first := ri
		nkeys, nargs := 0, len(head)
		for ; ri < len(runs) && runs[ri].call == ci; ri++ {
			nkeys += 5 + runs[ri].dedups
			nargs += 1 + 5*runs[ri].n
		}
		c.keys = make([]string, 0, nkeys)
		c.args = append(make([]any, 0, nargs), head...)
		c.entries = order[pos : pos+c.size : pos+c.size]
		for _, r := range runs[first:ri] {
			c.keys = append(c.keys, s.k.inboxSeq(r.user), s.k.inbox(r.user), s.k.ack(r.user), s.k.share(r.user), s.k.blk(r.user))
			c.args = append(c.args, r.n)
			for _, i := range order[pos : pos+r.n] {
				e := entries[i]
				if e.Dedup != "" {
					c.keys = append(c.keys, s.k.dedup(e.UserID, e.Dedup))
				}
				flag, sender := appendFlag(e)
				c.args = append(c.args, e.MsgID, tsOr(e.TS, now), e.Frame, flag, sender)
			}
			pos += r.n
		}
	}
	return calls
}

// appendFlag is an entry's flag and sender for appendRunLua (constants:
// this runs for every entry of every batch).
func appendFlag(e Append) (flag, sender string) {
	dedup := e.Dedup != ""
	switch {
	case e.From != "" && e.Sender != "" && dedup:
		return "P", e.From
	case e.From != "" && e.Sender != "":
		return "p", e.From
	case e.From != "" && dedup:
		return "Q", e.From
	case e.From != "":
		return "q", e.From
	case e.Once:
		return "o", e.Sender
	case dedup:
		return "1", e.Sender
	case e.Droppable:
		return "r", e.Sender
	}
	return "0", e.Sender
}

// tsOr is ts, or now for 0.
func tsOr(ts, now int64) int64 {
	if ts == 0 {
		return now
	}
	return ts
}

// sameCopy reports whether b is another copy of a's entry: the same frame
// (the very same bytes, as a group message's copies share), time, id and
// sender.
func (s *Store) sameCopy(a, b Append) bool {
	return b.Dedup == "" && len(a.Frame) > 0 && len(a.Frame) == len(b.Frame) &&
		&a.Frame[0] == &b.Frame[0] && a.TS == b.TS && a.MsgID == b.MsgID && a.Sender == b.Sender
}

// appended reads the answers of calls (aligned with them) into out, which
// is aligned with the entries.
func appended(calls []appendCall, res []redis.Cmder, out []Appended, entries []Append) error {
	for ci, c := range calls {
		v, _ := res[ci].(*redis.Cmd).Slice()
		if c.shared {
			if len(v) != len(c.entries) {
				return unavailable(fmt.Errorf("shared append script answered %d values for %d users", len(v), len(c.entries)))
			}
			for j, i := range c.entries {
				seq := u64(v[j])
				out[i] = Appended{MsgID: entries[i].MsgID, Seq: seq, Refused: seq == 0}
			}
			continue
		}
		if len(v) != 4*len(c.entries) {
			return unavailable(fmt.Errorf("append script answered %d values for %d entries", len(v), len(c.entries)))
		}
		for j, i := range c.entries {
			r := v[4*j : 4*j+4]
			status := fmt.Sprint(r[0])
			a := Appended{MsgID: str(r[1]), Resend: status == "1", Refused: status == "3", Seq: u64(r[2])}
			switch status {
			case "4":
				a.Blocked = model.BlockedByRecipient
			case "5":
				a.Blocked = model.BlockedBySender
			}
			if a.Resend && r[3] != nil {
				a.Stored, _ = parseEntry(str(r[3]))
			}
			out[i] = a
		}
	}
	return nil
}

// Append stores entries: a run per user (seq, inbox and dedup of a
// recipient change atomically, the user's entries in order), many users'
// runs per script call on a single node (see appendCalls), pipelined, a
// round trip per thousand calls. The answer is aligned with entries. On
// error some entries may be stored and others not: the caller fails as a
// whole and a retry is deduplicated.
func (s *Store) Append(ctx context.Context, entries []Append) ([]Appended, error) {
	w, err := s.Write(ctx, Write{Appends: entries})
	return w.Appended, err
}

// Write is model.Write (package model holds the shared types).
type Write = model.Write

// Written is model.Written (package model holds the shared types).
type Written = model.Written

// Write runs w; see Write (the type).
func (s *Store) Write(ctx context.Context, w Write) (Written, error) {
	calls := s.appendCalls(w.Appends)
	ops := make([]op, 0, len(calls)+len(w.Acks)+len(w.Routes)*len(s.slots))
	for _, c := range calls {
		ops = append(ops, c.op)
	}
	for _, a := range w.Acks {
		ops = append(ops, op{script: raiseAckScript, keys: []string{s.k.ack(a.UserID)}, args: []any{a.Seq}})
	}
	for _, uid := range w.Routes {
		ops = s.appendRouteOps(ops, uid)
	}
	if len(ops) == 0 {
		return Written{}, nil
	}
	var res []redis.Cmder
	var err error
	if s.cluster && len(calls) > 0 && len(w.Acks) > 0 {
		// An ACK raised before the receipts it caused are stored loses
		// them for good if the route dies in between (the next ACK starts
		// after it). One pipeline keeps that order on one Redis, but a
		// cluster pipeline goes to each master at once: there the appends
		// are written first, then the rest.
		res, err = s.run(ctx, ops[:len(calls)])
		if err == nil {
			var rest []redis.Cmder
			rest, err = s.run(ctx, ops[len(calls):])
			res = append(res, rest...)
		}
	} else {
		res, err = s.run(ctx, ops)
	}
	if err != nil {
		return Written{}, err
	}
	out := Written{Appended: make([]Appended, len(w.Appends))}
	if err := appended(calls, res, out.Appended, w.Appends); err != nil {
		return Written{}, err
	}
	if len(w.Routes) > 0 {
		out.Routes = routesOf(w.Routes, len(s.slots), res[len(res)-len(w.Routes)*len(s.slots):])
	}
	return out, nil
}

// Ranges answers queries, one pipeline for all. The answer is aligned with qs.
func (s *Store) Ranges(ctx context.Context, qs []RangeQuery) ([]Range, error) {
	if len(qs) == 0 {
		return nil, nil
	}
	calls := make([]scriptCall, len(qs))
	bytes := make([]int, len(qs)) // each range's MaxBytes
	for i, q := range qs {
		fromAcked := "0"
		if q.FromAcked {
			fromAcked = "1"
		}
		limit := max(q.Limit, 1)
		maxBytes := q.MaxBytes
		if maxBytes <= 0 {
			maxBytes = DefaultRangeBytes
		}
		bytes[i] = maxBytes
		afterTS := "0"
		if q.AfterTS {
			afterTS = "1"
		}
		calls[i] = scriptCall{
			[]string{s.k.inboxSeq(q.UserID), s.k.inbox(q.UserID), s.k.ack(q.UserID)},
			[]any{q.After, q.Upto, limit, fromAcked, maxBytes, afterTS},
		}
	}
	res := make([]*redis.Cmd, 0, len(calls))
	for start := 0; start < len(calls); {
		end, budget := start, 0
		for end < len(calls) && (end == start || budget+bytes[end] <= rangeTripBytes) {
			budget += bytes[end]
			end++
		}
		r, err := s.evalAll(ctx, rangeScript, calls[start:end])
		if err != nil {
			return nil, err
		}
		res = append(res, r...)
		start = end
	}
	out := make([]Range, len(qs))
	for i, c := range res {
		v, _ := c.Slice()
		if len(v) != 6 {
			return nil, unavailable(fmt.Errorf("range script answered %v", v))
		}
		r := Range{After: u64(v[0]), Head: u64(v[1]), First: u64(v[2]), Acked: u64(v[3]), AfterTS: int64(u64(v[5]))}
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
	_, err := s.Write(ctx, Write{Acks: acks})
	return err
}

// InboxBefore returns up to n entries of uid's inbox with a seq below before
// (0: from the newest), newest first. History scans page with it.
func (s *Store) InboxBefore(ctx context.Context, uid string, before uint64, n int) ([]Entry, error) {
	res, err := s.evalAll(ctx, historyScript, []scriptCall{{keys: []string{s.k.inbox(uid)}, args: []any{before, max(n, 1)}}})
	if err != nil {
		return nil, err
	}
	members, _ := res[0].Slice()
	out := make([]Entry, 0, len(members))
	for i := len(members) - 1; i >= 0; i-- { // newest first
		if e, ok := parseEntry(str(members[i])); ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// maxPipeline bounds the commands of one pipeline: a group message to
// thousands of members goes out as pipelines of this many appends, one
// round trip each, so neither side buffers an unbounded batch.
const maxPipeline = 1000

// op is one command of a pipeline: a script run when script is set, else an
// HMGET of keys[0] for fields.
type op struct {
	script *redis.Script
	keys   []string
	args   []any
	fields []string
	// once: the script run must not run twice (an append without a dedup
	// key); go-redis then retries nothing of its pipeline (noretry).
	once bool
}

// scriptCall is one run of a script in a pipeline.
type scriptCall struct {
	keys []string
	args []any
}

// evalAll runs script once per call; see run.
func (s *Store) evalAll(ctx context.Context, script *redis.Script, calls []scriptCall) ([]*redis.Cmd, error) {
	ops := make([]op, len(calls))
	for i, c := range calls {
		ops[i] = op{script: script, keys: c.keys, args: c.args}
	}
	res, err := s.run(ctx, ops)
	if err != nil {
		return nil, err
	}
	out := make([]*redis.Cmd, len(res))
	for i, c := range res {
		out[i] = c.(*redis.Cmd)
	}
	return out, nil
}

// run sends ops as pipelines of at most maxPipeline commands each, one
// after the other (so a user's commands keep their order), and returns
// their answers aligned with ops. Script runs that found the script missing
// (NOSCRIPT: a restarted or flushed Redis, or a new cluster node) did not
// run; they go again once their scripts are loaded.
func (s *Store) run(ctx context.Context, ops []op) ([]redis.Cmder, error) {
	res := make([]redis.Cmder, 0, len(ops))
	for chunk := range slices.Chunk(ops, maxPipeline) {
		r, err := s.runPipeline(ctx, chunk)
		if err != nil {
			return nil, err
		}
		res = append(res, r...)
	}
	return res, nil
}

// loadScripts loads the scripts of ops that this Store has not seen
// loaded. Rerunning ops that hit NOSCRIPT could put a user's entries out of
// order when one pipeline mixes scripts (shared and per-user appends), so
// scripts are loaded before their first pipeline; only after Redis loses
// them (a restart or SCRIPT FLUSH) does one pipeline fall back to reruns.
func (s *Store) loadScripts(ctx context.Context, ops []op) error {
	for i, o := range ops {
		if o.script == nil || (i > 0 && o.script == ops[i-1].script) {
			continue
		}
		if _, ok := s.loaded.Load(o.script); ok {
			continue
		}
		if err := o.script.Load(ctx, s.rdb).Err(); err != nil {
			return unavailable(err)
		}
		s.loaded.Store(o.script, true)
	}
	return nil
}

func (s *Store) runPipeline(ctx context.Context, ops []op) ([]redis.Cmder, error) {
	if err := s.loadScripts(ctx, ops); err != nil {
		return nil, err
	}
	res := make([]redis.Cmder, len(ops))
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, o := range ops {
			res[i] = queue(ctx, p, o)
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
	// Redis lost its scripts (a restart or SCRIPT FLUSH): load them again,
	// then rerun what found them missing.
	s.loaded.Clear()
	rerun := make([]op, len(again))
	for k, i := range again {
		rerun[k] = ops[i]
	}
	if err := s.loadScripts(ctx, rerun); err != nil {
		return nil, err
	}
	cmds, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, i := range again {
			res[i] = queue(ctx, p, rerun[k])
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

// queue adds o to p.
func queue(ctx context.Context, p redis.Pipeliner, o op) redis.Cmder {
	switch {
	case o.script == nil:
		return p.HMGet(ctx, o.keys[0], o.fields...)
	case o.once:
		return noretry.EvalSha(ctx, p, o.script, o.keys, o.args...)
	}
	return o.script.EvalSha(ctx, p, o.keys, o.args...)
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
