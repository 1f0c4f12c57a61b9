package router

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

func reactFrame(reqID uint64, cmid, to, gid, ref, emoji string) *cimpb.Frame {
	return opFrame(reqID, cmid, to, gid, ref, cimpb.MsgOp_MSG_OP_REACT, emoji)
}

// reactions describes a history message's reactions as "👍1 ❤️2 mine:👍".
func reactions(m HistoryMessage) string {
	var b strings.Builder
	for _, c := range m.Reactions.Counts {
		fmt.Fprintf(&b, "%s%d ", c.Emoji, c.Count)
	}
	return b.String() + "mine:" + m.Reactions.Mine
}

// TestReactions: a reaction reaches the other side live and is stored like
// a message; history shows each message's reactions with the viewer's own,
// replaced, taken back, in private chats and groups (inbox copies and
// timelines); a reaction sent in another conversation or to a user who
// blocked its sender never shows; a recalled message shows none; bad
// reactions are refused with 3000 and nothing is sent.
func TestReactions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		timeline int
	}{{"inbox copies", 0}, {"timeline", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, PolicyKick, 2, withEditWindow(time.Minute), ticking, func(c *Config) { c.GroupTimelineMin = tc.timeline })
			alice, bob, carol := e.connect("alice"), e.connect("bob"), e.connect("carol")
			q := sentIDs(t, e.uplink(bob, msgFrame(1, "q", "alice")))[0]
			rx := sentIDs(t, e.uplink(alice, reactFrame(1, "r1", "bob", "", q, "👍")))[0]
			fs := e.frames(bob)
			if m := fs[len(fs)-1].GetMsg(); m.GetMsgId() != rx || m.GetOp() != cimpb.MsgOp_MSG_OP_REACT || m.GetRefMsgId() != q ||
				string(m.GetBody()) != "👍" || m.GetFrom() != alice.UserID || m.GetSeq() == 0 {
				t.Fatalf("bob got %v, want alice's stored 👍 on %s", m, q)
			}
			view := func(who Session, peer, gid string) []string {
				t.Helper()
				var out []string
				for _, m := range e.history(who, peer, gid, "") {
					out = append(out, reactions(m))
				}
				return out
			}
			expect := func(got []string, want ...string) {
				t.Helper()
				if strings.Join(got, ", ") != strings.Join(want, ", ") {
					t.Fatalf("history reactions [%s], want [%s]", strings.Join(got, ", "), strings.Join(want, ", "))
				}
			}
			expect(view(alice, "bob", ""), "👍1 mine:👍")
			expect(view(bob, "alice", ""), "👍1 mine:")

			// bob on his own message; alice changes hers, takes it back; a
			// resend changes nothing.
			sentIDs(t, e.uplink(bob, reactFrame(2, "r2", "alice", "", q, "❤️")))
			expect(view(alice, "bob", ""), "👍1 ❤️1 mine:👍")
			sentIDs(t, e.uplink(alice, reactFrame(3, "r3", "bob", "", q, "❤️")))
			expect(view(bob, "alice", ""), "❤️2 mine:❤️")
			sentIDs(t, e.uplink(alice, reactFrame(4, "r4", "bob", "", q, "")))
			fs = e.frames(bob)
			if m := fs[len(fs)-1].GetMsg(); m.GetOp() != cimpb.MsgOp_MSG_OP_REACT || len(m.GetBody()) != 0 || m.GetRefMsgId() != q {
				t.Fatalf("bob's last frame %v, want alice's take-back", m)
			}
			sentIDs(t, e.uplink(alice, reactFrame(3, "r3", "bob", "", q, "❤️"))) // a late resend
			expect(view(alice, "bob", ""), "❤️1 mine:")

			// carol names alice and bob's message: alice gets it (carol may
			// write to her), but it is carol's conversation with alice.
			sentIDs(t, e.uplink(carol, reactFrame(1, "c1", "alice", "", q, "😂")))
			expect(view(alice, "bob", ""), "❤️1 mine:")
			// A reaction to a user who blocked its sender is not kept.
			cq := sentIDs(t, e.uplink(bob, msgFrame(5, "cq", "carol")))[0]
			if _, err := e.r.Block(e.ctx, bob.UserID, "carol"); err != nil {
				t.Fatal(err)
			}
			sentIDs(t, e.uplink(carol, reactFrame(2, "c2", "bob", "", cq, "😂")))
			expect(view(bob, "carol", ""), "mine:")

			gid := e.newGroup(bob, "team", alice)
			gq := groupSent(t, e.uplink(bob, groupFrame(6, "gq", gid))[0], "gq", gid, 1)
			gr := groupSent(t, e.uplink(alice, reactFrame(7, "gr", "", gid, gq, "🙏"))[0], "gr", gid, 1)
			fs = e.frames(bob)
			if m := fs[len(fs)-1].GetMsg(); m.GetMsgId() != gr || m.GetOp() != cimpb.MsgOp_MSG_OP_REACT || m.GetRefMsgId() != gq || m.GetGroup() != gid {
				t.Fatalf("bob got %v in the group, want alice's 🙏 on %s", m, gq)
			}
			groupSent(t, e.uplink(bob, reactFrame(8, "gr2", "", gid, gq, "👍"))[0], "gr2", gid, 1)
			expect(view(alice, "", gid), "🙏1 👍1 mine:🙏")

			// A recalled message shows no reactions.
			sentIDs(t, e.uplink(bob, opFrame(9, "rc", "alice", "", q, cimpb.MsgOp_MSG_OP_RECALL, "")))
			h := e.history(alice, "bob", "", "")
			if i := slices.IndexFunc(h, func(m HistoryMessage) bool { return m.MsgID == q }); i < 0 || h[i].Op != cimpb.MsgOp_MSG_OP_RECALL || reactions(h[i]) != "mine:" {
				t.Fatalf("alice's history after the recall: %s", describe(h))
			}

			before := len(e.frames(bob))
			for i, f := range []*cimpb.Frame{
				reactFrame(10, "bad", "bob", "", "not a message id", "👍"),
				reactFrame(11, "future", "bob", "", newMsgID(time.Now().Add(time.Hour)), "👍"),
				reactFrame(12, "space", "bob", "", q, "👍 👍"),
				reactFrame(13, "long", "bob", "", q, strings.Repeat("👍", 9)),
				reactFrame(14, "ctl", "bob", "", q, "a\x01"),
				reactFrame(15, "utf8", "bob", "", q, "\xff"),
				reactFrame(16, "all", "", "", q, "👍"),
				reactFrame(17, "reply", "bob", "", q, "👍"),
				reactFrame(18, "file", "bob", "", q, "👍"),
			} {
				switch i {
				case 6:
					f.Msg.Broadcast = true
				case 7:
					f.Msg.ReplyTo = q
				case 8:
					f.Msg.Kind = cimpb.Kind_KIND_FILE
				}
				if ds := e.uplink(alice, f); ds[0].Frame.GetType() != cimpb.Type_ERROR || codes.Code(ds[0].Frame.GetError().GetCode()) != codes.BadArgument {
					t.Fatalf("reaction %s answered %v, want ERROR %d", f.Msg.ClientMsgId, ds[0].Frame, codes.BadArgument)
				}
			}
			if n := len(e.frames(bob)); n != before {
				t.Fatalf("bob got %d frames from refused reactions", n-before)
			}
		})
	}
}

// TestReactionKinds: a message takes model.ReactionKinds different emoji;
// one more is refused with 3000 before anything is stored, while a known
// one still goes.
func TestReactionKinds(t *testing.T) {
	e := newEnv(t, PolicyKick, 1, ticking)
	owner := e.connect("owner")
	var members []Session
	for i := range model.ReactionKinds + 1 {
		members = append(members, e.connect(fmt.Sprintf("m%d", i)))
	}
	gid := e.newGroup(owner, "crowd", members...)
	gq := groupSent(t, e.uplink(owner, groupFrame(1, "gq", gid))[0], "gq", gid, uint32(len(members)))
	for i, m := range members[:model.ReactionKinds] {
		groupSent(t, e.uplink(m, reactFrame(1, "r", "", gid, gq, fmt.Sprintf("e%d", i)))[0], "r", gid, uint32(len(members)))
	}
	last := members[model.ReactionKinds]
	before := len(e.frames(owner))
	refused(t, e.uplink(last, reactFrame(1, "new", "", gid, gq, "new"))[0], codes.BadArgument, "different reactions")
	if n := len(e.frames(owner)); n != before {
		t.Fatalf("the owner got %d frames from a refused reaction", n-before)
	}
	groupSent(t, e.uplink(last, reactFrame(2, "known", "", gid, gq, "e3"))[0], "known", gid, uint32(len(members)))
	h := e.history(last, "", gid, "")
	if len(h) != 1 || len(h[0].Reactions.Counts) != model.ReactionKinds || h[0].Reactions.Counts[3] != (model.EmojiCount{Emoji: "e3", Count: 2}) || h[0].Reactions.Mine != "e3" {
		t.Fatalf("history %+v, want %d kinds with e3 twice, mine", h, model.ReactionKinds)
	}
}
