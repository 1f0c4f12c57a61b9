package main

import (
	"regexp"
	"testing"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/proto/cimpb"
)

// TestReplyCommands: :reply answers the last incoming message (:reply N
// the N-th most recent) with ReplyTo, to its sender or in its group, and
// errs with nothing to answer; incoming replies and history lines quote
// the message they answer, a message of ours too.
func TestReplyCommands(t *testing.T) {
	s := newSession(t)
	s.gw.SetOnMsg(clienttest.Receipts)
	uid := s.route.AddUser("alice", "secret1")
	bob := s.route.AddUser("bob", "secret1")
	carol := s.route.AddUser("carol", "secret1")
	const (
		q1 = "0190f1c2d3e4f5a6b7c8d9e0f1a2b301"
		q2 = "0190f1c2d3e4f5a6b7c8d9e0f1a2b302"
		q3 = "0190f1c2d3e4f5a6b7c8d9e0f1a2b303"
		h1 = "0190f1c2d3e4f5a6b7c8d9e0f1a2b3a1"
		h2 = "0190f1c2d3e4f5a6b7c8d9e0f1a2b3a2"
	)
	s.route.AddHistory(
		clienttest.HistoryMsg{MsgID: h1, From: bob, FromName: "bob", To: uid, Body: "old question"},
		clienttest.HistoryMsg{MsgID: h2, From: uid, FromName: "alice", To: bob, Body: "old answer", ReplyTo: h1},
	)
	s.start(t)
	n := s.out.expect(t, 0, `^\* logged in as alice`)
	conn := s.gw.Accept(t)

	s.send(t, ":reply anyone?")
	n = s.out.expect(t, n, `^! no message received to reply to$`)

	in := func(id, from, name, group, text string) *cimpb.Frame {
		f := clienttest.TextMsg(id, from, name, text)
		f.Msg.Group = group
		return f
	}
	if err := conn.SendAll(in(q1, bob, "bob", "", "are you there?"), in(q2, carol, "carol", "", "hi"), in(q3, bob, "bob", "7", "lunch?")); err != nil {
		t.Fatal(err)
	}
	n = s.out.expect(t, n, `bob@#7: lunch\?$`)

	var last string // the client_msg_id of the last reply
	for _, tc := range []struct {
		line, to, group, replyTo, body, sent string
	}{
		{":reply 1 3 apples", "", "7", q3, "3 apples", `^\* ✓ sent to #7: 3 apples$`},
		{":reply 2 x", carol, "", q2, "x", `^\* ✓ sent to carol: x$`},
		{":reply 3 yes", bob, "", q1, "yes", `^\* ✓ sent to bob: yes$`},
	} {
		s.send(t, tc.line)
		m := conn.Next(t, cimpb.Type_MSG).GetMsg()
		if m.GetTo() != tc.to || m.GetGroup() != tc.group || m.GetReplyTo() != tc.replyTo || string(m.GetBody()) != tc.body {
			t.Errorf("%s: uplink %v, want %q to %q/%q replying to %s", tc.line, m, tc.body, tc.to, tc.group, tc.replyTo)
		}
		n = s.out.expect(t, n, tc.sent)
		last = m.GetClientMsgId()
	}
	s.send(t, ":reply 4 x")
	n = s.out.expect(t, n, `^! no message 4 received to reply to \(the terminal keeps the last 100\)$`)
	s.send(t, ":reply 2")
	n = s.out.expect(t, n, `^! usage: :reply \[N\] <text>`)

	// bob answers our "yes" (its msgId from the ✓), then a message this
	// terminal never showed.
	a1 := in("0190f1c2d3e4f5a6b7c8d9e0f1a2b304", bob, "bob", "", "good")
	a1.Msg.ReplyTo = "m-" + last // the fake gateway's msgId
	a2 := in("0190f1c2d3e4f5a6b7c8d9e0f1a2b305", bob, "bob", "", "and?")
	a2.Msg.ReplyTo = "0190f1c2d3e4f5a6b7c8d9e0f1a2b399"
	if err := conn.SendAll(a1, a2); err != nil {
		t.Fatal(err)
	}
	n = s.out.expect(t, n, `^\[\d\d:\d\d:\d\d\] bob: good \(↪ alice: yes\)$`)
	n = s.out.expect(t, n, `^\[\d\d:\d\d:\d\d\] bob: and\? \(↪ a message\)$`)

	s.send(t, ":his bob")
	n = s.out.expect(t, n, `\] bob: old question$`)
	n = s.out.expect(t, n, `\] alice: old answer \(↪ bob: old question\)$`)

	s.send(t, ":help")
	s.out.expect(t, n, `^\*   `+regexp.QuoteMeta(":reply [N] <text>")+` `)
	s.send(t, ":q")
	if code := s.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, s.err.String())
	}
}
