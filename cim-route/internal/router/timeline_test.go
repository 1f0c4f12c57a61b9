package router

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/internal/contract"
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

	// An attempt that died after it stored g1 in the timeline, before it
	// marked it done: the next one finds the timeline entry by its dedup
	// key, stores nothing and pushes it again with its group_seq.
	e.rdb.Set(e.ctx, "cim:gdedup:{"+alice.UserID+"}:g1", id1+"|pending", time.Hour)
	if id := groupSent(t, e.uplink(alice, groupFrame(4, "g1", gid))[0], "g1", gid, 2); id != id1 {
		t.Fatalf("the retry after a died attempt got id %s, want %s", id, id1)
	}
	if tl := e.inbox(model.TimelineID(gid)); len(tl) != 2 {
		t.Fatalf("timeline after the retry = %v, want the two messages once", tl)
	}
	if f := e.frames(bob); len(f) != pushedBefore+3 || f[len(f)-1].GetMsg().GetGroupSeq() != 1 {
		t.Fatalf("bob's pushes after the retry: %d, last %v; want g1 again at group_seq 1", len(f)-pushedBefore, f[len(f)-1])
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

// TestGroupHistory: GET /history?group= pages through a group's messages
// for a member, newest first, across the copies in the member's inbox (sent
// while the group was below the timeline threshold) and the group's
// timeline (after it grew past it); timeline entries carry their
// group_seq. A non-member, an unknown group and a group with a peer are
// refused.
func TestGroupHistory(t *testing.T) {
	e := newEnv(t, PolicyKick, 2, func(c *Config) { c.GroupTimelineMin = 3 })
	alice, bob, carol, dave := e.connect("alice"), e.connect("bob"), e.connect("carol"), e.connect("dave")
	gid := e.newGroup(alice, "grows", bob)
	other := e.newGroup(alice, "other", bob)
	var early, late []string
	for i := range 3 {
		early = append(early, groupSent(t, e.uplink(alice, groupFrame(uint64(1+i), fmt.Sprint("e", i), gid))[0], fmt.Sprint("e", i), gid, 1))
		groupSent(t, e.uplink(alice, groupFrame(uint64(10+i), fmt.Sprint("o", i), other))[0], fmt.Sprint("o", i), other, 1)
	}
	if _, err := e.r.P2P(e.ctx, alice.UserID, "bob", "private"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.InviteToGroup(e.ctx, alice.UserID, gid, []string{"carol"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.JoinGroup(e.ctx, carol.UserID, gid); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		late = append(late, groupSent(t, e.uplink(alice, groupFrame(uint64(20+i), fmt.Sprint("l", i), gid))[0], fmt.Sprint("l", i), gid, 2))
	}
	if n := len(e.inbox(model.TimelineID(gid))); n != 4 {
		t.Fatalf("timeline holds %d entries, want the 4 late messages", n)
	}

	newestFirst := func(ids ...[]string) []string {
		var all []string
		for _, s := range ids {
			all = append(all, s...)
		}
		slices.Sort(all)
		slices.Reverse(all)
		return all
	}
	walk := func(u Session, keyword string) []HistoryMessage {
		t.Helper()
		var got []HistoryMessage
		q := HistoryQuery{UserID: u.UserID, SessionID: u.SessionID, Group: gid, Keyword: keyword, Limit: 2}
		for range 100 {
			p, err := e.r.History(e.ctx, q)
			if err != nil {
				t.Fatalf("group history of %s: %v", u.UserName, err)
			}
			got = append(got, p.Messages...)
			if p.Next == "" {
				return got
			}
			q.Before = p.Next
		}
		t.Fatal("group history never ended")
		return nil
	}
	ids := func(ms []HistoryMessage) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.MsgID)
		}
		return out
	}
	// Bob was there throughout: the early copies in his inbox and the late
	// timeline entries, nothing of the other group or his private chat.
	got := walk(bob, "")
	if want := newestFirst(early, late); !slices.Equal(ids(got), want) {
		t.Fatalf("bob's group history = %v, want %v", ids(got), want)
	}
	for _, m := range got {
		wantSeq := uint64(0)
		if i := slices.Index(late, m.MsgID); i >= 0 {
			wantSeq = uint64(i + 1)
		}
		if m.Group != gid || m.GroupSeq != wantSeq || m.From != alice.UserID {
			t.Fatalf("history message %+v: want group %s, group_seq %d", m, gid, wantSeq)
		}
	}
	// Alice, the sender (--login-policy kick, one device): what she sent
	// before the timeline from her own copies, the rest from the timeline.
	if got := ids(walk(alice, "")); !slices.Equal(got, newestFirst(early, late)) {
		t.Fatalf("alice's group history = %v, want %v", got, newestFirst(early, late))
	}
	// Carol joined when the group went to a timeline: its entries.
	if got := ids(walk(carol, "")); !slices.Equal(got, newestFirst(late)) {
		t.Fatalf("carol's group history = %v, want %v", got, newestFirst(late))
	}
	// The keyword applies to both parts.
	if got := ids(walk(bob, "body l2")); !slices.Equal(got, late[2:3]) {
		t.Fatalf("bob's group history for l2 = %v, want %v", got, late[2:3])
	}
	if got := ids(walk(bob, "body e1")); !slices.Equal(got, early[1:2]) {
		t.Fatalf("bob's group history for e1 = %v, want %v", got, early[1:2])
	}

	for _, c := range []struct {
		q    HistoryQuery
		want error
	}{
		{HistoryQuery{UserID: dave.UserID, SessionID: dave.SessionID, Group: gid}, errs.ErrForbidden},
		{HistoryQuery{UserID: bob.UserID, SessionID: bob.SessionID, Group: "999999"}, errs.ErrNoGroup},
		{HistoryQuery{UserID: bob.UserID, SessionID: bob.SessionID, Group: gid, Peer: "alice"}, errs.ErrBadArgument},
		{HistoryQuery{UserID: bob.UserID, SessionID: bob.SessionID, Group: "team"}, errs.ErrBadArgument},
	} {
		if _, err := e.r.History(e.ctx, c.q); !errors.Is(err, c.want) {
			t.Fatalf("history %+v: err %v, want %v", c.q, err, c.want)
		}
	}
}

// TestTimelineBatchTargets: the messages of one timeline group in a batch
// share their targets (worked out once per group and sender), and each is
// still accounted for per member: a member whose gateway no longer has him
// is reported missing for every message and his route is dropped, the
// others get every message in order, and Push counts the deliveries made.
func TestTimelineBatchTargets(t *testing.T) {
	e := newEnv(t, PolicyKick, 2, func(c *Config) { c.GroupTimelineMin = 3 })
	alice, bob, carol, dave := e.connect("alice"), e.connect("bob"), e.connect("carol"), e.connect("dave")
	erin := e.account("erin") // never online
	gid := e.newGroup(alice, "big", bob, carol, dave, erin)
	if bob.Gateway.ID == carol.Gateway.ID {
		t.Fatalf("bob and carol on one gateway: the test wants both gateways")
	}
	e.gateway(dave.Gateway.ID).Disconnect(contract.DeviceKey(dave.UserID, dave.SessionID))
	before := map[string]int{}
	for _, u := range []Session{bob, carol, dave} {
		before[u.UserID] = len(e.frames(u))
	}
	sharedBefore := e.gateway(bob.Gateway.ID).Shared() + e.gateway(carol.Gateway.ID).Shared()

	ans := e.uplink(alice, groupFrame(1, "t1", gid), groupFrame(2, "t2", gid), groupFrame(3, "t3", gid))
	var ids []string
	for i, a := range ans {
		ids = append(ids, groupSent(t, a, fmt.Sprintf("t%d", i+1), gid, 4))
	}
	e.waitPushes()
	for _, u := range []Session{bob, carol} {
		got := e.frames(u)[before[u.UserID]:]
		if len(got) != 3 {
			t.Fatalf("%s got %d pushes, want 3", u.UserName, len(got))
		}
		for i, f := range got {
			if f.GetMsg().GetMsgId() != ids[i] || f.GetMsg().GetGroupSeq() != uint64(i+1) {
				t.Fatalf("%s's push %d = %v, want %s at group_seq %d", u.UserName, i, f, ids[i], i+1)
			}
		}
	}
	if n := e.gateway(bob.Gateway.ID).Shared() + e.gateway(carol.Gateway.ID).Shared() - sharedBefore; n != 6 {
		t.Errorf("%d shared deliveries, want one per message and gateway (6)", n)
	}
	if n := len(e.frames(dave)) - before[dave.UserID]; n != 0 {
		t.Errorf("dave, gone from his gateway, got %d pushes", n)
	}
	routes, err := e.st.Routes(e.ctx, []string{dave.UserID, bob.UserID})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := routes[dave.UserID]; ok || len(routes) != 1 {
		t.Fatalf("routes after dave was missing: %+v, want bob's only", routes)
	}

	// Push reports the deliveries made: bob and carol (dave's route is
	// gone now, erin was never online).
	res, err := e.r.Push(e.ctx, PushRequest{Group: gid, From: alice.UserID, Text: "counted"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Delivered != 2 {
		t.Errorf("Push delivered %d, want 2", res.Delivered)
	}
}
