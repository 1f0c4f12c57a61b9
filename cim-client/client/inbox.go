package client

import (
	"slices"
	"sync"
	"time"

	"github.com/gocim/gocim/proto/cimpb"
)

// defaultInboxBuffer bounds the entries held back while waiting for a gap to
// fill: one SYNC page (at most 200) plus a good margin of live pushes.
const defaultInboxBuffer = 1024

// inbox tracks the inbox sequence numbers this client has shown, so that
// every stored MSG and RECEIPT is shown exactly once and in seq order, live
// or synced, across links and gateways (docs/ARCHITECTURE.md, "Reliable
// delivery").
//
// last is the highest seq up to which everything has been shown (or is
// known to be gone). An entry at or below last is a duplicate; last+1 is
// shown along with every held-back successor; anything beyond is held back
// and one SYNC after=last fills the gap. At most one SYNC is outstanding: the
// gateway sends one on the client's behalf after every LOGIN, and a request
// unanswered for the sync timeout is asked again.
//
// Seqs can go back: Redis that loses the tail of what it acknowledged (a
// crash within its fsync window, a restored backup) hands out seqs this
// client has shown already, for new entries. The client must not drop
// those as repeats. When a SYNC answer's head is below last, or a new
// message arrives under a seq shown before for another message, the inbox
// rewinds: last goes back (rewindSpan below the evidence) and the SYNC that
// follows brings the entries again; the client drops the messages among
// them it has shown before by msgId, and shows the new ones, in order.
//
// Pure bookkeeping: callers pass the time and send the SYNC themselves.
// Entries with seq 0 (broadcasts, direct answers) never come here. Safe for
// concurrent use; frames are handed back in the order to show them.
type inbox struct {
	mu      sync.Mutex
	last    uint64
	held    map[uint64]*cimpb.Frame // seq > last+1, waiting for the gap
	maxHeld int
	// dropped is the lowest seq thrown away because held was full (0: none
	// since last passed it). A SYNC answer must not skip past it as a hole.
	dropped uint64
	// syncing: a SYNC is outstanding since syncSince.
	syncing   bool
	syncSince time.Time
	// gapWait is how long a gap may stay open before a SYNC asks for it
	// (0: at once). Entries are reordered on their way: the route stores
	// and pushes concurrent batches in parallel, and several route
	// replicas push to one gateway. A gap that fills within gapWait costs
	// nothing; a SYNC for it would read and send the entries again, and in
	// a large group every member would ask at once.
	gapWait time.Duration
	// gapSince is when the gap that is waiting opened (zero: none).
	gapSince time.Time
	// rewound: last went back (rewind); answers to SYNCs asked before,
	// after a higher seq, are ignored until one asked since comes.
	rewound bool
	// stamps: the timestamps of the entries shown last, by seq.
	stamps stamps
}

func newInbox(maxHeld int) *inbox {
	if maxHeld <= 0 {
		maxHeld = defaultInboxBuffer
	}
	return &inbox{held: map[uint64]*cimpb.Frame{}, maxHeld: maxHeld}
}

// waitForGaps sets gapWait (negative: 0) and returns in.
func (in *inbox) waitForGaps(d time.Duration) *inbox {
	in.gapWait = max(d, 0)
	return in
}

// rewindSpan is how far below the evidence of seqs going back the inbox
// rewinds: entries written between the loss and its discovery are in it.
// It is well within what the client remembers by msgId (shownKept), so
// that what it had shown there is recognized and not shown again.
const rewindSpan = 1024

// rewind moves last back to to (when below it), after seqs went back: the
// entries above are asked for again. It reports whether to send
// SYNC{after_seq: lastSeq()} now.
func (in *inbox) rewind(to uint64, now time.Time) (sync bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.rewindLocked(to, now)
}

func (in *inbox) rewindLocked(to uint64, now time.Time) bool {
	if to >= in.last {
		return false
	}
	in.last, in.rewound = to, true
	if in.dropped != 0 && in.dropped <= in.last {
		in.dropped = 0
	}
	// A SYNC outstanding now asks after the old last: its answer must not
	// count. Ask again from here.
	in.syncing = false
	return in.requestLocked(now)
}

// stamps remembers the timestamp_ms of the last few entries shown, by seq:
// a SYNC names the one at its after_seq, and the answer says what the inbox
// holds there now.
type stamps struct {
	seq  [64]uint64
	ts   [64]int64
	next int
}

func (s *stamps) put(seq uint64, f *cimpb.Frame) {
	ts := f.GetMsg().GetTimestampMs()
	if f.GetType() == cimpb.Type_RECEIPT {
		ts = f.GetReceipt().GetTimestampMs()
	}
	s.seq[s.next], s.ts[s.next] = seq, ts
	s.next = (s.next + 1) % len(s.seq)
}

// at returns the timestamp of the entry shown at seq (0: not known).
func (s *stamps) at(seq uint64) int64 {
	for i, q := range s.seq {
		if q == seq && seq != 0 {
			return s.ts[i]
		}
	}
	return 0
}

// position returns last and the timestamp_ms of the entry shown there (0:
// unknown), for LOGIN and SYNC.
func (in *inbox) position() (uint64, int64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.last, in.stamps.at(in.last)
}

// lastSeq is the highest contiguous seq shown, for LOGIN.last_seq and ACK.
func (in *inbox) lastSeq() uint64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.last
}

// linkUp notes a new link: its gateway asks for everything after
// LOGIN.last_seq on the client's behalf, so a SYNC is outstanding already.
func (in *inbox) linkUp(now time.Time) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.syncing, in.syncSince = true, now
	in.gapSince = time.Time{}
}

// add takes an entry with seq > 0 and returns what to show now, in order,
// and whether to send SYNC{after_seq: lastSeq()} now.
func (in *inbox) add(seq uint64, f *cimpb.Frame, now time.Time) (show []*cimpb.Frame, sync bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	switch {
	case seq <= in.last:
		return nil, false // shown already
	case seq == in.last+1:
		show = append(show, f)
		in.last = seq
		in.stamps.put(seq, f)
		show = in.flushLocked(show)
		return show, false
	}
	if _, ok := in.held[seq]; !ok {
		in.holdLocked(seq, f)
	}
	return nil, in.gapLocked(now)
}

// gapLocked notes a gap and reports whether to ask for it now: at once
// without a gap wait, or when entries had to be dropped for space;
// otherwise expire asks when the gap is still open after gapWait.
func (in *inbox) gapLocked(now time.Time) bool {
	if in.gapWait <= 0 || in.dropped != 0 {
		return in.requestLocked(now)
	}
	if in.gapSince.IsZero() {
		in.gapSince = now
	}
	return false
}

// holdLocked keeps f back. When full, the highest seqs give way: they are
// the furthest from being shown, and a later SYNC page brings them again.
func (in *inbox) holdLocked(seq uint64, f *cimpb.Frame) {
	if len(in.held) >= in.maxHeld {
		top := seq
		for s := range in.held {
			top = max(top, s)
		}
		in.noteDropLocked(top)
		if top == seq {
			return
		}
		delete(in.held, top)
	}
	in.held[seq] = f
}

func (in *inbox) noteDropLocked(seq uint64) {
	if in.dropped == 0 || seq < in.dropped {
		in.dropped = seq
	}
}

// skipped notes that a frame too large to read was thrown away: it may have
// been an inbox entry, which then never comes. It reports whether to send
// SYNC{after_seq: lastSeq()} now, so that the answer, which covers the gap
// without the entry, moves last past it (answer) instead of waiting for
// the next entry to reveal the gap.
func (in *inbox) skipped(now time.Time) (sync bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.requestLocked(now)
}

// request asks for a SYNC unless one is outstanding, reporting whether
// the caller should send it.
func (in *inbox) request(now time.Time) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.requestLocked(now)
}

// requestLocked asks for a SYNC unless one is outstanding.
func (in *inbox) requestLocked(now time.Time) bool {
	if in.syncing {
		return false
	}
	in.syncing, in.syncSince = true, now
	in.gapSince = time.Time{} // the SYNC covers it
	return true
}

// answer takes the SYNC frame that ends a sync answer (after the entries it
// carried, which came through add) and returns what to show now and whether
// to send another SYNC{after_seq: lastSeq()}.
func (in *inbox) answer(s *cimpb.Sync, now time.Time) (show []*cimpb.Frame, sync bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	prev := in.last
	in.syncing = false

	// The inbox's head is below the seq this SYNC asked after, which the
	// client had shown (so the route had stored it) before it asked: Redis
	// lost its tail and hands those seqs out again. Rewind (see
	// rewindSpan). (A head below last alone proves nothing: a live push
	// may overtake the answer.)
	if head := s.GetHeadSeq(); head < s.GetAfterSeq() && head < in.last {
		return nil, in.rewindLocked(max(head, rewindSpan)-rewindSpan, now)
	}
	// The inbox holds another entry at that seq than the one this client
	// was shown there: the seqs went back and new entries took them.
	if after, ts := s.GetAfterSeq(), s.GetAfterTsMs(); ts != 0 && after <= in.last {
		if mine := in.stamps.at(after); mine != 0 && mine != ts {
			return nil, in.rewindLocked(max(after, rewindSpan)-rewindSpan, now)
		}
	}
	if in.rewound {
		if s.GetAfterSeq() > in.last {
			// The answer to a SYNC asked before the rewind: it says nothing
			// about the entries above last now. The one asked since is
			// still outstanding.
			in.syncing = true
			return nil, false
		}
		in.rewound = false
	}

	// from_acked: the server started after the seq the user acknowledged
	// (from an earlier run or device); everything up to it was shown there.
	if after := s.GetAfterSeq(); after > in.last {
		for seq := range in.held {
			if seq <= after {
				delete(in.held, seq)
			}
		}
		in.last = after
	}
	// Trimmed: entries before first_seq are gone for good. Ones held back
	// from live pushes were never shown, so they still go out, in order.
	// An answer with no entries and no first_seq says nothing is retained.
	first := s.GetFirstSeq()
	if first == 0 && s.GetLastSeq() == 0 && s.GetHeadSeq() > 0 {
		first = s.GetHeadSeq() + 1
	}
	if first > in.last+1 {
		show = in.showHeldLocked(show, first-1)
	}
	// The answer carried every entry in (after_seq, last_seq] that exists,
	// and they came before it on this link: a seq still missing in that
	// range is a hole, not a delay. Entries dropped for space are not holes.
	covered := s.GetLastSeq()
	if in.dropped != 0 && in.dropped <= covered {
		covered = in.dropped - 1
	}
	if covered > in.last {
		show = in.showHeldLocked(show, covered)
	}
	show = in.flushLocked(show)
	if in.dropped != 0 && in.dropped <= in.last {
		in.dropped = 0
	}

	more := len(in.held) > 0 || s.GetHeadSeq() > in.last
	switch {
	case !more:
	case in.last > prev || s.GetLastSeq() > 0:
		sync = in.requestLocked(now) // the next page, or the rest of the gap
	default:
		// No progress: asking again at once could spin. Treat it as
		// outstanding; expire asks again after the sync timeout.
		in.syncing, in.syncSince = true, now
	}
	return show, sync
}

// showHeldLocked moves last to upTo, showing the held entries at or below
// it in seq order.
func (in *inbox) showHeldLocked(show []*cimpb.Frame, upTo uint64) []*cimpb.Frame {
	var seqs []uint64
	for seq := range in.held {
		if seq <= upTo {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	for _, seq := range seqs {
		show = append(show, in.held[seq])
		in.stamps.put(seq, in.held[seq])
		delete(in.held, seq)
	}
	in.last = upTo
	return show
}

// flushLocked shows the held entries that now follow last.
func (in *inbox) flushLocked(show []*cimpb.Frame) []*cimpb.Frame {
	for {
		f, ok := in.held[in.last+1]
		if !ok {
			if len(in.held) == 0 {
				in.gapSince = time.Time{} // filled
			}
			return show
		}
		delete(in.held, in.last+1)
		in.last++
		in.stamps.put(in.last, f)
		show = append(show, f)
	}
}

// expire reports whether a SYNC should be sent now — an outstanding one
// went unanswered for timeout, or a gap stayed open for gapWait — and when
// to check next (zero: nothing outstanding or waiting).
func (in *inbox) expire(now time.Time, timeout time.Duration) (sync bool, next time.Time) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.syncing {
		if in.gapSince.IsZero() {
			return false, time.Time{}
		}
		if deadline := in.gapSince.Add(in.gapWait); now.Before(deadline) {
			return false, deadline
		}
		in.syncing, in.syncSince = true, now
		in.gapSince = time.Time{}
		return true, now.Add(timeout)
	}
	if deadline := in.syncSince.Add(timeout); now.Before(deadline) {
		return false, deadline
	}
	in.syncSince = now
	return true, now.Add(timeout)
}

// heldCount is how many entries wait for a gap (tests, logs).
func (in *inbox) heldCount() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.held)
}
