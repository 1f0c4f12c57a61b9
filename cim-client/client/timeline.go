package client

import (
	"slices"
	"sync"
	"time"

	"github.com/gocim/gocim/proto/cimpb"
)

// maxAckGroups is the most group positions one ACK frame carries (the
// route reads no more).
const maxAckGroups = 64

// timelines track the large groups whose messages the route stores once,
// in a timeline per group, rather than in the user's inbox
// (docs/ARCHITECTURE.md, "Group timelines"): such a MSG carries a
// group_seq and no seq. Each group gets the inbox's bookkeeping over its
// group_seqs — shown exactly once, in order, gaps held back and filled by
// SYNC{group} — and its own cumulative acknowledgement (ACK{groups}).
//
// A group this client knows no position for (a new process, a group it
// joined lately) asks SYNC{group, from_acked}: the route starts after the
// position the user acknowledged last, from any device.
type timelines struct {
	maxHeld  int
	gapWait  time.Duration
	ackDelay time.Duration
	ackEvery int
	spread   func() float64 // the acks' spread (see acks)
	mu       sync.Mutex
	of       map[string]*timeline
	want     map[string]bool // groups whose SYNC is to be written
}

type timeline struct {
	in    *inbox
	acks  *acks
	known bool // a SYNC answer placed it: its last is a real position
}

func newTimelines(maxHeld int, ackDelay time.Duration, ackEvery int) *timelines {
	return &timelines{maxHeld: maxHeld, ackDelay: ackDelay, ackEvery: ackEvery, of: map[string]*timeline{}, want: map[string]bool{}}
}

// waitForGaps sets the gap wait of every timeline (see inbox.gapWait) and
// returns ts.
func (ts *timelines) waitForGaps(d time.Duration) *timelines {
	ts.gapWait = d
	return ts
}

// spreadAcks sets the spread of every timeline's ACK waits (see acks) and
// returns ts.
func (ts *timelines) spreadAcks(f func() float64) *timelines {
	ts.spread = f
	return ts
}

// get returns gid's timeline, created when new.
func (ts *timelines) get(gid string) *timeline {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t := ts.of[gid]
	if t == nil {
		t = &timeline{in: newInbox(ts.maxHeld).waitForGaps(ts.gapWait), acks: &acks{delay: ts.ackDelay, every: ts.ackEvery, spread: ts.spread}}
		ts.of[gid] = t
	}
	return t
}

// ask notes that gid wants a SYNC written.
func (ts *timelines) ask(gid string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.want[gid] = true
}

// linkUp forgets the SYNCs outstanding on an earlier link: their answers
// will not come. The new link's login SYNC lists the groups with anything
// new, and each is asked for again.
func (ts *timelines) linkUp() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, t := range ts.of {
		t.in.mu.Lock()
		t.in.syncing = false
		t.in.mu.Unlock()
	}
}

// syncs returns the group SYNCs to write now: those asked for, and those
// unanswered for timeout; and when to look again.
func (ts *timelines) syncs(now time.Time, timeout time.Duration) (frames []*cimpb.Frame, next time.Time) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	gids := make([]string, 0, len(ts.want))
	for gid, t := range ts.of {
		again, at := t.in.expire(now, timeout)
		if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
		if again || ts.want[gid] {
			gids = append(gids, gid)
		}
	}
	clear(ts.want)
	slices.Sort(gids)
	for _, gid := range gids {
		t := ts.of[gid]
		frames = append(frames, &cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{Group: gid, AfterSeq: t.in.lastSeq(), FromAcked: !t.known}})
	}
	return frames, next
}

// add takes a timeline MSG and returns what to show now, in order; it
// asks for a SYNC when there is a gap, or when the group's position is
// not known yet and the message does not start the timeline.
func (ts *timelines) add(gid string, f *cimpb.Frame, now time.Time) []*cimpb.Frame {
	t := ts.get(gid)
	show, sync := t.in.add(f.GetMsg().GetGroupSeq(), f, now)
	if sync {
		ts.ask(gid)
	}
	return show
}

// answer takes a group SYNC's closing frame.
func (ts *timelines) answer(s *cimpb.Sync, now time.Time) []*cimpb.Frame {
	t := ts.get(s.GetGroup())
	show, sync := t.in.answer(s, now)
	ts.mu.Lock()
	t.known = true
	ts.mu.Unlock()
	if sync {
		ts.ask(s.GetGroup())
	}
	return show
}

// listed takes the groups a login SYNC's answer names, each with its
// timeline's head: the ones past what this client has shown are asked for.
func (ts *timelines) listed(gs []*cimpb.GroupSeq, now time.Time) (asked bool) {
	for _, g := range gs {
		if g.GetGroup() == "" {
			continue
		}
		t := ts.get(g.GetGroup())
		if g.GetSeq() > t.in.lastSeq() && t.in.request(now) {
			ts.ask(g.GetGroup())
			asked = true
		}
	}
	return asked
}

// shown counts what gid's timeline showed up to its last, for its ACK,
// and reports whether an ACK is urgent.
func (ts *timelines) shown(gid string, n int, now time.Time) bool {
	t := ts.get(gid)
	return t.acks.show(t.in.lastSeq(), n, now)
}

// dueAcks returns the group positions to acknowledge now (at most
// maxAckGroups) and when the next falls due.
func (ts *timelines) dueAcks(now time.Time, all bool) (gs []*cimpb.GroupSeq, next time.Time) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for gid, t := range ts.of {
		seq, ok, at := t.acks.due(now)
		if all {
			seq, ok = t.acks.unacked()
		}
		if !ok {
			if !at.IsZero() && (next.IsZero() || at.Before(next)) {
				next = at
			}
			continue
		}
		if len(gs) == maxAckGroups {
			next = now
			continue
		}
		gs = append(gs, &cimpb.GroupSeq{Group: gid, Seq: seq})
	}
	return gs, next
}

// acked records that an ACK carrying gs was written.
func (ts *timelines) acked(gs []*cimpb.GroupSeq, now time.Time) {
	for _, g := range gs {
		ts.get(g.Group).acks.sent(g.Seq, now)
	}
}
