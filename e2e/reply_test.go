package e2e

import (
	"testing"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
)

// isReply matches a received message with body that answers ref.
func isReply(body, ref string) func(client.Event) bool {
	return func(e client.Event) bool {
		return e.Kind == client.EventMessage && string(e.Msg.Body) == body && e.Msg.ReplyTo == ref
	}
}

// TestReplies, on the real cluster (two gateways, their route replicas,
// Redis, a group's timeline): a reply names the message it answers, live
// across gateways, stored for a recipient offline when it was sent, in a
// group's timeline, in history; and the terminal's :reply answers the
// last message it printed, quoting it when a reply comes back.
func TestReplies(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2, RouteArgs: []string{"--group-timeline-min", "2"}})
	ctx := ctxT(t)
	alice, bob := c.Connect(t, "alice"), c.Connect(t, "bob")
	qid, err := bob.Send(ctx, "alice", "are you there?")
	if err != nil {
		t.Fatal(err)
	}
	q := sentID(t, bob, qid)
	aid, err := alice.Reply(ctx, "bob", q, "yes")
	if err != nil {
		t.Fatal(err)
	}
	a := sentID(t, alice, aid)
	bob.WaitFor(t, 0, wait, "alice's answer quoting his question", isReply("yes", q))

	// alice is away when bob answers her answer: she gets it at her login.
	if err := alice.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	gid, err := bob.Reply(ctx, "alice", a, "good")
	if err != nil {
		t.Fatal(err)
	}
	sentID(t, bob, gid)
	alice = c.Connect(t, "alice")
	alice.WaitFor(t, 0, wait, "bob's stored answer quoting hers", isReply("good", a))
	h, err := alice.History(ctx, client.HistoryQuery{Peer: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Messages) != 3 || h.Messages[0].ReplyTo != a || h.Messages[1].ReplyTo != q || h.Messages[2].ReplyTo != "" {
		t.Fatalf("alice's history with bob %v, want good→yes→question", h.Messages)
	}

	// A group of two keeps its messages once, in a timeline.
	g, err := bob.CreateGroup(ctx, "pair", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.JoinGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	gq, err := bob.SendGroup(ctx, g.ID, "lunch?")
	if err != nil {
		t.Fatal(err)
	}
	gqID := sentID(t, bob, gq)
	if _, err := alice.ReplyInGroup(ctx, g.ID, gqID, "sure"); err != nil {
		t.Fatal(err)
	}
	k := bob.WaitFor(t, 0, wait, "alice's answer in the group", isReply("sure", gqID))
	if got := bob.Seen()[k].Msg.Group; got != g.ID {
		t.Fatalf("the answer came in group %q, want %s", got, g.ID)
	}

	// The terminal: carol answers the last line she got, and sees the
	// answer to her answer quote it.
	carol := c.Terminal(t, "carol")
	carol.Expect(t, 0, `^\* logged in as carol `)
	did, err := bob.Send(ctx, "carol", "coffee?")
	if err != nil {
		t.Fatal(err)
	}
	d := sentID(t, bob, did)
	from, _ := carol.Expect(t, 0, `^`+stamp+`bob: coffee\?$`)
	carol.Send(t, ":reply always")
	k = bob.WaitFor(t, 0, wait, "carol's :reply", isReply("always", d))
	if _, err := bob.Reply(ctx, "carol", bob.Seen()[k].Msg.MsgId, "same"); err != nil {
		t.Fatal(err)
	}
	carol.Expect(t, from, `^`+stamp+`bob: same \(↪ carol: always\)$`)
}
