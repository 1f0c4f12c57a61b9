package router

import (
	"testing"

	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/proto/cimpb"
)

func groupSync(reqID uint64, gid string, after uint64, fromAcked bool) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_SYNC, ReqId: reqID, Sync: &cimpb.Sync{Group: gid, AfterSeq: after, FromAcked: fromAcked}}
}

func groupAck(gid string, seq uint64) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Groups: []*cimpb.GroupSeq{{Group: gid, Seq: seq}}}}
}

// TestGroupTimeline: a message to a group at the timeline threshold is
// stored once, in the timeline, pushed to every online member as the same
// frame with its group_seq, and no member's inbox grows; a login SYNC
// lists the groups with messages past the member's position; a group SYNC
// from the acknowledged position brings them in order; ACK{groups} raises
// the position; a member who joins later starts at the head; a
// non-member's group SYNC gets nothing.
func TestGroupTimeline(t *testing.T) {
	e := newEnv(t, PolicyKick, 2, func(c *Config) { c.GroupTimelineMin = 3 })
	alice, bob := e.connect("alice"), e.connect("bob")
	carol, dave := e.account("carol"), e.connect("dave")
	gid := e.newGroup(alice, "big", bob, carol)
	inboxBefore := map[string]int{}
	for _, u := range []Session{alice, bob, carol} {
		inboxBefore[u.UserID] = len(e.inbox(u.UserID))
	}
	pushedBefore := len(e.frames(bob))

	ans := e.uplink(alice, groupFrame(1, "g1", gid), groupFrame(2, "g2", gid), groupFrame(3, "g1", gid))
	id1 := groupSent(t, ans[0], "g1", gid, 2)
	id2 := groupSent(t, ans[1], "g2", gid, 2)
	if id := groupSent(t, ans[2], "g1", gid, 2); id != id1 {
		t.Fatalf("a resend in the batch got id %s, want %s", id, id1)
	}
	for _, u := range []Session{alice, bob, carol} {
		if n := len(e.inbox(u.UserID)); n != inboxBefore[u.UserID] {
			t.Fatalf("%s's inbox grew to %d entries: timeline messages are stored once", u.UserName, n)
		}
	}
	tl := e.inbox(model.TimelineID(gid))
	if len(tl) != 2 || tl[0].Msg.MsgId != id1 || tl[1].Msg.MsgId != id2 {
		t.Fatalf("timeline = %v, want the two messages", tl)
	}
	pushed := e.frames(bob)[pushedBefore:]
	if len(pushed) != 2 {
		t.Fatalf("bob got %d pushes, want 2", len(pushed))
	}
	// Each went to bob's gateway as one shared delivery (one frame, its
	// members as targets), encoded once.
	if n := e.gateway(bob.Gateway.ID).Shared(); n != 2 {
		t.Fatalf("bob's gateway got %d shared deliveries, want 2", n)
	}
	for i, f := range pushed {
		m := f.GetMsg()
		if m.GroupSeq != uint64(i+1) || m.Seq != 0 || m.Group != gid || m.From != alice.UserID || m.MsgId != []string{id1, id2}[i] {
			t.Fatalf("bob's push %d = %v, want group_seq %d and no seq", i, f, i+1)
		}
	}

	// Carol logs in: her login SYNC lists the group at head 2; a group SYNC
	// from her position (0: she joined before both) brings both, in order.
	carol = e.connect("carol")
	got := e.uplink(carol, &cimpb.Frame{Type: cimpb.Type_SYNC, ReqId: 7, Sync: &cimpb.Sync{FromAcked: true, WithGroups: true}})
	ans7 := got[len(got)-1].Frame.GetSync()
	if len(ans7.Groups) != 1 || ans7.Groups[0].Group != gid || ans7.Groups[0].Seq != 2 {
		t.Fatalf("login SYNC answer = %v, want group %s at 2", ans7, gid)
	}
	got = e.uplink(carol, groupSync(8, gid, 0, true))
	if len(got) != 3 || got[0].Frame.Msg.GroupSeq != 1 || got[1].Frame.Msg.GroupSeq != 2 || got[1].Frame.Msg.MsgId != id2 {
		t.Fatalf("carol's group SYNC = %v", got)
	}
	if s := got[2].Frame.GetSync(); s.Group != gid || s.HeadSeq != 2 || s.LastSeq != 2 || got[2].Frame.ReqId != 8 {
		t.Fatalf("group SYNC answer = %v", s)
	}
	// She acknowledges the first: from_acked starts after it, and the
	// login SYNC still lists the group; after the second it does not.
	e.uplink(carol, groupAck(gid, 1))
	got = e.uplink(carol, groupSync(9, gid, 0, true))
	if len(got) != 2 || got[0].Frame.Msg.GroupSeq != 2 {
		t.Fatalf("group SYNC after ACK 1 = %v", got)
	}
	e.uplink(carol, groupAck(gid, 2))
	got = e.uplink(carol, &cimpb.Frame{Type: cimpb.Type_SYNC, ReqId: 10, Sync: &cimpb.Sync{FromAcked: true, WithGroups: true}})
	if s := got[len(got)-1].Frame.GetSync(); len(s.Groups) != 0 {
		t.Fatalf("login SYNC after acknowledging everything lists %v", s.Groups)
	}

	// Dave is no member: his group SYNC answers nothing and covers his ask.
	got = e.uplink(dave, groupSync(11, gid, 0, true))
	if len(got) != 1 || got[0].Frame.GetSync().GetGroup() != gid || got[0].Frame.GetSync().GetLastSeq() != 0 {
		t.Fatalf("non-member's group SYNC = %v", got)
	}
	// Dave joins (invited) after two messages: he starts at the head and
	// gets the third message only, live and by SYNC.
	if _, err := e.r.InviteToGroup(e.ctx, alice.UserID, gid, []string{"dave"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.JoinGroup(e.ctx, dave.UserID, gid); err != nil {
		t.Fatal(err)
	}
	daveBefore := len(e.frames(dave))
	id3 := groupSent(t, e.uplink(alice, groupFrame(12, "g3", gid))[0], "g3", gid, 3)
	if f := e.frames(dave)[daveBefore:]; len(f) != 1 || f[0].Msg.MsgId != id3 || f[0].Msg.GroupSeq != 3 {
		t.Fatalf("dave's pushes after joining = %v", f)
	}
	got = e.uplink(dave, groupSync(13, gid, 0, true))
	if len(got) != 2 || got[0].Frame.Msg.MsgId != id3 {
		t.Fatalf("dave's group SYNC after joining = %v", got)
	}
	// A group below the threshold keeps per-member inboxes.
	small := e.newGroup(alice, "small", bob)
	groupSent(t, e.uplink(alice, groupFrame(14, "s1", small))[0], "s1", small, 1)
	if in := e.inbox(bob.UserID); in[len(in)-1].Msg.Group != small || in[len(in)-1].Msg.GroupSeq != 0 {
		t.Fatalf("small group message not in bob's inbox: %v", in[len(in)-1])
	}
}
