package e2e

import (
	"errors"
	"slices"
	"testing"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/codes"
)

// TestDeleteAccount, on the real cluster: alice deletes her account with
// her password (a wrong one first: nothing happens). Her client ends, the
// group she owned passes to bob, his message to her finds nobody, her
// password logs in no more, and the name registers as a new account.
func TestDeleteAccount(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	ctx := ctxT(t)
	alice, bob := c.Connect(t, "alice"), c.Connect(t, "bob")
	g, err := alice.CreateGroup(ctx, "alice's", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	sendSent(t, bob, "alice", "before")
	alice.WaitFor(t, 0, wait, "bob's message", harness.IsMessage("before"))

	var ae *client.APIError
	if _, err := alice.DeleteAccount(ctx, "wrong-password"); !errors.As(err, &ae) || ae.Code != codes.Forbidden {
		t.Fatalf("a wrong password: %v, want 4030", err)
	}
	if u, err := alice.DeleteAccount(ctx, harness.Password); err != nil || u.UserID != alice.ID {
		t.Fatalf("DeleteAccount = %+v, %v", u, err)
	}
	alice.WaitFor(t, 0, wait, "alice's client closed", func(e client.Event) bool { return e.Kind == client.EventClosed })

	// Her group stays, with bob, its one member left, as its owner.
	if gs, err := bob.Groups(ctx); err != nil || !slices.ContainsFunc(gs, func(x client.Group) bool { return x.ID == g.ID && x.Owner == bob.ID && x.Members == 1 }) {
		t.Fatalf("bob's groups after alice's delete: %+v, %v, want %s his own, with him alone", gs, err, g.ID)
	}
	id, err := bob.Send(ctx, "alice", "after")
	if err != nil {
		t.Fatal(err)
	}
	k := bob.WaitFor(t, 0, wait, "the refusal", func(e client.Event) bool {
		return e.Kind == client.EventError && e.Err.GetClientMsgId() == id
	})
	if code := bob.Seen()[k].Err.GetCode(); code != int32(codes.BadAccount) {
		t.Fatalf("bob's message to the deleted alice answered %d, want 9100", code)
	}
	if _, err := client.NewAPI(c.Route.URL, c.HTTP()).Login(ctx, "alice", harness.Password); !errors.As(err, &ae) || ae.Code != codes.BadAccount {
		t.Fatalf("alice's password after the delete: %v, want 9100", err)
	}
	if id := c.Register(t, "alice"); id == "" || id == alice.ID {
		t.Fatalf("registering alice again gave id %q (was %s)", id, alice.ID)
	}
}
