package client

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/proto/cimpb"
)

// fifty are the most mentions a message may carry.
var fifty = func() []string {
	out := make([]string, MaxMentions)
	for i := range out {
		out[i] = strconv.Itoa(i + 1)
	}
	return out
}()

// TestMentionFrames: SendGroupMentions sends a new group text message
// carrying the mentions as given (ids or names, up to 50, duplicates
// left to the route), kept in the outbox like SendGroup's; the next sends
// carry none. Mentions the route would refuse are refused before anything
// is sent, SendMsg's on anything but a new group message too.
func TestMentionFrames(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	c := startClient(t, fastConfig(route.URL))
	conn := gw.Accept(t)
	ctx := context.Background()

	for _, mentions := range [][]string{{"bob", "5"}, {"bob", "bob"}, fifty, nil} {
		id, err := c.SendGroupMentions(ctx, "7", "lunch @bob?", mentions...)
		if err != nil {
			t.Fatalf("%q: %v", mentions, err)
		}
		m := conn.Next(t, cimpb.Type_MSG).GetMsg()
		if m.GetClientMsgId() != id || m.GetGroup() != "7" || m.GetTo() != "" || string(m.GetBody()) != "lunch @bob?" ||
			m.GetKind() != cimpb.Kind_KIND_TEXT || m.GetOp() != cimpb.MsgOp_MSG_OP_NEW || m.GetBroadcast() || m.GetReplyTo() != "" ||
			!slices.Equal(m.GetMentions(), mentions) {
			t.Errorf("uplink %v, want a group message mentioning %q", m, mentions)
		}
		if s, ok := c.Status(id); !ok || s.Group != "7" || s.Text != "lunch @bob?" || s.Status != StatusPending {
			t.Errorf("outbox record %+v", s)
		}
	}
	for _, send := range []func() (string, error){
		func() (string, error) { return c.SendGroup(ctx, "7", "plain") },
		func() (string, error) { return c.Send(ctx, "bob", "plain") },
	} {
		if _, err := send(); err != nil {
			t.Fatal(err)
		}
		if m := conn.Next(t, cimpb.Type_MSG).GetMsg(); len(m.GetMentions()) != 0 {
			t.Errorf("plain send after SendGroupMentions: %v, want no mentions", m)
		}
	}

	pending := c.Pending()
	bob := []string{"bob"}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"no group", func() error { _, err := c.SendGroupMentions(ctx, "", "hi @bob", "bob"); return err }(), ErrNoGroup},
		{"51", func() error { _, err := c.SendGroupMentions(ctx, "7", "hi", append(fifty, "bob")...); return err }(), ErrTooManyMentions},
		{"51, all the same", func() error { _, err := c.SendGroupMentions(ctx, "7", "hi", slices.Repeat(bob, 51)...); return err }(), ErrTooManyMentions},
		{"an empty one", func() error { _, err := c.SendGroupMentions(ctx, "7", "hi", "bob", ""); return err }(), ErrBadMentions},
		{"SendMsg, private", c.SendMsg(ctx, &cimpb.Msg{To: "bob", Body: []byte("hi"), Mentions: bob}), ErrBadMentions},
		{"SendMsg, broadcast", c.SendMsg(ctx, &cimpb.Msg{Broadcast: true, Body: []byte("hi"), Mentions: bob}), ErrBadMentions},
		{"SendMsg, to the app", c.SendMsg(ctx, &cimpb.Msg{ToApp: true, Body: []byte("hi"), Mentions: bob}), ErrBadMentions},
		{"SendMsg, group and app", c.SendMsg(ctx, &cimpb.Msg{Group: "7", ToApp: true, Body: []byte("hi"), Mentions: bob}), ErrBadMentions},
		{"SendMsg, group broadcast", c.SendMsg(ctx, &cimpb.Msg{Group: "7", Broadcast: true, Body: []byte("hi"), Mentions: bob}), ErrBadMentions},
		{"SendMsg, edit", c.SendMsg(ctx, &cimpb.Msg{Group: "7", Op: cimpb.MsgOp_MSG_OP_EDIT, RefMsgId: asked, Body: []byte("hi"), Mentions: bob}), ErrBadMentions},
		{"SendMsg, recall", c.SendMsg(ctx, &cimpb.Msg{Group: "7", Op: cimpb.MsgOp_MSG_OP_RECALL, RefMsgId: asked, Mentions: bob}), ErrBadMentions},
		{"SendMsg, reaction", c.SendMsg(ctx, &cimpb.Msg{Group: "7", Op: cimpb.MsgOp_MSG_OP_REACT, RefMsgId: asked, Body: []byte("👍"), Mentions: bob}), ErrBadMentions},
		{"SendMsg, 51", c.SendMsg(ctx, &cimpb.Msg{Group: "7", Body: []byte("hi"), Mentions: append(fifty, "bob")}), ErrTooManyMentions},
		{"SendMsg, an empty one", c.SendMsg(ctx, &cimpb.Msg{Group: "7", Body: []byte("hi"), Mentions: []string{""}}), ErrBadMentions},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if c.Pending() != pending {
		t.Errorf("Pending() = %d after refused mentions, want %d", c.Pending(), pending)
	}
	// Nothing went out for them: the next frame is the next good send.
	id, err := c.Send(ctx, "bob", "after")
	if err != nil {
		t.Fatal(err)
	}
	if m := conn.Next(t, cimpb.Type_MSG).GetMsg(); m.GetClientMsgId() != id || len(m.GetMentions()) != 0 {
		t.Errorf("frame after the refused mentions: %v, want the message %s", m, id)
	}
}

// TestMentionsResent: a message with mentions the route does not answer
// is sent again with its mentions, after the resend timeout and on a new
// link.
func TestMentionsResent(t *testing.T) {
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

	id1, err := c.SendGroupMentions(ctx, "7", "hi all", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	id2, err := c.SendGroupMentions(ctx, "7", "hi all", fifty...)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{id1: {"bob", "carol"}, id2: fifty}
	check := func(where string, m *cimpb.Msg) {
		t.Helper()
		w, ok := want[m.GetClientMsgId()]
		if !ok || !slices.Equal(m.GetMentions(), w) || m.GetGroup() != "7" || string(m.GetBody()) != "hi all" {
			t.Fatalf("%s: %v, want one of the messages sent, with its mentions", where, m)
		}
	}
	tries := map[string]int{}
	for tries[id1] < 2 || tries[id2] < 2 { // the first try and a resend of each
		m := conn1.Next(t, cimpb.Type_MSG).GetMsg()
		check("try "+strconv.Itoa(tries[m.GetClientMsgId()]+1), m)
		tries[m.GetClientMsgId()]++
	}
	conn1.Close()
	conn2 := gw2.Accept(t)
	for range 2 {
		check("replayed on a new link", conn2.Next(t, cimpb.Type_MSG).GetMsg())
	}
}

// TestMentionsMe: MentionsMe holds for a message whose mentions hold the
// logged-in user's id, live or from History (whose "mentions" fill
// Msg.Mentions), and never before the first login.
func TestMentionsMe(t *testing.T) {
	route0 := clienttest.NewRoute(t)
	idle, err := New(fastConfig(route0.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer closeClient(t, idle)
	if idle.MentionsMe(&cimpb.Msg{Group: "7", Mentions: []string{"1", ""}}) {
		t.Error("MentionsMe before login")
	}

	c, gw, route, in := inboxSetup(t, nil)
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	me := c.Info().UserID
	if me == "" {
		t.Fatal("no user id after login")
	}
	bob := route.AddUser("bob", "secret1")
	mention := func(id string, ids ...string) *cimpb.Frame {
		f := clienttest.GroupMsg(id, bob, "bob", "7", "lunch @alice?")
		f.Msg.Mentions = ids
		return f
	}
	if err := conn.SendAll(
		in.Append(mention(asked, bob, me)),
		in.Append(mention(answered, bob)),
		in.Append(mention("0190f1c2d3e4f5a6b7c8d9e0f1a2b3c6")),
	); err != nil {
		t.Fatal(err)
	}
	for _, want := range []bool{true, false, false} {
		ev := next(t, c, EventMessage)
		if got := c.MentionsMe(ev.Msg); got != want {
			t.Errorf("MentionsMe(%v) = %v, want %v", ev.Msg, got, want)
		}
	}
	for _, m := range []*cimpb.Msg{nil, {}, {Mentions: []string{"1" + me}}, {Mentions: []string{""}}} {
		if c.MentionsMe(m) {
			t.Errorf("MentionsMe(%v)", m)
		}
	}

	route.AddHistory(
		clienttest.HistoryMsg{MsgID: asked, Seq: 1, From: bob, FromName: "bob", To: me, Group: "7", Body: "lunch @alice?", Mentions: []string{bob, me}},
		clienttest.HistoryMsg{MsgID: answered, Seq: 2, From: bob, FromName: "bob", To: me, Group: "7", Body: "no one"},
	)
	ctx, cancel := context.WithTimeout(context.Background(), clienttest.Wait)
	defer cancel()
	page, err := c.History(ctx, HistoryQuery{Group: "7"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 2 || page.Messages[0].GetMentions() != nil || !slices.Equal(page.Messages[1].GetMentions(), []string{bob, me}) {
		t.Fatalf("history %v, want the older message mentioning %s and %s", page.Messages, bob, me)
	}
	if c.MentionsMe(page.Messages[0]) || !c.MentionsMe(page.Messages[1]) {
		t.Errorf("MentionsMe of history %v", page.Messages)
	}
}

// TestHistoryMentionsShapes: "mentions" holds ids as strings (numbers are
// read the same way); absent or empty means none.
func TestHistoryMentionsShapes(t *testing.T) {
	for _, tc := range []struct {
		json string
		want []string
	}{
		{`{"msgId":"a","group":"3","mentions":["2","5"]}`, []string{"2", "5"}},
		{`{"msgId":"a","group":"3","mentions":[2,"5"]}`, []string{"2", "5"}},
		{`{"msgId":"a","group":"3","mentions":[]}`, nil},
		{`{"msgId":"a","group":"3","mentions":null}`, nil},
		{`{"msgId":"a","group":"3"}`, nil},
	} {
		var h historyMsg
		if err := json.Unmarshal([]byte(tc.json), &h); err != nil {
			t.Fatalf("%s: %v", tc.json, err)
		}
		if got := h.msg().GetMentions(); !slices.Equal(got, tc.want) || (tc.want == nil) != (got == nil) {
			t.Errorf("%s: mentions %q, want %q", tc.json, got, tc.want)
		}
	}
}
