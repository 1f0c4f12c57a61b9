package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/proto/cimpb"
)

// asked and answered are msgIds in the route's form.
const (
	asked    = "0190f1c2d3e4f5a6b7c8d9e0f1a2b3c4"
	answered = "0190f1c2d3e4f5a6b7c8d9e0f1a2b3c5"
)

// TestReplyFrames: Reply and ReplyInGroup send new text messages carrying
// ReplyTo, addressed like Send's and SendGroup's; the next Send carries
// none (the pooled Msg forgets it); a replyTo that is no msgId is refused
// before anything is sent.
func TestReplyFrames(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	c := startClient(t, fastConfig(route.URL))
	conn := gw.Accept(t)
	ctx := context.Background()

	for _, tc := range []struct {
		call      func() (string, error)
		to, group string
	}{
		{func() (string, error) { return c.Reply(ctx, "bob", asked, "yes") }, "bob", ""},
		{func() (string, error) { return c.ReplyInGroup(ctx, "7", asked, "yes") }, "", "7"},
	} {
		id, err := tc.call()
		if err != nil {
			t.Fatal(err)
		}
		m := conn.Next(t, cimpb.Type_MSG).GetMsg()
		if m.GetClientMsgId() != id || m.GetTo() != tc.to || m.GetGroup() != tc.group || m.GetReplyTo() != asked ||
			string(m.GetBody()) != "yes" || m.GetKind() != cimpb.Kind_KIND_TEXT || m.GetOp() != cimpb.MsgOp_MSG_OP_NEW ||
			m.GetRefMsgId() != "" || m.GetBroadcast() {
			t.Errorf("uplink %v, want a reply to %s for %q/%q", m, asked, tc.to, tc.group)
		}
		if s, ok := c.Status(id); !ok || s.Text != "yes" || s.To != tc.to || s.Group != tc.group {
			t.Errorf("outbox record %+v", s)
		}
	}
	if _, err := c.Send(ctx, "bob", "plain"); err != nil {
		t.Fatal(err)
	}
	if m := conn.Next(t, cimpb.Type_MSG).GetMsg(); m.GetReplyTo() != "" || string(m.GetBody()) != "plain" {
		t.Errorf("Send after Reply: %v, want no reply_to", m)
	}

	pending := c.Pending()
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"no replyTo", func() error { _, err := c.Reply(ctx, "bob", "", "x"); return err }(), ErrNoMessage},
		{"group, no replyTo", func() error { _, err := c.ReplyInGroup(ctx, "7", "", "x"); return err }(), ErrNoMessage},
		{"upper case", func() error { _, err := c.Reply(ctx, "bob", strings.ToUpper(asked), "x"); return err }(), ErrBadReplyTo},
		{"too short", func() error { _, err := c.Reply(ctx, "bob", asked[1:], "x"); return err }(), ErrBadReplyTo},
		{"too long", func() error { _, err := c.Reply(ctx, "bob", asked+"0", "x"); return err }(), ErrBadReplyTo},
		{"not hex", func() error { _, err := c.ReplyInGroup(ctx, "7", "g"+asked[1:], "x"); return err }(), ErrBadReplyTo},
		{"a client_msg_id", func() error { _, err := c.Reply(ctx, "bob", c.NewMsgID(), "x"); return err }(), ErrBadReplyTo},
		{"no recipient", func() error { _, err := c.Reply(ctx, "", asked, "x"); return err }(), ErrNoRecipient},
		{"no group", func() error { _, err := c.ReplyInGroup(ctx, "", asked, "x"); return err }(), ErrNoGroup},
		{"SendMsg", c.SendMsg(ctx, &cimpb.Msg{To: "bob", Body: []byte("x"), ReplyTo: "m1"}), ErrBadReplyTo},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	quiet(t, conn, 50*time.Millisecond) // nothing sent for them
	if c.Pending() != pending {
		t.Errorf("Pending() = %d after refused replies, want %d", c.Pending(), pending)
	}
}

// TestReplyResent: a reply the route does not answer is sent again, with
// its ReplyTo, after the resend timeout and on a new link.
func TestReplyResent(t *testing.T) {
	gw1, gw2 := clienttest.NewGateway(t), clienttest.NewGateway(t) // gw1 never answers
	gw2.SetOnMsg(clienttest.Receipts)
	route := clienttest.NewRoute(t, gw1, gw2)
	route.AddUser("alice", "secret1")
	cfg := fastConfig(route.URL)
	cfg.ResendTimeout, cfg.ResendMax = 20*time.Millisecond, 10
	c := startClient(t, cfg)
	conn1 := gw1.Accept(t)
	next(t, c, EventConnected)
	ctx := context.Background()

	id, err := c.Reply(ctx, "bob", asked, "yes")
	if err != nil {
		t.Fatal(err)
	}
	gid, err := c.ReplyInGroup(ctx, "7", answered, "ok")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{id: asked, gid: answered}
	tries := map[string]int{}
	for tries[id] < 2 || tries[gid] < 2 { // the first try and a resend of each
		m := conn1.Next(t, cimpb.Type_MSG).GetMsg()
		if m.GetReplyTo() != want[m.GetClientMsgId()] {
			t.Fatalf("try %d of %s: %v, want reply_to %s", tries[m.GetClientMsgId()]+1, m.GetClientMsgId(), m, want[m.GetClientMsgId()])
		}
		tries[m.GetClientMsgId()]++
	}
	conn1.Close()
	conn2 := gw2.Accept(t)
	for range 2 {
		m := conn2.Next(t, cimpb.Type_MSG).GetMsg()
		if m.GetReplyTo() != want[m.GetClientMsgId()] {
			t.Fatalf("replayed on a new link: %v, want reply_to %s", m, want[m.GetClientMsgId()])
		}
	}
}

// TestRepliesReceived: an incoming reply, and the copy of one the user
// sent from another device, keep ReplyTo; History exposes replyTo.
func TestRepliesReceived(t *testing.T) {
	c, gw, route, in := inboxSetup(t, nil)
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	reply := clienttest.TextMsg(answered, "2", "bob", "yes")
	reply.Msg.ReplyTo = asked
	own := copyOf("0190f1c2d3e4f5a6b7c8d9e0f1a2b3c6", "0123456789abcdef-1", "2", "great")
	own.Msg.ReplyTo = answered
	if err := conn.SendAll(in.Append(reply), in.Append(own)); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, c, EventMessage); ev.Msg.GetReplyTo() != asked || ev.Outgoing {
		t.Errorf("incoming reply %v, want reply_to %s", ev.Msg, asked)
	}
	if ev := next(t, c, EventMessage); ev.Msg.GetReplyTo() != answered || !ev.Outgoing {
		t.Errorf("copy from another device %v, want reply_to %s", ev.Msg, answered)
	}

	route.AddHistory(
		clienttest.HistoryMsg{MsgID: asked, Seq: 1, From: "2", FromName: "bob", To: "1", Body: "there?"},
		clienttest.HistoryMsg{MsgID: answered, Seq: 2, From: "1", FromName: "alice", To: "2", Body: "yes", ReplyTo: asked},
	)
	ctx, cancel := context.WithTimeout(context.Background(), clienttest.Wait)
	defer cancel()
	page, err := c.History(ctx, HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 2 || page.Messages[0].GetReplyTo() != asked || page.Messages[1].GetReplyTo() != "" {
		t.Fatalf("history %v, want the newest a reply to %s", page.Messages, asked)
	}
}
