package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// TestReactCommands: :react reacts to the last incoming message (:react N
// the N-th most recent, numbered as :reply numbers them), to its sender or
// in its group, a :code: as its emoji; :unreact takes it back; errors for
// nothing to react to, an unknown code, a bad emoji and the route's
// refusal. Incoming reactions print status lines quoting the message, are
// never numbered nor READ; history lines end with the reactions.
func TestReactCommands(t *testing.T) {
	s := newSession(t)
	in := clienttest.NewInbox()
	s.gw.SetInbox(func(string) *clienttest.Inbox { return in })
	s.gw.SetOnMsg(func(m *cimpb.Msg) *cimpb.Frame {
		if string(m.GetBody()) == "🔥" {
			return &cimpb.Frame{Type: cimpb.Type_ERROR, Error: &cimpb.Error{Code: int32(codes.BadArgument),
				ClientMsgId: m.GetClientMsgId(), Text: "message " + m.GetRefMsgId() + " has 20 different reactions already"}}
		}
		return clienttest.Receipts(m)
	})
	uid := s.route.AddUser("alice", "secret1")
	bob := s.route.AddUser("bob", "secret1")
	carol := s.route.AddUser("carol", "secret1")
	const (
		q1 = "0190f1c2d3e4f5a6b7c8d9e0f1a2b301"
		q2 = "0190f1c2d3e4f5a6b7c8d9e0f1a2b302"
		q3 = "0190f1c2d3e4f5a6b7c8d9e0f1a2b303"
		q4 = "0190f1c2d3e4f5a6b7c8d9e0f1a2b304"
		r1 = "0190f1c2d3e4f5a6b7c8d9e0f1a2b3e1"
		r2 = "0190f1c2d3e4f5a6b7c8d9e0f1a2b3e2"
		r3 = "0190f1c2d3e4f5a6b7c8d9e0f1a2b3e3"
		r4 = "0190f1c2d3e4f5a6b7c8d9e0f1a2b3e4"
		r5 = "0190f1c2d3e4f5a6b7c8d9e0f1a2b3e5"
		h1 = "0190f1c2d3e4f5a6b7c8d9e0f1a2b3a1"
	)
	s.route.AddHistory(
		clienttest.HistoryMsg{MsgID: h1, From: bob, FromName: "bob", To: uid, Body: "old question",
			Reactions: []clienttest.ReactionJSON{{Emoji: "👍", Count: 2, Mine: true}, {Emoji: "❤️", Count: 1}}},
	)
	s.start(t)
	n := s.out.expect(t, 0, `^\* logged in as alice`)
	conn := s.gw.Accept(t)

	s.send(t, ":react 👍")
	n = s.out.expect(t, n, `^! no message received to react to$`)

	msg := func(id, from, name, group, text string) *cimpb.Frame {
		f := clienttest.TextMsg(id, from, name, text)
		f.Msg.Group = group
		return f
	}
	if err := conn.SendAll(in.Append(msg(q1, bob, "bob", "", "are you there?")), in.Append(msg(q2, carol, "carol", "7", "lunch?"))); err != nil {
		t.Fatal(err)
	}
	n = s.out.expect(t, n, `carol@#7: lunch\?$`)

	for _, tc := range []struct {
		line, to, group, ref, emoji, sent string
	}{
		{":react :thumbsup:", "", "7", q2, "👍", `^\* ✓ reacted 👍 to carol@#7: lunch\?$`},
		{":react 2 ❤️", bob, "", q1, "❤️", `^\* ✓ reacted ❤️ to bob: are you there\?$`},
		{":unreact 2", bob, "", q1, "", `^\* ✓ took back your reaction to bob: are you there\?$`},
		{":react 🔥", "", "7", q2, "🔥", `^! message ` + q2 + ` has 20 different reactions already$`},
	} {
		s.send(t, tc.line)
		m := conn.Next(t, cimpb.Type_MSG).GetMsg()
		if m.GetOp() != cimpb.MsgOp_MSG_OP_REACT || m.GetTo() != tc.to || m.GetGroup() != tc.group || m.GetRefMsgId() != tc.ref ||
			string(m.GetBody()) != tc.emoji || m.GetReplyTo() != "" {
			t.Errorf("%s: uplink %v, want reaction %q to %s for %q/%q", tc.line, m, tc.emoji, tc.ref, tc.to, tc.group)
		}
		n = s.out.expect(t, n, tc.sent)
	}
	s.send(t, ":react 3 👍")
	n = s.out.expect(t, n, `^! no message 3 received to react to \(the terminal keeps the last 100\)$`)
	s.send(t, ":react :nosuch:")
	n = s.out.expect(t, n, `^! unknown emoji :nosuch: \(:emoji lists the codes\)$`)
	s.send(t, ":react "+strings.Repeat("x", 33))
	n = s.out.expect(t, n, `^! not an emoji: "x{33}" \(one emoji or :code:, at most 32 bytes; :emoji lists the codes\)$`)
	s.send(t, ":react 2")
	n = s.out.expect(t, n, `^! usage: :react \[N\] <emoji>`)

	// Incoming: reactions from others, a take-back, one to a message this
	// terminal never showed, mine from another device; then a message.
	react := func(f *cimpb.Frame, ref, emoji string) *cimpb.Frame {
		f.Msg.Op, f.Msg.RefMsgId, f.Msg.Body = cimpb.MsgOp_MSG_OP_REACT, ref, []byte(emoji)
		return f
	}
	own := react(msg(r5, uid, "alice", "", ""), q1, "🎉")
	own.Msg.To, own.Msg.ClientMsgId = bob, "0123456789abcdef-9"
	if err := conn.SendAll(
		in.Append(react(msg(r1, bob, "bob", "", ""), q1, "👍")),
		in.Append(react(msg(r2, carol, "carol", "7", ""), q2, "🍺")),
		in.Append(react(msg(r3, bob, "bob", "", ""), q1, "")),
		in.Append(react(msg(r4, bob, "bob", "", ""), "0190f1c2d3e4f5a6b7c8d9e0f1a2b399", "👀")),
		in.Append(own),
		in.Append(msg(q3, bob, "bob", "", "more?")),
		in.Append(msg(q4, carol, "carol", "7", "well?")),
	); err != nil {
		t.Fatal(err)
	}
	n = s.out.expect(t, n, `^\* bob reacted 👍 to: are you there\?$`)
	n = s.out.expect(t, n, `^\* carol@#7 reacted 🍺 to: lunch\?$`)
	n = s.out.expect(t, n, `^\* bob took back a reaction to: are you there\?$`)
	n = s.out.expect(t, n, `^\* bob reacted 👀 to a message$`)
	n = s.out.expect(t, n, `^\* me → bob: reacted 🎉 to: are you there\? \(from another device\)$`)
	n = s.out.expect(t, n, `\] bob: more\?$`)
	n = s.out.expect(t, n, `\] carol@#7: well\?$`)

	// Reactions are not numbered: 4 is q1 (q4, q3, q2, q1).
	s.send(t, ":react 4 :heart:")
	if m := conn.Next(t, cimpb.Type_MSG).GetMsg(); m.GetRefMsgId() != q1 || m.GetTo() != bob || string(m.GetBody()) != "❤️" {
		t.Errorf(":react 4 uplink %v, want ❤️ to %s for bob", m, q1)
	}
	n = s.out.expect(t, n, `^\* ✓ reacted ❤️ to bob: are you there\?$`)

	// The messages are READ, never a reaction: each reaction came before
	// q3 or q4 from the same sender, so its READ would come before theirs
	// or with them.
	read := map[string]bool{}
	for !read[q3] || !read[q4] {
		for _, id := range conn.Next(t, cimpb.Type_READ).GetRead().GetMsgIds() {
			read[id] = true
		}
	}
	for _, r := range []string{r1, r2, r3, r4, r5} {
		if read[r] {
			t.Errorf("reaction %s was READ", r)
		}
	}
	if !read[q1] || !read[q2] {
		t.Errorf("READ %v, want %s and %s too", read, q1, q2)
	}

	s.send(t, ":status")
	n = s.out.expect(t, n, `^\* \[\d\d:\d\d:\d\d\] to `+bob+`: \(reaction taken back\) ✓$`)

	s.send(t, ":his bob")
	n = s.out.expect(t, n, `\] bob: old question \[👍 2\* ❤️ 1\]$`)

	s.send(t, ":help")
	n = s.out.expect(t, n, `^\*   `+regexp.QuoteMeta(":react [N] <emoji>")+` `)
	s.out.expect(t, n, `^\*   `+regexp.QuoteMeta(":unreact [N]")+` `)
	s.send(t, ":q")
	if code := s.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, s.err.String())
	}
}
