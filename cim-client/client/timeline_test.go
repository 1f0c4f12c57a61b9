package client

import (
	"context"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/proto/cimpb"
)

func tlMsg(gid string, gseq uint64) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{Group: gid, GroupSeq: gseq, MsgId: "m" + string(rune('0'+gseq))}}
}

func gseqs(fs []*cimpb.Frame) []uint64 {
	var out []uint64
	for _, f := range fs {
		out = append(out, f.GetMsg().GetGroupSeq())
	}
	return out
}

// TestTimelines: a group whose position is unknown holds a message that
// does not start the timeline and asks SYNC{group, from_acked}; the answer
// places it and shows what was held in order; repeats are dropped; a gap
// asks SYNC{group, after_seq: last}; a login answer's list asks only for
// groups past what was shown; ACKs carry each group's last shown seq.
func TestTimelines(t *testing.T) {
	now := time.Unix(1000, 0)
	ts := newTimelines(16, time.Millisecond, 100)
	if show := ts.add("g", tlMsg("g", 5), now); len(show) != 0 {
		t.Fatalf("unknown position: showed %v", gseqs(show))
	}
	fs, _ := ts.syncs(now, time.Second)
	if len(fs) != 1 || fs[0].Sync.Group != "g" || !fs[0].Sync.FromAcked || fs[0].Sync.AfterSeq != 0 {
		t.Fatalf("syncs = %v, want SYNC{g, from_acked}", fs)
	}
	if fs, _ := ts.syncs(now, time.Second); len(fs) != 0 {
		t.Fatalf("asked twice: %v", fs)
	}
	// The answer: the member acknowledged 3 elsewhere; 4 and 5 come.
	show := ts.add("g", tlMsg("g", 4), now)
	show = append(show, ts.add("g", tlMsg("g", 5), now)...)
	show = append(show, ts.answer(&cimpb.Sync{Group: "g", AfterSeq: 3, HeadSeq: 5, FirstSeq: 1, LastSeq: 5}, now)...)
	if got := gseqs(show); len(got) != 2 || got[0] != 4 || got[1] != 5 {
		t.Fatalf("after the answer showed %v, want [4 5]", got)
	}
	ts.shown("g", 2, now)
	if show := ts.add("g", tlMsg("g", 5), now); len(show) != 0 {
		t.Fatalf("a repeat was shown: %v", gseqs(show))
	}
	// A gap: 7 waits, SYNC after 5 (position known now).
	if show := ts.add("g", tlMsg("g", 7), now); len(show) != 0 {
		t.Fatalf("7 before 6 was shown")
	}
	fs, _ = ts.syncs(now, time.Second)
	if len(fs) != 1 || fs[0].Sync.FromAcked || fs[0].Sync.AfterSeq != 5 {
		t.Fatalf("gap sync = %v, want after 5", fs)
	}
	if got := gseqs(ts.add("g", tlMsg("g", 6), now)); len(got) != 2 || got[1] != 7 {
		t.Fatalf("6 then the held 7: %v", got)
	}
	ts.shown("g", 2, now)
	ts.answer(&cimpb.Sync{Group: "g", AfterSeq: 5, HeadSeq: 7, FirstSeq: 1, LastSeq: 7}, now)
	// A login answer lists g at 7 (nothing new) and h at 2 (new).
	ts.linkUp()
	if !ts.listed([]*cimpb.GroupSeq{{Group: "g", Seq: 7}, {Group: "h", Seq: 2}}, now) {
		t.Fatal("listed asked for nothing")
	}
	fs, _ = ts.syncs(now, time.Second)
	if len(fs) != 1 || fs[0].Sync.Group != "h" || !fs[0].Sync.FromAcked {
		t.Fatalf("after the list: %v, want SYNC{h, from_acked} only", fs)
	}
	gs, _ := ts.dueAcks(now.Add(time.Second), false)
	if len(gs) != 1 || gs[0].Group != "g" || gs[0].Seq != 7 {
		t.Fatalf("acks = %v, want g at 7", gs)
	}
	ts.acked(gs, now)
	if gs, _ := ts.dueAcks(now.Add(time.Second), false); len(gs) != 0 {
		t.Fatalf("acked twice: %v", gs)
	}
}

// TestGroupAckDelay: a large group's (timeline) messages are acknowledged
// after GroupAckDelay, not AckDelay: while inbox entries shown after it
// are acknowledged at once, no ACK carries the group's position until
// Close, which acknowledges what was shown.
func TestGroupAckDelay(t *testing.T) {
	c, gw, _, in := inboxSetup(t, func(cfg *Config) {
		cfg.AckDelay = 10 * time.Millisecond
		cfg.GroupAckDelay = time.Hour
	})
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	tl := clienttest.GroupMsg("t1", "2", "bob", "7", "timeline")
	tl.Msg.GroupSeq = 1
	if err := conn.SendAll(tl, in.Append(clienttest.TextMsg("p1", "2", "bob", "one"))); err != nil {
		t.Fatal(err)
	}
	next(t, c, EventMessage)
	next(t, c, EventMessage)
	ackUpTo := func(seq uint64) {
		t.Helper()
		for {
			f := nextFrame(t, conn)
			if len(f.GetAck().GetGroups()) > 0 {
				t.Fatalf("group position acknowledged before GroupAckDelay: %v", f)
			}
			if f.GetType() == cimpb.Type_ACK && f.GetAck().GetSeq() == seq {
				return
			}
		}
	}
	ackUpTo(1)
	// Well past AckDelay after the group message was shown: another inbox
	// entry, acknowledged on its own.
	if err := conn.Send(in.Append(clienttest.TextMsg("p2", "2", "bob", "two"))); err != nil {
		t.Fatal(err)
	}
	next(t, c, EventMessage)
	ackUpTo(2)

	ctx, cancel := context.WithTimeout(context.Background(), clienttest.Wait)
	defer cancel()
	go c.Close(ctx)
	for {
		f := nextFrame(t, conn)
		if gs := f.GetAck().GetGroups(); len(gs) > 0 {
			if len(gs) != 1 || gs[0].Group != "7" || gs[0].Seq != 1 {
				t.Fatalf("closing ACK %v, want group 7 at 1", f)
			}
			return
		}
	}
}
