package client

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/proto/cimpb"
)

// TestRecallAndEditFrames: the four calls send MSGs with the op and the
// ref, addressed like the message, kept in the outbox with them.
func TestRecallAndEditFrames(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	c := startClient(t, fastConfig(route.URL))
	conn := gw.Accept(t)
	ctx := context.Background()

	for _, tc := range []struct {
		call      func() (string, error)
		to, group string
		op        cimpb.MsgOp
		text      string
	}{
		{func() (string, error) { return c.Recall(ctx, "bob", "m1") }, "bob", "", cimpb.MsgOp_MSG_OP_RECALL, ""},
		{func() (string, error) { return c.RecallInGroup(ctx, "7", "m1") }, "", "7", cimpb.MsgOp_MSG_OP_RECALL, ""},
		{func() (string, error) { return c.Edit(ctx, "bob", "m1", "new text") }, "bob", "", cimpb.MsgOp_MSG_OP_EDIT, "new text"},
		{func() (string, error) { return c.EditInGroup(ctx, "7", "m1", "new text") }, "", "7", cimpb.MsgOp_MSG_OP_EDIT, "new text"},
	} {
		id, err := tc.call()
		if err != nil {
			t.Fatal(err)
		}
		m := conn.Next(t, cimpb.Type_MSG).GetMsg()
		if m.GetClientMsgId() != id || m.GetTo() != tc.to || m.GetGroup() != tc.group || m.GetOp() != tc.op ||
			m.GetRefMsgId() != "m1" || string(m.GetBody()) != tc.text || m.GetKind() != cimpb.Kind_KIND_TEXT {
			t.Errorf("uplink %v, want op %v of m1 to %q/%q with %q", m, tc.op, tc.to, tc.group, tc.text)
		}
		if s, ok := c.Status(id); !ok || s.Op != tc.op || s.RefMsgID != "m1" || s.Text != tc.text {
			t.Errorf("outbox record %+v", s)
		}
	}
	for name, err := range map[string]error{
		"recall without a message": func() error { _, err := c.Recall(ctx, "bob", ""); return err }(),
		"edit without a recipient": func() error { _, err := c.Edit(ctx, "", "m1", "x"); return err }(),
		"group edit without group": func() error { _, err := c.EditInGroup(ctx, "", "m1", "x"); return err }(),
	} {
		if !errors.Is(err, ErrNoMessage) && !errors.Is(err, ErrNoRecipient) && !errors.Is(err, ErrNoGroup) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestHistoryOpsAndDelete: history messages carry the route's op, and
// DeleteHistory hides messages from this user's history.
func TestHistoryOpsAndDelete(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	uid := route.AddUser("alice", "secret1")
	bob := route.AddUser("bob", "secret2")
	route.AddHistory(
		clienttest.HistoryMsg{MsgID: "h1", Seq: 1, From: bob, To: uid, Body: "new text", Op: "edited"},
		clienttest.HistoryMsg{MsgID: "h2", Seq: 2, From: bob, To: uid, Op: "recalled"},
		clienttest.HistoryMsg{MsgID: "h3", Seq: 3, From: bob, To: uid, Body: "plain"},
	)
	c := startClient(t, fastConfig(route.URL))
	ctx := context.Background()
	page, err := c.History(ctx, HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var ops []cimpb.MsgOp
	for _, m := range page.Messages {
		ops = append(ops, m.GetOp())
	}
	if !slices.Equal(ops, []cimpb.MsgOp{cimpb.MsgOp_MSG_OP_NEW, cimpb.MsgOp_MSG_OP_RECALL, cimpb.MsgOp_MSG_OP_EDIT}) {
		t.Fatalf("ops %v", ops)
	}
	if err := c.DeleteHistory(ctx, "h1", "h3"); err != nil {
		t.Fatal(err)
	}
	page, err = c.History(ctx, HistoryQuery{})
	if err != nil || len(page.Messages) != 1 || page.Messages[0].GetMsgId() != "h2" {
		t.Fatalf("after deleting: %v, %v", page.Messages, err)
	}
	if err := c.DeleteHistory(ctx); !errors.Is(err, ErrNoMessage) {
		t.Errorf("DeleteHistory of nothing: %v", err)
	}
	// More than one call's worth goes in several calls.
	many := make([]string, MaxHistoryDelete*2+1)
	for i := range many {
		many[i] = "x"
	}
	if err := c.DeleteHistory(ctx, many...); err != nil {
		t.Fatal(err)
	}
}
