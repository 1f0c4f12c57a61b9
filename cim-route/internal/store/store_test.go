package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/internal/testenv"
)

func TestMain(m *testing.M) {
	SetRedisLogger(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}

func newStore(t *testing.T) (*Store, redis.UniversalClient, *testenv.Redis) {
	t.Helper()
	srv := testenv.StartRedis(t)
	rdb := NewClient(ClientConfig{Addrs: []string{srv.Addr}})
	t.Cleanup(func() { rdb.Close() })
	return New(rdb, "cim:"), rdb, srv
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestAccounts(t *testing.T) {
	s, rdb, _ := newStore(t)
	ctx := ctxT(t)
	id, err := s.CreateUser(ctx, "alice", "hash-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, "alice", "hash-b"); !errors.Is(err, errs.ErrNameTaken) {
		t.Fatalf("second alice: err = %v, want ErrNameTaken", err)
	}
	bob, err := s.CreateUser(ctx, "bob", "hash-b")
	if err != nil || bob == id {
		t.Fatalf("bob: id %q err %v (alice %q)", bob, err, id)
	}
	u, err := s.UserByName(ctx, "alice")
	if err != nil || u.ID != id || u.Name != "alice" || u.PasswordHash != "hash-a" || u.Created == 0 {
		t.Fatalf("UserByName = %+v, %v", u, err)
	}
	if u2, err := s.UserByID(ctx, id); err != nil || u2 != u {
		t.Fatalf("UserByID = %+v, %v; want %+v", u2, err, u)
	}
	if _, err := s.UserByName(ctx, "carol"); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("unknown name: %v", err)
	}
	if _, err := s.UserByID(ctx, "999"); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("unknown id: %v", err)
	}
	if taken, err := s.NameTaken(ctx, "bob"); err != nil || !taken {
		t.Fatalf("NameTaken(bob) = %v, %v", taken, err)
	}
	names, ids, err := s.Lookup(ctx, []string{id, bob, "999"}, []string{"bob", "zed"})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names[id] != "alice" || names[bob] != "bob" || len(ids) != 1 || ids["bob"] != bob {
		t.Fatalf("Lookup = %v %v", names, ids)
	}
	// The contract's key layout: other tools (and later modules) read these.
	if got, _ := rdb.HGet(ctx, "cim:user:names", "alice").Result(); got != id {
		t.Fatalf("cim:user:names[alice] = %q, want %q", got, id)
	}
	if got, _ := rdb.HGet(ctx, "cim:user:{"+id+"}", "pw").Result(); got != "hash-a" {
		t.Fatalf("cim:user:{%s}.pw = %q", id, got)
	}
}

func TestIDsUniqueUnderConcurrency(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := ctxT(t)
	const n = 64
	var mu sync.Mutex
	seen := map[string]bool{}
	winners := 0
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			id, err := s.CreateUser(ctx, fmt.Sprintf("user%d", i), "h")
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("create user%d: %v", i, err)
				return
			}
			if seen[id] {
				t.Errorf("id %s handed out twice", id)
			}
			seen[id] = true
		}()
		go func() { // everybody races for the same name
			defer wg.Done()
			_, err := s.CreateUser(ctx, "contested", "h")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners++
			case !errors.Is(err, errs.ErrNameTaken):
				t.Errorf("contested: %v", err)
			}
		}()
	}
	wg.Wait()
	if winners != 1 {
		t.Fatalf("%d registrations of the same name succeeded, want 1", winners)
	}
	if len(seen) != n {
		t.Fatalf("%d distinct ids, want %d", len(seen), n)
	}
}

func members(t *testing.T, rdb redis.UniversalClient, key string) []string {
	t.Helper()
	m, err := rdb.SMembers(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func TestSessionCompareAndSet(t *testing.T) {
	s, rdb, _ := newStore(t)
	ctx := ctxT(t)
	const gwA, gwB = "127.0.0.1:1:2", "127.0.0.1:3:4"

	old, err := s.ClaimRoute(ctx, "7", Claim{Gateway: gwA, Session: "s1", TTL: time.Minute})
	if err != nil || old.Exists() {
		t.Fatalf("first claim: old %+v err %v", old, err)
	}
	if ttl := rdb.PTTL(ctx, "cim:route:{7}").Val(); ttl <= 0 {
		t.Fatalf("pending route has no TTL (%v)", ttl)
	}
	if err := s.Online(ctx, "7", "s1", gwA); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.TTL(ctx, "cim:route:{7}").Val(); ttl != -1 {
		t.Fatalf("online route TTL = %v, want none", ttl)
	}
	h := rdb.HGetAll(ctx, "cim:route:{7}").Val()
	if h["gw"] != gwA || h["sid"] != "s1" || h["state"] != "online" {
		t.Fatalf("route hash = %v", h)
	}
	if m := members(t, rdb, "cim:login-status"); !slices.Equal(m, []string{"7"}) {
		t.Fatalf("login-status = %v", m)
	}
	if m := members(t, rdb, "cim:server:"+gwA+":users"); !slices.Equal(m, []string{"7"}) {
		t.Fatalf("gateway set = %v", m)
	}
	if m := members(t, rdb, "cim:servers"); !slices.Equal(m, []string{gwA}) {
		t.Fatalf("servers = %v", m)
	}

	// Kick policy: a new login replaces the online session.
	old, err = s.ClaimRoute(ctx, "7", Claim{Gateway: gwB, Session: "s2", TTL: time.Minute})
	if err != nil || old.Session != "s1" || old.Gateway != gwA || !old.Online() {
		t.Fatalf("second claim: old %+v err %v", old, err)
	}
	if m := members(t, rdb, "cim:server:"+gwA+":users"); len(m) != 0 {
		t.Fatalf("old gateway still lists the user: %v", m)
	}
	// A late confirmation or disconnect of the old session changes nothing.
	if err := s.Online(ctx, "7", "s1", gwA); !errors.Is(err, errs.ErrStaleSession) {
		t.Fatalf("late online: %v, want ErrStaleSession", err)
	}
	if err := s.Online(ctx, "7", "s2", gwB); err != nil {
		t.Fatal(err)
	}
	if _, dropped, err := s.DropSession(ctx, "7", "s1"); err != nil || dropped {
		t.Fatalf("late offline of s1: dropped=%v err=%v", dropped, err)
	}
	routes, err := s.Routes(ctx, []string{"7", "8"})
	if err != nil || len(routes) != 1 || routes["7"].Session != "s2" || routes["7"].Gateway != gwB || !routes["7"].Online() || routes["7"].Since == 0 {
		t.Fatalf("routes after late offline = %+v, %v", routes, err)
	}
	if m := members(t, rdb, "cim:login-status"); !slices.Equal(m, []string{"7"}) {
		t.Fatalf("login-status after late offline = %v", m)
	}

	r, dropped, err := s.DropSession(ctx, "7", "s2")
	if err != nil || !dropped || r.Gateway != gwB || !r.Online() {
		t.Fatalf("offline of s2: %+v dropped=%v err=%v", r, dropped, err)
	}
	if rdb.Exists(ctx, "cim:route:{7}").Val() != 0 {
		t.Fatal("route survived its offline")
	}
	if m := members(t, rdb, "cim:login-status"); len(m) != 0 {
		t.Fatalf("login-status after offline = %v", m)
	}
	if m := members(t, rdb, "cim:server:"+gwB+":users"); len(m) != 0 {
		t.Fatalf("gateway set after offline = %v", m)
	}
	// Confirming a session that no longer exists fails too.
	if err := s.Online(ctx, "7", "s2", gwB); !errors.Is(err, errs.ErrStaleSession) {
		t.Fatalf("online after offline: %v", err)
	}
}

func TestClaimReject(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := ctxT(t)
	reject := Claim{Gateway: "h:1:2", Session: "s2", TTL: time.Minute, RejectOnline: true}

	// A pending (never confirmed) session does not block.
	if _, err := s.ClaimRoute(ctx, "1", Claim{Gateway: "h:1:2", Session: "s1", TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if old, err := s.ClaimRoute(ctx, "1", reject); err != nil || old.Session != "s1" {
		t.Fatalf("reject over pending: old %+v err %v", old, err)
	}
	if err := s.Online(ctx, "1", "s2", "h:1:2"); err != nil {
		t.Fatal(err)
	}
	reject.Session = "s3"
	old, err := s.ClaimRoute(ctx, "1", reject)
	if !errors.Is(err, errs.ErrRepeatLogin) || old.Session != "s2" {
		t.Fatalf("reject over online: old %+v err %v, want ErrRepeatLogin", old, err)
	}
	if r, _ := s.Routes(ctx, []string{"1"}); r["1"].Session != "s2" || !r["1"].Online() {
		t.Fatalf("rejected claim changed the route: %+v", r["1"])
	}
	// Evicting a named session (one on a dead gateway) goes through, but
	// only that one.
	reject.Evict = "other"
	if _, err := s.ClaimRoute(ctx, "1", reject); !errors.Is(err, errs.ErrRepeatLogin) {
		t.Fatalf("evict of a wrong session: %v", err)
	}
	reject.Evict = "s2"
	if old, err := s.ClaimRoute(ctx, "1", reject); err != nil || old.Session != "s2" {
		t.Fatalf("evict: old %+v err %v", old, err)
	}
}

func TestPendingRouteExpires(t *testing.T) {
	s, rdb, _ := newStore(t)
	ctx := ctxT(t)
	if _, err := s.ClaimRoute(ctx, "5", Claim{Gateway: "h:1:2", Session: "s", TTL: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for rdb.Exists(ctx, "cim:route:{5}").Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("pending route did not expire")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.Online(ctx, "5", "s", "h:1:2"); !errors.Is(err, errs.ErrStaleSession) {
		t.Fatalf("online of an expired session: %v", err)
	}
}

// TestDropSessions: only routes still held by the given session go,
// pending or online.
func TestDropSessions(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := ctxT(t)
	for _, u := range []string{"1", "2", "3"} {
		if _, err := s.ClaimRoute(ctx, u, Claim{Gateway: "h:1:2", Session: "s" + u, TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"1", "2"} {
		if err := s.Online(ctx, u, "s"+u, "h:1:2"); err != nil {
			t.Fatal(err)
		}
	}
	refs := []SessionRef{{UserID: "1", Session: "s1"}, {UserID: "2", Session: "wrong"}, {UserID: "3", Session: "s3"}, {UserID: "4", Session: "s4"}}
	if d, err := s.DropSessions(ctx, refs); err != nil || !slices.Equal(d, []SessionRef{refs[0], refs[2]}) {
		t.Fatalf("dropped %v, %v; want users 1 and 3", d, err)
	}
	routes, _ := s.Routes(ctx, []string{"1", "2", "3"})
	if _, ok := routes["2"]; !ok || len(routes) != 1 {
		t.Fatalf("routes = %+v, want only user 2's", routes)
	}
}

func TestForgetOnlineKeepsLiveMembers(t *testing.T) {
	s, rdb, _ := newStore(t)
	ctx := ctxT(t)
	if _, err := s.ClaimRoute(ctx, "1", Claim{Gateway: "h:1:2", Session: "s", TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := s.Online(ctx, "1", "s", "h:1:2"); err != nil {
		t.Fatal(err)
	}
	rdb.SAdd(ctx, "cim:login-status", "2") // stale: no route
	if err := s.ForgetOnline(ctx, []string{"1", "2"}); err != nil {
		t.Fatal(err)
	}
	if m := members(t, rdb, "cim:login-status"); !slices.Equal(m, []string{"1"}) {
		t.Fatalf("login-status = %v, want [1] (the live member repaired)", m)
	}
}

func TestClearGateway(t *testing.T) {
	s, rdb, _ := newStore(t)
	ctx := ctxT(t)
	const dead, live = "10.0.0.1:9000:9100", "10.0.0.2:9000:9100"
	online := func(uid, sid, gw string) {
		t.Helper()
		if _, err := s.ClaimRoute(ctx, uid, Claim{Gateway: gw, Session: sid, TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if err := s.Online(ctx, uid, sid, gw); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 1200 { // more than one SSCAN page
		online(fmt.Sprint(1000+i), "s", dead)
	}
	online("1", "s1", dead)
	online("2", "s2", live)
	// User 3 moved to the live gateway, but a stale member remains in the
	// dead gateway's set: its new route must survive.
	online("3", "s3", dead)
	online("3", "s3b", live)
	rdb.SAdd(ctx, "cim:server:"+dead+":users", "3")

	gone, err := s.ClearGateway(ctx, dead)
	if err != nil || len(gone) != 1201 {
		t.Fatalf("ClearGateway = %d users, %v; want 1201", len(gone), err)
	}
	routes, _ := s.Routes(ctx, []string{"1", "2", "3", "1000"})
	if len(routes) != 2 || routes["2"].Gateway != live || routes["3"].Session != "s3b" {
		t.Fatalf("routes after clear = %+v", routes)
	}
	if m := members(t, rdb, "cim:login-status"); !slices.Equal(m, []string{"2", "3"}) {
		t.Fatalf("login-status = %v", m)
	}
	if rdb.Exists(ctx, "cim:server:"+dead+":users").Val() != 0 {
		t.Fatal("dead gateway's set survived")
	}
	if gws, _ := s.Gateways(ctx); !slices.Equal(gws, []string{live}) {
		t.Fatalf("servers = %v", gws)
	}
	// Again: nothing left to do, no error.
	if gone, err := s.ClearGateway(ctx, dead); err != nil || len(gone) != 0 {
		t.Fatalf("second clear = %v, %v", gone, err)
	}
}

func TestRedisDown(t *testing.T) {
	s, _, srv := newStore(t)
	ctx := ctxT(t)
	id, err := s.CreateUser(ctx, "alice", "h")
	if err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	calls := map[string]func() error{
		"CreateUser": func() error { _, err := s.CreateUser(ctx, "bob", "h"); return err },
		"UserByName": func() error { _, err := s.UserByName(ctx, "alice"); return err },
		"Lookup":     func() error { _, _, err := s.Lookup(ctx, []string{id}, []string{"alice"}); return err },
		"ClaimRoute": func() error {
			_, err := s.ClaimRoute(ctx, id, Claim{Gateway: "h:1:2", Session: "s", TTL: time.Second})
			return err
		},
		"Online": func() error { return s.Online(ctx, id, "s", "h:1:2") },
		"DropSession": func() error {
			_, _, err := s.DropSession(ctx, id, "s")
			return err
		},
		"Routes":       func() error { _, err := s.Routes(ctx, []string{id}); return err },
		"ClearGateway": func() error { _, err := s.ClearGateway(ctx, "h:1:2"); return err },
		"Ping":         func() error { return s.Ping(ctx) },
		"Append":       func() error { _, err := s.Append(ctx, []Append{{UserID: id, Frame: []byte("f")}}); return err },
		"Ranges":       func() error { _, err := s.Ranges(ctx, []RangeQuery{{UserID: id, Limit: 1}}); return err },
		"RaiseAcks":    func() error { return s.RaiseAcks(ctx, []Ack{{UserID: id, Seq: 1}}) },
		"InboxBefore":  func() error { _, err := s.InboxBefore(ctx, id, 0, 1); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, errs.ErrUnavailable) {
			t.Errorf("%s with Redis down: err = %v, want ErrUnavailable", name, err)
		}
	}
	srv.Restart()
	// go-redis probes a dead address about once a second before it dials
	// again; the store must recover without a restart of its own. (What
	// alice's account was is not asserted: with appendfsync everysec a
	// SIGKILL may lose the last second of writes, as docs/DURABILITY.md says.)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.Ping(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("store not back after the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	carol, err := s.CreateUser(ctx, "carol", "h")
	if err != nil {
		t.Fatalf("CreateUser after restart: %v", err)
	}
	if u, err := s.UserByName(ctx, "carol"); err != nil || u.ID != carol {
		t.Fatalf("after restart: %+v %v, want carol %s", u, err, carol)
	}
}

// TestReassert: a gateway back from a ZooKeeper session expiry re-creates the
// routes that were cleared meanwhile, but never takes one from a newer session.
func TestReassert(t *testing.T) {
	s, rdb, _ := newStore(t)
	ctx := ctxT(t)
	const gwA, gwB = "127.0.0.1:1:2", "127.0.0.1:3:4"

	// Cleared route: re-created, online, in the sets.
	if err := s.Reassert(ctx, "8", "s1", gwA); err != nil {
		t.Fatal(err)
	}
	routes, err := s.Routes(ctx, []string{"8"})
	if err != nil || routes["8"].Session != "s1" || routes["8"].Gateway != gwA || !routes["8"].Online() {
		t.Fatalf("after reassert: %+v, %v", routes, err)
	}
	if got := members(t, rdb, "cim:server:"+gwA+":users"); !slices.Contains(got, "8") {
		t.Fatalf("gateway set %v lacks the reasserted user", got)
	}
	// Same session: fine, idempotent.
	if err := s.Reassert(ctx, "8", "s1", gwA); err != nil {
		t.Fatal(err)
	}
	// A newer session elsewhere: refused and untouched.
	if _, err := s.ClaimRoute(ctx, "8", Claim{Gateway: gwB, Session: "s2", TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := s.Reassert(ctx, "8", "s1", gwA); !errors.Is(err, errs.ErrStaleSession) {
		t.Fatalf("reassert over a newer session: %v, want ErrStaleSession", err)
	}
	routes, _ = s.Routes(ctx, []string{"8"})
	if routes["8"].Session != "s2" || routes["8"].Gateway != gwB {
		t.Fatalf("newer session disturbed: %+v", routes["8"])
	}
}
