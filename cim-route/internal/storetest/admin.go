package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/cim-route/internal/router"
)

// AdminGateway is the gateway FillUser puts its user online on.
const AdminGateway = "127.0.0.1:11:12"

// FillUser stores something of every kind for uid (peer is another
// user): an online route, an inbox entry with its dedup key, an ack, a
// delayed message, an upload charge, a revision, a deletion from history,
// a group message's dedup state and receipts, a ban, and its membership
// of a group owned by peer, which it leaves again (as the router does
// before deleting an account). Tests then delete uid and look for what
// is left.
func FillUser(t *testing.T, ctx context.Context, s router.Store, uid, peer string) {
	t.Helper()
	now := time.Now().UnixMilli()
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.ClaimRoute(ctx, uid, model.Claim{Gateway: AdminGateway, Session: "s-" + uid, TTL: time.Minute})
	check(err)
	check(s.Online(ctx, uid, "s-"+uid, AdminGateway))
	_, err = s.Write(ctx, model.Write{Appends: []model.Append{
		{UserID: uid, Frame: frame("to " + uid), TS: now, MsgID: msgID(now, 1), Dedup: peer + ":c1"},
	}})
	check(err)
	check(s.RaiseAcks(ctx, []model.Ack{{UserID: uid, Seq: 1}}))
	_, err = s.ScheduleMessage(ctx, model.DelayedMsg{From: uid, To: peer, Text: "later", Due: time.Now().Add(-time.Second)}, 10)
	check(err)
	_, err = s.ChargeUpload(ctx, uid, 10, 1000)
	check(err)
	check(s.Revise(ctx, []model.Revision{{Sender: uid, MsgID: msgID(now, 2), RevID: msgID(now, 3), Text: []byte("edited")}}))
	check(s.DeleteFromHistory(ctx, uid, []string{msgID(now, 1)}))
	_, err = s.ClaimGroupMessages(ctx, []model.GroupDedup{{Sender: uid, ClientMsgID: "g1", MsgID: msgID(now, 4)}})
	check(err)
	_, err = s.AddGroupReceipts(ctx, []model.GroupReceipt{{Sender: uid, MsgID: msgID(now, 4), Members: []string{peer}}})
	check(err)
	check(s.Ban(ctx, uid, model.Ban{Reason: "spam", By: "ops", At: now}))
	check(s.Block(ctx, uid, peer, 10))
	g, err := s.CreateGroup(ctx, peer, "peer's", true)
	check(err)
	_, err = s.JoinGroup(ctx, g.ID, uid, 100)
	check(err)
	check(s.LeaveGroup(ctx, g.ID, uid))
}

// Admin: bans (with an end, lifted), password resets, per-gateway user
// counts, and deleting an account: afterwards nothing of it is found, its
// name is free, and other users keep everything.
func Admin(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{}), ctxT(t)
	alice := must(s.CreateUser(ctx, "Alice", "hash-a"))(t)
	bob := must(s.CreateUser(ctx, "bob", "hash-b"))(t)

	// Bans.
	if err := s.Ban(ctx, "999", model.Ban{Reason: "x"}); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("ban of nobody: %v, want ErrBadAccount", err)
	}
	if _, banned := must2(s.BanOf(ctx, alice))(t); banned {
		t.Fatal("banned before any ban")
	}
	until := time.Now().Add(time.Hour).UnixMilli()
	want := model.Ban{Reason: "spam ünd more", Until: until, By: "ops", At: time.Now().UnixMilli()}
	if err := s.Ban(ctx, alice, want); err != nil {
		t.Fatal(err)
	}
	if b, banned := must2(s.BanOf(ctx, alice))(t); !banned || b != want {
		t.Fatalf("BanOf = %+v, %v; want %+v", b, banned, want)
	}
	if _, banned := must2(s.BanOf(ctx, bob))(t); banned {
		t.Fatal("bob banned with alice")
	}
	if !must(s.Unban(ctx, alice))(t) {
		t.Fatal("Unban of a banned user answered false")
	}
	if must(s.Unban(ctx, alice))(t) {
		t.Fatal("second Unban answered true")
	}
	if _, banned := must2(s.BanOf(ctx, alice))(t); banned {
		t.Fatal("still banned after Unban")
	}
	// A ban whose end has passed is no ban.
	if err := s.Ban(ctx, bob, model.Ban{Reason: "brief", Until: time.Now().Add(-time.Second).UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	if _, banned := must2(s.BanOf(ctx, bob))(t); banned {
		t.Fatal("a ban that ended is in force")
	}

	// Passwords.
	if err := s.SetPassword(ctx, "999", "h"); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("SetPassword of nobody: %v", err)
	}
	if err := s.SetPassword(ctx, alice, "hash-new"); err != nil {
		t.Fatal(err)
	}
	if u := must(s.UserByID(ctx, alice))(t); u.PasswordHash != "hash-new" || u.Name != "Alice" {
		t.Fatalf("after SetPassword: %+v", u)
	}

	// Deletion.
	FillUser(t, ctx, s, alice, bob)
	FillUser(t, ctx, s, bob, alice)
	// Counts per gateway.
	const gwB = "127.0.0.1:21:22"
	if n := must(s.GatewayUserCounts(ctx, []string{AdminGateway, gwB}))(t); !slices.Equal(n, []int{2, 0}) {
		t.Fatalf("GatewayUserCounts = %v, want [2 0]", n)
	}
	// The router's part: alice's groups are dissolved (FillUser(bob)
	// made one).
	for _, g := range must(s.UserGroups(ctx, alice))(t) {
		if err := s.DissolveGroup(ctx, g.ID, alice); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteUser(ctx, "999"); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("DeleteUser of nobody: %v", err)
	}
	if err := s.DeleteUser(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserByID(ctx, alice); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("UserByID after delete: %v", err)
	}
	for _, n := range []string{"Alice", "alice"} {
		if taken := must(s.NameTaken(ctx, n))(t); taken {
			t.Fatalf("name %s still taken after delete", n)
		}
	}
	if names, ids := must2(s.Lookup(ctx, []string{alice, bob}, []string{"alice"}))(t); names[alice] != "" || ids["alice"] != "" || names[bob] != "bob" {
		t.Fatalf("Lookup after delete: %v %v", names, ids)
	}
	if r := must(s.Routes(ctx, []string{alice}))(t)[alice]; r.Exists() {
		t.Fatalf("route after delete: %+v", r)
	}
	if ids := must(s.OnlineIDs(ctx))(t); slices.Contains(ids, alice) || !slices.Contains(ids, bob) {
		t.Fatalf("online ids after deleting alice: %v", ids)
	}
	if n := must(s.GatewayUserCounts(ctx, []string{AdminGateway}))(t); !slices.Equal(n, []int{1}) {
		t.Fatalf("GatewayUserCounts after delete = %v, want [1]", n)
	}
	if _, banned := must2(s.BanOf(ctx, alice))(t); banned {
		t.Fatal("ban left after delete")
	}
	if ids := must(s.BlockedUsers(ctx, alice))(t); len(ids) != 0 {
		t.Fatalf("alice's blocks after delete: %v", ids)
	}
	if ids := must(s.BlockedUsers(ctx, bob))(t); !slices.Equal(ids, []string{alice}) {
		t.Fatalf("bob's blocks after alice's delete: %v, want [%s]", ids, alice)
	}
	rg := must(s.Ranges(ctx, []model.RangeQuery{{UserID: alice, Limit: 10}, {UserID: bob, Limit: 10}}))(t)
	if rg[0].Head != 0 || len(rg[0].Entries) != 0 || rg[0].Acked != 0 {
		t.Fatalf("alice's inbox after delete: %+v", rg[0])
	}
	if rg[1].Head != 1 || len(rg[1].Entries) != 1 || rg[1].Acked != 1 {
		t.Fatalf("bob's inbox after alice's delete: %+v", rg[1])
	}
	if gs := must(s.UserGroups(ctx, alice))(t); len(gs) != 0 {
		t.Fatalf("alice's groups after delete: %+v", gs)
	}
	due := must(s.ClaimDueMessages(ctx, time.Now(), 10, time.Minute))(t)
	if len(due) != 1 || due[0].From != bob {
		t.Fatalf("due delayed messages after alice's delete: %+v, want bob's only", due)
	}
	if err := s.DeleteUser(ctx, alice); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("second DeleteUser: %v", err)
	}
	// The name is free for a new account, with a new id.
	again := must(s.CreateUser(ctx, "alice", "hash-2"))(t)
	if again == alice {
		t.Fatalf("re-registered alice got the deleted id %s", alice)
	}
	if u := must(s.UserByName(ctx, "ALICE"))(t); u.ID != again {
		t.Fatalf("alice is %+v, want id %s", u, again)
	}
	// A device goes from the device list too.
	d := must(s.CreateDevice(ctx, "sensor", []byte("0123456789abcdef0123456789abcdef"), 10))(t)
	if err := s.DeleteUser(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Device(ctx, d.ID); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("Device after delete: %v", err)
	}
	if ds := must(s.ListDevices(ctx, "", 10))(t); len(ds) != 0 {
		t.Fatalf("devices after delete: %+v", ds)
	}
}

// must2 is must for two values.
func must2[A, B any](a A, b B, err error) func(t *testing.T) (A, B) {
	return func(t *testing.T) (A, B) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}
}
