package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/codes"
)

// TestGroupOwnerHandOver, on the real cluster: olga (a terminal) owns an
// open group that erin, bob and carol join. bob cannot hand it over; olga's
// :gowner to dave (no member) and to an unknown name are refused, then she
// hands it to bob: every member reads bob as the owner, olga's :groups no
// longer marks it hers, her owner's rights are gone and she may leave; bob
// renames and kicks. bob deletes his account: the group stays, owned by
// the remaining member with the lowest user id (carol, registered before
// erin, who joined first), and bob is no member. A group whose owner is
// its only member goes with the owner's account.
func TestGroupOwnerHandOver(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	olga := c.Terminal(t, "olga")
	n, line := olga.Expect(t, 0, `^\* logged in as olga \(id \d+\) `)
	olgaID := regexp.MustCompile(`\(id (\d+)\)`).FindStringSubmatch(line)[1]
	bob, carol := c.Connect(t, "bob"), c.Connect(t, "carol")
	c.Register(t, "dave")
	// erin's id is to be the higher one by number, yet sort before
	// carol's as text: registrations in between take the ids up to one
	// more digit than carol's.
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatalf("100 registrations and no user id longer than carol's %s", carol.ID)
		}
		if id := c.Register(t, fmt.Sprintf("pad%02d", i)); len(id) > len(carol.ID) {
			break
		}
	}
	erin := c.Connect(t, "erin")
	if a, b := num(t, carol.ID), num(t, erin.ID); a >= b {
		t.Fatalf("carol has id %s, erin %s: want carol's lower", carol.ID, erin.ID)
	}
	ctx := ctxT(t)

	olga.Send(t, ":gcreate team open")
	n, line = olga.Expect(t, n, `^\* created group team \(id \d+, open\)$`)
	gid := regexp.MustCompile(`\(id (\d+),`).FindStringSubmatch(line)[1]
	for _, u := range []*harness.User{erin, bob, carol} { // erin first
		if _, err := u.JoinGroup(ctx, gid); err != nil {
			t.Fatalf("%s joins: %v", u.Name, err)
		}
	}
	owner := func(u *harness.User, want string) {
		t.Helper()
		g, err := u.Group(ctx, gid)
		if err != nil || g.Owner != want {
			t.Fatalf("%s reads group %s as %+v, %v; want owner %s", u.Name, gid, g, err, want)
		}
		gs, err := u.Groups(ctx)
		if i := slices.IndexFunc(gs, func(g client.Group) bool { return g.ID == gid }); err != nil || i < 0 || gs[i].Owner != want {
			t.Fatalf("%s's groups %+v, %v; want %s owned by %s", u.Name, gs, err, gid, want)
		}
	}
	owner(bob, olgaID)

	// Refused: a member who is not the owner; the owner naming no member,
	// or nobody; the owner leaving.
	_, err := bob.TransferGroup(ctx, gid, "bob")
	wantCode(t, err, codes.Forbidden, "bob hands olga's group to himself")
	olga.Send(t, ":gowner "+gid+" dave")
	n, _ = olga.Expect(t, n, `^! dave is not a member of group `+gid+`$`)
	olga.Send(t, ":gowner "+gid+" zed")
	n, _ = olga.Expect(t, n, `^! no such user: zed$`)
	olga.Send(t, ":gleave "+gid)
	n, _ = olga.Expect(t, n, `^! you own group `+gid+`: `)
	owner(carol, olgaID)

	// Handed to bob.
	olga.Send(t, ":gowner "+gid+" bob")
	n, _ = olga.Expect(t, n, `^\* bob owns group team \(`+gid+`\) now$`)
	for _, u := range []*harness.User{bob, carol, erin} {
		owner(u, bob.ID)
	}
	olga.Send(t, ":groups")
	n, _ = olga.Expect(t, n, `^\* groups: team \(id `+gid+`, open, 4 members\)$`)
	olga.Send(t, ":gowner "+gid+" carol")
	n, _ = olga.Expect(t, n, `^! only the owner of group `+gid+` may do that$`)
	owner(carol, bob.ID)

	// bob's now: he renames and kicks; olga leaves.
	if g, err := bob.RenameGroup(ctx, gid, "bob's team"); err != nil || g.Name != "bob's team" || g.Owner != bob.ID {
		t.Fatalf("bob renames: %+v, %v", g, err)
	}
	dave := c.Connect(t, "dave")
	if _, err := dave.JoinGroup(ctx, gid); err != nil {
		t.Fatal(err)
	}
	if err := bob.KickFromGroup(ctx, gid, "dave"); err != nil {
		t.Fatalf("bob kicks dave: %v", err)
	}
	olga.Send(t, ":gleave "+gid)
	olga.Expect(t, n, `^\* left group .+ \(id `+gid+`\)$`)
	members := func(u *harness.User) []string {
		t.Helper()
		ms, err := u.GroupMembers(ctx, gid)
		if err != nil {
			t.Fatalf("%s lists the members: %v", u.Name, err)
		}
		ids := make([]string, len(ms))
		for i, m := range ms {
			ids[i] = m.UserID
		}
		slices.SortFunc(ids, func(a, b string) int { return num(t, a) - num(t, b) })
		return ids
	}
	if got, want := members(bob), []string{bob.ID, carol.ID, erin.ID}; !slices.Equal(got, want) {
		t.Fatalf("members after the kick and the leave: %v, want bob, carol, erin %v", got, want)
	}

	// bob leaves for good: the group passes to carol (the lowest id), who
	// may act as its owner.
	if u, err := bob.DeleteAccount(ctx, harness.Password); err != nil || u.UserID != bob.ID {
		t.Fatalf("bob's DeleteAccount = %+v, %v", u, err)
	}
	bob.WaitFor(t, 0, wait, "bob's client closed", harness.IsKind(client.EventClosed))
	for _, u := range []*harness.User{carol, erin} {
		owner(u, carol.ID)
	}
	if got, want := members(erin), []string{carol.ID, erin.ID}; !slices.Equal(got, want) {
		t.Fatalf("members after bob's delete: %v, want carol, erin %v", got, want)
	}
	if g, err := carol.RenameGroup(ctx, gid, "carol's team"); err != nil || g.Name != "carol's team" || g.Members != 2 {
		t.Fatalf("carol renames: %+v, %v", g, err)
	}

	// A group with nobody but its owner goes with the owner's account.
	solo := c.Connect(t, "solo")
	alone, err := solo.CreateGroup(ctx, "alone", true)
	if err != nil {
		t.Fatal(err)
	}
	if g, err := carol.Group(ctx, alone.ID); err != nil || g.Owner != solo.ID {
		t.Fatalf("carol reads solo's open group: %+v, %v", g, err)
	}
	if _, err := solo.DeleteAccount(ctx, harness.Password); err != nil {
		t.Fatal(err)
	}
	_, err = carol.Group(ctx, alone.ID)
	wantCode(t, err, codes.NoGroup, "solo's group after solo's delete")
}

// num is a user id's number.
func num(t *testing.T, id string) int {
	t.Helper()
	n, err := strconv.Atoi(id)
	if err != nil {
		t.Fatalf("user id %q is not a number", id)
	}
	return n
}
