package router

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/balance"
	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/cim-route/internal/store"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
)

func kicked(frames []*cimpb.Frame) bool {
	return slices.ContainsFunc(frames, func(f *cimpb.Frame) bool { return f.Type == cimpb.Type_KICK })
}

// TestAdminBan: a banned user is kicked, cannot log in, cannot confirm a
// session it was handed before the ban, and its device cannot log in;
// unbanned, it can again. A ban with an end ends by itself.
func TestAdminBan(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	alice := e.connect("alice")
	pending, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "password1"})
	if err != nil {
		t.Fatal(err)
	}
	e.waitPushes()
	alice2 := e.connect("alice") // online again; pending was replaced, alice kicked
	if _, _, err := e.r.AdminBan(e.ctx, "ops", "alice", "spam", time.Now().Add(-time.Minute)); !errors.Is(err, errs.ErrBadArgument) {
		t.Fatalf("ban ending in the past: %v", err)
	}
	if _, _, err := e.r.AdminBan(e.ctx, "ops", "nobody", "", time.Time{}); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("ban of nobody: %v", err)
	}
	u, b, err := e.r.AdminBan(e.ctx, "ops", "ALICE", "spam", time.Time{})
	if err != nil || u.ID != alice.UserID || b.Reason != "spam" || b.By != "ops" || b.Until != 0 {
		t.Fatalf("AdminBan = %+v %+v %v", u, b, err)
	}
	e.waitPushes()
	if !kicked(e.gws[0].Frames(alice2.UserID)) {
		t.Fatal("the banned user's connection got no KICK")
	}
	if _, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "password1"}); !errors.Is(err, ErrBanned) || !strings.Contains(err.Error(), "spam") {
		t.Fatalf("banned login: %v, want ErrBanned naming the reason", err)
	}
	// The session handed out before the ban (claimed again directly, as
	// if its login had raced the ban) confirms nothing.
	for _, s := range []Session{pending, alice2} {
		err := e.r.SessionOnline(e.ctx, contract.Session{UserID: s.UserID, SessionID: s.SessionID, GatewayID: s.Gateway.ID})
		if !errors.Is(err, errs.ErrStaleSession) {
			t.Fatalf("online of a banned user's session: %v, want ErrStaleSession", err)
		}
	}
	if users, _ := e.r.OnlineUsers(e.ctx, Page{}); len(users) != 0 {
		t.Fatalf("online after the ban: %+v", users)
	}
	if _, was, err := e.r.AdminUnban(e.ctx, "ops", alice.UserID); err != nil || !was {
		t.Fatalf("unban: %v %v", was, err)
	}
	e.connect("alice")

	// Devices: a banned device's login is refused like a revoked one's.
	d := e.newDevice("sensor-1")
	gw := e.gws[0].ID
	if _, err := e.deviceLogin(d.Name, d.Secret, gw, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.r.AdminBan(e.ctx, "ops", d.ID, "", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.deviceLogin(d.Name, d.Secret, gw, false); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("banned device login: %v, want ErrBadAccount", err)
	}
	if _, _, err := e.r.AdminUnban(e.ctx, "ops", d.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := e.deviceLogin(d.Name, d.Secret, gw, false); err != nil {
		t.Fatalf("unbanned device login: %v", err)
	}
}

// TestAdminKick: all sessions, or only the one named.
func TestAdminKick(t *testing.T) {
	e := newEnv(t, PolicyPlatform, 1)
	login := func(platform string) Session {
		s, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "password1", Platform: platform})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.r.SessionOnline(e.ctx, contract.Session{UserID: s.UserID, SessionID: s.SessionID, GatewayID: s.Gateway.ID, Platform: platform}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, err := e.r.Register(e.ctx, "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	web, mobile := login("web"), login("mobile")
	if _, n, err := e.r.AdminKick(e.ctx, "ops", "alice", "", "mobile"); err != nil || n != 1 {
		t.Fatalf("kick of the mobile slot: %d, %v", n, err)
	}
	routes, _ := e.st.Routes(e.ctx, []string{web.UserID})
	if s := routes[web.UserID].Sessions(); len(s) != 1 || s[0].Session != web.SessionID {
		t.Fatalf("sessions after kicking mobile (%s): %+v", mobile.SessionID, s)
	}
	if _, n, err := e.r.AdminKick(e.ctx, "ops", "alice", "no-such-session", ""); err != nil || n != 0 {
		t.Fatalf("kick of an unknown session: %d, %v", n, err)
	}
	if _, n, err := e.r.AdminKick(e.ctx, "ops", web.UserID, "", ""); err != nil || n != 1 {
		t.Fatalf("kick of all: %d, %v", n, err)
	}
	if users, _ := e.r.OnlineUsers(e.ctx, Page{}); len(users) != 0 {
		t.Fatalf("online after the kick: %+v", users)
	}
}

// TestAdminPassword: a reset takes the new password (or generates one),
// refuses the old one, ends the sessions, and is refused for devices.
func TestAdminPassword(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	alice := e.connect("alice")
	if _, _, err := e.r.AdminResetPassword(e.ctx, "ops", "alice", "new-password"); err != nil {
		t.Fatal(err)
	}
	e.waitPushes()
	if !kicked(e.gws[0].Frames(alice.UserID)) {
		t.Fatal("no KICK after the reset")
	}
	if _, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "password1"}); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("old password: %v", err)
	}
	if _, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "new-password"}); err != nil {
		t.Fatalf("new password: %v", err)
	}
	_, gen, err := e.r.AdminResetPassword(e.ctx, "ops", alice.UserID, "")
	if err != nil || len(gen) != 22 {
		t.Fatalf("generated %q, %v", gen, err)
	}
	if _, err := e.r.Login(e.ctx, LoginRequest{UserID: alice.UserID, Password: gen}); err != nil {
		t.Fatalf("generated password: %v", err)
	}
	d := e.newDevice("sensor-1")
	if _, _, err := e.r.AdminResetPassword(e.ctx, "ops", d.ID, "whatever1"); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("device password: %v", err)
	}
}

// TestAdminDeleteOnRedis: deleting an account on Redis kicks it, dissolves
// the group it owns alone, hands the one it owns with others to the member
// with the lowest id, leaves the one it is a member of, and leaves no key
// tagged with its id; the name registers again as a new account.
func TestAdminDeleteOnRedis(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := store.NewClient(store.ClientConfig{Addrs: []string{srv.Addr}})
	t.Cleanup(func() { rdb.Close() })
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.Store = store.New(rdb, "cim:") })
	alice, bob := e.connect("alice"), e.connect("bob")
	own, err := e.r.CreateGroup(e.ctx, alice.UserID, "alice's", false)
	if err != nil {
		t.Fatal(err)
	}
	bobs, err := e.r.CreateGroup(e.ctx, bob.UserID, "bob's", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.JoinGroup(e.ctx, alice.UserID, bobs.ID); err != nil {
		t.Fatal(err)
	}
	carol := e.account("carol")
	shared, err := e.r.CreateGroup(e.ctx, alice.UserID, "shared", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{carol.UserID, bob.UserID} { // carol first: not by the order of joining
		if _, err := e.r.JoinGroup(e.ctx, u, shared.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.r.P2P(e.ctx, bob.UserID, "alice", "hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.P2P(e.ctx, alice.UserID, "bob", "hi"); err != nil {
		t.Fatal(err)
	}
	e.waitPushes()
	tagged := func() []string {
		keys, err := rdb.Keys(e.ctx, "*{"+alice.UserID+"}*").Result()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range keys {
			// Group keys numbered like alice are the groups'.
			if !strings.HasPrefix(k, "cim:group:") && !strings.HasPrefix(k, "cim:gmembers:") && !strings.HasPrefix(k, "cim:ginvited:") {
				out = append(out, k)
			}
		}
		return out
	}
	if len(tagged()) < 5 {
		t.Fatalf("alice has only keys %v before the delete", tagged())
	}
	u, err := e.r.AdminDeleteUser(e.ctx, "ops", "alice")
	if err != nil || u.ID != alice.UserID {
		t.Fatalf("delete: %+v %v", u, err)
	}
	e.waitPushes()
	if !kicked(e.gws[0].Frames(alice.UserID)) {
		t.Fatal("the deleted user's connection got no KICK")
	}
	if left := tagged(); len(left) != 0 {
		t.Fatalf("keys of the deleted user left: %v", left)
	}
	if _, err := e.r.Group(e.ctx, bob.UserID, own.ID); !errors.Is(err, errs.ErrNoGroup) {
		t.Fatalf("alice's group after the delete: %v, want dissolved", err)
	}
	if g, err := e.r.Group(e.ctx, carol.UserID, shared.ID); err != nil || g.Owner != bob.UserID || g.Members != 2 {
		t.Fatalf("the group alice shared after the delete: %+v %v, want it bob's (the lowest id), with bob and carol", g, err)
	}
	members, err := e.r.GroupMembers(e.ctx, bob.UserID, bobs.ID, Page{})
	if err != nil || len(members) != 1 || members[0].ID != bob.UserID {
		t.Fatalf("bob's group members after the delete: %+v %v", members, err)
	}
	if m, _ := rdb.SIsMember(e.ctx, "cim:login-status", alice.UserID).Result(); m {
		t.Fatal("deleted user in login-status")
	}
	if _, err := e.r.P2P(e.ctx, bob.UserID, "alice", "still there?"); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("message to the deleted name: %v, want ErrBadAccount", err)
	}
	again, err := e.r.Register(e.ctx, "alice", "password2")
	if err != nil || again.ID == alice.UserID {
		t.Fatalf("re-register: %+v %v", again, err)
	}
	if s, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "password2"}); err != nil || s.UserID != again.ID {
		t.Fatalf("login of the new alice: %+v %v", s, err)
	}
	if _, err := e.r.AdminDeleteUser(e.ctx, "ops", alice.UserID); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("second delete: %v", err)
	}
}

// fakeGateway serves /healthz with a connection count and /drain behind
// the secret, on a real port, so its id is a gateway id.
func fakeGateway(t *testing.T, secret string, conns int) (id string, drains *atomic.Int32) {
	drains = &atomic.Int32{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+contract.PathHealth, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(contract.Health{Status: contract.HealthOK, Connections: conns})
	})
	mux.HandleFunc("POST "+contract.PathDrain, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(contract.Header) != secret {
			http.Error(w, `{"code":4010}`, http.StatusUnauthorized)
			return
		}
		already := drains.Add(1) > 1
		n := conns
		if already {
			n = 0
		}
		json.NewEncoder(w).Encode(contract.Drain{Connections: n, Already: already})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	return contract.FormatGatewayID("127.0.0.1", 1, p), drains
}

// TestAdminGatewaysAndDrain: the gateway list carries each gateway's own
// connection count and the route's users on it; drain calls the gateway
// with the internal secret, and a wrong secret or a gone gateway is an
// error.
func TestAdminGatewaysAndDrain(t *testing.T) {
	const secret = "internal-secret-0123456789"
	gwA, drains := fakeGateway(t, secret, 7)
	gwB, _ := fakeGateway(t, "another-secret-0123456789", 3)
	e := newEnv(t, PolicyKick, 0, func(c *Config) { c.InternalSecret = secret })
	e.bal = balance.New(balance.Config{Logger: quiet})
	e.bal.SetGateways([]string{gwA, gwB, "127.0.0.1:1:1"}) // the last answers nothing
	e.r.gw = e.bal
	for _, uid := range []string{"5", "6"} {
		if _, err := e.st.ClaimRoute(e.ctx, uid, claimAt(gwA, "s"+uid)); err != nil {
			t.Fatal(err)
		}
		if err := e.st.Online(e.ctx, uid, "s"+uid, gwA); err != nil {
			t.Fatal(err)
		}
	}
	gws, err := e.r.AdminGateways(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]GatewayStatus{}
	for _, g := range gws {
		byID[g.Addr.ID] = g
	}
	if g := byID[gwA]; g.Connections != 7 || g.Users != 2 || g.Err != "" {
		t.Fatalf("gateway A: %+v", g)
	}
	if g := byID[gwB]; g.Connections != 3 || g.Users != 0 {
		t.Fatalf("gateway B: %+v", g)
	}
	if g := byID["127.0.0.1:1:1"]; g.Connections != -1 || g.Err == "" {
		t.Fatalf("gateway that does not answer: %+v", g)
	}

	d, err := e.r.AdminDrain(e.ctx, "ops", gwA)
	if err != nil || d.Connections != 7 || d.Already || drains.Load() != 1 {
		t.Fatalf("drain: %+v %v (%d calls)", d, err, drains.Load())
	}
	if d, err := e.r.AdminDrain(e.ctx, "ops", gwA); err != nil || !d.Already {
		t.Fatalf("second drain: %+v %v", d, err)
	}
	if _, err := e.r.AdminDrain(e.ctx, "ops", gwB); !errors.Is(err, errs.ErrUnavailable) || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("drain refused by the gateway: %v", err)
	}
	if _, err := e.r.AdminDrain(e.ctx, "ops", "127.0.0.1:9:9"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("drain of an unknown gateway: %v", err)
	}
	if _, err := e.r.AdminDrain(e.ctx, "ops", "nonsense"); !errors.Is(err, errs.ErrBadArgument) {
		t.Fatalf("drain of a malformed id: %v", err)
	}
}

func claimAt(gw, sid string) model.Claim {
	return model.Claim{Gateway: gw, Session: sid, TTL: time.Minute}
}
