package e2e

import (
	"slices"
	"testing"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
)

// TestMentions, on the real cluster (two gateways, their route replicas,
// Redis, a group's timeline): a group message's mentions reach the members
// as the ids of the members it names (a non-member and an unknown name
// dropped), live across gateways and stored for one offline, in history;
// and the terminal turns "@name" into a mention and marks the lines that
// mention its user.
func TestMentions(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2, RouteArgs: []string{"--group-timeline-min", "3"}})
	ctx := ctxT(t)
	alice, bob := c.Connect(t, "alice"), c.Connect(t, "bob")
	carol := c.Terminal(t, "carol")
	carol.Expect(t, 0, `^\* logged in as carol `)
	dave := c.Connect(t, "dave")
	g, err := alice.CreateGroup(ctx, "team", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	carol.Send(t, ":gjoin "+g.ID)
	carol.Expect(t, 0, `^\* joined group team `)
	if err := bob.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}

	id, err := alice.SendGroupMentions(ctx, g.ID, "lunch @bob @carol?", "bob", "carol", "dave", "nobody", "bob")
	if err != nil {
		t.Fatal(err)
	}
	msgID := sentID(t, alice, id)
	from, _ := carol.Expect(t, 0, `^`+stamp+`alice@team: lunch @bob @carol\? \(mentions you\)$`)
	bob = c.Connect(t, "bob")
	k := bob.WaitFor(t, 0, wait, "the stored message", harness.IsMessage("lunch @bob @carol?"))
	m := bob.Seen()[k].Msg
	if want := []string{bob.ID, carolID(t, bob, g.ID)}; !slices.Equal(m.Mentions, want) || !bob.MentionsMe(m) {
		t.Fatalf("bob got mentions %v, want %v (bob then carol)", m.Mentions, want)
	}
	if slices.ContainsFunc(dave.Seen(), func(e client.Event) bool { return e.Msg.GetMsgId() == msgID }) {
		t.Fatalf("dave, named but no member, got the group's message")
	}
	h, err := bob.History(ctx, client.HistoryQuery{Group: g.ID})
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(h.Messages, func(x *cimpb.Msg) bool { return x.MsgId == msgID }); i < 0 || !slices.Equal(h.Messages[i].Mentions, m.Mentions) {
		t.Fatalf("the group's history %v, want the message with mentions %v", h.Messages, m.Mentions)
	}

	// The terminal: "@alice" in carol's group line mentions alice.
	carol.Send(t, ":g "+g.ID+" on it @alice, @dave!")
	k = alice.WaitFor(t, 0, wait, "carol's line", harness.IsMessage("on it @alice, @dave!"))
	if got := alice.Seen()[k].Msg.Mentions; !slices.Equal(got, []string{alice.ID}) || !alice.MentionsMe(alice.Seen()[k].Msg) {
		t.Fatalf("carol's :g mentioned %v, want alice alone", got)
	}
	if _, err := alice.SendGroup(ctx, g.ID, "no mention"); err != nil {
		t.Fatal(err)
	}
	carol.Expect(t, from, `^`+stamp+`alice@team: no mention$`)
}

// carolID is carol's user id, read from the group's members as u sees them.
func carolID(t *testing.T, u *harness.User, gid string) string {
	t.Helper()
	ms, err := u.GroupMembers(ctxT(t), gid)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.UserName == "carol" {
			return m.UserID
		}
	}
	t.Fatalf("carol is not among %v", ms)
	return ""
}
