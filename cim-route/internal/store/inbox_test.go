package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/internal/testenv"
)

func msgAppend(to, from, cmid, msgID string) Append {
	a := Append{UserID: to, Frame: []byte("frame " + msgID), MsgID: msgID}
	if cmid != "" {
		a.Dedup = from + ":" + cmid
	}
	return a
}

func TestAppendDedup(t *testing.T) {
	s, rdb, _ := newStore(t)
	ctx := ctxT(t)
	tests := []struct {
		name       string
		in         Append
		wantSeq    uint64
		wantMsgID  string
		wantResend bool
	}{
		{"first", msgAppend("7", "1", "c1", "m1"), 1, "m1", false},
		{"resend", msgAppend("7", "1", "c1", "m1-again"), 1, "m1", true},
		{"other client id", msgAppend("7", "1", "c2", "m2"), 2, "m2", false},
		{"same client id, other sender", msgAppend("7", "2", "c1", "m3"), 3, "m3", false},
		{"no dedup key", msgAppend("7", "1", "", "r1"), 4, "r1", false},
		{"no dedup key again", msgAppend("7", "1", "", "r1"), 5, "r1", false},
		{"other recipient has its own seq", msgAppend("8", "1", "c1", "m4"), 1, "m4", false},
		{"resend of the second", msgAppend("7", "1", "c2", "m5"), 2, "m2", true},
	}
	for _, tt := range tests {
		got, err := s.Append(ctx, []Append{tt.in})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		g := got[0]
		if g.Seq != tt.wantSeq || g.MsgID != tt.wantMsgID || g.Resend != tt.wantResend {
			t.Errorf("%s: got %+v, want seq %d id %s resend %v", tt.name, g, tt.wantSeq, tt.wantMsgID, tt.wantResend)
		}
		if g.Resend && (g.Stored.Seq != g.Seq || string(g.Stored.Frame) != "frame "+tt.wantMsgID || g.Stored.TS == 0) {
			t.Errorf("%s: stored entry %+v", tt.name, g.Stored)
		}
	}
	if n := rdb.LLen(ctx, "cim:inbox:{7}").Val(); n != 5 {
		t.Fatalf("inbox of 7 holds %d entries, want 5 (resends stored nothing)", n)
	}
	// The contract's key layout.
	if v := rdb.Get(ctx, "cim:dedup:{7}:1:c1").Val(); v != "m1|1" {
		t.Fatalf("dedup value %q, want m1|1", v)
	}
	if ttl := rdb.PTTL(ctx, "cim:dedup:{7}:1:c1").Val(); ttl <= 23*time.Hour || ttl > 24*time.Hour {
		t.Fatalf("dedup TTL %v, want the 24h window", ttl)
	}
	if v := rdb.Get(ctx, "cim:seq:{7}").Val(); v != "5" {
		t.Fatalf("seq:{7} = %q", v)
	}
	if ttl := rdb.PTTL(ctx, "cim:inbox:{7}").Val(); ttl <= 167*time.Hour || ttl > 168*time.Hour {
		t.Fatalf("inbox TTL %v, want 7 days", ttl)
	}
	m := rdb.LRange(ctx, "cim:inbox:{7}", 0, 0).Val()
	if len(m) != 1 || !regexpMember(m[0], 1, "frame m1") {
		t.Fatalf("member %q, want 1|<ts>|frame m1", m)
	}

	// A resend within one pipeline is recognized too, and a resend whose
	// entry was trimmed still answers the first id and seq.
	got, err := s.Append(ctx, []Append{msgAppend("9", "1", "x", "a"), msgAppend("9", "1", "x", "b")})
	if err != nil || got[0].Seq != 1 || got[1].Seq != 1 || got[1].MsgID != "a" || !got[1].Resend {
		t.Fatalf("resend in one batch: %+v %v", got, err)
	}
	rdb.Del(ctx, "cim:inbox:{9}")
	got, err = s.Append(ctx, []Append{msgAppend("9", "1", "x", "c")})
	if err != nil || got[0].MsgID != "a" || got[0].Seq != 1 || got[0].Stored.Seq != 0 {
		t.Fatalf("resend after trimming: %+v %v", got, err)
	}
}

func regexpMember(m string, seq uint64, frame string) bool {
	e, ok := parseEntry(m)
	return ok && e.Seq == seq && e.TS > 0 && string(e.Frame) == frame
}

func TestAppendSeqMonotonicUnderConcurrency(t *testing.T) {
	s, rdb, _ := newStore(t)
	ctx := ctxT(t)
	const workers, batches, per = 8, 10, 5
	var mu sync.Mutex
	var seqs []uint64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				var in []Append
				for i := range per {
					in = append(in, msgAppend("5", strconv.Itoa(w), fmt.Sprint(b, "-", i), "m"))
				}
				got, err := s.Append(ctx, in)
				if err != nil {
					t.Error(err)
					return
				}
				// Within one pipeline seqs grow in order.
				for i := 1; i < len(got); i++ {
					if got[i].Seq <= got[i-1].Seq {
						t.Errorf("seqs within a batch not increasing: %+v", got)
					}
				}
				mu.Lock()
				for _, g := range got {
					seqs = append(seqs, g.Seq)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(seqs)
	const n = workers * batches * per
	if len(seqs) != n || seqs[0] != 1 || seqs[n-1] != n || len(slices.Compact(slices.Clone(seqs))) != n {
		t.Fatalf("seqs not exactly 1..%d: %d of them, %v...%v", n, len(seqs), seqs[:3], seqs[len(seqs)-3:])
	}
	r, err := s.Ranges(ctx, []RangeQuery{{UserID: "5", Limit: n}})
	if err != nil || len(r[0].Entries) != n || r[0].Head != n || r[0].First != 1 {
		t.Fatalf("range after concurrent appends: %d entries, %+v, %v", len(r[0].Entries), r[0], err)
	}
	for i, e := range r[0].Entries {
		if e.Seq != uint64(i+1) {
			t.Fatalf("entry %d has seq %d", i, e.Seq)
		}
	}
	if rdb.LLen(ctx, "cim:inbox:{5}").Val() != n {
		t.Fatal("inbox size")
	}
}

func TestInboxTrimming(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	type step struct {
		at    time.Duration // after t0
		count int
		// together: the step's entries go in one call, not one each.
		together bool
	}
	tests := []struct {
		name        string
		limits      InboxLimits
		steps       []step
		first, head uint64
	}{
		{"by length", InboxLimits{MaxLen: 5}, []step{{0, 8, false}}, 4, 8},
		{"by length, one call", InboxLimits{MaxLen: 5}, []step{{0, 8, true}}, 4, 8},
		{"by length, one at a time", InboxLimits{MaxLen: 3}, []step{{0, 1, false}, {0, 1, false}, {0, 1, false}, {0, 1, false}, {0, 1, false}}, 3, 5},
		// By age only when an append takes a multiple of 16 (seq 16).
		{"by age", InboxLimits{TTL: time.Hour}, []step{{0, 3, false}, {30 * time.Minute, 12, false}, {61 * time.Minute, 1, false}}, 4, 16},
		{"by age, not before the 16th seq", InboxLimits{TTL: time.Hour}, []step{{0, 3, false}, {61 * time.Minute, 12, false}}, 1, 15},
		{"by age, a call that takes the 16th seq", InboxLimits{TTL: time.Hour}, []step{{0, 5, false}, {2 * time.Hour, 11, true}}, 6, 16},
		{"nothing old enough", InboxLimits{TTL: time.Hour}, []step{{0, 3, false}, {59 * time.Minute, 13, false}}, 1, 16},
		// At most 8 old entries go per trimming append: the work of one
		// call is bounded; later appends continue.
		{"by age, bounded per append", InboxLimits{TTL: time.Hour}, []step{{0, 20, false}, {2 * time.Hour, 12, false}}, 9, 32},
		{"by age, caught up later", InboxLimits{TTL: time.Hour}, []step{{0, 20, false}, {2 * time.Hour, 28, false}}, 17, 48},
		{"length and age", InboxLimits{MaxLen: 20, TTL: time.Hour}, []step{{0, 2, false}, {90 * time.Minute, 14, false}}, 3, 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, _ := newStore(t)
			WithInbox(tt.limits)(s)
			ctx := ctxT(t)
			for _, st := range tt.steps {
				now := t0.Add(st.at)
				s.now = func() time.Time { return now }
				e := Append{UserID: "1", Frame: []byte("f"), TS: now.UnixMilli()}
				if st.together {
					if _, err := s.Append(ctx, slices.Repeat([]Append{e}, st.count)); err != nil {
						t.Fatal(err)
					}
					continue
				}
				for range st.count {
					if _, err := s.Append(ctx, []Append{e}); err != nil {
						t.Fatal(err)
					}
				}
			}
			r, err := s.Ranges(ctx, []RangeQuery{{UserID: "1", Limit: 100}})
			if err != nil {
				t.Fatal(err)
			}
			got := r[0]
			if got.First != tt.first || got.Head != tt.head || len(got.Entries) != int(tt.head-tt.first+1) || got.Entries[0].Seq != tt.first {
				t.Fatalf("first %d head %d, %d entries; want first %d head %d", got.First, got.Head, len(got.Entries), tt.first, tt.head)
			}
		})
	}
}

func TestRangesAndAcks(t *testing.T) {
	s, rdb, _ := newStore(t)
	ctx := ctxT(t)
	for i := range 10 {
		if _, err := s.Append(ctx, []Append{{UserID: "3", Frame: []byte(fmt.Sprint("e", i+1))}}); err != nil {
			t.Fatal(err)
		}
	}
	seqs := func(r Range) []uint64 {
		var out []uint64
		for _, e := range r.Entries {
			out = append(out, e.Seq)
		}
		return out
	}
	check := func(name string, q RangeQuery, after, head, first uint64, want []uint64) {
		t.Helper()
		r, err := s.Ranges(ctx, []RangeQuery{q})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		g := r[0]
		if g.After != after || g.Head != head || g.First != first || !slices.Equal(seqs(g), want) {
			t.Errorf("%s: after %d head %d first %d seqs %v; want %d %d %d %v", name, g.After, g.Head, g.First, seqs(g), after, head, first, want)
		}
		for _, e := range g.Entries {
			if string(e.Frame) != fmt.Sprint("e", e.Seq) {
				t.Errorf("%s: entry %d frame %q", name, e.Seq, e.Frame)
			}
		}
	}
	check("from the start", RangeQuery{UserID: "3", Limit: 3}, 0, 10, 1, []uint64{1, 2, 3})
	check("the tail", RangeQuery{UserID: "3", After: 8, Limit: 5}, 8, 10, 1, []uint64{9, 10})
	check("nothing new", RangeQuery{UserID: "3", After: 10, Limit: 5}, 10, 10, 1, nil)
	check("bounded above", RangeQuery{UserID: "3", After: 2, Upto: 5, Limit: 10}, 2, 10, 1, []uint64{3, 4, 5})
	check("unknown user", RangeQuery{UserID: "404", Limit: 10}, 0, 0, 1, nil)

	// Acks only go up.
	for _, a := range []struct{ seq, want uint64 }{{5, 5}, {3, 5}, {7, 7}, {7, 7}} {
		if err := s.RaiseAcks(ctx, []Ack{{UserID: "3", Seq: a.seq}}); err != nil {
			t.Fatal(err)
		}
		if got := rdb.Get(ctx, "cim:ack:{3}").Val(); got != strconv.FormatUint(a.want, 10) {
			t.Fatalf("after raising to %d: ack = %s, want %d", a.seq, got, a.want)
		}
	}
	check("from the ack", RangeQuery{UserID: "3", After: 2, FromAcked: true, Limit: 10}, 7, 10, 1, []uint64{8, 9, 10})
	check("after beyond the ack", RangeQuery{UserID: "3", After: 9, FromAcked: true, Limit: 10}, 9, 10, 1, []uint64{10})
	check("ack ignored without from-acked", RangeQuery{UserID: "3", After: 2, Limit: 2}, 2, 10, 1, []uint64{3, 4})
	r, _ := s.Ranges(ctx, []RangeQuery{{UserID: "3", Limit: 1}})
	if r[0].Acked != 7 {
		t.Fatalf("acked = %d", r[0].Acked)
	}

	// Newest first, paged by seq.
	page, err := s.InboxBefore(ctx, "3", 0, 4)
	if err != nil || !slices.Equal(seqs(Range{Entries: page}), []uint64{10, 9, 8, 7}) {
		t.Fatalf("first history page %v %v", seqs(Range{Entries: page}), err)
	}
	page, _ = s.InboxBefore(ctx, "3", 3, 4)
	if !slices.Equal(seqs(Range{Entries: page}), []uint64{2, 1}) {
		t.Fatalf("last history page %v", seqs(Range{Entries: page}))
	}
}

// TestScriptsSurviveFlush: a Redis that lost its script cache (restart,
// SCRIPT FLUSH, failover) still gets every entry, exactly once.
func TestScriptsSurviveFlush(t *testing.T) {
	s, rdb, _ := newStore(t)
	ctx := ctxT(t)
	if _, err := s.Append(ctx, []Append{msgAppend("1", "2", "a", "m1")}); err != nil {
		t.Fatal(err)
	}
	rdb.ScriptFlush(ctx)
	got, err := s.Append(ctx, []Append{msgAppend("1", "2", "a", "m9"), msgAppend("1", "2", "b", "m2"), msgAppend("1", "2", "c", "m3")})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].MsgID != "m1" || !got[0].Resend || got[1].Seq != 2 || got[2].Seq != 3 {
		t.Fatalf("after SCRIPT FLUSH: %+v", got)
	}
	rdb.ScriptFlush(ctx)
	if err := s.RaiseAcks(ctx, []Ack{{UserID: "1", Seq: 2}}); err != nil {
		t.Fatal(err)
	}
	rdb.ScriptFlush(ctx)
	if r, err := s.Ranges(ctx, []RangeQuery{{UserID: "1", FromAcked: true, Limit: 5}}); err != nil || len(r[0].Entries) != 1 {
		t.Fatalf("range after flush: %+v %v", r, err)
	}
	// A group message's copies (run at most once, see runPipeline): three
	// members in a shared call, then one alone.
	frame := []byte("group")
	for _, users := range [][]string{{"5", "6", "7"}, {"8"}} {
		rdb.ScriptFlush(ctx)
		var in []Append
		for _, u := range users {
			in = append(in, Append{UserID: u, Frame: frame, MsgID: "g1", Sender: "9"})
		}
		got, err := s.Append(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for i, u := range users {
			if n, err := rdb.LLen(ctx, s.k.inbox(u)).Result(); err != nil || n != 1 || got[i].Seq != 1 {
				t.Fatalf("member %s after flush: %d entries (%v), answer %+v; want one, seq 1", u, n, err, got[i])
			}
		}
	}
}

// BenchmarkAppend stores batches of 100 messages to 100 inboxes, one
// pipeline per batch.
func BenchmarkAppend(b *testing.B) {
	srv := testenv.StartRedis(b)
	rdb := NewClient(ClientConfig{Addrs: []string{srv.Addr}})
	b.Cleanup(func() { rdb.Close() })
	s := New(rdb, "cim:")
	ctx := context.Background()
	frame := make([]byte, 200)
	in := make([]Append, 100)
	b.ReportAllocs()
	round := 0
	for b.Loop() {
		b.StopTimer()
		round++
		for i := range in {
			in[i] = Append{UserID: strconv.Itoa(i), Frame: frame, MsgID: "m", Dedup: "1:" + strconv.Itoa(round)}
		}
		b.StartTimer()
		if _, err := s.Append(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(in))/b.Elapsed().Seconds(), "entries/s")
}

// commands counts, per round trip, the commands Redis is sent.
type commands struct {
	mu     sync.Mutex
	trips  int
	counts map[string]int // command name -> times sent
}

func (*commands) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *commands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.note(cmd)
		return next(ctx, cmd)
	}
}
func (c *commands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.note(cmds...)
		return next(ctx, cmds)
	}
}

// warmUp loads the scripts and opens a connection, so that a test counts
// only the round trips of what it tests.
func warmUp(t *testing.T, s *Store) {
	t.Helper()
	shared := []byte("x")
	appends := []Append{{UserID: "0", Frame: shared}, {UserID: "00", Frame: shared}, {UserID: "0", Frame: []byte("y"), Dedup: "0:0"}}
	if _, err := s.Write(ctxT(t), Write{Appends: appends, Acks: []Ack{{UserID: "0", Seq: 1}}}); err != nil {
		t.Fatal(err)
	}
}

// appendCounted appends in after a warm-up, counting what Redis is sent.
func appendCounted(t *testing.T, s *Store, rdb redis.UniversalClient, in []Append) ([]Appended, *commands) {
	t.Helper()
	warmUp(t, s)
	c := &commands{}
	rdb.AddHook(c)
	got, err := s.Append(ctxT(t), in)
	if err != nil {
		t.Fatal(err)
	}
	return got, c
}

func (c *commands) note(cmds ...redis.Cmder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trips++
	if c.counts == nil {
		c.counts = map[string]int{}
	}
	for _, cmd := range cmds {
		c.counts[cmd.Name()]++
	}
}

// TestAppendOneScriptRunPerUser: a batch's entries for one user go in one
// run (up to maxEntriesPerRun), in order, with dedup working within the
// batch too, and the answers line up with the entries. On a single node
// the runs of every user go in one script call (per maxEntriesPerCall), on
// a cluster one call each.
func TestAppendOneScriptRunPerUser(t *testing.T) {
	for _, cluster := range []bool{false, true} {
		t.Run(fmt.Sprint("cluster=", cluster), func(t *testing.T) { testAppendOneScriptRunPerUser(t, cluster) })
	}
}

func testAppendOneScriptRunPerUser(t *testing.T, cluster bool) {
	s, rdb, _ := newStore(t)
	s.cluster = cluster
	ctx := ctxT(t)
	in := []Append{
		msgAppend("7", "1", "c1", "m1"),
		msgAppend("8", "1", "c1", "m2"),
		msgAppend("7", "1", "c2", "m3"),
		msgAppend("7", "1", "c1", "m4"), // a resend of m1 in the same batch
		msgAppend("8", "1", "", "r1"),
		msgAppend("7", "1", "", "r2"),
	}
	for i := range maxEntriesPerRun + 6 { // two runs for user 9
		in = append(in, msgAppend("9", "1", "", fmt.Sprintf("n%d", i)))
	}
	got, c := appendCounted(t, s, rdb, in)
	calls := 1
	if cluster {
		calls = 4 // 7, 8, and 9 twice
	}
	if c.trips != 1 || c.counts["evalsha"] != calls {
		t.Fatalf("%d round trips, commands %v; want 1 round trip of %d script calls", c.trips, c.counts, calls)
	}
	want := []struct {
		seq    uint64
		id     string
		resend bool
	}{{1, "m1", false}, {1, "m2", false}, {2, "m3", false}, {1, "m1", true}, {2, "r1", false}, {3, "r2", false}}
	for i, w := range want {
		if g := got[i]; g.Seq != w.seq || g.MsgID != w.id || g.Resend != w.resend {
			t.Errorf("entry %d: got %+v, want seq %d id %s resend %v", i, g, w.seq, w.id, w.resend)
		}
	}
	if st := got[3].Stored; st.Seq != 1 || string(st.Frame) != "frame m1" {
		t.Errorf("resend's stored entry %+v, want the first (seq 1, frame m1)", st)
	}
	for i := range maxEntriesPerRun + 6 {
		if g := got[6+i]; g.Seq != uint64(i+1) || g.MsgID != fmt.Sprintf("n%d", i) {
			t.Fatalf("user 9 entry %d: got %+v, want seq %d", i, g, i+1)
		}
	}
	if n := rdb.LLen(ctx, "cim:inbox:{7}").Val(); n != 3 {
		t.Fatalf("inbox of 7 holds %d entries, want 3", n)
	}
}

// TestAppendCallsCapped: on a single node a script call takes at most
// maxEntriesPerCall entries; a user whose run sits in a full call gets a
// new run in a later call, after its first.
func TestAppendCallsCapped(t *testing.T) {
	s, rdb, _ := newStore(t)
	const users = maxEntriesPerCall + 44
	var in []Append
	for i := range users {
		in = append(in, msgAppend(fmt.Sprint("u", i), "1", "", fmt.Sprint("a", i)))
	}
	in = append(in, msgAppend("u0", "1", "", "b0"), msgAppend("u0", "1", "c0", "c0"), msgAppend("u0", "1", "c0", "d0"))
	got, c := appendCounted(t, s, rdb, in)
	if c.trips != 1 || c.counts["evalsha"] != 2 {
		t.Fatalf("%d round trips, commands %v; want 1 round trip of 2 script calls", c.trips, c.counts)
	}
	for i := range users {
		if g := got[i]; g.Seq != 1 || g.MsgID != fmt.Sprint("a", i) || g.Resend {
			t.Fatalf("u%d: %+v, want seq 1", i, g)
		}
	}
	if g := got[users]; g.Seq != 2 || g.MsgID != "b0" {
		t.Fatalf("u0's second entry %+v, want seq 2", g)
	}
	if g := got[users+2]; g.Seq != 3 || g.MsgID != "c0" || !g.Resend {
		t.Fatalf("u0's resend %+v, want the first (seq 3, c0)", g)
	}
	r, err := s.Ranges(ctxT(t), []RangeQuery{{UserID: "u0", Limit: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if e := r[0].Entries; len(e) != 3 || string(e[0].Frame) != "frame a0" || string(e[1].Frame) != "frame b0" || string(e[2].Frame) != "frame c0" {
		t.Fatalf("u0's inbox %+v", e)
	}
}

// TestWriteOneRoundTrip: appends, ack raises and route reads go in one
// pipeline, the acks after the appends and the routes read last.
func TestWriteOneRoundTrip(t *testing.T) {
	s, rdb, _ := newStore(t)
	ctx := ctxT(t)
	const gw = "10.0.0.1:9000:8081"
	if _, err := s.ClaimRoute(ctx, "7", Claim{Gateway: gw, Session: "s7", TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := s.Online(ctx, "7", "s7", gw); err != nil {
		t.Fatal(err)
	}
	warmUp(t, s)
	var c commands
	rdb.AddHook(&c)
	w, err := s.Write(ctx, Write{
		Appends: []Append{msgAppend("7", "1", "c1", "m1"), msgAppend("8", "1", "c1", "m2")},
		Acks:    []Ack{{UserID: "7", Seq: 1}, {UserID: "8", Seq: 5}},
		Routes:  []string{"7", "8"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.trips != 1 {
		t.Fatalf("%d round trips (%v), want 1", c.trips, c.counts)
	}
	if len(w.Appended) != 2 || w.Appended[0].Seq != 1 || w.Appended[1].Seq != 1 {
		t.Fatalf("appended %+v", w.Appended)
	}
	if r, ok := w.Routes["7"]; !ok || r.Session != "s7" || r.Gateway != gw || !r.Online() {
		t.Fatalf("route of 7 = %+v, %v", r, ok)
	}
	if _, ok := w.Routes["8"]; ok || len(w.Routes) != 1 {
		t.Fatalf("routes %+v: 8 has none", w.Routes)
	}
	if a := rdb.Get(ctx, "cim:ack:{7}").Val(); a != "1" {
		t.Fatalf("ack of 7 = %q, want 1", a)
	}
	if a := rdb.Get(ctx, "cim:ack:{8}").Val(); a != "5" {
		t.Fatalf("ack of 8 = %q, want 5", a)
	}
}

// TestAppendSharedFrame: the copies of one frame for many users (a group
// message) go as shared runs of up to maxSharedPerCall users, and each
// user's entries keep their batch order around them.
func TestAppendSharedFrame(t *testing.T) {
	s, rdb, _ := newStore(t)
	ctx := ctxT(t)
	const users = maxSharedPerCall + 44
	frame := []byte("group frame")
	ts := time.Now().UnixMilli()
	in := []Append{msgAppend("u0", "1", "before", "p1")}
	for i := range users {
		in = append(in, Append{UserID: fmt.Sprint("u", i), Frame: frame, TS: ts, MsgID: "g1"})
	}
	in = append(in, msgAppend("u0", "1", "after", "p2"))
	// Equal bytes but not the same frame: not copies of one message.
	in = append(in, Append{UserID: "u1", Frame: []byte("group frame"), TS: ts, MsgID: "g1"})
	got, c := appendCounted(t, s, rdb, in)
	// u0 before, two shared calls, then u0 after and u1's lone entry in
	// one call.
	if c.trips != 1 || c.counts["evalsha"] != 4 {
		t.Fatalf("%d round trips, commands %v; want 1 round trip of 4 script calls", c.trips, c.counts)
	}
	if got[0].Seq != 1 || got[1].Seq != 2 || got[1].MsgID != "g1" || got[users+1].Seq != 3 {
		t.Fatalf("u0's seqs: %d, %d, %d; want 1, 2, 3", got[0].Seq, got[1].Seq, got[users+1].Seq)
	}
	for i := 1; i < users; i++ {
		if g := got[1+i]; g.Seq != 1 || g.MsgID != "g1" || g.Resend {
			t.Fatalf("u%d's copy: %+v, want seq 1", i, g)
		}
	}
	if got[users+2].Seq != 2 {
		t.Fatalf("u1's second entry got seq %d, want 2", got[users+2].Seq)
	}
	r, err := s.Ranges(ctx, []RangeQuery{{UserID: "u299", Limit: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if e := r[0].Entries; len(e) != 1 || e[0].Seq != 1 || e[0].TS != ts || string(e[0].Frame) != "group frame" {
		t.Fatalf("u299's inbox %+v", e)
	}
}

// TestInboxListIndexes: the list inbox finds entries by index from the
// first entry's seq, so it must stay right after trimming, after the inbox
// expired while its seq counter did not, and for history pages.
func TestInboxListIndexes(t *testing.T) {
	s, rdb, _ := newStore(t)
	WithInbox(InboxLimits{MaxLen: 5})(s)
	ctx := ctxT(t)
	for i := range 8 { // seqs 1-8; 4-8 kept
		if _, err := s.Append(ctx, []Append{msgAppend("7", "1", fmt.Sprint("c", i), fmt.Sprint("m", i))}); err != nil {
			t.Fatal(err)
		}
	}
	seqs := func(es []Entry) (out []uint64) {
		for _, e := range es {
			out = append(out, e.Seq)
		}
		return out
	}
	r, err := s.Ranges(ctx, []RangeQuery{
		{UserID: "7", After: 2, Limit: 100},          // before the first: from the first
		{UserID: "7", After: 5, Upto: 7, Limit: 100}, // bounded
		{UserID: "7", After: 4, Limit: 2},            // limited
		{UserID: "7", After: 8, Limit: 100},          // nothing newer
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]uint64{{4, 5, 6, 7, 8}, {6, 7}, {5, 6}, nil} {
		if got := seqs(r[i].Entries); !slices.Equal(got, want) || r[i].First != 4 || r[i].Head != 8 {
			t.Errorf("range %d: seqs %v first %d head %d; want %v, 4, 8", i, got, r[i].First, r[i].Head, want)
		}
	}
	h, err := s.InboxBefore(ctx, "7", 7, 2)
	if err != nil || !slices.Equal(seqs(h), []uint64{6, 5}) {
		t.Fatalf("history before 7 = %v, %v; want 6, 5", seqs(h), err)
	}
	// A resend of a trimmed entry and of a kept one.
	got, err := s.Append(ctx, []Append{msgAppend("7", "1", "c0", "again0"), msgAppend("7", "1", "c6", "again6")})
	if err != nil || !got[0].Resend || got[0].Stored.Seq != 0 || !got[1].Resend || got[1].Stored.Seq != 7 || string(got[1].Stored.Frame) != "frame m6" {
		t.Fatalf("resends = %+v, %v", got, err)
	}

	// The inbox expires as a whole; the seq counter goes on.
	rdb.Del(ctx, "cim:inbox:{7}")
	r, err = s.Ranges(ctx, []RangeQuery{{UserID: "7", Limit: 100}})
	if err != nil || r[0].First != 9 || r[0].Head != 8 || len(r[0].Entries) != 0 {
		t.Fatalf("expired inbox: %+v, %v; want first 9, head 8, empty", r, err)
	}
	if got, err := s.Append(ctx, []Append{msgAppend("7", "1", "c9", "m9")}); err != nil || got[0].Seq != 9 {
		t.Fatalf("append after expiry: %+v, %v; want seq 9", got, err)
	}
	r, _ = s.Ranges(ctx, []RangeQuery{{UserID: "7", Limit: 100}})
	if got := seqs(r[0].Entries); !slices.Equal(got, []uint64{9}) || r[0].First != 9 {
		t.Fatalf("after expiry: %v first %d; want [9] first 9", got, r[0].First)
	}
}

// TestSharedAppendTrimsByAgeEvery16th: shared runs trim by length on every
// copy and by age on every 16th seq of an inbox.
func TestSharedAppendTrimsByAgeEvery16th(t *testing.T) {
	s, rdb, _ := newStore(t)
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	WithInbox(InboxLimits{MaxLen: 100, TTL: time.Hour})(s)
	ctx := ctxT(t)
	now := t0
	s.now = func() time.Time { return now }
	for range 14 { // seqs 1-14, old by the time of the group messages
		if _, err := s.Append(ctx, []Append{{UserID: "a", Frame: []byte("old"), TS: t0.UnixMilli()}}); err != nil {
			t.Fatal(err)
		}
	}
	now = t0.Add(2 * time.Hour)
	group := func(id string) {
		t.Helper()
		frame := []byte("group " + id)
		in := []Append{{UserID: "a", Frame: frame, TS: now.UnixMilli(), MsgID: id}, {UserID: "b", Frame: frame, TS: now.UnixMilli(), MsgID: id}}
		if _, err := s.Append(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	group("g15") // seq 15 for a: no age trimming
	if n := rdb.LLen(ctx, "cim:inbox:{a}").Val(); n != 15 {
		t.Fatalf("after seq 15: %d entries, want 15", n)
	}
	group("g16") // seq 16: up to eight old ones go
	if n := rdb.LLen(ctx, "cim:inbox:{a}").Val(); n != 16-8 {
		t.Fatalf("after seq 16: %d entries, want 8", n)
	}
	r, err := s.Ranges(ctx, []RangeQuery{{UserID: "a", Limit: 100}})
	if err != nil || r[0].First != 9 || r[0].Head != 16 || len(r[0].Entries) != 8 {
		t.Fatalf("range after trimming: %+v, %v", r, err)
	}
}
