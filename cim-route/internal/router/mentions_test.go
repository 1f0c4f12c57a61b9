package router

import (
	"fmt"
	"slices"
	"testing"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

func mentionFrame(reqID uint64, cmid, gid string, mentions ...string) *cimpb.Frame {
	f := groupFrame(reqID, cmid, gid)
	f.Msg.Mentions = mentions
	return f
}

// TestMentions: a group message's mentions reach every member as the ids
// of the members it names, once each, in order — names resolved, unknown
// or malformed names and non-members dropped — stored with it (inbox copies
// and a timeline) and in history and the webhooks; mentions anywhere but on
// a new group message, or too many, are refused with 3000 and nothing is
// sent.
func TestMentions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		timeline int
	}{{"inbox copies", 0}, {"timeline", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			hooks := &sink{t: t}
			e := newEnv(t, PolicyKick, 2, func(c *Config) { c.GroupTimelineMin = tc.timeline; c.Events = hooks })
			alice, bob := e.connect("alice"), e.connect("bob")
			carol, dave := e.account("carol"), e.connect("dave")
			gid := e.newGroup(alice, "team", bob, carol)
			hooks.messages()
			want := []string{bob.UserID, carol.UserID, alice.UserID}
			sent := groupSent(t, e.uplink(alice, mentionFrame(1, "m", gid, "bob", carol.UserID, "dave", "nobody", "@bob", "bob?", "", "BOB", "alice", "999"))[0], "m", gid, 2)
			fs := e.frames(bob)
			if m := fs[len(fs)-1].GetMsg(); m.GetMsgId() != sent || !slices.Equal(m.GetMentions(), want) {
				t.Fatalf("bob got %v, want mentions %v", m, want)
			}
			if h := e.history(bob, "", gid, ""); len(h) == 0 || h[0].MsgID != sent || !slices.Equal(h[0].Mentions, want) {
				t.Fatalf("the group's history %+v, want the message with mentions %v", h, want)
			}
			for k, m := range hooks.messages() {
				if !slices.Equal(m.Mentions, want) {
					t.Fatalf("webhook %s %+v, want mentions %v", k, m, want)
				}
			}
			if slices.ContainsFunc(e.frames(dave), func(f *cimpb.Frame) bool { return f.GetMsg().GetMsgId() == sent }) {
				t.Fatalf("dave, mentioned but no member, got the message")
			}
			// Nobody a member: no mentions at all.
			plain := groupSent(t, e.uplink(alice, mentionFrame(2, "p", gid, "dave"))[0], "p", gid, 2)
			fs = e.frames(bob)
			if m := fs[len(fs)-1].GetMsg(); m.GetMsgId() != plain || m.GetMentions() != nil {
				t.Fatalf("bob got %v, want no mentions", m)
			}

			before := len(e.frames(bob))
			many := make([]string, MaxMentions+1)
			for i := range many {
				many[i] = fmt.Sprint(i + 1)
			}
			for _, f := range []*cimpb.Frame{
				{Type: cimpb.Type_MSG, ReqId: 10, Msg: &cimpb.Msg{ClientMsgId: "private", To: "bob", Body: []byte("hi"), Mentions: []string{"bob"}}},
				{Type: cimpb.Type_MSG, ReqId: 11, Msg: &cimpb.Msg{ClientMsgId: "all", Broadcast: true, Body: []byte("hi"), Mentions: []string{"bob"}}},
				mentionFrame(12, "many", gid, many...),
				{Type: cimpb.Type_MSG, ReqId: 14, Msg: &cimpb.Msg{ClientMsgId: "edit", Group: gid, Op: cimpb.MsgOp_MSG_OP_EDIT, RefMsgId: sent, Body: []byte("x"), Mentions: []string{"bob"}}},
			} {
				refused(t, e.uplink(alice, f)[0], codes.BadArgument, "mention")
			}
			if n := len(e.frames(bob)); n != before {
				t.Fatalf("bob got %d frames from refused mentions", n-before)
			}
		})
	}
}
