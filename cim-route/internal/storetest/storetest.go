// Package storetest is the conformance suite of router.Store: the semantics
// every implementation shares (package store on Redis, package memstore in
// memory). Each implementation's tests call Run.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/cim-route/internal/router"
)

// NewStore returns an empty store with the given inbox limits (zero fields:
// defaults).
type NewStore func(t *testing.T, lim model.InboxLimits) router.Store

// Run runs the whole suite against stores from newStore.
func Run(t *testing.T, newStore NewStore) {
	t.Run("Accounts", func(t *testing.T) { Accounts(t, newStore) })
	t.Run("Quotas", func(t *testing.T) { Quotas(t, newStore) })
	t.Run("Resumes", func(t *testing.T) { Resumes(t, newStore) })
	t.Run("Sessions", func(t *testing.T) { Sessions(t, newStore) })
	t.Run("ClearAndReclaim", func(t *testing.T) { ClearAndReclaim(t, newStore) })
	t.Run("InboxDedup", func(t *testing.T) { InboxDedup(t, newStore) })
	t.Run("InboxTrimming", func(t *testing.T) { InboxTrimming(t, newStore) })
	t.Run("SenderShare", func(t *testing.T) { SenderShare(t, newStore) })
	t.Run("Blocks", func(t *testing.T) { Blocks(t, newStore) })
	t.Run("OnceCopies", func(t *testing.T) { OnceCopies(t, newStore) })
	t.Run("SharedFrameShare", func(t *testing.T) { SharedFrameShare(t, newStore) })
	t.Run("ConcurrentAppends", func(t *testing.T) { ConcurrentAppends(t, newStore) })
	t.Run("SharedFrame", func(t *testing.T) { SharedFrame(t, newStore) })
	t.Run("Ranges", func(t *testing.T) { Ranges(t, newStore) })
	t.Run("ClaimReads", func(t *testing.T) { ClaimReads(t, newStore) })
	t.Run("Groups", func(t *testing.T) { Groups(t, newStore) })
	t.Run("GroupMessages", func(t *testing.T) { GroupMessages(t, newStore) })
	t.Run("Timelines", func(t *testing.T) { Timelines(t, newStore) })
	t.Run("Delayed", func(t *testing.T) { Delayed(t, newStore) })
	t.Run("Revisions", func(t *testing.T) { Revisions(t, newStore) })
	t.Run("Reactions", func(t *testing.T) { Reactions(t, newStore) })
	t.Run("Mutes", func(t *testing.T) { Mutes(t, newStore) })
	t.Run("LastSeen", func(t *testing.T) { LastSeen(t, newStore) })
	t.Run("DeletedFromHistory", func(t *testing.T) { DeletedFromHistory(t, newStore) })
	t.Run("Devices", func(t *testing.T) { Devices(t, newStore) })
	t.Run("Admin", func(t *testing.T) { Admin(t, newStore) })
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// must(f())(t) is f's value; t fails on f's error.
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// Accounts: ids unique, names unique in any case, lookups.
func Accounts(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{}), ctxT(t)
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	id := must(s.CreateUser(ctx, "Alice", "hash-a"))(t)
	for _, n := range []string{"Alice", "alice", "ALICE"} {
		if _, err := s.CreateUser(ctx, n, "h"); !errors.Is(err, errs.ErrNameTaken) {
			t.Fatalf("create %s: err = %v, want ErrNameTaken", n, err)
		}
		if taken, err := s.NameTaken(ctx, n); err != nil || !taken {
			t.Fatalf("NameTaken(%s) = %v, %v", n, taken, err)
		}
	}
	bob := must(s.CreateUser(ctx, "bob", "hash-b"))(t)
	if bob == id {
		t.Fatalf("bob got alice's id %s", id)
	}
	u := must(s.UserByName(ctx, "alice"))(t)
	if u.ID != id || u.Name != "Alice" || u.PasswordHash != "hash-a" || u.Created == 0 {
		t.Fatalf("UserByName = %+v", u)
	}
	if u2 := must(s.UserByID(ctx, id))(t); u2 != u {
		t.Fatalf("UserByID = %+v, want %+v", u2, u)
	}
	if _, err := s.UserByName(ctx, "carol"); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("unknown name: %v", err)
	}
	if _, err := s.UserByID(ctx, "999"); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("unknown id: %v", err)
	}
	if taken, err := s.NameTaken(ctx, "carol"); err != nil || taken {
		t.Fatalf("NameTaken(carol) = %v, %v", taken, err)
	}
	names, ids, err := s.Lookup(ctx, []string{id, bob, "999"}, []string{"BOB", "zed"})
	if err != nil || len(names) != 2 || names[id] != "Alice" || names[bob] != "bob" || len(ids) != 1 || ids["BOB"] != bob {
		t.Fatalf("Lookup = %v %v %v", names, ids, err)
	}

	var mu sync.Mutex
	seen, winners := map[string]bool{id: true, bob: true}, 0
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			id, err := s.CreateUser(ctx, fmt.Sprintf("user%d", i), "h")
			mu.Lock()
			defer mu.Unlock()
			if err != nil || seen[id] {
				t.Errorf("user%d: id %s (seen %v), err %v", i, id, seen[id], err)
			}
			seen[id] = true
		}()
		go func() {
			defer wg.Done()
			_, err := s.CreateUser(ctx, "contested", "h")
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				winners++
			} else if !errors.Is(err, errs.ErrNameTaken) {
				t.Errorf("contested: %v", err)
			}
		}()
	}
	wg.Wait()
	if winners != 1 {
		t.Fatalf("%d registrations of one name succeeded, want 1", winners)
	}
}

// Quotas: charges up to the quota, refunds.
func Quotas(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{}), ctxT(t)
	refund := must(s.ChargeUpload(ctx, "7", 60, 100))(t)
	if _, err := s.ChargeUpload(ctx, "7", 50, 100); !errors.Is(err, errs.ErrQuotaExceeded) {
		t.Fatalf("over quota: %v", err)
	}
	must(s.ChargeUpload(ctx, "8", 100, 100))(t) // per user
	refund(ctx, 20)
	must(s.ChargeUpload(ctx, "7", 60, 100))(t) // 40 + 60
	if _, err := s.ChargeUpload(ctx, "7", 1, 100); !errors.Is(err, errs.ErrQuotaExceeded) {
		t.Fatalf("full quota: %v", err)
	}
}

// Resumes: a slot's latest resume nonce is taken once; slots and users are
// apart; dropping by session takes only the slots whose latest came with
// it, dropping without one every slot.
func Resumes(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{}), ctxT(t)
	// Each take a minute after the one before: past the grace of the
	// nonce that one took.
	now := time.Now()
	takeAt := func(uid, slot, nonce, sid, next string) model.ResumeTake {
		t.Helper()
		now = now.Add(time.Minute)
		return must(s.TakeResume(ctx, uid, slot, model.ResumeTakeReq{Nonce: nonce, Next: next, SID: sid, TTL: time.Hour, Now: now, Grace: 30 * time.Second}))(t)
	}
	take := func(uid, slot, nonce, sid, next string) bool {
		t.Helper()
		took := takeAt(uid, slot, nonce, sid, next)
		if took.Reused != "" {
			t.Fatalf("take %s of %s/%q: reused %q", nonce, uid, slot, took.Reused)
		}
		if took.Taken && took.Nonce != next {
			t.Fatalf("take %s of %s/%q: hands out %q, want %q", nonce, uid, slot, took.Nonce, next)
		}
		return took.Taken
	}
	if take("7", "", "n0", "s1", "n1") {
		t.Fatal("took a nonce never set")
	}
	must(0, s.SetResume(ctx, "7", "", "s1", "n1", time.Minute))(t)
	must(0, s.SetResume(ctx, "7", "mobile", "s2", "m1", time.Minute))(t)
	must(0, s.SetResume(ctx, "8", "", "s3", "n1", time.Minute))(t)
	if take("7", "", "m1", "s4", "x") || take("7", "web", "n1", "s4", "x") {
		t.Fatal("took another slot's nonce")
	}
	if !take("7", "", "n1", "s4", "n2") {
		t.Fatal("the latest nonce not taken")
	}
	if take("7", "", "n1", "s5", "n3") {
		t.Fatal("a nonce taken twice")
	}
	if !take("8", "", "n1", "s6", "n2") {
		t.Fatal("another user's nonce went with the first's")
	}
	// s4 (user 7's "" slot now) logs off: its slot goes, mobile stays.
	must(0, s.DropResumes(ctx, "7", "s4"))(t)
	must(0, s.DropResumes(ctx, "7", "s2x"))(t) // no slot of that session
	if take("7", "", "n2", "s7", "n3") {
		t.Fatal("took a dropped nonce")
	}
	if !take("7", "mobile", "m1", "s8", "m2") {
		t.Fatal("dropping one session's slot took another's")
	}
	must(0, s.SetResume(ctx, "7", "", "s9", "n4", time.Minute))(t)
	must(0, s.DropResumes(ctx, "7", ""))(t)
	if take("7", "mobile", "m2", "s10", "m3") || take("7", "", "n4", "s10", "n5") {
		t.Fatal("a nonce survived dropping them all")
	}
	if !take("8", "", "n2", "s11", "n3") {
		t.Fatal("dropping one user's took another's")
	}

	// A chain: c1 from a password login, c1.a and c1.b from resumes. An
	// earlier token of it coming back ends it and names the latest's
	// session; an older chain's token is only refused.
	must(0, s.SetResume(ctx, "9", "", "p1", "c1", time.Minute))(t)
	if !take("9", "", "c1", "s1", "c1.a") || !take("9", "", "c1.a", "s2", "c1.b") {
		t.Fatal("a chain's latest not taken")
	}
	if got := takeAt("9", "", "c1.a", "s3", "c1.c"); got.Taken || got.Reused != "s2" {
		t.Fatalf("a used token of the chain came back: %+v, want not taken, reused by s2", got)
	}
	if take("9", "", "c1.b", "s4", "c1.d") {
		t.Fatal("the chain's latest survived the reuse")
	}
	must(0, s.SetResume(ctx, "9", "", "p2", "c2", time.Minute))(t)
	if take("9", "", "c1", "s5", "c1.e") || take("9", "", "c1.b", "s5", "c1.e") {
		t.Fatal("an older chain's token taken")
	}
	if !take("9", "", "c2", "s6", "c2.a") {
		t.Fatal("an older chain's token ended the newer chain")
	}

	// Within its grace a taken nonce comes back (a lost answer, a second
	// tab) to the nonce its take handed out, as often as it comes; after
	// it, it ends the chain.
	grace := func(nonce, sid string, after time.Duration) model.ResumeTake {
		t.Helper()
		return must(s.TakeResume(ctx, "9", "", model.ResumeTakeReq{Nonce: nonce, Next: "c2.x", SID: sid, TTL: time.Hour, Now: now.Add(after), Grace: 30 * time.Second}))(t)
	}
	for _, sid := range []string{"s7", "s8"} {
		if got := grace("c2", sid, 10*time.Second); !got.Taken || got.Nonce != "c2.a" {
			t.Fatalf("the taken nonce within its grace: %+v, want taken, handing out c2.a again", got)
		}
	}
	if got := grace("c2.a", "s9", 20*time.Second); !got.Taken || got.Nonce != "c2.x" {
		t.Fatalf("the latest after a grace take: %+v, want taken, handing out c2.x", got)
	}
	if got := grace("c2.a", "s10", 25*time.Second); !got.Taken || got.Nonce != "c2.x" {
		t.Fatalf("the nonce just taken, within its grace: %+v", got)
	}
	if got := grace("c2", "s11", 26*time.Second); got.Taken || got.Reused != "s10" {
		t.Fatalf("a nonce two takes back: %+v, want the chain ended (latest by s10)", got)
	}
	must(0, s.SetResume(ctx, "9", "", "p3", "c3", time.Minute))(t)
	if !take("9", "", "c3", "s12", "c3.a") {
		t.Fatal("a new chain's first nonce")
	}
	if got := grace("c3", "s13", time.Minute+31*time.Second); got.Taken || got.Reused != "s12" {
		t.Fatalf("a taken nonce past its grace: %+v, want the chain ended", got)
	}
}

func sorted(ids []string) []string {
	slices.Sort(ids)
	return ids
}

// Sessions: the route compare-and-set: claim, online, stale confirmations
// and disconnects, reject policy with eviction, reassert, drop, the online
// set.
func Sessions(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{}), ctxT(t)
	const gwA, gwB = "127.0.0.1:1:2", "127.0.0.1:3:4"

	old, err := s.ClaimRoute(ctx, "7", model.Claim{Gateway: gwA, Session: "s1", TTL: time.Minute, Platform: "web"})
	if err != nil || old.Exists() {
		t.Fatalf("first claim: old %+v err %v", old, err)
	}
	r := must(s.Routes(ctx, []string{"7"}))(t)["7"]
	if r.Session != "s1" || r.Gateway != gwA || r.State != model.StatePending || r.Since != 0 || r.Platform != "web" {
		t.Fatalf("pending route = %+v", r)
	}
	if err := s.Online(ctx, "7", "s0", gwA); !errors.Is(err, errs.ErrStaleSession) {
		t.Fatalf("online of another session: %v", err)
	}
	if err := s.Online(ctx, "9", "s9", gwA); !errors.Is(err, errs.ErrStaleSession) {
		t.Fatalf("online without a route: %v", err)
	}
	if err := s.Online(ctx, "7", "s1", gwA); err != nil {
		t.Fatal(err)
	}
	if r := must(s.Routes(ctx, []string{"7"}))(t)["7"]; !r.Online() || r.Platform != "web" {
		t.Fatalf("confirmed route = %+v, want online on platform web", r)
	}
	if ids := sorted(must(s.OnlineIDs(ctx))(t)); !slices.Equal(ids, []string{"7"}) {
		t.Fatalf("online ids = %v", ids)
	}
	if gws := sorted(must(s.Gateways(ctx))(t)); !slices.Equal(gws, []string{gwA}) {
		t.Fatalf("gateways = %v", gws)
	}

	// Reject policy: refused while online, unless that session is evictable.
	old, err = s.ClaimRoute(ctx, "7", model.Claim{Gateway: gwB, Session: "s2", TTL: time.Minute, RejectOnline: true})
	if !errors.Is(err, errs.ErrRepeatLogin) || old.Session != "s1" || !old.Online() {
		t.Fatalf("rejected claim: old %+v err %v", old, err)
	}
	if r := must(s.Routes(ctx, []string{"7"}))(t)["7"]; r.Session != "s1" || !r.Online() {
		t.Fatalf("route after a refused claim = %+v", r)
	}
	// Kick policy: a new login replaces the online session.
	old, err = s.ClaimRoute(ctx, "7", model.Claim{Gateway: gwB, Session: "s2", TTL: time.Minute, RejectOnline: true, Evict: "s1", Platform: "mobile"})
	if err != nil || old.Session != "s1" || old.Gateway != gwA || !old.Online() || old.Since == 0 || old.Platform != "web" {
		t.Fatalf("evicting claim: old %+v err %v", old, err)
	}
	// A late confirmation or disconnect of the old session changes nothing.
	if err := s.Online(ctx, "7", "s1", gwA); !errors.Is(err, errs.ErrStaleSession) {
		t.Fatalf("late online: %v", err)
	}
	if _, dropped, err := s.DropSession(ctx, "7", "s1"); err != nil || dropped {
		t.Fatalf("late offline: dropped=%v err=%v", dropped, err)
	}
	if err := s.Online(ctx, "7", "s2", gwB); err != nil {
		t.Fatal(err)
	}
	routes := must(s.Routes(ctx, []string{"7", "8"}))(t)
	if len(routes) != 1 || routes["7"].Session != "s2" || routes["7"].Gateway != gwB || !routes["7"].Online() || routes["7"].Since == 0 {
		t.Fatalf("routes = %+v", routes)
	}
	r, dropped, err := s.DropSession(ctx, "7", "s2")
	if err != nil || !dropped || r.Gateway != gwB || !r.Online() || r.Session != "s2" || r.Platform != "mobile" {
		t.Fatalf("drop: %+v %v %v", r, dropped, err)
	}
	if routes := must(s.Routes(ctx, []string{"7"}))(t); len(routes) != 0 {
		t.Fatalf("route after drop = %+v", routes)
	}
	if ids := sorted(must(s.OnlineIDs(ctx))(t)); len(ids) != 0 {
		t.Fatalf("online ids after drop = %v", ids)
	}

	// Reassert: re-creates an absent route, refuses another session's.
	if err := s.Reassert(ctx, "7", "s3", gwA); err != nil {
		t.Fatal(err)
	}
	if r := must(s.Routes(ctx, []string{"7"}))(t)["7"]; r.Session != "s3" || r.Gateway != gwA || !r.Online() {
		t.Fatalf("reasserted route = %+v", r)
	}
	if err := s.Reassert(ctx, "7", "s2", gwB); !errors.Is(err, errs.ErrStaleSession) {
		t.Fatalf("reassert of another session: %v", err)
	}
	if err := s.Reassert(ctx, "7", "s3", gwB); err != nil {
		t.Fatalf("reassert of the session on another gateway: %v", err)
	}

	// DropSessions counts what it deleted; ForgetOnline keeps online users.
	for _, u := range []string{"10", "11"} {
		must(s.ClaimRoute(ctx, u, model.Claim{Gateway: gwA, Session: "x" + u, TTL: time.Minute}))(t)
		if err := s.Online(ctx, u, "x"+u, gwA); err != nil {
			t.Fatal(err)
		}
	}
	dropped2 := must(s.DropSessions(ctx, []model.SessionRef{{UserID: "10", Session: "x10"}, {UserID: "11", Session: "old"}, {UserID: "12", Session: "x12"}}))(t)
	if !slices.Equal(dropped2, []model.SessionRef{{UserID: "10", Session: "x10"}}) {
		t.Fatalf("DropSessions = %v, want only 10's", dropped2)
	}
	if err := s.ForgetOnline(ctx, []string{"7", "10", "11"}); err != nil {
		t.Fatal(err)
	}
	if ids := sorted(must(s.OnlineIDs(ctx))(t)); !slices.Equal(ids, []string{"11", "7"}) {
		t.Fatalf("online ids after ForgetOnline = %v", ids)
	}
}

// ClearAndReclaim: a cleared gateway's routes go; the exact session on the
// exact gateway may reclaim its route while nobody took it; a drop of the
// session removes that chance.
func ClearAndReclaim(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{}), ctxT(t)
	const gwA, gwB = "gw-a", "gw-b"
	for _, u := range []string{"1", "2", "3", "4"} {
		must(s.ClaimRoute(ctx, u, model.Claim{Gateway: gwA, Session: "s" + u, TTL: time.Minute}))(t)
		if err := s.Online(ctx, u, "s"+u, gwA); err != nil {
			t.Fatal(err)
		}
	}
	// 4 moved to gwB: its route does not point at gwA any more.
	must(s.ClaimRoute(ctx, "4", model.Claim{Gateway: gwB, Session: "t4", TTL: time.Minute}))(t)
	if err := s.Online(ctx, "4", "t4", gwB); err != nil {
		t.Fatal(err)
	}
	if gone := sorted(must(s.ClearGateway(ctx, gwA))(t)); !slices.Equal(gone, []string{"1", "2", "3"}) {
		t.Fatalf("ClearGateway = %v, want 1, 2, 3", gone)
	}
	if gws := sorted(must(s.Gateways(ctx))(t)); !slices.Equal(gws, []string{gwB}) {
		t.Fatalf("gateways = %v", gws)
	}
	if routes := must(s.Routes(ctx, []string{"1", "2", "3", "4"}))(t); len(routes) != 1 || routes["4"].Session != "t4" {
		t.Fatalf("routes = %+v", routes)
	}
	if ids := sorted(must(s.OnlineIDs(ctx))(t)); !slices.Equal(ids, []string{"4"}) {
		t.Fatalf("online ids = %v", ids)
	}
	if gone := must(s.ClearGateway(ctx, gwA))(t); len(gone) != 0 {
		t.Fatalf("second ClearGateway = %v", gone)
	}
	// 2 logs in again meanwhile; 3's session ends.
	must(s.ClaimRoute(ctx, "2", model.Claim{Gateway: gwB, Session: "n2", TTL: time.Minute}))(t)
	if _, dropped, err := s.DropSession(ctx, "3", "s3"); err != nil || dropped {
		t.Fatalf("drop of a cleared session: %v %v", dropped, err)
	}
	ok := must(s.Reclaim(ctx, gwA, []model.SessionRef{
		{UserID: "1", Session: "s1"}, {UserID: "2", Session: "s2"}, {UserID: "3", Session: "s3"}, {UserID: "1", Session: "s1"}, {UserID: "5", Session: "s5"},
	}))(t)
	if !slices.Equal(ok, []bool{true, false, false, true, false}) {
		t.Fatalf("Reclaim = %v", ok)
	}
	if r := must(s.Routes(ctx, []string{"1"}))(t)["1"]; r.Session != "s1" || r.Gateway != gwA || !r.Online() {
		t.Fatalf("reclaimed route = %+v", r)
	}
	if gws := sorted(must(s.Gateways(ctx))(t)); !slices.Equal(gws, []string{gwA, gwB}) {
		t.Fatalf("gateways after reclaim = %v", gws)
	}
	// Another gateway cannot reclaim it.
	if gone := must(s.ClearGateway(ctx, gwA))(t); !slices.Equal(gone, []string{"1"}) {
		t.Fatalf("ClearGateway = %v", gone)
	}
	if ok := must(s.Reclaim(ctx, gwB, []model.SessionRef{{UserID: "1", Session: "s1"}}))(t); ok[0] {
		t.Fatal("reclaimed on another gateway")
	}
	// Reassert takes the route back and the marker goes.
	if err := s.Reassert(ctx, "1", "s1", gwA); err != nil {
		t.Fatal(err)
	}
	if _, dropped, err := s.DropSession(ctx, "1", "s1"); err != nil || !dropped {
		t.Fatalf("drop: %v %v", dropped, err)
	}
	if ok := must(s.Reclaim(ctx, gwA, []model.SessionRef{{UserID: "1", Session: "s1"}}))(t); ok[0] {
		t.Fatal("reclaimed a dropped session")
	}
}

func frame(s string) []byte { return []byte(s) }

func write(t *testing.T, s router.Store, as ...model.Append) []model.Appended {
	t.Helper()
	w := must(s.Write(ctxT(t), model.Write{Appends: as}))(t)
	if len(w.Appended) != len(as) {
		t.Fatalf("%d answers for %d appends", len(w.Appended), len(as))
	}
	return w.Appended
}

// InboxDedup: seqs, resends within a batch and across batches answer the
// first msgId, seq and stored entry; dedup is per recipient.
func InboxDedup(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{}), ctxT(t)
	now := time.Now().UnixMilli()
	got := write(t, s,
		model.Append{UserID: "b", Frame: frame("m1"), TS: now, MsgID: "id1", Dedup: "a:c1"},
		model.Append{UserID: "b", Frame: frame("m2"), TS: now, MsgID: "id2", Dedup: "a:c1"},
		model.Append{UserID: "c", Frame: frame("m1"), TS: now, MsgID: "id3", Dedup: "a:c1"},
		model.Append{UserID: "b", Frame: frame("m4"), TS: now, MsgID: "id4"},
	)
	if got[0].Seq != 1 || got[0].MsgID != "id1" || got[0].Resend {
		t.Fatalf("first = %+v", got[0])
	}
	if !got[1].Resend || got[1].Seq != 1 || got[1].MsgID != "id1" || got[1].Stored.Seq != 1 || string(got[1].Stored.Frame) != "m1" || got[1].Stored.TS != now {
		t.Fatalf("resend in batch = %+v", got[1])
	}
	if got[2].Seq != 1 || got[2].Resend || got[3].Seq != 2 || got[3].MsgID != "id4" {
		t.Fatalf("other inbox / no dedup = %+v %+v", got[2], got[3])
	}
	again := write(t, s, model.Append{UserID: "b", Frame: frame("m5"), TS: now, MsgID: "id5", Dedup: "a:c1"})[0]
	if !again.Resend || again.Seq != 1 || again.MsgID != "id1" || string(again.Stored.Frame) != "m1" {
		t.Fatalf("later resend = %+v", again)
	}
	rs := must(s.Ranges(ctx, []model.RangeQuery{{UserID: "b", Limit: 10}}))(t)
	if len(rs[0].Entries) != 2 || rs[0].Head != 2 || string(rs[0].Entries[1].Frame) != "m4" {
		t.Fatalf("inbox = %+v", rs[0])
	}
	// Write reads routes after the appends; an empty Write does nothing.
	must(s.ClaimRoute(ctx, "b", model.Claim{Gateway: "g", Session: "sb", TTL: time.Minute}))(t)
	w := must(s.Write(ctx, model.Write{Acks: []model.Ack{{UserID: "b", Seq: 1}}, Routes: []string{"b", "z"}}))(t)
	if len(w.Routes) != 1 || w.Routes["b"].Session != "sb" {
		t.Fatalf("routes = %+v", w.Routes)
	}
	must(s.Write(ctx, model.Write{}))(t)
}

// InboxTrimming: by length, by age; droppable receipts are stored only
// below the max length and never evict a message.
func InboxTrimming(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{MaxLen: 3, TTL: time.Hour}), ctxT(t)
	now := time.Now().UnixMilli()
	for i := range 5 {
		write(t, s, model.Append{UserID: "u", Frame: frame(fmt.Sprint("m", i+1)), TS: now, MsgID: fmt.Sprint("id", i+1)})
	}
	r := must(s.Ranges(ctx, []model.RangeQuery{{UserID: "u", Limit: 10}}))(t)[0]
	if r.Head != 5 || r.First != 3 || len(r.Entries) != 3 || r.Entries[0].Seq != 3 {
		t.Fatalf("trimmed by length: %+v", r)
	}
	// A full inbox drops a receipt rather than a message.
	got := write(t, s, model.Append{UserID: "u", Frame: frame("rc"), TS: now, MsgID: "r1", Droppable: true})[0]
	if got.Seq != 0 || got.MsgID != "r1" || got.Resend {
		t.Fatalf("droppable into a full inbox = %+v", got)
	}
	if r := must(s.Ranges(ctx, []model.RangeQuery{{UserID: "u", Limit: 10}}))(t)[0]; r.Head != 5 || r.First != 3 {
		t.Fatalf("after a dropped receipt: %+v", r)
	}
	// Below the max length it is stored; in one batch, only as many as fit.
	gotAll := write(t, s,
		model.Append{UserID: "v", Frame: frame("m"), TS: now, MsgID: "m1"},
		model.Append{UserID: "v", Frame: frame("r"), TS: now, MsgID: "r1", Droppable: true},
		model.Append{UserID: "v", Frame: frame("r"), TS: now, MsgID: "r2", Droppable: true},
		model.Append{UserID: "v", Frame: frame("r"), TS: now, MsgID: "r3", Droppable: true},
		model.Append{UserID: "v", Frame: frame("m"), TS: now, MsgID: "m2"},
	)
	if seqs := []uint64{gotAll[0].Seq, gotAll[1].Seq, gotAll[2].Seq, gotAll[3].Seq, gotAll[4].Seq}; !slices.Equal(seqs, []uint64{1, 2, 3, 0, 4}) {
		t.Fatalf("seqs = %v", seqs)
	}
	// By age: entries older than the TTL go, at the latest with the append
	// that takes seq 16 (the Redis store checks the age only then).
	old := now - 2*time.Hour.Milliseconds()
	aged := newStore(t, model.InboxLimits{MaxLen: 100, TTL: time.Hour})
	write(t, aged, model.Append{UserID: "w", Frame: frame("old1"), TS: old, MsgID: "o1"}, model.Append{UserID: "w", Frame: frame("old2"), TS: old, MsgID: "o2"})
	for i := range 14 {
		write(t, aged, model.Append{UserID: "w", Frame: frame("new"), TS: now, MsgID: fmt.Sprint("n", i)})
	}
	if r := must(aged.Ranges(ctx, []model.RangeQuery{{UserID: "w", Limit: 20}}))(t)[0]; r.First != 3 || r.Head != 16 || len(r.Entries) != 14 || string(r.Entries[0].Frame) != "new" {
		t.Fatalf("trimmed by age: %+v", r)
	}
	// A resend of a trimmed message answers its seq without the entry.
	write(t, s, model.Append{UserID: "x", Frame: frame("d"), TS: now, MsgID: "d1", Dedup: "a:d"})
	for i := range 3 {
		write(t, s, model.Append{UserID: "x", Frame: frame("f"), TS: now, MsgID: fmt.Sprint("f", i)})
	}
	if got := write(t, s, model.Append{UserID: "x", Frame: frame("d"), TS: now, MsgID: "d2", Dedup: "a:d"})[0]; !got.Resend || got.Seq != 1 || got.MsgID != "d1" || got.Stored.Seq != 0 {
		t.Fatalf("resend of a trimmed message = %+v", got)
	}
}

// SenderShare: once an inbox holds PerSender unread entries, each sender
// adds PerSender more and is then refused (nothing stored, no seq taken,
// its dedup key free for a later try) until the user reads on; other
// senders, entries without a sender and resends pass; a run of one batch
// counts like single appends.
func SenderShare(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{MaxLen: 100, PerSender: 3}), ctxT(t)
	now := time.Now().UnixMilli()
	n := 0
	msg := func(from, cmid string) model.Append {
		n++
		return model.Append{UserID: "u", Frame: frame(fmt.Sprint(from, n)), TS: now, MsgID: fmt.Sprint("id", n), Sender: from, Dedup: from + ":" + cmid}
	}
	seqs := func(as []model.Appended) (out []uint64) {
		for _, a := range as {
			if a.Refused {
				out = append(out, 0)
				continue
			}
			out = append(out, a.Seq)
		}
		return out
	}
	// 3 unread from m (below the mark: not counted), then 3 counted, then
	// refused; in one batch as in single appends.
	got := write(t, s, msg("m", "1"), msg("m", "2"), msg("m", "3"), msg("m", "4"))
	got = append(got, write(t, s, msg("m", "5"))...)
	got = append(got, write(t, s, msg("m", "6"), msg("m", "7"), msg("m", "8"))...)
	if want := []uint64{1, 2, 3, 4, 5, 6, 0, 0}; !slices.Equal(seqs(got), want) {
		t.Fatalf("m's seqs %v, want %v", seqs(got), want)
	}
	if !got[6].Refused || got[6].Resend || got[6].MsgID != "id7" {
		t.Fatalf("refused = %+v", got[6])
	}
	// Others still write: another sender, a receipt, an entry without a
	// sender; a resend of m's stored message is answered as before.
	got = write(t, s, msg("o", "1"),
		model.Append{UserID: "u", Frame: frame("rc"), TS: now, MsgID: "r", Droppable: true},
		model.Append{UserID: "u", Frame: frame("sys"), TS: now, MsgID: "sys"},
		msg("m", "1"))
	if want := []uint64{7, 8, 9, 1}; !slices.Equal(seqs(got), want) || !got[3].Resend {
		t.Fatalf("others' seqs %v (%+v), want %v", seqs(got), got[3], want)
	}
	// Once the user reads on, m has its share again; the refused try's
	// dedup key is free: the same clientMsgId stores now.
	must(s.Write(ctx, model.Write{Acks: []model.Ack{{UserID: "u", Seq: 5}}}))(t)
	if a := write(t, s, msg("m", "7"))[0]; a.Refused || a.Resend || a.Seq != 10 {
		t.Fatalf("m after the user read on: %+v, want seq 10", a)
	}
	got = write(t, s, msg("m", "9"), msg("m", "10"), msg("m", "11"))
	if want := []uint64{11, 12, 0}; !slices.Equal(seqs(got), want) {
		t.Fatalf("m's share after the read: %v, want %v", seqs(got), want)
	}
	// A share of 0 counts nothing.
	free := newStore(t, model.InboxLimits{MaxLen: 100})
	for i := range 10 {
		if a := write(t, free, model.Append{UserID: "u", Frame: frame("x"), TS: now, MsgID: fmt.Sprint(i), Sender: "m"})[0]; a.Refused {
			t.Fatalf("append %d refused without a share", i)
		}
	}
}

// Ranges: from-acked, upto, limit, byte budget (the first entry always),
// the after timestamp, acks never lower, history.
func Ranges(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{}), ctxT(t)
	now := time.Now().UnixMilli()
	big := strings.Repeat("x", 100)
	for i := range 6 {
		write(t, s, model.Append{UserID: "u", Frame: frame(big), TS: now + int64(i), MsgID: fmt.Sprint("id", i+1)})
	}
	r := must(s.Ranges(ctx, []model.RangeQuery{{UserID: "empty", Limit: 5}}))(t)[0]
	if r.Head != 0 || r.First != 1 || r.Acked != 0 || len(r.Entries) != 0 {
		t.Fatalf("empty inbox: %+v", r)
	}
	if err := s.RaiseAcks(ctx, []model.Ack{{UserID: "u", Seq: 2}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RaiseAcks(ctx, []model.Ack{{UserID: "u", Seq: 1}}); err != nil {
		t.Fatal(err)
	}
	rs := must(s.Ranges(ctx, []model.RangeQuery{
		{UserID: "u", After: 0, FromAcked: true, Limit: 2},
		{UserID: "u", After: 3, FromAcked: true, Limit: 10, Upto: 4, AfterTS: true},
		{UserID: "u", After: 0, Limit: 10, MaxBytes: 250},
		{UserID: "u", After: 1, Limit: 10, MaxBytes: 10},
		{UserID: "u", After: 0, Limit: 0},
	}))(t)
	seqs := func(r model.Range) []uint64 {
		var out []uint64
		for _, e := range r.Entries {
			out = append(out, e.Seq)
		}
		return out
	}
	if r := rs[0]; r.After != 2 || r.Acked != 2 || r.Head != 6 || r.First != 1 || !slices.Equal(seqs(r), []uint64{3, 4}) || r.AfterTS != 0 {
		t.Fatalf("from acked: %+v", r)
	}
	if r := rs[1]; r.After != 3 || !slices.Equal(seqs(r), []uint64{4}) || r.AfterTS != now+2 || r.Entries[0].TS != now+3 || string(r.Entries[0].Frame) != big {
		t.Fatalf("upto, after ts: %+v", r)
	}
	if r := rs[2]; !slices.Equal(seqs(r), []uint64{1, 2}) {
		t.Fatalf("byte budget: %v", seqs(r))
	}
	if r := rs[3]; !slices.Equal(seqs(r), []uint64{2}) {
		t.Fatalf("budget below one entry: %v", seqs(r))
	}
	if r := rs[4]; !slices.Equal(seqs(r), []uint64{1}) {
		t.Fatalf("limit 0: %v", seqs(r))
	}
	h := must(s.InboxBefore(ctx, "u", 0, 2))(t)
	if len(h) != 2 || h[0].Seq != 6 || h[1].Seq != 5 {
		t.Fatalf("history = %+v", h)
	}
	h = must(s.InboxBefore(ctx, "u", 3, 10))(t)
	if len(h) != 2 || h[0].Seq != 2 || h[1].Seq != 1 {
		t.Fatalf("history before 3 = %+v", h)
	}
	if h := must(s.InboxBefore(ctx, "nobody", 0, 10))(t); len(h) != 0 {
		t.Fatalf("empty history = %+v", h)
	}
}

// ClaimReads: an entry is returned once, only at its seq and naming the
// msgId.
func ClaimReads(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{}), ctxT(t)
	now := time.Now().UnixMilli()
	write(t, s,
		model.Append{UserID: "u", Frame: frame("msg-A"), TS: now, MsgID: "A"},
		model.Append{UserID: "u", Frame: frame("msg-B"), TS: now, MsgID: "B"},
	)
	got := must(s.ClaimReads(ctx, []model.ReadQuery{{UserID: "u", Seqs: []uint64{1, 2, 9, 0}, MsgIDs: []string{"msg-A", "msg-A", "msg-A", "msg-A"}}}))(t)
	if len(got) != 1 || len(got[0]) != 4 || got[0][0].Seq != 1 || string(got[0][0].Frame) != "msg-A" || got[0][1].Seq != 0 || got[0][2].Seq != 0 || got[0][3].Seq != 0 {
		t.Fatalf("first claims = %+v", got)
	}
	got = must(s.ClaimReads(ctx, []model.ReadQuery{{UserID: "u", Seqs: []uint64{1, 2}, MsgIDs: []string{"msg-A", "msg-B"}}}))(t)
	if got[0][0].Seq != 0 || got[0][1].Seq != 2 {
		t.Fatalf("second claims = %+v", got)
	}
	if _, err := s.ClaimReads(ctx, []model.ReadQuery{{UserID: "u", Seqs: []uint64{1}, MsgIDs: nil}}); err == nil {
		t.Fatal("mismatched seqs and msg ids: no error")
	}
}

// Groups: membership rules.
func Groups(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{}), ctxT(t)
	g := must(s.CreateGroup(ctx, "1", "team", false))(t)
	if g.ID == "" || g.Name != "team" || g.Owner != "1" || g.Open || g.Members != 1 || g.Created == 0 {
		t.Fatalf("created = %+v", g)
	}
	gid := g.ID
	if _, err := s.JoinGroup(ctx, gid, "2", 10); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("join closed: %v", err)
	}
	if _, _, err := s.InviteToGroup(ctx, gid, "2", []string{"3"}, 10); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("invite by a non-member: %v", err)
	}
	_, inv, err := s.InviteToGroup(ctx, gid, "1", []string{"2", "3", "1", "2"}, 10)
	if err != nil || !slices.Equal(inv, []string{"2", "3"}) {
		t.Fatalf("invite = %v, %v", inv, err)
	}
	if _, inv, err := s.InviteToGroup(ctx, gid, "1", []string{"2"}, 10); err != nil || len(inv) != 0 {
		t.Fatalf("re-invite = %v, %v", inv, err)
	}
	if g := must(s.JoinGroup(ctx, gid, "2", 10))(t); g.Members != 2 {
		t.Fatalf("join = %+v", g)
	}
	if g := must(s.JoinGroup(ctx, gid, "2", 10))(t); g.Members != 2 {
		t.Fatalf("join again = %+v", g)
	}
	if _, _, err := s.InviteToGroup(ctx, gid, "2", []string{"4"}, 10); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("invite by a member of a closed group: %v", err)
	}
	if _, err := s.JoinGroup(ctx, gid, "3", 2); !errors.Is(err, errs.ErrGroupFull) {
		t.Fatalf("join full: %v", err)
	}
	if _, _, err := s.InviteToGroup(ctx, gid, "1", []string{"5"}, 2); !errors.Is(err, errs.ErrGroupFull) {
		t.Fatalf("invite to full: %v", err)
	}
	if err := s.KickFromGroup(ctx, gid, "1", "3"); err != nil { // drops the invitation
		t.Fatal(err)
	}
	if _, err := s.JoinGroup(ctx, gid, "3", 10); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("join after the invitation was dropped: %v", err)
	}
	if err := s.LeaveGroup(ctx, gid, "1"); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("owner leaves: %v", err)
	}
	if err := s.LeaveGroup(ctx, gid, "9"); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("non-member leaves: %v", err)
	}
	if err := s.KickFromGroup(ctx, gid, "2", "1"); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("kick by a member: %v", err)
	}
	if err := s.KickFromGroup(ctx, gid, "1", "1"); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("kick the owner: %v", err)
	}
	if _, err := s.RenameGroup(ctx, gid, "2", "x"); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("rename by a member: %v", err)
	}
	if g := must(s.RenameGroup(ctx, gid, "1", "crew"))(t); g.Name != "crew" || g.Members != 2 {
		t.Fatalf("renamed = %+v", g)
	}
	// The owner hands the group over (to a member only) and back.
	if _, err := s.TransferGroup(ctx, gid, "2", "2"); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("transfer by a member: %v", err)
	}
	if _, err := s.TransferGroup(ctx, gid, "1", "3"); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("transfer to a non-member: %v", err)
	}
	if _, err := s.TransferGroup(ctx, "999", "1", "2"); !errors.Is(err, errs.ErrNoGroup) {
		t.Fatalf("transfer of no group: %v", err)
	}
	if g := must(s.TransferGroup(ctx, gid, "1", "2"))(t); g.Owner != "2" || g.Name != "crew" || g.Members != 2 {
		t.Fatalf("transferred = %+v", g)
	}
	if g, _, err := s.GroupOf(ctx, gid, "1"); err != nil || g.Owner != "2" {
		t.Fatalf("GroupOf after the transfer = %+v %v", g, err)
	}
	if _, err := s.RenameGroup(ctx, gid, "1", "x"); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("rename by the former owner: %v", err)
	}
	if err := s.LeaveGroup(ctx, gid, "2"); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("the new owner leaves: %v", err)
	}
	if g := must(s.TransferGroup(ctx, gid, "2", "1"))(t); g.Owner != "1" {
		t.Fatalf("transferred back = %+v", g)
	}
	open := must(s.CreateGroup(ctx, "2", "open", true))(t)
	if g := must(s.JoinGroup(ctx, open.ID, "3", 10))(t); g.Members != 2 || !g.Open {
		t.Fatalf("join open = %+v", g)
	}
	if _, inv, err := s.InviteToGroup(ctx, open.ID, "3", []string{"4"}, 10); err != nil || !slices.Equal(inv, []string{"4"}) {
		t.Fatalf("invite by a member of an open group = %v, %v", inv, err)
	}
	g, member, err := s.GroupOf(ctx, gid, "2")
	if err != nil || !member || g.Name != "crew" || g.Members != 2 {
		t.Fatalf("GroupOf = %+v %v %v", g, member, err)
	}
	if _, member, err := s.GroupOf(ctx, gid, ""); err != nil || member {
		t.Fatalf("GroupOf without viewer: %v %v", member, err)
	}
	if _, _, err := s.GroupOf(ctx, "999", "1"); !errors.Is(err, errs.ErrNoGroup) {
		t.Fatalf("GroupOf missing: %v", err)
	}
	gs := must(s.UserGroups(ctx, "2"))(t)
	if len(gs) != 2 || gs[0].ID != gid || gs[1].ID != open.ID {
		t.Fatalf("UserGroups = %+v", gs)
	}
	ids, err := s.GroupIDsOf(ctx, []string{"2", "4", "77"})
	if err != nil || len(ids) != 3 || len(ids[0]) != 2 || !slices.Contains(ids[0], gid) || !slices.Contains(ids[0], open.ID) ||
		len(ids[1]) != 0 || len(ids[2]) != 0 {
		t.Fatalf("GroupIDsOf = %v, %v", ids, err)
	}
	members, checks, err := s.GroupMembers(ctx, []string{gid, "999"}, []model.MemberRef{{Group: gid, User: "2"}, {Group: gid, User: "3"}, {Group: "999", User: "1"}})
	if err != nil || len(members[gid]) != 2 || len(members["999"]) != 0 || !slices.Equal(checks, []bool{true, false, false}) {
		t.Fatalf("GroupMembers = %v %v %v", members, checks, err)
	}
	if err := s.LeaveGroup(ctx, gid, "2"); err != nil {
		t.Fatal(err)
	}
	if gs := must(s.UserGroups(ctx, "2"))(t); len(gs) != 1 || gs[0].ID != open.ID {
		t.Fatalf("UserGroups after leave = %+v", gs)
	}
	if ids := must(s.GroupIDsOf(ctx, []string{"2"}))(t); !slices.Equal(ids[0], []string{open.ID}) {
		t.Fatalf("GroupIDsOf after leave = %v", ids)
	}
	if err := s.DissolveGroup(ctx, open.ID, "3"); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("dissolve by a member: %v", err)
	}
	if err := s.DissolveGroup(ctx, open.ID, "2"); err != nil {
		t.Fatal(err)
	}
	if gs := must(s.UserGroups(ctx, "3"))(t); len(gs) != 0 {
		t.Fatalf("UserGroups after dissolve = %+v", gs)
	}
	for _, err := range []error{
		s.DissolveGroup(ctx, open.ID, "2"),
		s.LeaveGroup(ctx, open.ID, "3"),
		s.KickFromGroup(ctx, open.ID, "2", "3"),
	} {
		if !errors.Is(err, errs.ErrNoGroup) {
			t.Fatalf("on a dissolved group: %v", err)
		}
	}
	if _, err := s.JoinGroup(ctx, open.ID, "3", 10); !errors.Is(err, errs.ErrNoGroup) {
		t.Fatalf("join a dissolved group: %v", err)
	}
}

// GroupMessages: dedup states pending/done, receipt counts.
func GroupMessages(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{}), ctxT(t)
	d1 := model.GroupDedup{Sender: "1", ClientMsgID: "c1", MsgID: "m1"}
	d2 := model.GroupDedup{Sender: "2", ClientMsgID: "c1", MsgID: "m2"}
	got := must(s.ClaimGroupMessages(ctx, []model.GroupDedup{d1, d2}))(t)
	if !got[0].Claimed || !got[1].Claimed {
		t.Fatalf("first claims = %+v", got)
	}
	again := model.GroupDedup{Sender: "1", ClientMsgID: "c1", MsgID: "m9"}
	if got := must(s.ClaimGroupMessages(ctx, []model.GroupDedup{again}))(t); got[0].Claimed || got[0].MsgID != "m1" || got[0].State != model.GroupPending {
		t.Fatalf("claim while pending = %+v", got)
	}
	if err := s.FinishGroupMessages(ctx, []model.GroupDedup{d1}); err != nil {
		t.Fatal(err)
	}
	if got := must(s.ClaimGroupMessages(ctx, []model.GroupDedup{again}))(t); got[0].Claimed || got[0].MsgID != "m1" || got[0].State != model.GroupDone {
		t.Fatalf("claim when done = %+v", got)
	}
	n := must(s.AddGroupReceipts(ctx, []model.GroupReceipt{
		{Sender: "1", MsgID: "m1", Members: []string{"2", "3"}},
		{Sender: "1", MsgID: "m1", Members: []string{"3", "4"}},
		{Sender: "1", MsgID: "m1", Read: true, Members: []string{"2"}},
	}))(t)
	if !slices.Equal(n, []int{2, 3, 1}) {
		t.Fatalf("receipt set sizes = %v", n)
	}
	c := must(s.GroupReceiptCounts(ctx, "1", []string{"m1", "zz"}))(t)
	if len(c) != 2 || c[0] != (model.ReceiptCount{Delivered: 3, Read: 1}) || c[1] != (model.ReceiptCount{}) {
		t.Fatalf("counts = %+v", c)
	}
	if c := must(s.GroupReceiptCounts(ctx, "2", []string{"m1"}))(t); c[0] != (model.ReceiptCount{}) {
		t.Fatalf("counts of another sender = %+v", c)
	}
}

// ConcurrentAppends: concurrent writers to one inbox get distinct seqs
// without gaps, each writer's entries in order, and a contested dedup key
// is stored once.
func ConcurrentAppends(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{}), ctxT(t)
	const writers, each = 8, 16
	now := time.Now().UnixMilli()
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored := 0
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			as := make([]model.Append, each)
			for i := range as {
				as[i] = model.Append{UserID: "u", Frame: frame(fmt.Sprint(w, "/", i)), TS: now, MsgID: fmt.Sprint(w, "/", i)}
			}
			as = append(as, model.Append{UserID: "u", Frame: frame("d"), TS: now, MsgID: fmt.Sprint("d", w), Dedup: "x:contested"})
			res, err := s.Write(ctx, model.Write{Appends: as})
			if err != nil {
				t.Error(err)
				return
			}
			for i := 1; i < each; i++ {
				if res.Appended[i].Seq <= res.Appended[i-1].Seq {
					t.Errorf("writer %d: seqs out of order: %d after %d", w, res.Appended[i].Seq, res.Appended[i-1].Seq)
				}
			}
			if !res.Appended[each].Resend {
				mu.Lock()
				stored++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if stored != 1 {
		t.Fatalf("contested dedup key stored %d times", stored)
	}
	r := must(s.Ranges(ctx, []model.RangeQuery{{UserID: "u", Limit: 1000}}))(t)[0]
	if r.Head != writers*each+1 || r.First != 1 || len(r.Entries) != writers*each+1 {
		t.Fatalf("head %d first %d, %d entries", r.Head, r.First, len(r.Entries))
	}
	for i, e := range r.Entries {
		if e.Seq != uint64(i+1) {
			t.Fatalf("entry %d has seq %d", i, e.Seq)
		}
	}
}

// SharedFrame: one frame appended to many inboxes (a group message's
// copies, which store may append in one shared run) takes each inbox's next
// seq, and a user's entries keep their order around it.
func SharedFrame(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{}), ctxT(t)
	now := time.Now().UnixMilli()
	write(t, s, model.Append{UserID: "c", Frame: frame("first"), TS: now, MsgID: "f"})
	g := frame("group message")
	var as []model.Append
	for _, u := range []string{"a", "b", "c", "d"} {
		as = append(as, model.Append{UserID: u, Frame: g, TS: now, MsgID: "g1"})
	}
	as = append(as, model.Append{UserID: "c", Frame: frame("after"), TS: now, MsgID: "x"}, model.Append{UserID: "a", Frame: g, TS: now, MsgID: "g1"})
	got := write(t, s, as...)
	want := []uint64{1, 1, 2, 1, 3, 2}
	for i, a := range got {
		if a.Seq != want[i] || a.Resend || a.MsgID != as[i].MsgID {
			t.Fatalf("append %d = %+v, want seq %d", i, a, want[i])
		}
	}
	r := must(s.Ranges(ctx, []model.RangeQuery{{UserID: "c", Limit: 10}, {UserID: "a", Limit: 10}}))(t)
	var frames []string
	for _, e := range r[0].Entries {
		frames = append(frames, string(e.Frame))
	}
	if !slices.Equal(frames, []string{"first", "group message", "after"}) || len(r[1].Entries) != 2 {
		t.Fatalf("inboxes = %q, %+v", frames, r[1])
	}
}

// SharedFrameShare: a group message's copies count against their sender's
// share of each member's inbox, one run of copies or many: an absent
// member's copies are refused (Seq 0, nothing stored) once its inbox holds
// the sender's share unread, while a member who reads gets every copy, and
// other senders still reach the absent one.
func SharedFrameShare(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{MaxLen: 100, PerSender: 3}), ctxT(t)
	now := time.Now().UnixMilli()
	group := func(from string, i int) []model.Append {
		g := frame(fmt.Sprint(from, i))
		var as []model.Append
		for _, u := range []string{"away", "reader"} {
			as = append(as, model.Append{UserID: u, Frame: g, TS: now, MsgID: fmt.Sprint(from, i), Sender: from})
		}
		return as
	}
	var away []uint64
	for i := range 8 {
		as := group("m", i)
		if i >= 5 { // the last ones in one batch: one run of copies
			continue
		}
		got := write(t, s, as...)
		if got[0].Refused || got[1].Refused {
			t.Fatalf("copy %d refused below the share: %+v", i, got)
		}
		must(s.Write(ctx, model.Write{Acks: []model.Ack{{UserID: "reader", Seq: got[1].Seq}}}))(t)
		away = append(away, got[0].Seq)
	}
	got := write(t, s, append(append(group("m", 5), group("m", 6)...), group("m", 7)...)...)
	for i := range 3 {
		away = append(away, got[2*i].Seq)
		if got[2*i+1].Refused || got[2*i+1].Seq != uint64(6+i) {
			t.Fatalf("the reader's copy of m%d: %+v, want seq %d", 5+i, got[2*i+1], 6+i)
		}
		if got[2*i].Refused != (got[2*i].Seq == 0) {
			t.Fatalf("away's copy of m%d: %+v: Refused and Seq 0 go together", 5+i, got[2*i])
		}
	}
	// away: 3 unread below the mark, then m's share of 3, then refused.
	if want := []uint64{1, 2, 3, 4, 5, 6, 0, 0}; !slices.Equal(away, want) {
		t.Fatalf("away's copies %v, want %v", away, want)
	}
	if a := write(t, s, group("o", 1)...)[0]; a.Refused || a.Seq != 7 {
		t.Fatalf("another sender's copy for away: %+v, want seq 7", a)
	}
	r := must(s.Ranges(ctx, []model.RangeQuery{{UserID: "away", Limit: 20}}))(t)
	if n := len(r[0].Entries); n != 7 {
		t.Fatalf("away's inbox holds %d entries, want 7 (nothing stored for a refused copy)", n)
	}
}

// Delayed: scheduled messages come out once due, in due order, each
// claimed by one caller for its lease; one not confirmed sent is due again
// when the lease ends; a user has at most max pending.
func Delayed(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{}), ctxT(t)
	// Far enough ahead that nothing counts as stale by the store's clock.
	t0 := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	sched := func(from, text string, after time.Duration) model.DelayedMsg {
		t.Helper()
		m, err := s.ScheduleMessage(ctx, model.DelayedMsg{From: from, To: "9", Text: text, Due: t0.Add(after)}, 3)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	late := sched("1", "late one", 20*time.Second)
	early := sched("1", "early, with spaces", 10*time.Second)
	sched("2", "other user", 10*time.Second)
	sched("1", "third", time.Hour)
	if _, err := s.ScheduleMessage(ctx, model.DelayedMsg{From: "1", To: "9", Text: "fourth", Due: t0.Add(time.Minute)}, 3); !errors.Is(err, errs.ErrQuotaExceeded) {
		t.Fatalf("a fourth pending message: %v, want ErrQuotaExceeded", err)
	}

	if due, err := s.ClaimDueMessages(ctx, t0.Add(5*time.Second), 10, time.Minute); err != nil || len(due) != 0 {
		t.Fatalf("nothing due yet: %v, %v", due, err)
	}
	due, err := s.ClaimDueMessages(ctx, t0.Add(25*time.Second), 10, time.Minute)
	if err != nil || len(due) != 3 || due[2].ID != late.ID {
		t.Fatalf("due at +25s: %+v, %v; want the two at +10s, then late", due, err)
	}
	got := map[string]model.DelayedMsg{}
	for _, m := range due {
		got[m.ID] = m
	}
	if m := got[early.ID]; m.Text != "early, with spaces" || m.From != "1" || m.To != "9" || !m.Due.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("early came back as %+v", m)
	}
	// Claimed: not due again for another caller during the lease...
	if again, _ := s.ClaimDueMessages(ctx, t0.Add(30*time.Second), 10, time.Minute); len(again) != 0 {
		t.Fatalf("claimed messages handed out again during the lease: %+v", again)
	}
	// ...sent ones are gone, and free a slot of their sender.
	if err := s.DelayedSent(ctx, []model.DelayedMsg{got[early.ID], got[late.ID]}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ScheduleMessage(ctx, model.DelayedMsg{From: "1", To: "9", Text: "fits again", Due: t0.Add(time.Hour)}, 3); err != nil {
		t.Fatalf("after two were sent: %v", err)
	}
	// The one not confirmed sent is due again after the lease.
	again, err := s.ClaimDueMessages(ctx, t0.Add(25*time.Second+2*time.Minute), 10, time.Minute)
	if err != nil || len(again) != 1 || again[0].Text != "other user" {
		t.Fatalf("after the lease: %+v, %v; want the unconfirmed one", again, err)
	}
}

// Timelines: a group's timeline is an inbox under model.TimelineID; a
// member starts at the head it joined at (the owner at 0), positions only
// rise and never past the head, a member who left has none, and a rejoin
// starts at the head again; a dissolved group's timeline is gone.
func Timelines(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{}), ctxT(t)
	gid := must(s.CreateGroup(ctx, "1", "big", true))(t).ID
	tl := model.TimelineID(gid)
	positions := func(users ...string) []model.TimelinePos {
		t.Helper()
		refs := make([]model.MemberRef, len(users))
		for i, u := range users {
			refs[i] = model.MemberRef{Group: gid, User: u}
		}
		return must(s.TimelinePositions(ctx, refs))(t)
	}
	if p := positions("1"); p[0] != (model.TimelinePos{}) {
		t.Fatalf("empty timeline: %+v", p)
	}
	for i := range 3 {
		write(t, s, model.Append{UserID: tl, Frame: frame(fmt.Sprint("m", i)), MsgID: fmt.Sprint("id", i)})
	}
	must(s.JoinGroup(ctx, gid, "2", 10))(t)
	if p := positions("1", "2", "9"); p[0] != (model.TimelinePos{Head: 3}) || p[1] != (model.TimelinePos{Head: 3, Pos: 3}) || p[2].Pos != 0 {
		t.Fatalf("after join: %+v", p)
	}
	// Joining again keeps the member's own position.
	write(t, s, model.Append{UserID: tl, Frame: frame("m3"), MsgID: "id3"})
	must(s.JoinGroup(ctx, gid, "2", 10))(t)
	if p := positions("2"); p[0].Pos != 3 {
		t.Fatalf("rejoin by a member moved its position: %+v", p)
	}
	if err := s.RaiseTimelinePositions(ctx, []model.GroupPos{{Group: gid, User: "1", Seq: 2}, {Group: gid, User: "2", Seq: 99}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RaiseTimelinePositions(ctx, []model.GroupPos{{Group: gid, User: "1", Seq: 1}}); err != nil {
		t.Fatal(err)
	}
	if p := positions("1", "2"); p[0].Pos != 2 || p[1].Pos != 4 {
		t.Fatalf("raised (2, past the head 4): %+v", p)
	}
	rg := must(s.Ranges(ctx, []model.RangeQuery{{UserID: tl, After: 2, Limit: 10}}))(t)[0]
	if len(rg.Entries) != 2 || string(rg.Entries[0].Frame) != "m2" || rg.Head != 4 {
		t.Fatalf("timeline range after 2: %+v", rg)
	}
	if err := s.LeaveGroup(ctx, gid, "2"); err != nil {
		t.Fatal(err)
	}
	if p := positions("2"); p[0].Pos != 0 {
		t.Fatalf("a member who left keeps a position: %+v", p)
	}
	write(t, s, model.Append{UserID: tl, Frame: frame("m4"), MsgID: "id4"})
	must(s.JoinGroup(ctx, gid, "2", 10))(t)
	if p := positions("2"); p[0].Pos != 5 {
		t.Fatalf("rejoin after leaving starts at the head: %+v", p)
	}
	if err := s.DissolveGroup(ctx, gid, "1"); err != nil {
		t.Fatal(err)
	}
	if p := positions("2"); p[0] != (model.TimelinePos{}) {
		t.Fatalf("dissolved group's timeline: %+v", p)
	}
}

// DeviceSlots: with --login-policy platform a user holds a session per
// device slot (the slot is the session id's prefix, contract.SlotOf): a
// claim replaces only its own slot's session, a user's Route leads with an
// online session and lists the others, a drop or clear of one slot leaves
// the others, and the online and gateway sets follow every slot. Not part
// of Run: a store reads device slots only when configured for them.
func DeviceSlots(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{}), ctxT(t)
	const gwA, gwB = "gw-a", "gw-b"
	login := func(uid, sid, gw string) model.Route {
		t.Helper()
		old := must(s.ClaimRoute(ctx, uid, model.Claim{Gateway: gw, Session: sid, TTL: time.Minute, Platform: strings.Split(sid, ".")[0]}))(t)
		if err := s.Online(ctx, uid, sid, gw); err != nil {
			t.Fatal(err)
		}
		return old
	}
	sessionsOf := func(uid string) []string {
		t.Helper()
		var out []string
		for _, r := range must(s.Routes(ctx, []string{uid}))(t)[uid].Sessions() {
			out = append(out, r.Session+"@"+r.Gateway+"/"+r.State)
		}
		return sorted(out)
	}

	if old := login("7", "web.a", gwA); old.Exists() {
		t.Fatalf("first web login replaced %+v", old)
	}
	if old := login("7", "mobile.b", gwB); old.Exists() {
		t.Fatalf("a mobile login replaced %+v (another slot's session)", old)
	}
	if got := sessionsOf("7"); !slices.Equal(got, []string{"mobile.b@gw-b/online", "web.a@gw-a/online"}) {
		t.Fatalf("sessions = %v", got)
	}
	// A pending session in a third slot does not lead while one is online.
	must(s.ClaimRoute(ctx, "7", model.Claim{Gateway: gwA, Session: "desktop.p", TTL: time.Minute}))(t)
	if r := must(s.Routes(ctx, []string{"7"}))(t)["7"]; !r.Online() || len(r.Others) != 2 {
		t.Fatalf("route = %+v, want an online lead and two others", r)
	}
	// A newer mobile login replaces the older mobile one only.
	if old := login("7", "mobile.c", gwA); old.Session != "mobile.b" || !old.Online() || old.Gateway != gwB {
		t.Fatalf("second mobile login replaced %+v, want mobile.b online on gw-b", old)
	}
	if err := s.Online(ctx, "7", "mobile.b", gwB); !errors.Is(err, errs.ErrStaleSession) {
		t.Fatalf("late online of the replaced mobile session: %v", err)
	}
	if _, dropped, err := s.DropSession(ctx, "7", "desktop.p"); err != nil || !dropped {
		t.Fatalf("drop desktop: %v %v", dropped, err)
	}
	if got := sessionsOf("7"); !slices.Equal(got, []string{"mobile.c@gw-a/online", "web.a@gw-a/online"}) {
		t.Fatalf("sessions = %v", got)
	}
	// Moving the web session to gw-b keeps 7 in gw-a's set (mobile is
	// there): clearing gw-a must still find it.
	login("7", "web.d", gwB)
	if gone := must(s.ClearGateway(ctx, gwA))(t); !slices.Equal(gone, []string{"7"}) {
		t.Fatalf("ClearGateway(gw-a) = %v, want 7 (its mobile session)", gone)
	}
	if got := sessionsOf("7"); !slices.Equal(got, []string{"web.d@gw-b/online"}) {
		t.Fatalf("sessions after clearing gw-a = %v", got)
	}
	if ids := must(s.OnlineIDs(ctx))(t); !slices.Equal(ids, []string{"7"}) {
		t.Fatalf("online ids = %v, want 7 (web still online)", ids)
	}
	// The cleared mobile session reclaims its own slot.
	if ok := must(s.Reclaim(ctx, gwA, []model.SessionRef{{UserID: "7", Session: "mobile.c"}}))(t); !ok[0] {
		t.Fatal("mobile.c could not reclaim its route")
	}
	if got := sessionsOf("7"); !slices.Equal(got, []string{"mobile.c@gw-a/online", "web.d@gw-b/online"}) {
		t.Fatalf("sessions after reclaim = %v", got)
	}
	// Dropping every session takes the user offline.
	dropped := must(s.DropSessions(ctx, []model.SessionRef{{UserID: "7", Session: "mobile.c"}, {UserID: "7", Session: "web.d"}}))(t)
	if len(dropped) != 2 {
		t.Fatalf("DropSessions = %v", dropped)
	}
	if err := s.ForgetOnline(ctx, []string{"7"}); err != nil {
		t.Fatal(err)
	}
	if ids := must(s.OnlineIDs(ctx))(t); len(ids) != 0 {
		t.Fatalf("online ids after the last drop = %v", ids)
	}
	if gone := must(s.ClearGateway(ctx, gwB))(t); len(gone) != 0 {
		t.Fatalf("ClearGateway(gw-b) after the drops = %v", gone)
	}
}
