package router

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

func groupFrame(reqID uint64, cmid, gid string) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: reqID, Msg: &cimpb.Msg{ClientMsgId: cmid, Group: gid, Body: []byte("body " + cmid)}}
}

func groupRead(peer, gid string, ids ...string) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_READ, Read: &cimpb.Read{Peer: peer, Group: gid, MsgIds: ids}}
}

// groupReadOf is groupRead with the seqs of reader's inbox entries.
func (e *env) groupReadOf(reader Session, peer, gid string, ids ...string) *cimpb.Frame {
	f := groupRead(peer, gid, ids...)
	f.Read.Seqs = e.seqsOf(reader, ids)
	return f
}

// groupSent checks a group message's RECEIPT_SENT and returns its msg id.
func groupSent(t *testing.T, d *cimpb.Delivery, cmid, gid string, count uint32) string {
	t.Helper()
	r := d.Frame.GetReceipt()
	if d.Frame.Type != cimpb.Type_RECEIPT || r.Status != cimpb.ReceiptStatus_RECEIPT_SENT || r.ClientMsgId != cmid ||
		r.Group != gid || r.Count != count || r.Seq != 0 || len(r.MsgId) != 32 {
		t.Fatalf("answer %v, want RECEIPT_SENT for %s to group %s with count %d", d.Frame, cmid, gid, count)
	}
	return r.MsgId
}

// inbox returns a user's stored entries, decoded, in seq order.
func (e *env) inbox(uid string) []*cimpb.Frame {
	e.t.Helper()
	rs, err := e.st.Ranges(e.ctx, []model.RangeQuery{{UserID: uid, Limit: 10000}})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*cimpb.Frame
	for _, en := range rs[0].Entries {
		out = append(out, decodeEntry(en))
	}
	return out
}

// newGroup creates a group owned by owner with the given members (joined
// through invitations).
func (e *env) newGroup(owner Session, name string, members ...Session) string {
	e.t.Helper()
	g, err := e.r.CreateGroup(e.ctx, owner.UserID, name, false)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range members {
		if _, err := e.r.InviteToGroup(e.ctx, owner.UserID, g.ID, []string{m.UserName}); err != nil {
			e.t.Fatal(err)
		}
		if _, err := e.r.JoinGroup(e.ctx, m.UserID, g.ID); err != nil {
			e.t.Fatal(err)
		}
	}
	return g.ID
}

// account registers name without connecting it.
func (e *env) account(name string) Session {
	e.t.Helper()
	u, err := e.r.Register(e.ctx, name, "password1")
	if err != nil {
		e.t.Fatal(err)
	}
	return Session{UserID: u.ID, UserName: name}
}

// TestGroupMessages: a group message is stored for every member but the
// sender, in send order (offline members get it by SYNC), pushed live to
// the online ones, answered SENT with the group and the count; a
// non-member gets 4030; a resend is recognized.
func TestGroupMessages(t *testing.T) {
	e := newEnv(t, PolicyKick, 2)
	alice, bob, dave := e.connect("alice"), e.connect("bob"), e.connect("dave")
	carol := e.account("carol")
	gid := e.newGroup(alice, "team", bob, carol)
	// The invitations are stored messages from the inviter (not the
	// system user: the group name is the inviter's words).
	for _, u := range []Session{bob, carol} {
		in := e.inbox(u.UserID)
		want := fmt.Sprintf("alice invited you to team (group %s): :gjoin %s", gid, gid)
		if len(in) != 1 || in[0].Msg.From != alice.UserID || in[0].Msg.FromName != "alice" || string(in[0].Msg.Body) != want {
			t.Fatalf("%s's inbox after the invitation: %v", u.UserName, in)
		}
	}
	if f := e.frames(bob); len(f) != 1 || f[0].Msg.From != alice.UserID {
		t.Fatalf("bob (online) got %v, want the invitation pushed", f)
	}

	ans := e.uplink(alice, groupFrame(1, "g1", gid), msgFrame(2, "p1", "bob"), groupFrame(3, "g2", gid), groupFrame(4, "g1", gid))
	if len(ans) != 4 {
		t.Fatalf("%d answers", len(ans))
	}
	id1 := groupSent(t, ans[0], "g1", gid, 2)
	sentIDs(t, ans[1:2])
	id2 := groupSent(t, ans[2], "g2", gid, 2)
	if id := groupSent(t, ans[3], "g1", gid, 2); id != id1 {
		t.Fatalf("the same clientMsgId twice in a batch: ids %s and %s", id1, id)
	}
	check := func(who string, got []*cimpb.Frame, from int) {
		t.Helper()
		if len(got) != from+3 {
			t.Fatalf("%s has %d entries, want %d", who, len(got), from+3)
		}
		for i, want := range []struct{ id, group, body string }{{id1, gid, "body g1"}, {"", "", "body p1"}, {id2, gid, "body g2"}} {
			m := got[from+i].Msg
			if m == nil || m.Group != want.group || string(m.Body) != want.body || (want.id != "" && m.MsgId != want.id) ||
				m.Seq != uint64(from+i+1) || m.From != alice.UserID || m.FromName != "alice" {
				t.Fatalf("%s's entry %d = %v, want %+v", who, from+i, got[from+i], want)
			}
			if want.group != "" && (m.To != "" || m.ClientMsgId != "g"+want.body[6:] || m.TimestampMs == 0) {
				t.Fatalf("%s's group entry %d = %v", who, from+i, m)
			}
		}
	}
	check("bob's pushes", e.frames(bob), 1)
	check("bob's inbox", e.inbox(bob.UserID), 1)
	if in := e.inbox(carol.UserID); len(in) != 3 || in[1].Msg.Group != gid || in[2].Msg.Group != gid || in[1].Msg.MsgId != id1 || in[2].Msg.MsgId != id2 {
		t.Fatalf("carol's inbox = %v", in)
	}
	// The sender's own copies, for its group history (and its other
	// devices), whatever the login policy.
	if in := e.inbox(alice.UserID); len(in) != 2 || in[0].Msg.MsgId != id1 || in[1].Msg.MsgId != id2 || in[0].Msg.From != alice.UserID || in[1].Msg.Group != gid {
		t.Fatalf("the sender's inbox = %v, want its own g1 and g2", in)
	}
	// Carol comes online and syncs: the messages, in order, with the group.
	carol = e.connect("carol")
	got := e.uplink(carol, syncFrame(9, 0, 0, true))
	if len(got) != 4 || got[1].Frame.Msg.MsgId != id1 || got[1].Frame.Msg.Group != gid || got[2].Frame.Msg.MsgId != id2 || got[2].Frame.Msg.Seq != 3 {
		t.Fatalf("carol's sync: %v", got)
	}

	// Not a member: 4030 with the clientMsgId, nothing stored.
	ans = e.uplink(dave, groupFrame(5, "d1", gid), groupFrame(6, "d2", "424242"), groupFrame(7, "d3", "x1"))
	for i, d := range ans {
		if f := d.Frame; f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.Forbidden || f.Error.ClientMsgId != fmt.Sprint("d", i+1) {
			t.Fatalf("non-member's answer %d = %v, want ERROR 4030", i, f)
		}
	}
	if n := len(e.inbox(bob.UserID)); n != 4 {
		t.Fatalf("bob has %d entries after a non-member's message", n)
	}
	// Malformed: a group message names nobody else.
	bad := groupFrame(8, "b1", gid)
	bad.Msg.To = "bob"
	if f := e.uplink(alice, bad)[0].Frame; f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.BadArgument {
		t.Fatalf("group message with a to: %v", f)
	}

	// A resend of a message done: same id, nothing stored or pushed again.
	pushed := len(e.frames(bob))
	if id := groupSent(t, e.uplink(alice, groupFrame(10, "g1", gid))[0], "g1", gid, 2); id != id1 {
		t.Fatalf("resend answered %s, want %s", id, id1)
	}
	if n := len(e.inbox(bob.UserID)); n != 4 || len(e.frames(bob)) != pushed {
		t.Fatalf("resend stored or pushed again: %d entries", n)
	}
	// An attempt that died mid-fan-out left its key pending: the next one
	// fans out again under the first id, then marks it done.
	const firstID = "0123456789abcdef0123456789abcdef"
	e.rdb.Set(e.ctx, "cim:gdedup:{"+alice.UserID+"}:g3", firstID+"|pending", time.Hour)
	if id := groupSent(t, e.uplink(alice, groupFrame(11, "g3", gid))[0], "g3", gid, 2); id != firstID {
		t.Fatalf("pending resend answered %s, want %s", id, firstID)
	}
	if in := e.inbox(bob.UserID); len(in) != 5 || in[4].Msg.MsgId != firstID {
		t.Fatalf("bob's inbox after the pending resend: %v", in)
	}
	if v := e.rdb.Get(e.ctx, "cim:gdedup:{"+alice.UserID+"}:g3").Val(); v != firstID+"|done" {
		t.Fatalf("gdedup after the fan-out = %q", v)
	}
	// One that died after it stored the copies, before it marked the
	// message done: the next attempt stores no second copy (members whose
	// inbox holds the id among its newest entries) and pushes it again.
	e.rdb.Set(e.ctx, "cim:gdedup:{"+alice.UserID+"}:g3", firstID+"|pending", time.Hour)
	pushed = len(e.frames(bob))
	if id := groupSent(t, e.uplink(alice, groupFrame(13, "g3", gid))[0], "g3", gid, 2); id != firstID {
		t.Fatalf("second pending resend answered %s, want %s", id, firstID)
	}
	if in := e.inbox(bob.UserID); len(in) != 5 {
		t.Fatalf("bob's inbox after a fan-out that had stored: %d entries, want 5", len(in))
	}
	if f := e.frames(bob); len(f) != pushed+1 || f[len(f)-1].GetMsg().GetMsgId() != firstID || f[len(f)-1].GetMsg().GetSeq() != 5 {
		t.Fatalf("bob's pushes after a fan-out that had stored: %d (had %d), last %v", len(f), pushed, f[len(f)-1])
	}

	// A group of one: nobody to store for, still SENT.
	solo := e.newGroup(dave, "solo")
	groupSent(t, e.uplink(dave, groupFrame(12, "s1", solo))[0], "s1", solo, 0)
	// A member who left is no member.
	if err := e.r.LeaveGroup(e.ctx, bob.UserID, gid); err != nil {
		t.Fatal(err)
	}
	if f := e.uplink(bob, groupFrame(13, "b2", gid))[0].Frame; f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.Forbidden {
		t.Fatalf("former member's message: %v", f)
	}
	groupSent(t, e.uplink(alice, groupFrame(14, "g4", gid))[0], "g4", gid, 1)

	// Private history is the private conversation (alice's invitation
	// only); the unfiltered one shows group messages with their group.
	page, err := e.r.History(e.ctx, HistoryQuery{UserID: carol.UserID, SessionID: carol.SessionID, Peer: "alice"})
	if err != nil || len(page.Messages) != 1 || page.Messages[0].Group != "" {
		t.Fatalf("carol's history with alice: %+v %v", page.Messages, err)
	}
	page, err = e.r.History(e.ctx, HistoryQuery{UserID: carol.UserID, SessionID: carol.SessionID})
	inGroup := 0
	for _, m := range page.Messages {
		if m.Group == gid {
			inGroup++
		}
	}
	if err != nil || len(page.Messages) != 5 || inGroup != 4 {
		t.Fatalf("carol's history: %+v %v, want the invitation and 4 group messages", page.Messages, err)
	}
}

// TestGroupReceipts: ACKs and group READs of members add to the sender's
// delivered / read sets; the sender gets one live RECEIPT per (msgId,
// status) and batch with the count, nothing stored; private receipts stay
// as they were.
func TestGroupReceipts(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	alice, bob, carol, dave := e.connect("alice"), e.connect("bob"), e.connect("carol"), e.connect("dave")
	gid := e.newGroup(alice, "team", bob, carol)
	// The invitations are alice's own messages: bob and carol acknowledge
	// them first, and alice's two DELIVERED receipts for them (inbox seqs
	// 1 and 2) are left out below.
	e.uplink(bob, ackFrame(1))
	e.uplink(carol, ackFrame(1))
	base := len(e.frames(alice))
	ans := e.uplink(alice, groupFrame(1, "g1", gid), groupFrame(2, "g2", gid), msgFrame(3, "p1", "bob"))
	id1, id2 := groupSent(t, ans[0], "g1", gid, 2), groupSent(t, ans[1], "g2", gid, 2)
	pid := sentIDs(t, ans[2:])[0]

	receipts := func(from int) []*cimpb.Receipt {
		t.Helper()
		var out []*cimpb.Receipt
		for _, f := range e.frames(alice)[base:] {
			if f.Type == cimpb.Type_RECEIPT { // not the copies of alice's own messages
				out = append(out, f.Receipt)
			}
		}
		out = out[from:]
		return out
	}
	// bob has the invitation, g1, g2, p1 (seqs 1-4).
	e.uplink(bob, ackFrame(4))
	got := receipts(0)
	if len(got) != 3 {
		t.Fatalf("alice got %d receipts for bob's ACK, want 1 private and 2 group: %v", len(got), got)
	}
	if r := got[0]; r.Status != cimpb.ReceiptStatus_RECEIPT_DELIVERED || r.MsgId != pid || r.Group != "" || r.Seq != 5 || r.ClientMsgId != "p1" {
		// alice's inbox: the two receipts, her copies of g1 and g2, this.
		t.Fatalf("private receipt = %v, want it stored (seq 5)", r)
	}
	for i, want := range []string{id1, id2} {
		r := got[i+1]
		if r.Status != cimpb.ReceiptStatus_RECEIPT_DELIVERED || r.MsgId != want || r.Group != gid || r.Count != 1 || r.By != bob.UserID || r.Seq != 0 {
			t.Fatalf("group receipt %d = %v", i, r)
		}
	}
	if in := e.inbox(alice.UserID); len(in) != 5 || in[4].Receipt.MsgId != pid {
		t.Fatalf("alice's inbox = %v: group receipts are not stored", in)
	}

	// carol and dave (a non-member) in one gateway batch: one receipt per
	// message with the count.
	batch := &cimpb.UplinkBatch{GatewayId: carol.Gateway.ID, Uplinks: []*cimpb.Uplink{
		{UserId: carol.UserID, SessionId: carol.SessionID, Frame: ackFrame(3)},
		{UserId: carol.UserID, SessionId: carol.SessionID, Frame: e.groupReadOf(carol, alice.UserName, gid, id1, id1)},
		{UserId: bob.UserID, SessionId: bob.SessionID, Frame: e.groupReadOf(bob, alice.UserID, gid, id1, id2)},
		{UserId: dave.UserID, SessionId: dave.SessionID, Frame: e.groupReadOf(dave, alice.UserID, gid, id1, id2)},
		{UserId: bob.UserID, SessionId: bob.SessionID, Frame: e.groupReadOf(bob, alice.UserID, gid, id1)}, // again: counted once
	}}
	if _, err := e.r.Uplink(e.ctx, batch); err != nil {
		t.Fatal(err)
	}
	e.waitPushes()
	got = receipts(3)
	type rc struct {
		status cimpb.ReceiptStatus
		id     string
		count  uint32
	}
	var summary []rc
	for _, r := range got {
		if r.Group != gid || r.Seq != 0 {
			t.Fatalf("receipt %v", r)
		}
		summary = append(summary, rc{r.Status, r.MsgId, r.Count})
	}
	want := []rc{
		{cimpb.ReceiptStatus_RECEIPT_DELIVERED, id1, 2}, {cimpb.ReceiptStatus_RECEIPT_DELIVERED, id2, 2},
		{cimpb.ReceiptStatus_RECEIPT_READ, id1, 2}, {cimpb.ReceiptStatus_RECEIPT_READ, id2, 1},
	}
	if !slices.Equal(summary, want) {
		t.Fatalf("receipts for the batch = %v, want %v", summary, want)
	}

	counts, err := e.r.GroupReceipts(e.ctx, alice.UserID, []string{id1, id2, pid})
	if err != nil {
		t.Fatal(err)
	}
	if counts[id1] != (ReceiptCount{2, 2}) || counts[id2] != (ReceiptCount{2, 1}) || counts[pid] != (ReceiptCount{}) || len(counts) != 3 {
		t.Fatalf("counts = %+v", counts)
	}
	if counts, _ := e.r.GroupReceipts(e.ctx, bob.UserID, []string{id1}); counts[id1] != (ReceiptCount{}) {
		t.Fatalf("bob sees alice's counts: %+v", counts)
	}
	if _, err := e.r.GroupReceipts(e.ctx, alice.UserID, nil); !errors.Is(err, errs.ErrBadArgument) {
		t.Fatalf("no msgIds: %v", err)
	}
	// The sender offline: the counts still grow, nothing is pushed.
	e.gateway(alice.Gateway.ID).Disconnect(alice.UserID)
	e.uplink(carol, e.groupReadOf(carol, alice.UserID, gid, id2))
	if counts, _ := e.r.GroupReceipts(e.ctx, alice.UserID, []string{id2}); counts[id2] != (ReceiptCount{2, 2}) {
		t.Fatalf("counts with the sender offline = %+v", counts)
	}
}

// TestGroupPush: POST /api/push with a group stores the message in every
// member's inbox; one sent in a member's name counts no delivery to that
// member, whose copy is its history's.
func TestGroupPush(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	alice, bob := e.connect("alice"), e.connect("bob")
	carol := e.account("carol")
	gid := e.newGroup(alice, "team", bob, carol)

	res, err := e.r.Push(e.ctx, PushRequest{Group: gid, Text: "maintenance at noon"})
	if err != nil || res.MsgID == "" || res.Delivered != 2 || len(res.MsgIDs) != 0 {
		t.Fatalf("push to the group: %+v %v", res, err)
	}
	for _, u := range []Session{alice, bob, carol} {
		in := e.inbox(u.UserID)
		m := in[len(in)-1].Msg
		if m.MsgId != res.MsgID || m.Group != gid || m.From != SystemUserID || string(m.Body) != "maintenance at noon" {
			t.Fatalf("%s's last entry = %v", u.UserName, m)
		}
	}
	res, err = e.r.Push(e.ctx, PushRequest{Group: gid, From: "bob", Text: "from bob"})
	if err != nil || res.Delivered != 1 {
		t.Fatalf("push from bob: %+v %v", res, err)
	}
	if in := e.inbox(bob.UserID); in[len(in)-1].Msg.MsgId != res.MsgID || in[len(in)-1].Msg.From != bob.UserID {
		t.Fatalf("the sender's last entry = %v, want its own message (its group history)", in[len(in)-1])
	}
	if in := e.inbox(carol.UserID); in[len(in)-1].Msg.MsgId != res.MsgID || in[len(in)-1].Msg.FromName != "bob" {
		t.Fatalf("carol's last entry = %v", in[len(in)-1])
	}
	for _, tt := range []struct {
		req  PushRequest
		want error
	}{
		{PushRequest{Group: "999", Text: "x"}, errs.ErrNoGroup},
		{PushRequest{Group: "abc", Text: "x"}, errs.ErrNoGroup},
		{PushRequest{Group: gid, To: []string{"bob"}, Text: "x"}, errs.ErrBadArgument},
		{PushRequest{Group: gid, All: true, Text: "x"}, errs.ErrBadArgument},
		{PushRequest{Group: gid, Text: ""}, errs.ErrBadArgument},
	} {
		if _, err := e.r.Push(e.ctx, tt.req); !errors.Is(err, tt.want) {
			t.Errorf("Push(%+v): %v, want %v", tt.req, err, tt.want)
		}
	}
}

// TestGroupOperationsRouter covers the router's own checks: names, ids,
// invitations by name, members with names, the member limit.
func TestGroupOperationsRouter(t *testing.T) {
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.GroupMaxMembers = 3 })
	alice, bob, carol, dave := e.connect("alice"), e.connect("bob"), e.account("carol"), e.account("dave")
	for _, name := range []string{"", "   ", strings.Repeat("a", 65), "tab\there", "bad\xffutf8", "\u200bzero"} {
		if _, err := e.r.CreateGroup(e.ctx, alice.UserID, name, false); !errors.Is(err, errs.ErrBadArgument) {
			t.Errorf("CreateGroup(%q): %v, want ErrBadArgument", name, err)
		}
	}
	g, err := e.r.CreateGroup(e.ctx, alice.UserID, "  Équipe ✓ 64  ", true)
	if err != nil || g.Name != "Équipe ✓ 64" || !g.Open || g.Owner != alice.UserID || g.Members != 1 {
		t.Fatalf("create: %+v %v", g, err)
	}
	if _, err := e.r.JoinGroup(e.ctx, bob.UserID, g.ID); err != nil {
		t.Fatal(err)
	}
	invited, err := e.r.InviteToGroup(e.ctx, bob.UserID, g.ID, []string{"carol", carol.UserID, "alice"})
	if err != nil || !slices.Equal(invited, []string{carol.UserID}) {
		t.Fatalf("invite in an open group by a member: %v %v", invited, err)
	}
	if _, err := e.r.InviteToGroup(e.ctx, alice.UserID, g.ID, []string{"carol", "nobody"}); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("invite of an unknown user: %v", err)
	}
	if _, err := e.r.JoinGroup(e.ctx, carol.UserID, g.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.JoinGroup(e.ctx, dave.UserID, g.ID); !errors.Is(err, errs.ErrGroupFull) {
		t.Fatalf("fourth member: %v, want ErrGroupFull", err)
	}
	ms, err := e.r.GroupMembers(e.ctx, bob.UserID, g.ID, Page{})
	want := []User{{alice.UserID, "alice"}, {bob.UserID, "bob"}, {carol.UserID, "carol"}}
	if err != nil || !slices.Equal(ms, want) {
		t.Fatalf("members = %v %v, want %v", ms, err, want)
	}
	if _, err := e.r.GroupMembers(e.ctx, dave.UserID, g.ID, Page{}); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("members for a non-member: %v", err)
	}
	// Pages: by id, after the last of the page before.
	if p1, err := e.r.GroupMembers(e.ctx, bob.UserID, g.ID, Page{Limit: 2}); err != nil || !slices.Equal(p1, want[:2]) {
		t.Fatalf("first page of 2 = %v %v", p1, err)
	}
	if p2, err := e.r.GroupMembers(e.ctx, bob.UserID, g.ID, Page{After: want[1].ID, Limit: 2}); err != nil || !slices.Equal(p2, want[2:]) {
		t.Fatalf("page after %s = %v %v", want[1].ID, p2, err)
	}
	if _, err := e.r.GroupMembers(e.ctx, bob.UserID, g.ID, Page{After: "carol"}); !errors.Is(err, errs.ErrBadArgument) {
		t.Fatalf("after a name: %v, want ErrBadArgument", err)
	}
	if got, err := e.r.Group(e.ctx, dave.UserID, g.ID); err != nil || got.Members != 3 {
		t.Fatalf("an open group for anyone: %+v %v", got, err)
	}
	if err := e.r.KickFromGroup(e.ctx, alice.UserID, g.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := e.r.KickFromGroup(e.ctx, alice.UserID, g.ID, "nobody"); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("kick of an unknown user: %v", err)
	}
	for _, gid := range []string{"999", "abc", ""} {
		if _, err := e.r.Group(e.ctx, alice.UserID, gid); !errors.Is(err, errs.ErrNoGroup) {
			t.Errorf("Group(%q): %v, want ErrNoGroup", gid, err)
		}
		if _, err := e.r.GroupMembers(e.ctx, alice.UserID, gid, Page{}); !errors.Is(err, errs.ErrNoGroup) {
			t.Errorf("GroupMembers(%q): %v, want ErrNoGroup", gid, err)
		}
	}
	gs, err := e.r.Groups(e.ctx, bob.UserID)
	if err != nil || len(gs) != 1 || gs[0].ID != g.ID {
		t.Fatalf("bob's groups = %+v %v", gs, err)
	}
	if gs, err := e.r.Groups(e.ctx, carol.UserID); err != nil || len(gs) != 0 {
		t.Fatalf("carol's groups after the kick = %+v %v", gs, err)
	}
}

// pipelines counts Redis round trips (pipelines and single commands).
type pipelines struct{ n atomic.Int32 }

func (*pipelines) DialHook(next redis.DialHook) redis.DialHook { return next }
func (p *pipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		p.n.Add(1)
		return next(ctx, cmd)
	}
}
func (p *pipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		p.n.Add(1)
		return next(ctx, cmds)
	}
}

// bigGroup makes a group of owner plus n members without accounts (ids
// from 100000 on); the first online of them are connected, spread over the
// gateways.
func (e *env) bigGroup(owner Session, n, online int) (string, []string) {
	e.t.Helper()
	g, err := e.st.CreateGroup(e.ctx, owner.UserID, "big", true)
	if err != nil {
		e.t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(100000 + i)
	}
	for chunk := range slices.Chunk(ids, 1000) {
		if err := e.rdb.SAdd(e.ctx, "cim:gmembers:{"+g.ID+"}", anyOf(chunk)...).Err(); err != nil {
			e.t.Fatal(err)
		}
	}
	for i, uid := range ids[:online] {
		gw := e.gws[i%len(e.gws)]
		sid := "s" + uid
		if _, err := e.st.ClaimRoute(e.ctx, uid, model.Claim{Gateway: gw.ID, Session: sid, TTL: time.Minute}); err != nil {
			e.t.Fatal(err)
		}
		if err := e.st.Online(e.ctx, uid, sid, gw.ID); err != nil {
			e.t.Fatal(err)
		}
		gw.Connect(uid, sid)
	}
	return g.ID, ids
}

func anyOf(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// TestGroupFanout5000: one message to a group of 5,001 is stored in 5,000
// inboxes with a bounded number of round trips (pipelines of a thousand,
// not one per member) and pushed with one /push per gateway.
func TestGroupFanout5000(t *testing.T) {
	e := newEnv(t, PolicyKick, 2)
	alice := e.connect("alice")
	const n, online = 5000, 300
	gid, ids := e.bigGroup(alice, n, online)
	var rt pipelines
	e.rdb.AddHook(&rt)
	pushes := e.gws[0].Pushes() + e.gws[1].Pushes()
	e.st.writes.Store(0)
	ans := e.uplink(alice, groupFrame(1, "big1", gid))
	id := groupSent(t, ans[0], "big1", gid, n)
	// Lookups, members, claim, 10 pipelines of a thousand (5,000 appends,
	// then 5,000 route reads), done (plus at most one NOSCRIPT retry).
	t.Logf("%d Redis round trips for a message to %d members", rt.n.Load(), n)
	if got := rt.n.Load(); got > 18 {
		t.Fatalf("%d Redis round trips for a message to %d members", got, n)
	}
	if w := e.st.writes.Load(); w != 1 {
		t.Fatalf("%d Write calls, want 1", w)
	}
	if p := e.gws[0].Pushes() + e.gws[1].Pushes() - pushes; p != 2 {
		t.Fatalf("%d /push calls, want one per gateway", p)
	}
	// Every member got the entry.
	cmds := make([]*redis.StringSliceCmd, n)
	if _, err := e.rdb.Pipelined(e.ctx, func(p redis.Pipeliner) error {
		for i, uid := range ids {
			cmds[i] = p.LRange(e.ctx, "cim:inbox:{"+uid+"}", 0, -1)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, c := range cmds {
		v := c.Val()
		if len(v) != 1 {
			t.Fatalf("member %s has %d entries", ids[i], len(v))
		}
		en, ok := parseTestEntry(v[0])
		if !ok || en.Msg.MsgId != id || en.Msg.Group != gid || en.Msg.Seq != 1 {
			t.Fatalf("member %s's entry = %v", ids[i], en)
		}
	}
	for _, uid := range ids[:online] {
		gw := e.gws[0]
		if f := gw.Frames(uid); len(f) == 0 {
			gw = e.gws[1]
		}
		if f := gw.Frames(uid); len(f) != 1 || f[0].Msg.MsgId != id || f[0].Msg.Seq != 1 {
			t.Fatalf("online member %s got %v", uid, f)
		}
	}
	// App push to the same group.
	res, err := e.r.Push(e.ctx, PushRequest{Group: gid, Text: "to everybody"})
	if err != nil || res.Delivered != online+1 {
		t.Fatalf("push to the big group: %+v %v", res, err)
	}
}

// parseTestEntry decodes a raw inbox member "<seq>|<ts>|<frame>".
func parseTestEntry(m string) (*cimpb.Frame, bool) {
	seqEnd := 0
	for seqEnd < len(m) && m[seqEnd] != '|' {
		seqEnd++
	}
	tsEnd := seqEnd + 1
	for tsEnd < len(m) && m[tsEnd] != '|' {
		tsEnd++
	}
	if tsEnd >= len(m) {
		return nil, false
	}
	seq, err := strconv.ParseUint(m[:seqEnd], 10, 64)
	var f cimpb.Frame
	if err != nil || proto.Unmarshal([]byte(m[tsEnd+1:]), &f) != nil || f.Msg == nil {
		return nil, false
	}
	f.Msg.Seq = seq
	return &f, true
}

// BenchmarkGroupFanout sends one group message per iteration to a group of
// 1,000 or 5,000 members (all offline: the cost is the inbox appends and
// the route reads) on a real Redis. members/s counts stored copies.
//
//	go test -run '^$' -bench BenchmarkGroupFanout -benchtime 20x ./internal/router/
func BenchmarkGroupFanout(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			e := newEnv(b, PolicyKick, 1)
			alice := e.connect("alice")
			gid, _ := e.bigGroup(alice, n, 0)
			sess := alice
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				f := groupFrame(uint64(i), "c"+strconv.Itoa(i), gid)
				out, err := e.r.Uplink(ctx, &cimpb.UplinkBatch{GatewayId: sess.Gateway.ID, Uplinks: []*cimpb.Uplink{{UserId: sess.UserID, SessionId: sess.SessionID, Frame: f}}})
				if err != nil {
					b.Fatal(err)
				}
				if r := out.Deliveries[0].Frame.GetReceipt(); r.GetCount() != uint32(n) {
					b.Fatalf("answer %v", out.Deliveries[0].Frame)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "members/s")
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/msg")
		})
	}
}

// TestInviteLimits: a re-invite stores nothing; one request names at most
// MaxInvite users; an inviter's hourly budget runs out (errs.ErrQuotaExceeded)
// without touching anybody else's.
func TestInviteLimits(t *testing.T) {
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.Limits.InvitesPerHour = 3 })
	alice, bob := e.connect("alice"), e.connect("bob")
	carol, dave := e.account("carol"), e.account("dave")
	e.account("erin")
	g, err := e.r.CreateGroup(e.ctx, alice.UserID, "team", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.JoinGroup(e.ctx, bob.UserID, g.ID); err != nil {
		t.Fatal(err)
	}
	if inv, err := e.r.InviteToGroup(e.ctx, alice.UserID, g.ID, []string{"carol"}); err != nil || len(inv) != 1 {
		t.Fatalf("invite carol: %v %v", inv, err)
	}
	if inv, err := e.r.InviteToGroup(e.ctx, alice.UserID, g.ID, []string{"carol"}); err != nil || len(inv) != 0 {
		t.Fatalf("re-invite carol: %v %v, want nobody invited", inv, err)
	}
	if in := e.inbox(carol.UserID); len(in) != 1 {
		t.Fatalf("carol's inbox after a re-invite: %d entries, want the one invitation", len(in))
	}
	// 2 of 3 used; 2 more is over the budget, and nothing is sent.
	if _, err := e.r.InviteToGroup(e.ctx, alice.UserID, g.ID, []string{"dave", "erin"}); !errors.Is(err, errs.ErrQuotaExceeded) {
		t.Fatalf("invites over the budget: %v, want ErrQuotaExceeded", err)
	}
	if in := e.inbox(dave.UserID); len(in) != 0 {
		t.Fatalf("dave got %d entries from a refused invite", len(in))
	}
	// bob's budget is his own.
	if inv, err := e.r.InviteToGroup(e.ctx, bob.UserID, g.ID, []string{"dave", "erin"}); err != nil || len(inv) != 2 {
		t.Fatalf("bob invites: %v %v", inv, err)
	}
	many := make([]string, MaxInvite+1)
	for i := range many {
		many[i] = "erin"
	}
	if _, err := e.r.InviteToGroup(e.ctx, bob.UserID, g.ID, many); !errors.Is(err, errs.ErrBadArgument) {
		t.Fatalf("%d users in one invite: %v, want ErrBadArgument", len(many), err)
	}
}

// TestGroupsPerUser: a user in Limits.GroupsPerUser groups can neither
// create nor join another until it leaves one (joining one of its own again
// is fine); group creations have an hourly budget of their own.
func TestGroupsPerUser(t *testing.T) {
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.Limits.GroupsPerUser = 2; c.Limits.GroupsPerHour = 4 })
	alice, bob := e.account("alice"), e.account("bob")
	create := func(uid, name string) (Group, error) { return e.r.CreateGroup(e.ctx, uid, name, true) }
	g1, err := create(alice.UserID, "one")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := create(alice.UserID, "two"); err != nil {
		t.Fatal(err)
	}
	if _, err := create(alice.UserID, "three"); !errors.Is(err, errs.ErrQuotaExceeded) {
		t.Fatalf("a 3rd group with a limit of 2: %v, want ErrQuotaExceeded", err)
	}
	bobs, err := create(bob.UserID, "bobs")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.JoinGroup(e.ctx, alice.UserID, bobs.ID); !errors.Is(err, errs.ErrQuotaExceeded) {
		t.Fatalf("alice joins a 3rd group: %v, want ErrQuotaExceeded", err)
	}
	if _, err := e.r.JoinGroup(e.ctx, alice.UserID, g1.ID); err != nil {
		t.Fatalf("alice joins her own group again: %v", err)
	}
	if gs, err := e.r.Groups(e.ctx, alice.UserID); err != nil || len(gs) != 2 {
		t.Fatalf("alice's groups: %v %v, want 2", gs, err)
	}
	// Room again after a dissolve; the 4th creation of the hour (the
	// refused one did not count) is the last.
	if err := e.r.DissolveGroup(e.ctx, alice.UserID, g1.ID); err != nil {
		t.Fatal(err)
	}
	g3, err := create(alice.UserID, "three")
	if err != nil {
		t.Fatalf("a group after a dissolve: %v", err)
	}
	if err := e.r.DissolveGroup(e.ctx, alice.UserID, g3.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := create(alice.UserID, "four"); err != nil {
		t.Fatalf("the 4th creation of the hour: %v", err)
	}
	gs, err := e.r.Groups(e.ctx, alice.UserID)
	if err != nil || len(gs) != 2 {
		t.Fatalf("alice's groups: %v %v, want 2", gs, err)
	}
	if err := e.r.DissolveGroup(e.ctx, alice.UserID, gs[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := create(alice.UserID, "five"); !errors.Is(err, errs.ErrQuotaExceeded) {
		t.Fatalf("the 5th creation of the hour: %v, want ErrQuotaExceeded", err)
	}
	// bob's budget is his own.
	if _, err := create(bob.UserID, "more"); err != nil {
		t.Fatalf("bob's 2nd group: %v", err)
	}
}

// TestGroupCopiesBudget: a message to a group without a timeline is stored
// once per member, so it costs its sender one copy of its budget per
// recipient; over it the message fails with 4293 and nothing is stored. A
// timeline group's message is stored once: not charged. So is an
// application's push.
func TestGroupCopiesBudget(t *testing.T) {
	e := newEnv(t, PolicyKick, 1, func(c *Config) {
		c.Limits.GroupCopiesPerSecond, c.Limits.GroupCopiesBurst = 0.001, 4
		c.GroupTimelineMin = 4
	})
	alice, bob, carol, dave := e.connect("alice"), e.connect("bob"), e.connect("carol"), e.connect("dave")
	small := e.newGroup(alice, "small", bob, carol)   // 3 members: 2 copies a message
	big := e.newGroup(alice, "big", bob, carol, dave) // 4: a timeline
	// One batch of three, over the burst together: the first two fit.
	ans := e.uplink(alice, groupFrame(1, "s1", small), groupFrame(2, "s2", small), groupFrame(3, "s3", small))
	if len(ans) != 3 || ans[2].Frame.GetError().GetCode() != int32(codes.QuotaExceeded) {
		t.Fatalf("three messages to the small group: %v, want the 3rd refused with ERROR 4293", ans)
	}
	sentIDs(t, ans[:2])
	if ans := e.uplink(alice, groupFrame(4, "s4", small)); len(ans) != 1 || ans[0].Frame.GetError().GetCode() != int32(codes.QuotaExceeded) {
		t.Fatalf("a 4th message: %v, want ERROR 4293", ans)
	}
	n := 0
	for _, f := range e.inbox(bob.UserID) {
		if f.GetMsg().GetGroup() == small {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("bob's inbox holds %d messages of the small group, want the 2 charged", n)
	}
	for i := range 5 {
		cmid := fmt.Sprint("b", i)
		sentIDs(t, e.uplink(alice, groupFrame(uint64(10+i), cmid, big)))
	}
	if _, err := e.r.Push(e.ctx, PushRequest{Group: small, From: "alice", Text: "from the app"}); err != nil {
		t.Fatalf("an application's push to the small group: %v", err)
	}
	// bob's budget is his own.
	sentIDs(t, e.uplink(bob, groupFrame(1, "x1", small)))
}

// TestGroupPushBudget: a message to a group with a timeline costs its
// sender one delivery per recipient from --group-push-rate: over the burst
// it is refused with 4293 and nothing is stored; a reaction costs the same;
// groups without a timeline, applications and other senders are not
// charged.
func TestGroupPushBudget(t *testing.T) {
	e := newEnv(t, PolicyKick, 1, func(c *Config) {
		c.Limits.GroupPushesPerSecond, c.Limits.GroupPushesBurst = 0.001, 7
		c.GroupTimelineMin = 4
	})
	alice, bob, carol, dave := e.connect("alice"), e.connect("bob"), e.connect("carol"), e.connect("dave")
	small := e.newGroup(alice, "small", bob, carol)   // 2 recipients, copies: not charged here
	big := e.newGroup(alice, "big", bob, carol, dave) // 3 recipients a message
	ans := e.uplink(alice, groupFrame(1, "b1", big), groupFrame(2, "b2", big), groupFrame(3, "b3", big))
	if len(ans) != 3 || ans[2].Frame.GetError().GetCode() != int32(codes.QuotaExceeded) {
		t.Fatalf("three messages to the big group: %v, want the 3rd refused with ERROR 4293", ans)
	}
	first := sentIDs(t, ans[:2])[0]
	refused(t, e.uplink(alice, reactFrame(4, "r", "", big, first, "👍"))[0], codes.QuotaExceeded, "large groups")
	if h := e.history(bob, "", big, ""); len(h) != 2 {
		t.Fatalf("the big group's history holds %d messages, want the 2 charged", len(h))
	}
	for i := range 4 {
		sentIDs(t, e.uplink(alice, groupFrame(uint64(10+i), fmt.Sprint("s", i), small)))
	}
	if _, err := e.r.Push(e.ctx, PushRequest{Group: big, From: "alice", Text: "from the app"}); err != nil {
		t.Fatalf("an application's push to the big group: %v", err)
	}
	sentIDs(t, e.uplink(bob, groupFrame(1, "x1", big))) // bob's budget is his own
}

// TestTransferGroup: the owner hands a group to a member (by name or id);
// the former owner is a plain member who may leave, the new one may do
// what an owner does and cannot leave. A member, a non-member heir, an
// unknown user and a missing user are refused; naming oneself changes
// nothing.
func TestTransferGroup(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	alice, bob := e.connect("alice"), e.connect("bob")
	e.account("carol")
	gid := e.newGroup(alice, "team", bob)
	for _, c := range []struct {
		by, to string
		want   error
		text   string
	}{
		{bob.UserID, "bob", errs.ErrForbidden, "only the owner"},
		{alice.UserID, "carol", errs.ErrForbidden, "must be a member"},
		{alice.UserID, "nobody", errs.ErrBadAccount, ""},
		{alice.UserID, "no body", errs.ErrBadAccount, ""},
		{alice.UserID, "", errs.ErrBadArgument, ""},
	} {
		if _, err := e.r.TransferGroup(e.ctx, c.by, gid, c.to); !errors.Is(err, c.want) || !strings.Contains(fmt.Sprint(err), c.text) {
			t.Fatalf("transfer by %s to %q: %v, want %v (%q)", c.by, c.to, err, c.want, c.text)
		}
	}
	if _, err := e.r.TransferGroup(e.ctx, alice.UserID, "999", "bob"); !errors.Is(err, errs.ErrNoGroup) {
		t.Fatalf("transfer of no group: %v", err)
	}
	if g, err := e.r.TransferGroup(e.ctx, alice.UserID, gid, "alice"); err != nil || g.Owner != alice.UserID {
		t.Fatalf("transfer to oneself: %+v %v", g, err)
	}
	if err := e.r.LeaveGroup(e.ctx, alice.UserID, gid); !errors.Is(err, errs.ErrForbidden) || !strings.Contains(err.Error(), "hand it to a member") {
		t.Fatalf("the owner leaves: %v", err)
	}

	g, err := e.r.TransferGroup(e.ctx, alice.UserID, gid, "bob")
	if err != nil || g.Owner != bob.UserID || g.Name != "team" || g.Members != 2 {
		t.Fatalf("transfer to bob: %+v %v", g, err)
	}
	if g, err := e.r.Group(e.ctx, alice.UserID, gid); err != nil || g.Owner != bob.UserID {
		t.Fatalf("the group as alice sees it: %+v %v", g, err)
	}
	if _, err := e.r.RenameGroup(e.ctx, alice.UserID, gid, "x"); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("rename by the former owner: %v", err)
	}
	if _, err := e.r.InviteToGroup(e.ctx, bob.UserID, gid, []string{"carol"}); err != nil {
		t.Fatalf("invite by the new owner: %v", err)
	}
	if err := e.r.LeaveGroup(e.ctx, bob.UserID, gid); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("the new owner leaves: %v", err)
	}
	if err := e.r.LeaveGroup(e.ctx, alice.UserID, gid); err != nil {
		t.Fatalf("the former owner leaves: %v", err)
	}
	if _, err := e.r.TransferGroup(e.ctx, bob.UserID, gid, alice.UserID); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("transfer to one who left: %v", err)
	}
}
