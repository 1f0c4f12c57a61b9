package store

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/errs"
)

// TestGroupMembership walks every membership script through its checks and
// looks at the keys the contract names.
func TestGroupMembership(t *testing.T) {
	s, rdb, _ := newStore(t)
	ctx := ctxT(t)
	const max = 3

	g, err := s.CreateGroup(ctx, "1", "team", false)
	if err != nil || g.ID != "1" || g.Name != "team" || g.Owner != "1" || g.Open || g.Members != 1 || g.Created == 0 {
		t.Fatalf("create: %+v %v", g, err)
	}
	if h := rdb.HGetAll(ctx, "cim:group:{1}").Val(); h["name"] != "team" || h["owner"] != "1" || h["open"] != "0" || h["created"] == "" {
		t.Fatalf("cim:group:{1} = %v", h)
	}
	if m := members(t, rdb, "cim:gmembers:{1}"); !slices.Equal(m, []string{"1"}) {
		t.Fatalf("gmembers = %v", m)
	}
	if m := members(t, rdb, "cim:ugroups:{1}"); !slices.Equal(m, []string{"1"}) {
		t.Fatalf("owner's ugroups = %v", m)
	}
	if open, err := s.CreateGroup(ctx, "2", "open one", true); err != nil || open.ID != "2" || !open.Open {
		t.Fatalf("second group: %+v %v", open, err)
	}

	forbidden := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, errs.ErrForbidden) {
			t.Fatalf("%s: %v, want ErrForbidden", what, err)
		}
	}
	_, err = s.JoinGroup(ctx, "1", "2", max)
	forbidden("join closed without invitation", err)
	_, _, err = s.InviteToGroup(ctx, "1", "2", []string{"3"}, max)
	forbidden("invite by a non-member", err)
	if _, err := s.JoinGroup(ctx, "2", "3", max); err != nil { // open: anyone
		t.Fatal(err)
	}
	if _, invited, err := s.InviteToGroup(ctx, "2", "3", []string{"4"}, max); err != nil || !slices.Equal(invited, []string{"4"}) {
		t.Fatalf("member invites to an open group: %v %v", invited, err)
	}

	_, invited, err := s.InviteToGroup(ctx, "1", "1", []string{"2", "1", "3"}, max)
	if err != nil || !slices.Equal(invited, []string{"2", "3"}) {
		t.Fatalf("owner invites: %v %v (members are skipped)", invited, err)
	}
	if m := members(t, rdb, "cim:ginvited:{1}"); !slices.Equal(m, []string{"2", "3"}) {
		t.Fatalf("ginvited = %v", m)
	}
	if g, err := s.JoinGroup(ctx, "1", "2", max); err != nil || g.Members != 2 {
		t.Fatalf("join after invitation: %+v %v", g, err)
	}
	if g, err := s.JoinGroup(ctx, "1", "2", max); err != nil || g.Members != 2 {
		t.Fatalf("join again: %+v %v, want the group unchanged", g, err)
	}
	if m := members(t, rdb, "cim:ginvited:{1}"); !slices.Equal(m, []string{"3"}) {
		t.Fatalf("ginvited after join = %v", m)
	}
	if m := members(t, rdb, "cim:ugroups:{2}"); !slices.Equal(m, []string{"1", "2"}) {
		t.Fatalf("ugroups of 2 = %v", m)
	}
	// Non-owners of a closed group.
	_, _, err = s.InviteToGroup(ctx, "1", "2", []string{"5"}, max)
	forbidden("invite by a member of a closed group", err)
	forbidden("kick by a non-owner", s.KickFromGroup(ctx, "1", "2", "1"))
	_, err = s.RenameGroup(ctx, "1", "2", "mine")
	forbidden("rename by a non-owner", err)
	forbidden("dissolve by a non-owner", s.DissolveGroup(ctx, "1", "2"))
	forbidden("owner leaves", s.LeaveGroup(ctx, "1", "1"))
	forbidden("non-member leaves", s.LeaveGroup(ctx, "1", "9"))
	forbidden("owner kicks itself", s.KickFromGroup(ctx, "1", "1", "1"))

	// The limit: 3 members.
	if _, err := s.JoinGroup(ctx, "1", "3", max); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.InviteToGroup(ctx, "1", "1", []string{"4"}, max); !errors.Is(err, errs.ErrGroupFull) {
		t.Fatalf("invite to a full group: %v", err)
	}
	rdb.SAdd(ctx, "cim:ginvited:{1}", "4")
	if _, err := s.JoinGroup(ctx, "1", "4", max); !errors.Is(err, errs.ErrGroupFull) {
		t.Fatalf("join a full group: %v", err)
	}

	if err := s.LeaveGroup(ctx, "1", "3"); err != nil {
		t.Fatal(err)
	}
	if m := members(t, rdb, "cim:ugroups:{3}"); !slices.Equal(m, []string{"2"}) {
		t.Fatalf("ugroups of 3 after leaving 1 = %v", m)
	}
	if err := s.KickFromGroup(ctx, "1", "1", "2"); err != nil {
		t.Fatal(err)
	}
	if err := s.KickFromGroup(ctx, "1", "1", "4"); err != nil { // not a member: the invitation goes
		t.Fatal(err)
	}
	if m := members(t, rdb, "cim:ginvited:{1}"); len(m) != 0 {
		t.Fatalf("ginvited after kicking an invitee = %v", m)
	}
	if m := members(t, rdb, "cim:gmembers:{1}"); !slices.Equal(m, []string{"1"}) {
		t.Fatalf("gmembers after leave and kick = %v", m)
	}
	if g, err := s.RenameGroup(ctx, "1", "1", "renamed"); err != nil || g.Name != "renamed" || g.Members != 1 {
		t.Fatalf("rename: %+v %v", g, err)
	}
	if g, member, err := s.GroupOf(ctx, "1", "2"); err != nil || member || g.Name != "renamed" {
		t.Fatalf("GroupOf for a former member: %+v %v %v", g, member, err)
	}

	// Listing: stale mirror entries are dropped, also from the mirror.
	rdb.SAdd(ctx, "cim:ugroups:{3}", "1", "77")
	gs, err := s.UserGroups(ctx, "3")
	if err != nil || len(gs) != 1 || gs[0].ID != "2" || gs[0].Members != 2 {
		t.Fatalf("UserGroups(3) = %+v %v", gs, err)
	}
	if m := members(t, rdb, "cim:ugroups:{3}"); !slices.Equal(m, []string{"2"}) {
		t.Fatalf("stale ugroups entries kept: %v", m)
	}

	// A removal racing with a join again keeps the mirror of a member.
	if err := s.unmirror(ctx, "1", "1"); err != nil || !slices.Contains(members(t, rdb, "cim:ugroups:{1}"), "1") {
		t.Fatalf("unmirror of a current member dropped it: %v", err)
	}

	if _, err := s.JoinGroup(ctx, "2", "1", max); err != nil {
		t.Fatal(err)
	}
	if err := s.DissolveGroup(ctx, "2", "2"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"cim:group:{2}", "cim:gmembers:{2}", "cim:ginvited:{2}"} {
		if rdb.Exists(ctx, k).Val() != 0 {
			t.Fatalf("%s survived dissolve", k)
		}
	}
	for _, uid := range []string{"1", "2", "3"} {
		if slices.Contains(members(t, rdb, "cim:ugroups:{"+uid+"}"), "2") {
			t.Fatalf("ugroups of %s still lists the dissolved group", uid)
		}
	}
	noGroup := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, errs.ErrNoGroup) {
			t.Fatalf("%s: %v, want ErrNoGroup", what, err)
		}
	}
	_, err = s.JoinGroup(ctx, "2", "5", max)
	noGroup("join", err)
	_, _, err = s.InviteToGroup(ctx, "2", "2", []string{"5"}, max)
	noGroup("invite", err)
	noGroup("leave", s.LeaveGroup(ctx, "2", "3"))
	noGroup("kick", s.KickFromGroup(ctx, "2", "2", "3"))
	_, err = s.RenameGroup(ctx, "2", "2", "x")
	noGroup("rename", err)
	noGroup("dissolve", s.DissolveGroup(ctx, "2", "2"))
	_, _, err = s.GroupOf(ctx, "2", "")
	noGroup("GroupOf", err)

	ms, isMember, err := s.GroupMembers(ctx, []string{"1", "2"}, []MemberRef{{Group: "1", User: "1"}, {Group: "1", User: "2"}})
	if err != nil || !slices.Equal(ms["1"], []string{"1"}) || len(ms["2"]) != 0 || !slices.Equal(isMember, []bool{true, false}) {
		t.Fatalf("GroupMembers = %v %v %v", ms, isMember, err)
	}
}

// TestGroupMessageDedupAndReceipts: the sender's gdedup key goes pending →
// done; receipt sets count distinct members and expire with the inbox.
func TestGroupMessageDedupAndReceipts(t *testing.T) {
	s, rdb, _ := newStore(t)
	ctx := ctxT(t)
	d := []GroupDedup{{Sender: "1", ClientMsgID: "c1", MsgID: "m1"}, {Sender: "1", ClientMsgID: "c2", MsgID: "m2"}}
	claims, err := s.ClaimGroupMessages(ctx, d)
	if err != nil || !claims[0].Claimed || !claims[1].Claimed {
		t.Fatalf("first claims: %+v %v", claims, err)
	}
	if v := rdb.Get(ctx, "cim:gdedup:{1}:c1").Val(); v != "m1|pending" {
		t.Fatalf("gdedup = %q", v)
	}
	if ttl := rdb.PTTL(ctx, "cim:gdedup:{1}:c1").Val(); ttl <= 0 || ttl > DefaultDedupWindow {
		t.Fatalf("gdedup TTL = %v", ttl)
	}
	if err := s.FinishGroupMessages(ctx, d[:1]); err != nil {
		t.Fatal(err)
	}
	again := []GroupDedup{{Sender: "1", ClientMsgID: "c1", MsgID: "m9"}, {Sender: "1", ClientMsgID: "c2", MsgID: "m9"}}
	claims, err = s.ClaimGroupMessages(ctx, again)
	want := []GroupClaim{{MsgID: "m1", State: GroupDone}, {MsgID: "m2", State: GroupPending}}
	if err != nil || !slices.Equal(claims, want) {
		t.Fatalf("second claims: %+v %v, want %+v", claims, err, want)
	}
	if ttl := rdb.PTTL(ctx, "cim:gdedup:{1}:c1").Val(); ttl <= 0 {
		t.Fatalf("done gdedup TTL = %v", ttl)
	}

	counts, err := s.AddGroupReceipts(ctx, []GroupReceipt{
		{Sender: "1", MsgID: "m1", Members: []string{"2", "3"}},
		{Sender: "1", MsgID: "m1", Read: true, Members: []string{"2"}},
	})
	if err != nil || !slices.Equal(counts, []int{2, 1}) {
		t.Fatalf("receipts: %v %v", counts, err)
	}
	counts, err = s.AddGroupReceipts(ctx, []GroupReceipt{{Sender: "1", MsgID: "m1", Members: []string{"3", "4"}}})
	if err != nil || !slices.Equal(counts, []int{3}) {
		t.Fatalf("receipts again: %v %v (a member counts once)", counts, err)
	}
	if ttl := rdb.PTTL(ctx, "cim:grd:{1}:m1").Val(); ttl <= 0 || ttl > DefaultInboxTTL {
		t.Fatalf("grd TTL = %v", ttl)
	}
	if ttl := rdb.PTTL(ctx, "cim:grr:{1}:m1").Val(); ttl <= 0 {
		t.Fatalf("grr TTL = %v", ttl)
	}
	rc, err := s.GroupReceiptCounts(ctx, "1", []string{"m1", "nope"})
	if err != nil || !slices.Equal(rc, []ReceiptCount{{Delivered: 3, Read: 1}, {}}) {
		t.Fatalf("counts = %+v %v", rc, err)
	}
	// The sets are the sender's: another user asking sees nothing.
	if rc, _ := s.GroupReceiptCounts(ctx, "2", []string{"m1"}); rc[0] != (ReceiptCount{}) {
		t.Fatalf("another user sees %+v", rc)
	}
}

// pipelineCounter counts pipelines sent to Redis.
type pipelineCounter struct{ n atomic.Int32 }

func (*pipelineCounter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (*pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (c *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

// TestAppendInPipelines: a fan-out to 2,500 inboxes is three round trips
// where each inbox is a script call of its own (a cluster: at most a
// thousand calls per pipeline), and every entry lands.
func TestAppendInPipelines(t *testing.T) {
	s, rdb, _ := newStore(t)
	s.cluster = true // one script call per user; a single node takes them all
	ctx := ctxT(t)
	// The script is loaded first: a NOSCRIPT retry would add a round trip.
	if _, err := s.Append(ctx, []Append{{UserID: "0", Frame: []byte("warm")}}); err != nil {
		t.Fatal(err)
	}
	var pc pipelineCounter
	rdb.AddHook(&pc)
	const n = 2500
	in := make([]Append, n)
	for i := range in {
		in[i] = Append{UserID: strconv.Itoa(i + 1), Frame: []byte("one frame"), MsgID: "m1"}
	}
	in[n-1].UserID = "1" // a second entry for user 1 comes after its first
	res, err := s.Append(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if got := pc.n.Load(); got != 3 {
		t.Fatalf("%d pipelines for %d appends, want 3", got, n)
	}
	for i, a := range res[:n-1] {
		if a.Seq != 1 {
			t.Fatalf("entry %d: seq %d", i, a.Seq)
		}
	}
	if res[n-1].Seq != 2 {
		t.Fatalf("user 1's second entry: seq %d, want 2", res[n-1].Seq)
	}
	pc.n.Store(0)
	uids := make([]string, n)
	for i := range uids {
		uids[i] = strconv.Itoa(i)
	}
	if _, err := s.Routes(ctx, uids); err != nil {
		t.Fatal(err)
	}
	if got := pc.n.Load(); got != 3 {
		t.Fatalf("%d pipelines for %d routes, want 3", got, n)
	}
	if c := rdb.LLen(context.Background(), "cim:inbox:{2500}").Val(); c != 0 {
		t.Fatalf("inbox 2500 has %d entries", c) // its entry went to user 1
	}
}
