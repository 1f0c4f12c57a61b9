package client

import (
	"slices"
	"testing"
	"time"

	"github.com/gocim/gocim/proto/cimpb"
)

// step is one thing that happens to an inbox, and what it must answer.
type step struct {
	add    uint64        // an entry with this seq arrives (MSG, or RECEIPT when receipt is set)
	answer *cimpb.Sync   // a SYNC answer arrives
	linkUp bool          // a new link logged in
	expire time.Duration // expire is called this long after the start

	receipt  bool
	wantShow []uint64
	wantSync bool
}

func msgEntry(seq uint64) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{Seq: seq}}
}

func receiptEntry(seq uint64) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_RECEIPT, Receipt: &cimpb.Receipt{Seq: seq, Status: cimpb.ReceiptStatus_RECEIPT_DELIVERED}}
}

func syncAns(after, head, first, last uint64) *cimpb.Sync {
	return &cimpb.Sync{AfterSeq: after, HeadSeq: head, FirstSeq: first, LastSeq: last}
}

// run feeds steps to an inbox whose SYNC outstanding at the start is
// settled (linkUp steps model logins).
func runSteps(t *testing.T, in *inbox, steps []step) {
	t.Helper()
	start := time.Unix(1000, 0)
	for i, st := range steps {
		var show []*cimpb.Frame
		var sync bool
		now := start.Add(time.Duration(i) * time.Millisecond)
		switch {
		case st.linkUp:
			in.linkUp(now)
		case st.answer != nil:
			show, sync = in.answer(st.answer, now)
		case st.expire != 0:
			sync, _ = in.expire(start.Add(st.expire), 10*time.Second)
		default:
			f := msgEntry(st.add)
			if st.receipt {
				f = receiptEntry(st.add)
			}
			show, sync = in.add(st.add, f, now)
		}
		var got []uint64
		for _, f := range show {
			seq, ok := seqOf(f)
			if !ok {
				t.Fatalf("step %d: shown a frame without payload", i)
			}
			got = append(got, seq)
		}
		if !slices.Equal(got, st.wantShow) || sync != st.wantSync {
			t.Fatalf("step %d (%+v): showed %v sync %v, want %v sync %v", i, st, got, sync, st.wantShow, st.wantSync)
		}
	}
}

func TestInboxTracker(t *testing.T) {
	for _, tc := range []struct {
		name     string
		last     uint64 // starting point
		steps    []step
		wantLast uint64
		wantHeld int
	}{
		{
			name: "in order, duplicates dropped",
			steps: []step{
				{add: 1, wantShow: []uint64{1}},
				{add: 2, wantShow: []uint64{2}, receipt: true},
				{add: 2},
				{add: 1},
				{add: 3, wantShow: []uint64{3}},
			},
			wantLast: 3,
		},
		{
			name: "gap held back, one SYNC, filled by the answer",
			last: 5,
			steps: []step{
				{add: 8, wantSync: true},
				{add: 9}, // a SYNC is outstanding: no second one
				{add: 8}, // duplicate of a held entry
				{add: 6, wantShow: []uint64{6}},
				{add: 7, wantShow: []uint64{7, 8, 9}},
				{answer: syncAns(5, 9, 1, 9)},
			},
			wantLast: 9,
		},
		{
			name: "live push during sync: no duplicate, no reorder",
			last: 5,
			steps: []step{
				{add: 9, wantSync: true}, // live, ahead
				{add: 6, wantShow: []uint64{6}},
				{add: 10},                              // live again, while the answer streams
				{add: 7, wantShow: []uint64{7}},        // from the answer
				{add: 8, wantShow: []uint64{8, 9, 10}}, // from the answer, releases the live ones
				{add: 9},                               // the answer repeats the live one
				{add: 10},
				{answer: syncAns(5, 10, 1, 10)},
				{add: 11, wantShow: []uint64{11}},
			},
			wantLast: 11,
		},
		{
			name: "answer that does not fill the gap asks again",
			last: 2,
			steps: []step{
				{add: 6, wantSync: true},
				{add: 3, wantShow: []uint64{3}},
				{answer: syncAns(2, 3, 1, 3), wantSync: true}, // stale read: 4, 5 still missing
				{add: 4, wantShow: []uint64{4}},
				{add: 5, wantShow: []uint64{5, 6}},
				{answer: syncAns(3, 6, 1, 6)},
			},
			wantLast: 6,
		},
		{
			name: "paged answer asks for the next page",
			steps: []step{
				{add: 1, wantShow: []uint64{1}},
				{add: 2, wantShow: []uint64{2}},
				{answer: syncAns(0, 5, 1, 2), wantSync: true},
				{add: 3, wantShow: []uint64{3}},
				{add: 4, wantShow: []uint64{4}},
				{add: 5, wantShow: []uint64{5}},
				{answer: syncAns(2, 5, 1, 5)},
			},
			wantLast: 5,
		},
		{
			name: "trimmed range is skipped",
			last: 3,
			steps: []step{
				{linkUp: true},
				{add: 10}, // first entry of the answer; the login SYNC is outstanding
				{add: 11},
				{answer: syncAns(3, 11, 10, 11), wantShow: []uint64{10, 11}},
			},
			wantLast: 11,
		},
		{
			name: "trim keeps live entries below first_seq",
			last: 3,
			steps: []step{
				{linkUp: true},
				{add: 5}, // live push, then trimmed away at the route
				{add: 8},
				{answer: syncAns(3, 8, 8, 8), wantShow: []uint64{5, 8}},
			},
			wantLast: 8,
		},
		{
			name: "everything trimmed: empty answer moves last to head",
			last: 3,
			steps: []step{
				{answer: syncAns(3, 9, 10, 0)},
				{add: 10, wantShow: []uint64{10}},
			},
			wantLast: 10,
		},
		{
			name:     "empty answer without first_seq means nothing is retained",
			last:     3,
			steps:    []step{{answer: syncAns(3, 9, 0, 0)}},
			wantLast: 9,
		},
		{
			name: "from_acked: new client starts after the server-side ack",
			steps: []step{
				{linkUp: true},
				{add: 43}, // live push before the answer
				{add: 41}, // answer entries
				{add: 42},
				{add: 43},
				{answer: syncAns(40, 43, 1, 43), wantShow: []uint64{41, 42, 43}},
				{add: 41},
				{add: 44, wantShow: []uint64{44}},
			},
			wantLast: 44,
		},
		{
			name: "from_acked drops held entries already acknowledged",
			steps: []step{
				{linkUp: true},
				{add: 39},
				{answer: syncAns(40, 40, 1, 0)},
			},
			wantLast: 40,
		},
		{
			name: "hole inside the covered range is skipped",
			last: 1,
			steps: []step{
				{add: 4, wantSync: true}, // 2 and 3 never come
				{answer: syncAns(1, 4, 1, 4), wantShow: []uint64{4}},
			},
			wantLast: 4,
		},
		{
			name: "answer without progress waits for the timeout",
			last: 1,
			steps: []step{
				{add: 500, wantSync: true},
				{answer: syncAns(1, 500, 1, 0)}, // nothing came: no spinning
				{expire: 5 * time.Second},
				{expire: 11 * time.Second, wantSync: true},
			},
			wantLast: 1,
			wantHeld: 1,
		},
		{
			name: "login SYNC outstanding: a gap waits for its answer",
			last: 5,
			steps: []step{
				{linkUp: true},
				{add: 7},
				{add: 6, wantShow: []uint64{6, 7}},
				{answer: syncAns(5, 7, 1, 7)},
				{add: 9, wantSync: true},
			},
			wantLast: 7,
			wantHeld: 1,
		},
		{
			name: "unanswered SYNC is asked again after the timeout",
			last: 5,
			steps: []step{
				{linkUp: true},
				{expire: 9 * time.Second},
				{expire: 10 * time.Second, wantSync: true},
				{answer: syncAns(5, 5, 1, 0)},
				{expire: 30 * time.Second},
			},
			wantLast: 5,
		},
		{
			name: "old answer after newer live entries changes nothing",
			last: 10,
			steps: []step{
				{add: 8},
				{answer: syncAns(7, 10, 1, 8)},
			},
			wantLast: 10,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newInbox(0)
			in.last = tc.last
			runSteps(t, in, tc.steps)
			if in.lastSeq() != tc.wantLast || in.heldCount() != tc.wantHeld {
				t.Errorf("last %d held %d, want %d and %d", in.lastSeq(), in.heldCount(), tc.wantLast, tc.wantHeld)
			}
		})
	}
}

// A full buffer drops the highest seqs; a SYNC answer must not skip them as
// holes, and the next page brings them back.
func TestInboxBufferBound(t *testing.T) {
	in := newInbox(3)
	in.last = 1
	runSteps(t, in, []step{
		{add: 5, wantSync: true},
		{add: 6},
		{add: 8},
		{add: 7}, // full: 8 gives way
		{add: 9}, // dropped
		{add: 2, wantShow: []uint64{2}},
		{add: 3, wantShow: []uint64{3}},
		{add: 4, wantShow: []uint64{4, 5, 6, 7}},
		// The answer covered up to 9, but 8 and 9 were thrown away here.
		{answer: syncAns(1, 9, 1, 9), wantSync: true},
		{add: 8, wantShow: []uint64{8}},
		{add: 9, wantShow: []uint64{9}},
		{answer: syncAns(7, 9, 1, 9)},
	})
	if in.lastSeq() != 9 || in.heldCount() != 0 || in.dropped != 0 {
		t.Errorf("last %d held %d dropped %d, want 9, 0, 0", in.lastSeq(), in.heldCount(), in.dropped)
	}
}

func TestInboxStartsAtLast(t *testing.T) {
	in := newInbox(0)
	in.last = 1
	runSteps(t, in, []step{{add: 2, wantShow: []uint64{2}}})
}

// TestInboxSkippedFrame: a frame read past for its size asks for one SYNC
// (none while one is outstanding); the answer covering the missing seq
// moves last past it.
func TestInboxSkippedFrame(t *testing.T) {
	now := time.Unix(1000, 0)
	in := newInbox(0)
	if show, _ := in.add(1, msgEntry(1), now); len(show) != 1 {
		t.Fatalf("seq 1 not shown: %v", show)
	}
	// seq 2 was too large and skipped.
	if !in.skipped(now) {
		t.Fatal("a skipped frame did not ask for a SYNC")
	}
	if in.skipped(now) {
		t.Fatal("a second SYNC asked while one is outstanding")
	}
	// The answer after 1 carries nothing the client could read, and says it
	// covered up to 2.
	show, sync := in.answer(syncAns(1, 2, 1, 2), now)
	if len(show) != 0 || sync || in.lastSeq() != 2 {
		t.Fatalf("after the answer: show %v sync %v last %d, want nothing, no SYNC, last 2", show, sync, in.lastSeq())
	}
}

// TestInboxGapWait: with a gap wait, an entry ahead of its predecessor is
// held without a SYNC; the predecessor arriving within the wait shows both
// and nothing is asked; a gap still open when the wait ends is asked for by
// expire; a gap while entries had to be dropped for space is asked at once.
func TestInboxGapWait(t *testing.T) {
	const wait = 100 * time.Millisecond
	t0 := time.Unix(1000, 0)
	in := newInbox(0).waitForGaps(wait)
	in.last = 5

	if show, sync := in.add(7, msgEntry(7), t0); len(show) != 0 || sync {
		t.Fatalf("7 after 5: showed %d, sync %v; want it held, no SYNC yet", len(show), sync)
	}
	if sync, next := in.expire(t0.Add(wait/2), time.Minute); sync || !next.Equal(t0.Add(wait)) {
		t.Fatalf("within the wait: sync %v, next %v; want no SYNC, look again at %v", sync, next, t0.Add(wait))
	}
	show, sync := in.add(6, msgEntry(6), t0.Add(wait/2))
	if got := seqsOf(show); !slices.Equal(got, []uint64{6, 7}) || sync {
		t.Fatalf("6 arrives: showed %v sync %v, want [6 7] and no SYNC", got, sync)
	}
	if sync, next := in.expire(t0.Add(2*wait), time.Minute); sync || !next.IsZero() {
		t.Fatalf("gap filled: expire says sync %v next %v, want nothing", sync, next)
	}

	t1 := t0.Add(time.Second)
	in.add(9, msgEntry(9), t1)
	in.add(10, msgEntry(10), t1.Add(wait/2)) // the wait runs from the first
	if sync, _ := in.expire(t1.Add(wait-time.Millisecond), time.Minute); sync {
		t.Fatal("SYNC before the wait ended")
	}
	if sync, next := in.expire(t1.Add(wait), time.Minute); !sync || !next.Equal(t1.Add(wait+time.Minute)) {
		t.Fatalf("gap open after the wait: sync %v next %v, want a SYNC, outstanding until %v", sync, next, t1.Add(wait+time.Minute))
	}
	if _, sync := in.add(12, msgEntry(12), t1.Add(wait)); sync {
		t.Fatal("a second SYNC while one is outstanding")
	}

	full := newInbox(2).waitForGaps(wait)
	full.add(3, msgEntry(3), t0)
	full.add(4, msgEntry(4), t0)
	if _, sync := full.add(5, msgEntry(5), t0); !sync {
		t.Fatal("entries dropped for space: want a SYNC at once")
	}
}

func seqsOf(fs []*cimpb.Frame) []uint64 {
	var out []uint64
	for _, f := range fs {
		seq, _ := seqOf(f)
		out = append(out, seq)
	}
	return out
}
