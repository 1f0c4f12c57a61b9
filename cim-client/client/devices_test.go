package client

import (
	"context"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/proto/cimpb"
)

// Several devices (route --login-policy platform): alice is user "1", bob
// "2" in these tests.

// copyOf is the copy of a private message alice sent to to, as the route
// stores it in alice's own inbox for her devices.
func copyOf(msgID, clientMsgID, to, text string) *cimpb.Frame {
	f := clienttest.TextMsg(msgID, "1", "alice", text)
	f.Msg.To, f.Msg.ClientMsgId = to, clientMsgID
	return f
}

// noRead fails if the client writes a READ within d.
func noRead(t *testing.T, conn *clienttest.Conn, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case f := <-conn.Frames:
			if f.GetType() == cimpb.Type_READ {
				t.Fatalf("READ sent for the user's own message: %v", f)
			}
		case <-deadline:
			return
		}
	}
}

// TestOwnEchoIsAcknowledgedNotShown: the copy of what this Client sent
// (its client_msg_id prefix, or an id the application gave SendMsg) comes
// back in the inbox; it is not shown, but its seq counts: the next entry
// is shown in order, and the ACK covers both.
func TestOwnEchoIsAcknowledgedNotShown(t *testing.T) {
	c, gw, _, in := inboxSetup(t, nil)
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	ctx, cancel := context.WithTimeout(context.Background(), clienttest.Wait)
	defer cancel()

	id, err := c.Send(ctx, "2", "hello bob")
	if err != nil {
		t.Fatal(err)
	}
	appID := "app-chosen-1"
	if err := c.SendMsg(ctx, &cimpb.Msg{To: "2", ClientMsgId: appID, Body: []byte("mine too"), Kind: cimpb.Kind_KIND_TEXT}); err != nil {
		t.Fatal(err)
	}
	// Echoes go out of order: the second fills the gap before it (a SYNC
	// brings it), and a recall of our own is an echo too.
	recall := copyOf("e3", c.NewMsgID(), "2", "")
	recall.Msg.Op, recall.Msg.RefMsgId = cimpb.MsgOp_MSG_OP_RECALL, "e1"
	e1 := in.Append(copyOf("e1", id, "2", "hello bob"))
	in.Append(copyOf("e2", appID, "2", "mine too"))
	e3 := in.Append(recall)
	reply := in.Append(clienttest.TextMsg("m4", "2", "bob", "hi alice"))
	if err := conn.SendAll(e1, e3, reply); err != nil {
		t.Fatal(err)
	}
	ev := next(t, c, EventMessage)
	if ev.Msg.GetMsgId() != "m4" || ev.Outgoing {
		t.Fatalf("first event %v (outgoing %v), want bob's m4: the own echoes are not shown", ev.Msg, ev.Outgoing)
	}
	waitAck(t, conn, 4)
	if got := c.inbox.lastSeq(); got != 4 {
		t.Errorf("inbox at %d, want 4", got)
	}
	noEvent(t, c)
}

// TestCopyFromAnotherDevice: a message alice sent from another device (her
// id in From, a client_msg_id not made here) is shown as Outgoing; a
// recall of it too; MarkRead never sends READ for them. A message alice
// sends to herself is an ordinary incoming one.
func TestCopyFromAnotherDevice(t *testing.T) {
	c, gw, _, in := inboxSetup(t, func(cfg *Config) { cfg.AckDelay = time.Hour; cfg.AckEvery = 1000 })
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	ctx, cancel := context.WithTimeout(context.Background(), clienttest.Wait)
	defer cancel()

	recall := copyOf("c2", "0123456789abcdef-9", "2", "")
	recall.Msg.Op, recall.Msg.RefMsgId = cimpb.MsgOp_MSG_OP_RECALL, "c1"
	toSelf := copyOf("c4", c.NewMsgID(), "1", "note to self")
	if err := conn.SendAll(
		in.Append(copyOf("c1", "0123456789abcdef-8", "2", "from my phone")),
		in.Append(recall),
		in.Append(clienttest.TextMsg("m3", "2", "bob", "hi")),
		in.Append(toSelf),
	); err != nil {
		t.Fatal(err)
	}
	ev := next(t, c, EventMessage)
	if !ev.Outgoing || ev.Msg.GetMsgId() != "c1" || ev.Msg.GetTo() != "2" || string(ev.Msg.GetBody()) != "from my phone" {
		t.Fatalf("copy: %v (outgoing %v), want c1 to 2, outgoing", ev.Msg, ev.Outgoing)
	}
	ev = next(t, c, EventMessage)
	if !ev.Outgoing || ev.Msg.GetOp() != cimpb.MsgOp_MSG_OP_RECALL || ev.Msg.GetRefMsgId() != "c1" || ev.Msg.GetFrom() != "1" {
		t.Fatalf("recall copy: %v (outgoing %v), want an outgoing recall of c1 from 1", ev.Msg, ev.Outgoing)
	}
	if ev = next(t, c, EventMessage); ev.Outgoing || ev.Msg.GetMsgId() != "m3" {
		t.Fatalf("bob's message: %v (outgoing %v)", ev.Msg, ev.Outgoing)
	}
	if ev = next(t, c, EventMessage); ev.Outgoing || ev.Msg.GetMsgId() != "c4" {
		t.Fatalf("note to self: %v (outgoing %v), want c4 as an incoming message", ev.Msg, ev.Outgoing)
	}

	// An application marking everything it showed read: no READ for the
	// copies, one for bob's message.
	if err := c.MarkRead(ctx, "1", "c1", "c2"); err != nil {
		t.Fatal(err)
	}
	noRead(t, conn, 50*time.Millisecond)
	if err := c.MarkRead(ctx, "2", "c1", "m3"); err != nil {
		t.Fatal(err)
	}
	rd := conn.Next(t, cimpb.Type_READ).GetRead()
	if len(rd.GetMsgIds()) != 1 || rd.GetMsgIds()[0] != "m3" || rd.GetPeer() != "2" {
		t.Fatalf("READ %v, want only m3", rd)
	}
	noEvent(t, c)
}

// TestReadElsewhere: a READ receipt by alice herself naming a peer or a
// group (another device read those messages) is EventReadElsewhere, one
// per receipt with the msgIds in Items; it is not a receipt for alice's
// own messages, whose status stays as it was. Its seq is acknowledged.
func TestReadElsewhere(t *testing.T) {
	c, gw, _, in := inboxSetup(t, nil)
	gw.SetOnMsg(clienttest.Receipts)
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	ctx, cancel := context.WithTimeout(context.Background(), clienttest.Wait)
	defer cancel()

	id, err := c.Send(ctx, "2", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, c, EventReceipt); ev.Receipt.GetStatus() != cimpb.ReceiptStatus_RECEIPT_SENT {
		t.Fatalf("receipt %v, want SENT", ev.Receipt)
	}
	mine := "m-" + id
	private := clienttest.ReceiptFrame(cimpb.ReceiptStatus_RECEIPT_READ, "", "", "1")
	private.Receipt.Peer = "2"
	private.Receipt.Items = []*cimpb.ReceiptItem{{MsgId: "b1"}, {MsgId: mine}}
	group := clienttest.ReceiptFrame(cimpb.ReceiptStatus_RECEIPT_READ, "g1", "", "1")
	group.Receipt.Group = "7"
	if err := conn.SendAll(in.Append(private), in.Append(group)); err != nil {
		t.Fatal(err)
	}
	ev := next(t, c, EventReadElsewhere)
	rc := ev.Receipt
	if rc.GetPeer() != "2" || rc.GetGroup() != "" || len(rc.GetItems()) != 2 || rc.Items[0].GetMsgId() != "b1" {
		t.Fatalf("private read elsewhere %v", rc)
	}
	ev = next(t, c, EventReadElsewhere)
	rc = ev.Receipt
	if rc.GetGroup() != "7" || len(rc.GetItems()) != 1 || rc.Items[0].GetMsgId() != "g1" {
		t.Fatalf("group read elsewhere %v, want g1 in Items", rc)
	}
	if s, _ := c.Status(id); s.Status != StatusSent {
		t.Errorf("status of my message %v, want sent: a READ by myself is not a receipt for it", s.Status)
	}
	waitAck(t, conn, 2)
	noEvent(t, c)

	// A READ by the user without a peer or a group (of its message to
	// itself) stays a receipt.
	if err := conn.Send(in.Append(clienttest.ReceiptFrame(cimpb.ReceiptStatus_RECEIPT_READ, "n1", "", "1"))); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, c, EventReceipt); ev.Receipt.GetMsgId() != "n1" {
		t.Fatalf("receipt %v", ev.Receipt)
	}
}

// TestOwnTimelineEcho: a large group's timeline brings the user's own
// messages too: this Client's echo is not shown, one from another device
// is Outgoing, and the group's ACK covers them all.
func TestOwnTimelineEcho(t *testing.T) {
	c, gw, _, _ := inboxSetup(t, func(cfg *Config) { cfg.GroupAckDelay = 10 * time.Millisecond })
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	tl := func(gseq uint64, from, clientMsgID, text string) *cimpb.Frame {
		f := clienttest.GroupMsg("t"+string(rune('0'+gseq)), from, "x", "7", text)
		f.Msg.GroupSeq, f.Msg.ClientMsgId = gseq, clientMsgID
		return f
	}
	if err := conn.SendAll(
		tl(1, "1", c.NewMsgID(), "sent here"),
		tl(2, "1", "0123456789abcdef-1", "sent from my phone"),
		tl(3, "2", "fedcba9876543210-1", "bob's"),
	); err != nil {
		t.Fatal(err)
	}
	ev := next(t, c, EventMessage)
	if !ev.Outgoing || ev.Msg.GetGroupSeq() != 2 {
		t.Fatalf("first event %v (outgoing %v), want the copy at group_seq 2, outgoing", ev.Msg, ev.Outgoing)
	}
	if ev = next(t, c, EventMessage); ev.Outgoing || ev.Msg.GetGroupSeq() != 3 {
		t.Fatalf("second event %v (outgoing %v), want bob's at 3", ev.Msg, ev.Outgoing)
	}
	for {
		f := nextFrame(t, conn)
		if gs := f.GetAck().GetGroups(); len(gs) > 0 {
			if gs[0].GetGroup() != "7" || gs[0].GetSeq() != 3 {
				t.Fatalf("group ACK %v, want 7 at 3", f)
			}
			break
		}
	}
	noEvent(t, c)
}
