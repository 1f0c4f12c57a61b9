package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// sentID waits for the RECEIPT_SENT of u's message cmid and returns its
// msgId.
func sentID(t *testing.T, u *harness.User, cmid string) string {
	t.Helper()
	i := u.WaitFor(t, 0, wait, "SENT "+cmid, func(e client.Event) bool {
		return e.Kind == client.EventReceipt && e.Receipt.ClientMsgId == cmid && e.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_SENT
	})
	return u.Seen()[i].Receipt.MsgId
}

// isChange matches a received recall or edit of ref.
func isChange(op cimpb.MsgOp, ref string) func(client.Event) bool {
	return func(e client.Event) bool {
		return e.Kind == client.EventMessage && e.Msg.Op == op && e.Msg.RefMsgId == ref
	}
}

// messages lists what u received, as "<op> <ref> <body>" for changes and
// the body for messages, in the order shown.
func messages(u *harness.User, from string) []string {
	var out []string
	for _, e := range u.Seen() {
		if e.Kind != client.EventMessage || e.Msg.From != from {
			continue
		}
		if e.Msg.Op == cimpb.MsgOp_MSG_OP_NEW {
			out = append(out, string(e.Msg.Body))
			continue
		}
		out = append(out, fmt.Sprintf("%v %s %s", e.Msg.Op, e.Msg.RefMsgId, e.Msg.Body))
	}
	return out
}

// historyOf is u's history (with peer, or of group gid), newest first, as
// "<msgId> <op> <body>".
func historyOf(t *testing.T, u *harness.User, q client.HistoryQuery) []string {
	t.Helper()
	p, err := u.History(ctxT(t), q)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range p.Messages {
		out = append(out, fmt.Sprintf("%s %v %s", m.MsgId, m.Op, m.Body))
	}
	return out
}

// errorFor waits for the ERROR answering u's message cmid.
func errorFor(t *testing.T, u *harness.User, cmid string) *cimpb.Error {
	t.Helper()
	i := u.WaitFor(t, 0, wait, "ERROR for "+cmid, func(e client.Event) bool {
		return e.Kind == client.EventError && e.Err.ClientMsgId == cmid
	})
	return u.Seen()[i].Err
}

// TestRecallEditDelete: a sender's edits and recalls reach an online
// recipient live and an offline one when it comes back, in order after the
// message, and a group's members on both gateways; history shows the
// result; the route refuses changes outside --edit-window, and a change
// naming another sender's message changes nothing of it; deleting hides
// messages from the deleter's history only.
func TestRecallEditDelete(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2, RouteArgs: []string{"--edit-window", "1m"}})
	ctx := ctxT(t)
	alice := c.Connect(t, "alice")
	bob := c.Connect(t, "bob")
	c.Register(t, "carol") // offline until later

	// Online: bob gets the message, then its edit; then a message and its
	// recall.
	hello, err := alice.Send(ctx, "bob", "hello bob")
	if err != nil {
		t.Fatal(err)
	}
	helloID := sentID(t, alice, hello)
	edit, err := alice.Edit(ctx, "bob", helloID, "hello bob, edited")
	if err != nil {
		t.Fatal(err)
	}
	sentID(t, alice, edit)
	oops, err := alice.Send(ctx, "bob", "oops")
	if err != nil {
		t.Fatal(err)
	}
	oopsID := sentID(t, alice, oops)
	if _, err := alice.Recall(ctx, "bob", oopsID); err != nil {
		t.Fatal(err)
	}
	bob.WaitFor(t, 0, wait, "the recall", isChange(cimpb.MsgOp_MSG_OP_RECALL, oopsID))
	want := []string{"hello bob", "MSG_OP_EDIT " + helloID + " hello bob, edited", "oops", "MSG_OP_RECALL " + oopsID + " "}
	if got := messages(bob, alice.ID); !slices.Equal(got, want) {
		t.Fatalf("bob saw %q, want %q", got, want)
	}

	// Offline: carol gets everything in order when she comes.
	first, _ := alice.Send(ctx, "carol", "first")
	firstID := sentID(t, alice, first)
	second, _ := alice.Send(ctx, "carol", "second")
	secondID := sentID(t, alice, second)
	e1, _ := alice.Edit(ctx, "carol", firstID, "first, edited")
	r1, _ := alice.Recall(ctx, "carol", secondID)
	sentID(t, alice, e1)
	sentID(t, alice, r1)
	carol := c.Connect(t, "carol")
	carol.WaitFor(t, 0, wait, "the recall after reconnecting", isChange(cimpb.MsgOp_MSG_OP_RECALL, secondID))
	want = []string{"first", "second", "MSG_OP_EDIT " + firstID + " first, edited", "MSG_OP_RECALL " + secondID + " "}
	if got := messages(carol, alice.ID); !slices.Equal(got, want) {
		t.Fatalf("carol saw %q after reconnecting, want %q", got, want)
	}

	// History shows the result, on both sides, without the changes
	// themselves.
	want = []string{oopsID + " MSG_OP_RECALL ", helloID + " MSG_OP_EDIT hello bob, edited"}
	for _, h := range [][]string{historyOf(t, bob, client.HistoryQuery{Peer: "alice"}), historyOf(t, alice, client.HistoryQuery{Peer: "bob"})} {
		if !slices.Equal(h, want) {
			t.Fatalf("history %q, want %q", h, want)
		}
	}
	want = []string{secondID + " MSG_OP_RECALL ", firstID + " MSG_OP_EDIT first, edited"}
	if h := historyOf(t, carol, client.HistoryQuery{Peer: "alice"}); !slices.Equal(h, want) {
		t.Fatalf("carol's history %q, want %q", h, want)
	}

	// Outside the window: a message id of two minutes ago (the msgId
	// format: 48 bits of milliseconds, then 80 random bits).
	old := fmt.Sprintf("%012x%020x", time.Now().Add(-2*time.Minute).UnixMilli(), 1)
	late, _ := alice.Edit(ctx, "bob", old, "too late")
	if e := errorFor(t, alice, late); codes.Code(e.Code) != codes.BadArgument || !strings.Contains(e.Text, "older than") {
		t.Fatalf("an edit outside the window: %v", e)
	}
	// A recalled message cannot be edited.
	again, _ := alice.Edit(ctx, "bob", oopsID, "un-oops")
	if e := errorFor(t, alice, again); codes.Code(e.Code) != codes.BadArgument || !strings.Contains(e.Text, "recalled") {
		t.Fatalf("an edit of a recalled message: %v", e)
	}

	// eve names alice's message: it is stored as eve's (bob's client sees
	// a change from eve, not alice's), and alice's message is unchanged in
	// history.
	eve := c.Connect(t, "eve")
	forged, _ := eve.Edit(ctx, "bob", helloID, "forged")
	sentID(t, eve, forged)
	forgedRecall, _ := eve.Recall(ctx, "bob", helloID)
	sentID(t, eve, forgedRecall)
	i := bob.WaitFor(t, 0, wait, "eve's recall", func(e client.Event) bool {
		return isChange(cimpb.MsgOp_MSG_OP_RECALL, helloID)(e) && e.Msg.From == eve.ID
	})
	if m := bob.Seen()[i].Msg; m.FromName != "eve" {
		t.Fatalf("eve's change came as %v", m)
	}
	if h := historyOf(t, bob, client.HistoryQuery{Peer: "alice"}); !slices.Equal(h[1:], []string{helloID + " MSG_OP_EDIT hello bob, edited"}) {
		t.Fatalf("alice's message after eve's changes: %q", h)
	}

	// bob deletes alice's message from his history; alice keeps it.
	if err := bob.DeleteHistory(ctx, helloID); err != nil {
		t.Fatal(err)
	}
	if h := historyOf(t, bob, client.HistoryQuery{Peer: "alice"}); !slices.Equal(h, []string{oopsID + " MSG_OP_RECALL "}) {
		t.Fatalf("bob's history after deleting: %q", h)
	}
	if h := historyOf(t, alice, client.HistoryQuery{Peer: "bob"}); len(h) != 2 {
		t.Fatalf("alice's history after bob deleted: %q", h)
	}
	wantCode(t, bob.DeleteHistory(ctx, "not-a-msg-id"), codes.BadArgument, "deleting a bad id")
}

// TestGroupEdit: a group message's edit and recall reach the members on
// both gateways, and the group's history shows them.
func TestGroupEdit(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	ctx := ctxT(t)
	sam := c.Connect(t, "sam")
	tom := c.Connect(t, "tom")
	una := c.Connect(t, "una")
	if tom.Info().Gateway == una.Info().Gateway {
		t.Fatalf("round-robin put tom and una on %s", tom.Info().Gateway)
	}
	gid := openGroup(t, ctx, sam, "crew", tom, una)
	m1, _ := sam.SendGroup(ctx, gid, "meet at 5")
	m1ID := sentID(t, sam, m1)
	m2, _ := sam.SendGroup(ctx, gid, "bring snacks")
	m2ID := sentID(t, sam, m2)
	if _, err := sam.EditInGroup(ctx, gid, m1ID, "meet at 6"); err != nil {
		t.Fatal(err)
	}
	if _, err := sam.RecallInGroup(ctx, gid, m2ID); err != nil {
		t.Fatal(err)
	}
	want := []string{"meet at 5", "bring snacks", "MSG_OP_EDIT " + m1ID + " meet at 6", "MSG_OP_RECALL " + m2ID + " "}
	for _, u := range []*harness.User{tom, una} {
		u.WaitFor(t, 0, wait, "the recall in the group", isChange(cimpb.MsgOp_MSG_OP_RECALL, m2ID))
		if got := messages(u, sam.ID); !slices.Equal(got, want) {
			t.Fatalf("%s saw %q, want %q", u.Name, got, want)
		}
		h := historyOf(t, u, client.HistoryQuery{Group: gid})
		if !slices.Equal(h, []string{m2ID + " MSG_OP_RECALL ", m1ID + " MSG_OP_EDIT meet at 6"}) {
			t.Fatalf("%s's group history %q", u.Name, h)
		}
	}
}

// TestTerminalRecallEditDelete: :edit, :recall and :del in the terminal,
// and how the changes show on the other side.
func TestTerminalRecallEditDelete(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	dave := c.Terminal(t, "dave")
	dave.Expect(t, 0, `^\* logged in as dave`)
	erin := c.Terminal(t, "erin")
	erin.Expect(t, 0, `^\* logged in as erin`)

	dave.Send(t, ":recall")
	dave.Expect(t, 0, `^! no message of yours to recall$`)
	dave.Send(t, "erin;;helo erin")
	dave.Expect(t, 0, `^\* ✓ sent to erin: helo erin$`)
	erin.Expect(t, 0, `^`+stamp+`dave: helo erin$`)
	dave.Send(t, ":edit hello erin")
	dave.Expect(t, 0, `^\* ✓ edited your message to erin: hello erin$`)
	erin.Expect(t, 0, `^`+stamp+`dave \(edited\): hello erin \(was: helo erin\)$`)
	dave.Send(t, ":recall")
	dave.Expect(t, 0, `^\* ✓ recalled your message to erin: hello erin$`)
	erin.Expect(t, 0, `^\* dave recalled a message: hello erin$`)
	dave.Send(t, "erin;;still here")
	erin.Expect(t, 0, `^`+stamp+`dave: still here$`)

	date := `^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] `
	n := len(erin.Lines())
	erin.Send(t, ":his dave")
	i, _ := erin.Expect(t, n, date+`dave \(recalled\)$`)
	erin.Expect(t, i, date+`dave: still here$`)
	erin.Send(t, ":del 1")
	erin.Expect(t, i, `^\* deleted from your history: \[.+\] dave \(recalled\)$`)
	n = len(erin.Lines())
	erin.Send(t, ":his dave")
	erin.Expect(t, n, date+`dave: still here$`)
	for _, l := range erin.Lines()[n:] {
		if strings.Contains(l, "recalled") {
			t.Fatalf("a deleted message is still listed: %q", l)
		}
	}
	// dave's own history keeps it.
	n = len(dave.Lines())
	dave.Send(t, ":his erin")
	dave.Expect(t, n, date+`dave \(recalled\)$`)
	erin.Send(t, ":del 9")
	erin.Expect(t, n, `^! no line 9 in the last :his or :ghis listing$`)
}
