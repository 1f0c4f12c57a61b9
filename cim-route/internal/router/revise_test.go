package router

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

func withEditWindow(d time.Duration) func(*Config) {
	return func(c *Config) { c.EditWindow = d }
}

// ticking makes the router's clock move a millisecond per reading, so
// msgIds (and history) follow the send order.
func ticking(c *Config) {
	var mu sync.Mutex
	clock := time.Now()
	c.Now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Millisecond)
		return clock
	}
}

// opFrame is an uplink recall (text "") or edit of ref, to a user or (gid
// set) a group.
func opFrame(reqID uint64, cmid, to, gid, ref string, op cimpb.MsgOp, text string) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: reqID, Msg: &cimpb.Msg{
		ClientMsgId: cmid, To: to, Group: gid, Op: op, RefMsgId: ref, Body: []byte(text)}}
}

// refused checks that d is an ERROR with code c whose text holds part.
func refused(t *testing.T, d *cimpb.Delivery, c codes.Code, part string) {
	t.Helper()
	e := d.Frame.GetError()
	if d.Frame.Type != cimpb.Type_ERROR || codes.Code(e.GetCode()) != c || !strings.Contains(e.GetText(), part) {
		t.Fatalf("answer %v, want ERROR %d mentioning %q", d.Frame, c, part)
	}
}

// history returns user's history (with peer or group), newest first.
func (e *env) history(user Session, peer, gid, keyword string) []HistoryMessage {
	e.t.Helper()
	p, err := e.r.History(e.ctx, HistoryQuery{UserID: user.UserID, SessionID: user.SessionID, Peer: peer, Group: gid, Keyword: keyword, Limit: MaxHistoryLimit})
	if err != nil {
		e.t.Fatal(err)
	}
	return p.Messages
}

func describe(ms []HistoryMessage) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%s:%v:%q ", m.MsgID[26:], m.Op, m.Body)
	}
	return b.String()
}

// TestRecallAndEdit: a recall and an edit are stored and delivered like
// messages, in order after the message; history hides them and shows
// their effect, to both sides of the conversation.
func TestRecallAndEdit(t *testing.T) {
	e := newEnv(t, PolicyKick, 2, withEditWindow(time.Minute), ticking)
	alice, bob := e.connect("alice"), e.connect("bob")
	// One batch each: the messages of a batch share a millisecond, and
	// history orders by msgId.
	var ids []string
	for i, cmid := range []string{"m1", "m2", "m3"} {
		ids = append(ids, sentIDs(t, e.uplink(alice, msgFrame(uint64(i+1), cmid, "bob")))...)
	}
	ans := e.uplink(alice,
		opFrame(4, "e1", "bob", "", ids[0], cimpb.MsgOp_MSG_OP_EDIT, "first edit"),
		opFrame(5, "e2", "bob", "", ids[0], cimpb.MsgOp_MSG_OP_EDIT, "second edit"),
		opFrame(6, "r1", "bob", "", ids[1], cimpb.MsgOp_MSG_OP_RECALL, ""))
	ops := sentIDs(t, ans)
	live := e.frames(bob)
	// A resend is the same message, stored once (and pushed again, which
	// the client drops as a repeat).
	if again := sentIDs(t, e.uplink(alice, opFrame(7, "e1", "bob", "", ids[0], cimpb.MsgOp_MSG_OP_EDIT, "first edit"))); again[0] != ops[0] {
		t.Fatalf("resent edit got msgId %s, want %s", again[0], ops[0])
	}

	// Bob's inbox and his live frames: the six messages once, in order,
	// the changes carrying their op and ref.
	for name, frames := range map[string][]*cimpb.Frame{"inbox": e.inbox(bob.UserID), "live": live} {
		var got []string
		for _, f := range frames {
			m := f.GetMsg()
			got = append(got, fmt.Sprintf("%s/%v/%s/%s", m.GetMsgId(), m.GetOp(), m.GetRefMsgId(), m.GetBody()))
		}
		want := []string{
			ids[0] + "/MSG_OP_NEW//body m1", ids[1] + "/MSG_OP_NEW//body m2", ids[2] + "/MSG_OP_NEW//body m3",
			ops[0] + "/MSG_OP_EDIT/" + ids[0] + "/first edit", ops[1] + "/MSG_OP_EDIT/" + ids[0] + "/second edit",
			ops[2] + "/MSG_OP_RECALL/" + ids[1] + "/",
		}
		if !slices.Equal(got, want) {
			t.Fatalf("bob's %s:\n%q\nwant\n%q", name, got, want)
		}
	}

	// History: the changes are not messages of their own; both sides see
	// the latest text and the recall.
	for _, view := range []struct {
		who  Session
		peer string
	}{{bob, "alice"}, {alice, "bob"}, {bob, ""}} {
		h := e.history(view.who, view.peer, "", "")
		if len(h) != 3 || h[0].MsgID != ids[2] || h[1].MsgID != ids[1] || h[2].MsgID != ids[0] {
			t.Fatalf("%s's history with %q: %s", view.who.UserName, view.peer, describe(h))
		}
		if h[0].Op != cimpb.MsgOp_MSG_OP_NEW || string(h[0].Body) != "body m3" {
			t.Fatalf("untouched message: %+v", h[0])
		}
		if h[1].Op != cimpb.MsgOp_MSG_OP_RECALL || len(h[1].Body) != 0 || h[1].File != nil {
			t.Fatalf("recalled message: %+v", h[1])
		}
		if h[2].Op != cimpb.MsgOp_MSG_OP_EDIT || string(h[2].Body) != "second edit" {
			t.Fatalf("edited message: %+v", h[2])
		}
	}
	// A keyword never finds a message by text it no longer has (the
	// search reads the stored messages, so it does not find one by its
	// edited text either).
	if h := e.history(bob, "alice", "", "body m"); len(h) != 1 || h[0].MsgID != ids[2] {
		t.Fatalf("keyword on the original texts: %s", describe(h))
	}
	if h := e.history(bob, "alice", "", "edit"); len(h) != 0 {
		t.Fatalf("keyword on the edits' texts: %s", describe(h))
	}

	// Once recalled, a message cannot be edited.
	refused(t, e.uplink(alice, opFrame(8, "e3", "bob", "", ids[1], cimpb.MsgOp_MSG_OP_EDIT, "too late"))[0], codes.BadArgument, "was recalled")
	// An edit after an edit is fine, and a recall after it wins.
	sentIDs(t, e.uplink(alice, opFrame(9, "r2", "bob", "", ids[0], cimpb.MsgOp_MSG_OP_RECALL, "")))
	if h := e.history(bob, "alice", "", ""); h[2].Op != cimpb.MsgOp_MSG_OP_RECALL || len(h[2].Body) != 0 {
		t.Fatalf("edited then recalled: %+v", h[2])
	}
}

// TestReviseRefused: the window, the shapes the route refuses, and a
// server with recall and edit off.
func TestReviseRefused(t *testing.T) {
	e := newEnv(t, PolicyKick, 1, withEditWindow(time.Minute))
	alice, _ := e.connect("alice"), e.connect("bob")
	id := sentIDs(t, e.uplink(alice, msgFrame(1, "m1", "bob")))[0]
	old := newMsgID(time.Now().Add(-2 * time.Minute))
	future := newMsgID(time.Now().Add(time.Hour))
	edit, recall := cimpb.MsgOp_MSG_OP_EDIT, cimpb.MsgOp_MSG_OP_RECALL
	file := opFrame(1, "f", "bob", "", id, edit, "x")
	file.Msg.Kind = cimpb.Kind_KIND_FILE
	bcast := opFrame(1, "b", "", "", id, recall, "")
	bcast.Msg.Broadcast = true
	replyTo := msgFrame(1, "n", "bob")
	replyTo.Msg.RefMsgId = id
	for _, tt := range []struct {
		name string
		f    *cimpb.Frame
		want string
	}{
		{"outside the window", opFrame(1, "a", "bob", "", old, edit, "x"), "older than the 1m0s"},
		{"from the future", opFrame(1, "a", "bob", "", future, edit, "x"), "not a message id"},
		{"not a msgId", opFrame(1, "a", "bob", "", "abc", recall, ""), "not a message id"},
		{"no ref", opFrame(1, "a", "bob", "", "", recall, ""), "not a message id"},
		{"a recall with a body", opFrame(1, "a", "bob", "", id, recall, "x"), "no body"},
		{"an edit without text", opFrame(1, "a", "bob", "", id, edit, ""), "new text"},
		{"an edit that is not UTF-8", opFrame(1, "a", "bob", "", id, edit, "\xff"), "UTF-8"},
		{"a file", file, "text message"},
		{"a broadcast", bcast, "broadcast"},
		{"an unknown op", opFrame(1, "a", "bob", "", id, 9, "x"), "unknown message op"},
		{"a ref on a new message", replyTo, "only for a recall, an edit or a reaction"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			refused(t, e.uplink(alice, tt.f)[0], codes.BadArgument, tt.want)
		})
	}

	off := newEnv(t, PolicyKick, 1)
	alice = off.connect("alice")
	off.connect("bob")
	refused(t, off.uplink(alice, opFrame(1, "a", "bob", "", id, recall, ""))[0], codes.BadArgument, "disabled")
}

// TestReviseOthersMessage: nobody changes another sender's message in
// history; a change naming it is stored as the forger's own (clients
// apply a change only to a message with the same from).
func TestReviseOthersMessage(t *testing.T) {
	e := newEnv(t, PolicyKick, 1, withEditWindow(time.Minute))
	alice, bob, eve := e.connect("alice"), e.connect("bob"), e.connect("eve")
	id := sentIDs(t, e.uplink(alice, msgFrame(1, "m1", "bob")))[0]
	sentIDs(t, e.uplink(eve,
		opFrame(1, "e1", "bob", "", id, cimpb.MsgOp_MSG_OP_EDIT, "forged"),
		opFrame(2, "r1", "bob", "", id, cimpb.MsgOp_MSG_OP_RECALL, "")))
	if h := e.history(bob, "alice", "", ""); len(h) != 1 || h[0].Op != cimpb.MsgOp_MSG_OP_NEW || string(h[0].Body) != "body m1" {
		t.Fatalf("alice's message after eve's changes: %s", describe(h))
	}
	if h := e.history(bob, "eve", "", ""); len(h) != 0 {
		t.Fatalf("eve's changes show as messages: %s", describe(h))
	}
	// And alice can still edit her own message (eve's recall did not make
	// it final).
	sentIDs(t, e.uplink(alice, opFrame(3, "e2", "bob", "", id, cimpb.MsgOp_MSG_OP_EDIT, "real edit")))
	if h := e.history(bob, "alice", "", ""); string(h[0].Body) != "real edit" {
		t.Fatalf("alice's edit: %s", describe(h))
	}
}

// TestGroupRevisions: a group message's edit and recall reach every
// member and show in the group's history, stored per member or in a
// timeline.
func TestGroupRevisions(t *testing.T) {
	for _, timeline := range []bool{false, true} {
		t.Run(fmt.Sprintf("timeline=%v", timeline), func(t *testing.T) {
			opts := []func(*Config){withEditWindow(time.Minute), ticking}
			if timeline {
				opts = append(opts, func(c *Config) { c.GroupTimelineMin = 2 })
			}
			e := newEnv(t, PolicyKick, 2, opts...)
			alice, bob, carol := e.connect("alice"), e.connect("bob"), e.connect("carol")
			gid := e.newGroup(alice, "team", bob, carol)
			id1 := groupSent(t, e.uplink(alice, groupFrame(1, "g1", gid))[0], "g1", gid, 2)
			id2 := groupSent(t, e.uplink(alice, groupFrame(2, "g2", gid))[0], "g2", gid, 2)
			groupSent(t, e.uplink(alice, opFrame(3, "e1", "", gid, id1, cimpb.MsgOp_MSG_OP_EDIT, "edited"))[0], "e1", gid, 2)
			groupSent(t, e.uplink(alice, opFrame(4, "r1", "", gid, id2, cimpb.MsgOp_MSG_OP_RECALL, ""))[0], "r1", gid, 2)
			for _, m := range []Session{bob, carol} {
				var fs []*cimpb.Frame // leaving out the invitation
				for _, f := range e.frames(m) {
					if f.GetMsg().GetGroup() == gid {
						fs = append(fs, f)
					}
				}
				if len(fs) != 4 || fs[2].Msg.Op != cimpb.MsgOp_MSG_OP_EDIT || fs[2].Msg.RefMsgId != id1 ||
					fs[3].Msg.Op != cimpb.MsgOp_MSG_OP_RECALL || fs[3].Msg.RefMsgId != id2 || fs[3].Msg.Group != gid {
					t.Fatalf("%s got %v", m.UserName, fs)
				}
				h := e.history(m, "", gid, "")
				if len(h) != 2 || h[0].Op != cimpb.MsgOp_MSG_OP_RECALL || h[1].Op != cimpb.MsgOp_MSG_OP_EDIT || string(h[1].Body) != "edited" {
					t.Fatalf("%s's group history: %s", m.UserName, describe(h))
				}
			}
		})
	}
}

// TestDeleteHistory: a deletion hides messages from the deleter's history
// only.
func TestDeleteHistory(t *testing.T) {
	e := newEnv(t, PolicyKick, 1, ticking)
	alice, bob := e.connect("alice"), e.connect("bob")
	ids := append(sentIDs(t, e.uplink(alice, msgFrame(1, "m1", "bob"))), sentIDs(t, e.uplink(alice, msgFrame(2, "m2", "bob")))...)
	if err := e.r.DeleteHistory(e.ctx, bob.UserID, []string{ids[0], newMsgID(time.Now())}); err != nil {
		t.Fatal(err)
	}
	if h := e.history(bob, "alice", "", ""); len(h) != 1 || h[0].MsgID != ids[1] {
		t.Fatalf("bob's history after deleting: %s", describe(h))
	}
	if h := e.history(bob, "", "", ""); len(h) != 1 || h[0].MsgID != ids[1] {
		t.Fatalf("bob's inbox history after deleting: %s", describe(h))
	}
	if h := e.history(alice, "bob", "", ""); len(h) != 2 {
		t.Fatalf("alice's history changed with bob's deletion: %s", describe(h))
	}
	many := make([]string, MaxHistoryDelete+1)
	for i := range many {
		many[i] = ids[1]
	}
	for name, in := range map[string][]string{
		"none": nil, "too many": many, "not an id": {"nope"}, "upper case": {strings.ToUpper(ids[1])},
		"from the future": {newMsgID(time.Now().Add(time.Hour))},
	} {
		if err := e.r.DeleteHistory(e.ctx, bob.UserID, in); !errors.Is(err, errs.ErrBadArgument) {
			t.Errorf("%s: %v, want bad argument", name, err)
		}
	}
}
