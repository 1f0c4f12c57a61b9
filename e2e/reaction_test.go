package e2e

import (
	"slices"
	"testing"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
)

// isReaction matches a received reaction of from to message ref.
func isReaction(from, ref, emoji string) func(client.Event) bool {
	return func(e client.Event) bool {
		return e.Kind == client.EventMessage && e.Msg.Op == cimpb.MsgOp_MSG_OP_REACT &&
			e.Msg.FromName == from && e.Msg.RefMsgId == ref && string(e.Msg.Body) == emoji
	}
}

// TestReactions, on the real cluster (two gateways, their route replicas,
// Redis, a group's timeline): a reaction reaches the peer live across
// gateways and an offline one at its login, history shows the counts with
// the viewer's own, a take-back and a change show there too, a group's
// timeline carries them, and the terminal's :react reacts to the last line
// it printed and prints the reactions it gets and the counts in :his.
func TestReactions(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2, RouteArgs: []string{"--group-timeline-min", "2"}})
	ctx := ctxT(t)
	alice, bob := c.Connect(t, "alice"), c.Connect(t, "bob")
	qid, err := bob.Send(ctx, "alice", "lunch?")
	if err != nil {
		t.Fatal(err)
	}
	q := sentID(t, bob, qid)
	rid, err := alice.React(ctx, "bob", q, "👍")
	if err != nil {
		t.Fatal(err)
	}
	sentID(t, alice, rid)
	bob.WaitFor(t, 0, wait, "alice's 👍 on his question", isReaction("alice", q, "👍"))

	// alice is away when bob reacts to his own question: she gets it at
	// her login.
	if err := alice.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	bid, err := bob.React(ctx, "alice", q, "❤️")
	if err != nil {
		t.Fatal(err)
	}
	sentID(t, bob, bid)
	alice = c.Connect(t, "alice")
	alice.WaitFor(t, 0, wait, "bob's stored ❤️", isReaction("bob", q, "❤️"))
	history := func(u *harness.User, q client.HistoryQuery, id string) []client.Reaction {
		t.Helper()
		h, err := u.History(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return h.Reactions[id]
	}
	if got := history(alice, client.HistoryQuery{Peer: "bob"}, q); !slices.Equal(got, []client.Reaction{{Emoji: "👍", Count: 1, Mine: true}, {Emoji: "❤️", Count: 1}}) {
		t.Fatalf("alice's history reactions %+v, want her 👍 then bob's ❤️", got)
	}
	// alice changes hers to bob's, then takes it back.
	for _, emoji := range []string{"❤️", ""} {
		id, err := alice.React(ctx, "bob", q, emoji)
		if err != nil {
			t.Fatal(err)
		}
		sentID(t, alice, id)
		bob.WaitFor(t, 0, wait, "alice's "+emoji, isReaction("alice", q, emoji))
	}
	if got := history(bob, client.HistoryQuery{Peer: "alice"}, q); !slices.Equal(got, []client.Reaction{{Emoji: "❤️", Count: 1, Mine: true}}) {
		t.Fatalf("bob's history reactions %+v, want his ❤️ alone", got)
	}

	// A group of two keeps its messages, reactions too, in a timeline.
	g, err := bob.CreateGroup(ctx, "pair", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.JoinGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	gq, err := bob.SendGroup(ctx, g.ID, "pizza?")
	if err != nil {
		t.Fatal(err)
	}
	gqID := sentID(t, bob, gq)
	if _, err := alice.ReactInGroup(ctx, g.ID, gqID, "🍕"); err != nil {
		t.Fatal(err)
	}
	k := bob.WaitFor(t, 0, wait, "alice's 🍕 in the group", isReaction("alice", gqID, "🍕"))
	if got := bob.Seen()[k].Msg.Group; got != g.ID {
		t.Fatalf("the reaction came in group %q, want %s", got, g.ID)
	}
	if got := history(bob, client.HistoryQuery{Group: g.ID}, gqID); !slices.Equal(got, []client.Reaction{{Emoji: "🍕", Count: 1}}) {
		t.Fatalf("the group's history reactions %+v, want alice's 🍕", got)
	}

	// The terminal: carol reacts to the last line she got, sees bob's
	// reaction quote it, and :his shows both.
	carol := c.Terminal(t, "carol")
	carol.Expect(t, 0, `^\* logged in as carol `)
	did, err := bob.Send(ctx, "carol", "coffee?")
	if err != nil {
		t.Fatal(err)
	}
	d := sentID(t, bob, did)
	from, _ := carol.Expect(t, 0, `^`+stamp+`bob: coffee\?$`)
	carol.Send(t, ":react :thumbsup:")
	bob.WaitFor(t, 0, wait, "carol's :react", isReaction("carol", d, "👍"))
	if _, err := bob.React(ctx, "carol", d, "😂"); err != nil {
		t.Fatal(err)
	}
	from, _ = carol.Expect(t, from, `^\* bob reacted 😂 to: coffee\?$`)
	carol.Send(t, ":his bob")
	carol.Expect(t, from, `bob: coffee\? \[👍 1\* 😂 1\]$`)
}
