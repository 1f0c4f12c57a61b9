package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/proto/cimpb"
)

// TestMentionCommands: "@name" words of :g and of a :reply in a group go
// as mentions with the text unchanged (once each; more than 50 refused,
// nothing sent); private messages and replies carry none. Lines that
// mention the user end with "(mentions you)": on the mentioned member's
// own terminal, after a reply's quote, in :ghis; never on the lines of
// others' mentions nor of the user's own messages.
func TestMentionCommands(t *testing.T) {
	s := newSession(t)
	var boxes inboxes
	s.gw.SetInbox(boxes.of)
	s.gw.SetGroups(s.route)
	s.gw.SetOnMsg(clienttest.Receipts)
	uid := s.route.AddUser("alice", "secret1")
	bob := s.route.AddUser("bob", "secret1")
	carol := s.route.AddUser("carol", "secret1")
	dave := s.route.AddUser("dave", "secret1") // no member
	team := s.route.AddGroup("team", uid, false, bob, carol)
	s.route.AddHistory(
		clienttest.HistoryMsg{MsgID: "0190f1c2d3e4f5a6b7c8d9e0f1a2b3a1", From: bob, FromName: "bob", Group: team,
			Body: "standup @alice?", Mentions: []string{uid}},
		clienttest.HistoryMsg{MsgID: "0190f1c2d3e4f5a6b7c8d9e0f1a2b3a2", From: uid, FromName: "alice", Group: team,
			Body: "yes @bob @alice", Mentions: []string{bob, uid}},
		clienttest.HistoryMsg{MsgID: "0190f1c2d3e4f5a6b7c8d9e0f1a2b3a3", From: carol, FromName: "carol", Group: team,
			Body: "me too @bob", Mentions: []string{bob}},
	)
	s.start(t)
	n := s.out.expect(t, 0, `^\* logged in as alice`)
	conn := s.gw.Accept(t)
	// bob on a terminal of his own, live in the group.
	b := &session{out: newLines(), code: make(chan int, 1), gw: s.gw, route: s.route}
	b.start(t, "--user", "bob")
	bn := b.out.expect(t, 0, `^\* logged in as bob`)
	s.gw.Accept(t)

	uplink := func(line string, mentions ...string) *cimpb.Msg {
		t.Helper()
		s.send(t, line)
		m := conn.Next(t, cimpb.Type_MSG).GetMsg()
		if !slices.Equal(m.GetMentions(), mentions) {
			t.Errorf("%s: uplink %v, want mentions %q", line, m, mentions)
		}
		return m
	}

	// :g: the text as typed, the names once each.
	const lunch = "lunch @bob? @carol, @dave and @bob! mail me@example.com @zed. @42"
	m := uplink(":g "+team+" "+lunch, "bob", "carol", "dave", "zed")
	if m.GetGroup() != team || string(m.GetBody()) != lunch {
		t.Errorf("uplink %v, want %q to group %s", m, lunch, team)
	}
	n = s.out.expect(t, n, `^\* ✓ sent to team: lunch @bob\? `)
	bn = b.out.expect(t, bn, `^\[\d\d:\d\d:\d\d\] alice@team: `+regexp.QuoteMeta(lunch)+` \(mentions you\)$`)
	hi := uplink(":g "+team+" hi @carol :smile:", "carol")
	n = s.out.expect(t, n, `^\* ✓ sent to team: hi @carol 😄$`)
	bn = b.out.expect(t, bn, `^\[\d\d:\d\d:\d\d\] alice@team: hi @carol 😄$`)

	// Too many: refused, nothing sent (the next uplink is the next line's).
	var names, many []string
	for i := range 51 {
		names, many = append(names, fmt.Sprintf("u%d", i)), append(many, fmt.Sprintf("@u%d", i))
	}
	s.send(t, ":g "+team+" "+strings.Join(many, " "))
	n = s.out.expect(t, n, `^! too many mentions: 51 names \(at most 50 a message\); nothing sent$`)
	uplink(":g "+team+" "+strings.Join(many[:50], " ")+" @u0", names[:50]...)
	n = s.out.expect(t, n, `^\* ✓ sent to team: @u0 @u1 `)

	// Private: an @word is text.
	m = uplink("bob;;hi @carol and @bob")
	if m.GetTo() != "bob" || string(m.GetBody()) != "hi @carol and @bob" {
		t.Errorf("private uplink %v", m)
	}
	n = s.out.expect(t, n, `^\* ✓ sent to bob: hi @carol and @bob$`)

	// bob answers in the group, quoting alice's message and mentioning
	// her; then a message of his that does not.
	in := boxes.of(uid)
	const q1, q2 = "0190f1c2d3e4f5a6b7c8d9e0f1a2b301", "0190f1c2d3e4f5a6b7c8d9e0f1a2b302"
	sure := clienttest.GroupMsg(q1, bob, "bob", team, "sure @alice")
	sure.Msg.ReplyTo, sure.Msg.Mentions = "m-"+hi.GetClientMsgId(), []string{uid} // the fake's msgId
	later := clienttest.GroupMsg(q2, bob, "bob", team, "and @carol?")
	later.Msg.Mentions = []string{carol}
	if err := conn.SendAll(in.Append(sure), in.Append(later)); err != nil {
		t.Fatal(err)
	}
	n = s.out.expect(t, n, `^\[\d\d:\d\d:\d\d\] bob@team: sure @alice \(↪ alice: hi @carol 😄\) \(mentions you\)$`)
	n = s.out.expect(t, n, `^\[\d\d:\d\d:\d\d\] bob@team: and @carol\?$`)

	// :reply in a group mentions, a private :reply does not.
	if err := conn.Send(in.Append(clienttest.TextMsg("0190f1c2d3e4f5a6b7c8d9e0f1a2b303", dave, "dave", "psst"))); err != nil {
		t.Fatal(err)
	}
	n = s.out.expect(t, n, `\] dave: psst$`)
	m = uplink(":reply thanks @bob @dave")
	if m.GetTo() != dave || m.GetGroup() != "" || string(m.GetBody()) != "thanks @bob @dave" {
		t.Errorf("private reply %v", m)
	}
	n = s.out.expect(t, n, `^\* ✓ sent to dave: thanks @bob @dave$`)
	m = uplink(":reply 3 ok @bob, @bob", "bob")
	if m.GetGroup() != team || m.GetReplyTo() != q1 || string(m.GetBody()) != "ok @bob, @bob" {
		t.Errorf("group reply %v", m)
	}
	n = s.out.expect(t, n, `^\* ✓ sent to team: ok @bob, @bob$`)
	bn = b.out.expect(t, bn, `^\[\d\d:\d\d:\d\d\] alice@team: ok @bob, @bob \(↪ a message\) \(mentions you\)$`)
	s.send(t, ":reply 2 "+strings.Join(many, " "))
	n = s.out.expect(t, n, `^! too many mentions: 51 names \(at most 50 a message\); nothing sent$`)

	// My own message from another device mentioning me: no mark.
	own := clienttest.GroupMsg("0190f1c2d3e4f5a6b7c8d9e0f1a2b304", uid, "alice", team, "note to self @alice")
	own.Msg.ClientMsgId, own.Msg.Mentions = "0123456789abcdef-9", []string{uid}
	if err := conn.Send(in.Append(own)); err != nil {
		t.Fatal(err)
	}
	n = s.out.expect(t, n, `^\[\d\d:\d\d:\d\d\] me@team: note to self @alice \(from another device\)$`)

	// :ghis: the lines mentioning me, not mine nor others'.
	s.send(t, ":ghis "+team)
	n = s.out.expect(t, n, `\] bob: standup @alice\? \(mentions you\)$`)
	n = s.out.expect(t, n, `\] alice: yes @bob @alice$`)
	n = s.out.expect(t, n, `\] carol: me too @bob$`)

	// Nothing else went out: the 51 names never did.
	s.send(t, "bob;;last")
	if m := conn.Next(t, cimpb.Type_MSG).GetMsg(); string(m.GetBody()) != "last" {
		t.Errorf("uplink %v, want the last line's", m)
	}
	n = s.out.expect(t, n, `^\* ✓ sent to bob: last$`)

	s.send(t, ":help")
	s.out.expect(t, n, `^\*   :g <gid> <text> .*@name`)
	for _, x := range []*session{b, s} {
		x.send(t, ":q")
		if code := x.wait(t); code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, x.err.String())
		}
	}
}
