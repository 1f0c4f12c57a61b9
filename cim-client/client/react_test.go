package client

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// TestReactFrames: React and ReactInGroup send MSG_OP_REACT MSGs naming
// the message in RefMsgId with the emoji as body ("" takes the reaction
// back), addressed like Send's and SendGroup's and kept in the outbox with
// op, ref and emoji; reactions the route would refuse are refused before
// anything is sent, SendMsg's too.
func TestReactFrames(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	c := startClient(t, fastConfig(route.URL))
	conn := gw.Accept(t)
	ctx := context.Background()

	for _, tc := range []struct {
		call             func() (string, error)
		to, group, emoji string
	}{
		{func() (string, error) { return c.React(ctx, "bob", asked, "👍") }, "bob", "", "👍"},
		{func() (string, error) { return c.ReactInGroup(ctx, "7", asked, "❤️") }, "", "7", "❤️"},
		{func() (string, error) { return c.React(ctx, "bob", asked, "") }, "bob", "", ""},
		{func() (string, error) { return c.ReactInGroup(ctx, "7", asked, "") }, "", "7", ""},
		{func() (string, error) { return c.React(ctx, "2", answered, "👨‍👩‍👧") }, "2", "", "👨‍👩‍👧"},                                 // joined by ZWJs
		{func() (string, error) { return c.React(ctx, "2", answered, strings.Repeat("x", 32)) }, "2", "", strings.Repeat("x", 32)}, // the longest
	} {
		id, err := tc.call()
		if err != nil {
			t.Fatalf("%q to %q/%q: %v", tc.emoji, tc.to, tc.group, err)
		}
		m := conn.Next(t, cimpb.Type_MSG).GetMsg()
		if m.GetClientMsgId() != id || m.GetTo() != tc.to || m.GetGroup() != tc.group || m.GetOp() != cimpb.MsgOp_MSG_OP_REACT ||
			m.GetRefMsgId() == "" || string(m.GetBody()) != tc.emoji || m.GetKind() != cimpb.Kind_KIND_TEXT ||
			m.GetReplyTo() != "" || m.GetBroadcast() || m.GetFile() != nil {
			t.Errorf("uplink %v, want a reaction %q to %q/%q", m, tc.emoji, tc.to, tc.group)
		}
		if s, ok := c.Status(id); !ok || s.Op != cimpb.MsgOp_MSG_OP_REACT || s.RefMsgID != m.GetRefMsgId() || s.Text != tc.emoji ||
			s.To != tc.to || s.Group != tc.group || s.Status != StatusPending {
			t.Errorf("outbox record %+v", s)
		}
	}

	pending := c.Pending()
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"no recipient", func() error { _, err := c.React(ctx, "", asked, "👍"); return err }(), ErrNoRecipient},
		{"no group", func() error { _, err := c.ReactInGroup(ctx, "", asked, "👍"); return err }(), ErrNoGroup},
		{"no message", func() error { _, err := c.React(ctx, "bob", "", "👍"); return err }(), ErrNoMessage},
		{"group, no message", func() error { _, err := c.ReactInGroup(ctx, "7", "", ""); return err }(), ErrNoMessage},
		{"upper case msgId", func() error { _, err := c.React(ctx, "bob", strings.ToUpper(asked), "👍"); return err }(), ErrBadRefMsgID},
		{"short msgId", func() error { _, err := c.ReactInGroup(ctx, "7", asked[1:], "👍"); return err }(), ErrBadRefMsgID},
		{"a client_msg_id", func() error { _, err := c.React(ctx, "bob", c.NewMsgID(), ""); return err }(), ErrBadRefMsgID},
		{"33 bytes", func() error { _, err := c.React(ctx, "bob", asked, strings.Repeat("x", 33)); return err }(), ErrBadReaction},
		{"9 emoji", func() error { _, err := c.ReactInGroup(ctx, "7", asked, strings.Repeat("👍", 9)); return err }(), ErrBadReaction},
		{"invalid UTF-8", func() error { _, err := c.React(ctx, "bob", asked, "\xff\xfe"); return err }(), ErrBadReaction},
		{"cut emoji", func() error { _, err := c.React(ctx, "bob", asked, "👍"[:2]); return err }(), ErrBadReaction},
		{"space", func() error { _, err := c.React(ctx, "bob", asked, "👍 👍"); return err }(), ErrBadReaction},
		{"tab", func() error { _, err := c.React(ctx, "bob", asked, "\t👍"); return err }(), ErrBadReaction},
		{"new line", func() error { _, err := c.ReactInGroup(ctx, "7", asked, "👍\n"); return err }(), ErrBadReaction},
		{"no-break space", func() error { _, err := c.React(ctx, "bob", asked, "👍\u00a0"); return err }(), ErrBadReaction},
		{"ideographic space", func() error { _, err := c.React(ctx, "bob", asked, "\u3000"); return err }(), ErrBadReaction},
		{"escape", func() error { _, err := c.React(ctx, "bob", asked, "\x1b[2J"); return err }(), ErrBadReaction},
		{"C1 control", func() error { _, err := c.React(ctx, "bob", asked, "\u0085"); return err }(), ErrBadReaction},
		{"NUL", func() error { _, err := c.React(ctx, "bob", asked, "\x00"); return err }(), ErrBadReaction},
		{"SendMsg, bad emoji", c.SendMsg(ctx, &cimpb.Msg{To: "bob", Op: cimpb.MsgOp_MSG_OP_REACT, RefMsgId: asked, Body: []byte("a b")}), ErrBadReaction},
		{"SendMsg, bad ref", c.SendMsg(ctx, &cimpb.Msg{Group: "7", Op: cimpb.MsgOp_MSG_OP_REACT, RefMsgId: "m1", Body: []byte("👍")}), ErrBadRefMsgID},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if c.Pending() != pending {
		t.Errorf("Pending() = %d after refused reactions, want %d", c.Pending(), pending)
	}
	// Nothing went out for them: the next frame is the next good send.
	id, err := c.Send(ctx, "bob", "after")
	if err != nil {
		t.Fatal(err)
	}
	if m := conn.Next(t, cimpb.Type_MSG).GetMsg(); m.GetClientMsgId() != id || m.GetOp() != cimpb.MsgOp_MSG_OP_NEW || m.GetRefMsgId() != "" {
		t.Errorf("frame after the refused reactions: %v, want the message %s", m, id)
	}
}

// TestReactResent: a reaction the route does not answer is sent again,
// with the same client_msg_id, op, ref and emoji, after the resend timeout
// and on a new link; the route's BadArgument refusal is final.
func TestReactResent(t *testing.T) {
	gw1, gw2 := clienttest.NewGateway(t), clienttest.NewGateway(t) // gw1 never answers
	gw2.SetOnMsg(func(m *cimpb.Msg) *cimpb.Frame {
		if string(m.GetBody()) == "🔥" {
			return &cimpb.Frame{Type: cimpb.Type_ERROR, Error: &cimpb.Error{Code: int32(codes.BadArgument),
				ClientMsgId: m.GetClientMsgId(), Text: "message " + m.GetRefMsgId() + " has 20 different reactions already"}}
		}
		return clienttest.Receipts(m)
	})
	route := clienttest.NewRoute(t, gw1, gw2)
	route.AddUser("alice", "secret1")
	cfg := fastConfig(route.URL)
	cfg.ResendTimeout, cfg.ResendMax = 20*time.Millisecond, 10
	c := startClient(t, cfg)
	conn1 := gw1.Accept(t)
	next(t, c, EventConnected)
	ctx := context.Background()

	type sent struct{ to, group, ref, emoji string }
	want := map[string]sent{}
	for _, s := range []sent{{"bob", "", asked, "👍"}, {"", "7", answered, ""}, {"bob", "", answered, "🔥"}} {
		var id string
		var err error
		if s.group != "" {
			id, err = c.ReactInGroup(ctx, s.group, s.ref, s.emoji)
		} else {
			id, err = c.React(ctx, s.to, s.ref, s.emoji)
		}
		if err != nil {
			t.Fatal(err)
		}
		want[id] = s
	}
	check := func(where string, m *cimpb.Msg) {
		t.Helper()
		w, ok := want[m.GetClientMsgId()]
		if !ok || m.GetOp() != cimpb.MsgOp_MSG_OP_REACT || m.GetTo() != w.to || m.GetGroup() != w.group ||
			m.GetRefMsgId() != w.ref || string(m.GetBody()) != w.emoji {
			t.Fatalf("%s: %v, want one of the reactions %v", where, m, want)
		}
	}
	tries := map[string]int{}
	twice := func() bool { // the first try and a resend of each
		for id := range want {
			if tries[id] < 2 {
				return false
			}
		}
		return true
	}
	for !twice() {
		m := conn1.Next(t, cimpb.Type_MSG).GetMsg()
		check("a try on the silent gateway", m)
		tries[m.GetClientMsgId()]++
	}
	conn1.Close()
	conn2 := gw2.Accept(t)
	for range len(want) {
		check("replayed on a new link", conn2.Next(t, cimpb.Type_MSG).GetMsg())
	}

	// Two answered SENT, one refused for good.
	var refused string
	answered := 0
	for answered < len(want) {
		select {
		case ev := <-c.Events():
			switch ev.Kind {
			case EventReceipt:
				answered++
			case EventError:
				answered++
				refused = ev.Err.GetClientMsgId()
				if w := want[refused]; w.emoji != "🔥" || codes.Code(ev.Err.GetCode()) != codes.BadArgument {
					t.Errorf("refusal %v for %+v, want BadArgument for the 🔥", ev.Err, w)
				}
			}
		case <-time.After(clienttest.Wait):
			t.Fatalf("%d of %d reactions answered", answered, len(want))
		}
	}
	if s, ok := c.Status(refused); !ok || s.Status != StatusFailed || codes.Code(s.Err.GetCode()) != codes.BadArgument {
		t.Errorf("refused reaction: %+v, want failed with BadArgument", s)
	}
	if n := c.Pending(); n != 0 {
		t.Errorf("Pending() = %d, want 0: a refused reaction is not kept for resending", n)
	}
}

// TestReactionsReceived: incoming reactions (private, in a group, a
// take-back, the user's own from another device) come as EventMessage with
// the op, the ref and the emoji, in order with the messages, and are
// acknowledged like them; MarkRead sends no READ for a reaction.
func TestReactionsReceived(t *testing.T) {
	c, gw, _, in := inboxSetup(t, func(cfg *Config) { cfg.AckDelay = time.Hour; cfg.AckEvery = 5 })
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	react := func(f *cimpb.Frame, ref, emoji string) *cimpb.Frame {
		f.Msg.Op, f.Msg.RefMsgId, f.Msg.Body = cimpb.MsgOp_MSG_OP_REACT, ref, []byte(emoji)
		return f
	}
	const (
		r1 = "0190f1c2d3e4f5a6b7c8d9e0f1a2b3d1"
		r2 = "0190f1c2d3e4f5a6b7c8d9e0f1a2b3d2"
		r3 = "0190f1c2d3e4f5a6b7c8d9e0f1a2b3d3"
		r4 = "0190f1c2d3e4f5a6b7c8d9e0f1a2b3d4"
	)
	group := react(clienttest.TextMsg(r2, "3", "carol", ""), asked, "❤️")
	group.Msg.Group = "7"
	if err := conn.SendAll(
		in.Append(clienttest.TextMsg(asked, "2", "bob", "are you there?")),
		in.Append(react(clienttest.TextMsg(r1, "2", "bob", ""), asked, "👍")),
		in.Append(group),
		in.Append(react(clienttest.TextMsg(r3, "2", "bob", ""), asked, "")),
		in.Append(react(copyOf(r4, "0123456789abcdef-9", "2", ""), asked, "🎉")),
	); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, c, EventMessage); ev.Msg.GetMsgId() != asked || ev.Msg.GetOp() != cimpb.MsgOp_MSG_OP_NEW {
		t.Fatalf("first %v, want the message", ev.Msg)
	}
	for _, w := range []struct {
		id, group, emoji string
		outgoing         bool
	}{
		{r1, "", "👍", false},
		{r2, "7", "❤️", false},
		{r3, "", "", false},
		{r4, "", "🎉", true},
	} {
		ev := next(t, c, EventMessage)
		if m := ev.Msg; m.GetMsgId() != w.id || m.GetOp() != cimpb.MsgOp_MSG_OP_REACT || m.GetRefMsgId() != asked ||
			string(m.GetBody()) != w.emoji || m.GetGroup() != w.group || ev.Outgoing != w.outgoing {
			t.Errorf("reaction %v (outgoing %v), want %s: %q to %s in %q (outgoing %v)", m, ev.Outgoing, w.id, w.emoji, asked, w.group, w.outgoing)
		}
	}
	// All five entries shown: one ACK covers them, reactions too.
	if f := conn.Next(t, cimpb.Type_ACK); f.GetAck().GetSeq() != 5 {
		t.Fatalf("ACK %d, want 5", f.GetAck().GetSeq())
	}

	// An application marking everything it showed read: only the message
	// is READ, never a reaction, private or group.
	ctx := context.Background()
	if err := c.MarkRead(ctx, "2", r1, r3); err != nil {
		t.Fatal(err)
	}
	if err := c.MarkGroupRead(ctx, "7", "3", r2); err != nil {
		t.Fatal(err)
	}
	if err := c.MarkRead(ctx, "2", r1, asked, r3); err != nil {
		t.Fatal(err)
	}
	if rd := conn.Next(t, cimpb.Type_READ).GetRead(); !slices.Equal(rd.GetMsgIds(), []string{asked}) || rd.GetPeer() != "2" || rd.GetGroup() != "" {
		t.Fatalf("first READ %v, want only %s", rd, asked)
	}
	noEvent(t, c)
}

// TestHistoryReactions: /history's "reactions" become HistoryPage.Reactions
// by msgId, in the route's order, counts as numbers or strings, the
// viewer's own marked; messages without any have no entry; HistoryFill
// gathers them over its pages.
func TestHistoryReactions(t *testing.T) {
	srv := cursorRoute(t, map[string]string{
		"": `{"messages":[{"msgId":"m3","body":"plain"},` +
			`{"msgId":"m2","body":"yes","reactions":[{"emoji":"👍","count":2,"mine":true},{"emoji":"❤️","count":"1"}]}],"next":"c1"}`,
		"c1": `{"messages":[{"msgId":"m1","op":"recalled"},{"msgId":"m0","body":"first","reactions":[{"emoji":"🎉","count":1,"mine":false}]}],"next":""}`,
	})
	api := NewAPI(srv.URL, nil)
	ctx := context.Background()
	page, err := api.History(ctx, "", "", HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]Reaction{"m2": {{Emoji: "👍", Count: 2, Mine: true}, {Emoji: "❤️", Count: 1}}}
	if !equalReactions(page.Reactions, want) {
		t.Errorf("first page's reactions %v, want %v", page.Reactions, want)
	}
	page, err = api.HistoryFill(ctx, "", "", HistoryQuery{}, 4)
	if err != nil || len(page.Messages) != 4 {
		t.Fatalf("HistoryFill: %d messages, %v", len(page.Messages), err)
	}
	want["m0"] = []Reaction{{Emoji: "🎉", Count: 1}}
	if !equalReactions(page.Reactions, want) {
		t.Errorf("filled reactions %v, want %v", page.Reactions, want)
	}

	none := cursorRoute(t, map[string]string{"": `{"messages":[{"msgId":"m1","body":"x"}],"next":""}`})
	if page, err := NewAPI(none.URL, nil).History(ctx, "", "", HistoryQuery{}); err != nil || page.Reactions != nil {
		t.Errorf("a page without reactions: %v, %v; want nil", page.Reactions, err)
	}

	// Through the Client and the fake route too.
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	uid := route.AddUser("alice", "secret1")
	bob := route.AddUser("bob", "secret2")
	route.AddHistory(
		clienttest.HistoryMsg{MsgID: asked, Seq: 1, From: bob, To: uid, Body: "there?",
			Reactions: []clienttest.ReactionJSON{{Emoji: "👍", Count: 1, Mine: true}}},
		clienttest.HistoryMsg{MsgID: answered, Seq: 2, From: uid, To: bob, Body: "yes"},
	)
	c := startClient(t, fastConfig(route.URL))
	page, err = c.History(ctx, HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if !equalReactions(page.Reactions, map[string][]Reaction{asked: {{Emoji: "👍", Count: 1, Mine: true}}}) {
		t.Errorf("reactions %v", page.Reactions)
	}
}

func equalReactions(a, b map[string][]Reaction) bool {
	return maps.EqualFunc(a, b, slices.Equal[[]Reaction])
}
