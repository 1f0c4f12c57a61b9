package router

import (
	"testing"
	"time"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// replyFrame is an uplink text MSG answering ref, to a user or (gid set)
// a group.
func replyFrame(reqID uint64, cmid, to, gid, ref string) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: reqID, Msg: &cimpb.Msg{
		ClientMsgId: cmid, To: to, Group: gid, Body: []byte("body " + cmid), ReplyTo: ref}}
}

// TestReplies: a reply's reply_to reaches the recipient live, is stored
// with the message (its inbox, a small group's copies, a large group's
// timeline) and shows in history; a reply_to that is not a message id, on
// a broadcast, or on an edit is refused with 3000 and nothing is sent.
func TestReplies(t *testing.T) {
	for _, tc := range []struct {
		name     string
		timeline int
	}{{"inbox copies", 0}, {"timeline", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, PolicyKick, 2, withEditWindow(time.Minute), ticking, func(c *Config) { c.GroupTimelineMin = tc.timeline })
			alice, bob := e.connect("alice"), e.connect("bob")
			asked := sentIDs(t, e.uplink(bob, msgFrame(1, "q", "alice")))[0]
			answer := sentIDs(t, e.uplink(alice, replyFrame(1, "a", "bob", "", asked)))[0]
			fs := e.frames(bob)
			if m := fs[len(fs)-1].GetMsg(); m.GetMsgId() != answer || m.GetReplyTo() != asked {
				t.Fatalf("bob got %v, want alice's answer replying to %s", m, asked)
			}
			in := e.inbox(bob.UserID)
			if m := in[len(in)-1].GetMsg(); m.GetMsgId() != answer || m.GetReplyTo() != asked {
				t.Fatalf("bob's inbox ends with %v, want the answer replying to %s", m, asked)
			}
			for who, peer := range map[Session]string{alice: "bob", bob: "alice"} {
				if h := e.history(who, peer, "", ""); len(h) != 2 || h[0].MsgID != answer || h[0].ReplyTo != asked || h[1].ReplyTo != "" {
					t.Fatalf("%s's history %+v, want the answer replying to %s, then the question", who.UserName, h, asked)
				}
			}

			gid := e.newGroup(bob, "team", alice)
			gq := groupSent(t, e.uplink(bob, groupFrame(2, "gq", gid))[0], "gq", gid, 1)
			ga := groupSent(t, e.uplink(alice, replyFrame(2, "ga", "", gid, gq))[0], "ga", gid, 1)
			fs = e.frames(bob)
			if m := fs[len(fs)-1].GetMsg(); m.GetMsgId() != ga || m.GetReplyTo() != gq || m.GetGroup() != gid {
				t.Fatalf("bob got %v in the group, want alice's answer replying to %s", m, gq)
			}
			if h := e.history(bob, "", gid, ""); len(h) == 0 || h[0].MsgID != ga || h[0].ReplyTo != gq {
				t.Fatalf("the group's history %+v, want the answer replying to %s", h, gq)
			}

			before := len(e.frames(bob))
			for i, f := range []*cimpb.Frame{
				replyFrame(10, "bad", "bob", "", "not a message id"),
				replyFrame(11, "upper", "bob", "", "0123456789ABCDEF0123456789ABCDEF"),
				replyFrame(12, "future", "bob", "", newMsgID(time.Now().Add(time.Hour))),
				{Type: cimpb.Type_MSG, ReqId: 13, Msg: &cimpb.Msg{ClientMsgId: "all", Broadcast: true, Body: []byte("hi"), ReplyTo: asked}},
				opFrame(14, "edit", "bob", "", answer, cimpb.MsgOp_MSG_OP_EDIT, "edited"),
			} {
				if i == 4 {
					f.Msg.ReplyTo = asked
				}
				ds := e.uplink(alice, f)
				refused(t, ds[0], codes.BadArgument, "reply")
			}
			if n := len(e.frames(bob)); n != before {
				t.Fatalf("bob got %d frames from refused replies", n-before)
			}
		})
	}
}
