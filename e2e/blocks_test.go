package e2e

import (
	"slices"
	"testing"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/codes"
)

// TestBlocks, on the real cluster (two gateways, their route replicas,
// Redis): alice blocks bob; bob's message to her is answered SENT but
// never reaches her (carol's, sent after it, does: her inbox is in
// order), hers to him fails with 4030; the list names bob; after the
// unblock his next message arrives and hers goes through. bob's
// subscription from before the block stops showing him alice, one made
// during it shows her offline, and the unblock shows her again.
func TestBlocks(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	ctx := ctxT(t)
	alice, bob, carol := c.Connect(t, "alice"), c.Connect(t, "bob"), c.Connect(t, "carol")
	// bob watches alice and carol from before the block.
	if states, err := bob.Subscribe(ctx, []string{"alice", "carol"}, nil); err != nil || len(states) != 2 || !states[0].Online {
		t.Fatalf("bob's subscription: %v, %v", states, err)
	}
	from := bob.Len()
	if u, err := alice.Block(ctx, "bob"); err != nil || u.UserID != bob.ID {
		t.Fatalf("Block = %+v, %v", u, err)
	}
	// He sees her go offline at once, and none of her changes after: her
	// reconnect goes unseen, carol's logging off (after it) does not.
	bob.WaitFor(t, from, wait, "alice offline to bob", isPresence(alice.ID, false))
	if err := alice.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	alice = c.Connect(t, "alice")
	if err := carol.Close(ctx); err != nil {
		t.Fatal(err)
	}
	bob.WaitFor(t, from, wait, "carol offline", isPresence(carol.ID, false))
	if slices.ContainsFunc(bob.Seen()[from:], isPresence(alice.ID, true)) {
		t.Fatal("bob saw alice come online after she blocked him")
	}
	carol = c.Connect(t, "carol")
	// A subscription made during the block: alice is offline in it, like
	// anyone offline (nothing tells bob he is blocked).
	states, err := bob.Subscribe(ctx, []string{"alice", "carol"}, nil)
	if err != nil || len(states) != 2 || states[0].UserId != alice.ID || states[0].Online || states[0].AtMs != 0 || !states[1].Online {
		t.Fatalf("bob's subscription during the block: %v, %v; want alice offline, carol online", states, err)
	}
	if us, err := alice.Blocks(ctx); err != nil || len(us) != 1 || us[0].UserName != "bob" {
		t.Fatalf("Blocks = %+v, %v", us, err)
	}
	sendSent(t, bob, "alice", "blocked words")
	sendSent(t, carol, "alice", "after the block")
	alice.WaitFor(t, 0, wait, "carol's message", harness.IsMessage("after the block"))
	if slices.ContainsFunc(alice.Seen(), harness.IsMessage("blocked words")) {
		t.Fatal("alice got the message of a user she blocked")
	}

	id, err := alice.Send(ctx, "bob", "to the blocked")
	if err != nil {
		t.Fatal(err)
	}
	k := alice.WaitFor(t, 0, wait, "the refusal", func(e client.Event) bool {
		return e.Kind == client.EventError && e.Err.GetClientMsgId() == id
	})
	if code := alice.Seen()[k].Err.GetCode(); code != int32(codes.Forbidden) {
		t.Fatalf("alice's message to bob answered %d, want 4030", code)
	}

	from = bob.Len()
	if _, err := alice.Unblock(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	// bob's subscription (made during the block) shows her again: online
	// at once, then her changes.
	bob.WaitFor(t, from, wait, "alice online to bob after the unblock", isPresence(alice.ID, true))
	if err := alice.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	bob.WaitFor(t, from, wait, "alice's going offline after the unblock", isPresence(alice.ID, false))
	alice = c.Connect(t, "alice")
	sendSent(t, bob, "alice", "unblocked words")
	alice.WaitFor(t, 0, wait, "bob's message after the unblock", harness.IsMessage("unblocked words"))
	sendSent(t, alice, "bob", "hello again")
	bob.WaitFor(t, 0, wait, "alice's message after the unblock", harness.IsMessage("hello again"))
	if slices.ContainsFunc(alice.Seen(), harness.IsMessage("blocked words")) {
		t.Fatal("the blocked message came after the unblock")
	}
}
