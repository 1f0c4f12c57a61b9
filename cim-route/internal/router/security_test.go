package router

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/auth"
	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/token"
)

// fakeAuth is an external user system: name → password; it canonicalizes
// names to lower case, as directories do.
type fakeAuth struct {
	mu    sync.Mutex
	users map[string]string
	down  bool
	alias map[string]string // name → the name it vouches for instead
	calls int
}

func (f *fakeAuth) Name() string { return "fake" }

func (f *fakeAuth) Authenticate(_ context.Context, name, password string) (auth.Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down {
		return auth.Identity{}, fmt.Errorf("%w: directory down", auth.ErrUnavailable)
	}
	canon := strings.ToLower(name)
	if pw, ok := f.users[canon]; !ok || pw != password {
		return auth.Identity{}, auth.ErrBadCredentials
	}
	if a, ok := f.alias[canon]; ok {
		canon = a
	}
	return auth.Identity{Name: canon}, nil
}

func TestExternalAuthenticator(t *testing.T) {
	fa := &fakeAuth{
		users: map[string]string{"alice": "ldap-pw-1", "bob": "ldap-pw-2", "weird": "ldap-pw-3", "carol": "ldap-pw-4", "sys": "ldap-pw-5"},
		alias: map[string]string{"weird": "has space", "sys": "System"},
	}
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.Authenticator = fa })

	// The first login creates the local account (an id from the same
	// counter), later ones find it; names are the authenticator's.
	s1, err := e.r.Login(e.ctx, LoginRequest{UserName: "Alice", Password: "ldap-pw-1"})
	if err != nil {
		t.Fatal(err)
	}
	if s1.UserName != "alice" || s1.UserID != "1" {
		t.Fatalf("first login: %+v", s1)
	}
	if pw := e.rdb.HGet(e.ctx, "cim:user:{1}", "pw").Val(); pw != "" {
		t.Fatalf("external account has a password hash %q", pw)
	}
	s2, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "ldap-pw-1"})
	if err != nil || s2.UserID != s1.UserID {
		t.Fatalf("second login: %+v %v, want the same account", s2, err)
	}
	// By id: the authenticator is asked about that account's name.
	if s, err := e.r.Login(e.ctx, LoginRequest{UserID: s1.UserID, Password: "ldap-pw-1"}); err != nil || s.UserName != "alice" {
		t.Fatalf("login by id: %+v %v", s, err)
	}
	calls := fa.calls
	for _, req := range []LoginRequest{
		{UserName: "alice", Password: "wrong"},
		{UserName: "mallory", Password: "ldap-pw-1"},
		{UserID: s1.UserID, Password: "ldap-pw-2"},
		{UserID: "999", Password: "ldap-pw-1"},                      // no such account: not even asked
		{UserID: s1.UserID, UserName: "bob", Password: "ldap-pw-2"}, // id and name disagree
	} {
		if _, err := e.r.Login(e.ctx, req); !errors.Is(err, errs.ErrBadAccount) {
			t.Errorf("Login(%+v): %v, want ErrBadAccount", req, err)
		}
	}
	if fa.calls != calls+3 {
		t.Errorf("authenticator asked %d times for 5 bad logins, want 3", fa.calls-calls)
	}
	// A name that is not a valid gocim user name: 9100 with the reason.
	_, err = e.r.Login(e.ctx, LoginRequest{UserName: "weird", Password: "ldap-pw-3"})
	if !errors.Is(err, errs.ErrBadAccount) || !strings.Contains(err.Error(), `"has space"`) || !strings.Contains(err.Error(), "2-32 characters") {
		t.Fatalf("invalid external name: %v", err)
	}
	// The system user's name is reserved.
	if _, err := e.r.Login(e.ctx, LoginRequest{UserName: "sys", Password: "ldap-pw-5"}); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("external user named System: %v", err)
	}
	// The user system is down: 5030, not "wrong password".
	fa.mu.Lock()
	fa.down = true
	fa.mu.Unlock()
	if _, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "ldap-pw-1"}); !errors.Is(err, errs.ErrAuthUnavailable) {
		t.Fatalf("authenticator down: %v, want ErrAuthUnavailable", err)
	}
	fa.mu.Lock()
	fa.down = false
	fa.mu.Unlock()

	// No registration with an external authenticator.
	if _, err := e.r.Register(e.ctx, "dave", "password1"); !errors.Is(err, errs.ErrForbidden) || !strings.Contains(err.Error(), "managed by fake") {
		t.Fatalf("Register: %v, want ErrForbidden", err)
	}

	// Concurrent first logins of one user settle on one account.
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			s, err := e.r.Login(e.ctx, LoginRequest{UserName: "carol", Password: "ldap-pw-4"})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = s.UserID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent first logins created several accounts: %v", ids)
		}
	}
	if n := e.rdb.HLen(e.ctx, "cim:user:names").Val(); n != 2 {
		t.Fatalf("%d accounts, want 2 (alice, carol)", n)
	}

	// A passwordless account never logs in through builtin, whatever the
	// password.
	builtin, err := New(Config{Store: e.st, Gateways: e.bal, Pusher: e.r.push, TokenKeys: keys, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{"ldap-pw-1", "x", "password1"} {
		if _, err := builtin.Login(e.ctx, LoginRequest{UserName: "alice", Password: pw}); !errors.Is(err, errs.ErrBadAccount) {
			t.Fatalf("builtin login of a passwordless account with %q: %v", pw, err)
		}
	}
}

func TestAccessToken(t *testing.T) {
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.AccessTTL = time.Hour })
	s := e.connect("alice")
	c, err := token.VerifyAPI(keys, s.AccessToken, time.Now())
	if err != nil || c.UserID != s.UserID || c.UserName != "alice" || c.SessionID != s.SessionID || c.ExpiresAt != s.AccessExpiresAt {
		t.Fatalf("access token claims %+v %v (session %+v)", c, err, s)
	}
	if d := time.Until(time.Unix(s.AccessExpiresAt, 0)); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("access token expires in %v, want the access TTL", d)
	}
	if _, err := token.Verify(keys, s.AccessToken, "", time.Now()); !errors.Is(err, token.ErrAudience) {
		t.Fatalf("access token accepted as a gateway token: %v", err)
	}
	if _, err := token.VerifyAPI(keys, s.Token, time.Now()); !errors.Is(err, token.ErrAudience) {
		t.Fatalf("gateway token accepted as an access token: %v", err)
	}
	if err := e.r.CheckSession(e.ctx, s.UserID, s.SessionID); err != nil {
		t.Fatalf("current session: %v", err)
	}
	// A new login makes the old session, and its token, stale.
	s2 := e.connect("alice")
	if err := e.r.CheckSession(e.ctx, s.UserID, s.SessionID); !errors.Is(err, errs.ErrUnauthorized) {
		t.Fatalf("replaced session: %v, want ErrUnauthorized", err)
	}
	if err := e.r.CheckSession(e.ctx, s2.UserID, s2.SessionID); err != nil {
		t.Fatal(err)
	}
	if err := e.r.CheckSession(e.ctx, "", s2.SessionID); !errors.Is(err, errs.ErrUnauthorized) {
		t.Fatalf("empty user: %v", err)
	}
	// Logoff without a session id ends the current one.
	if err := e.r.Logoff(e.ctx, s2.UserID, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.r.CheckSession(e.ctx, s2.UserID, s2.SessionID); !errors.Is(err, errs.ErrUnauthorized) {
		t.Fatalf("logged-off session: %v", err)
	}
	if f := e.frames(s2); len(f) != 2 || f[1].GetKick().GetReason() != "logged off" {
		t.Fatalf("alice's connections got %v, want a KICK for each", f)
	}
	if err := e.r.Logoff(e.ctx, s2.UserID, ""); err != nil {
		t.Fatalf("logoff without a session: %v", err)
	}
}

func TestPushFromSystem(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	alice, bob := e.connect("alice"), e.connect("bob")
	if _, err := e.r.Register(e.ctx, "carol", "password1"); err != nil {
		t.Fatal(err)
	}
	inbox := func(uid string) int64 { return e.rdb.LLen(e.ctx, "cim:inbox:{"+uid+"}").Val() }

	// To an online user (by id), an offline one (by name) and the same
	// online user again by name: one message each.
	res, err := e.r.Push(e.ctx, PushRequest{To: []string{alice.UserID, "carol", "alice"}, Text: "maintenance at 10"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Delivered != 1 || len(res.MsgIDs) != 3 || res.MsgIDs["alice"] != res.MsgIDs[alice.UserID] || res.MsgIDs["carol"] == "" {
		t.Fatalf("push result %+v", res)
	}
	f := e.frames(alice)
	if len(f) != 1 || f[0].Msg.From != SystemUserID || f[0].Msg.FromName != SystemUserName || string(f[0].Msg.Body) != "maintenance at 10" || f[0].Msg.Seq != 1 {
		t.Fatalf("alice got %v", f)
	}
	if inbox("3") != 1 {
		t.Fatalf("offline carol's inbox holds %d entries, want the message", inbox("3"))
	}

	// Alice acknowledges and reads it: no receipt for the system user, and
	// no inbox for user 0 ever appears.
	e.uplink(alice, ackFrame(1), readFrame(SystemUserID, res.MsgIDs["alice"]), readFrame("system", res.MsgIDs["alice"]))
	if n := e.rdb.Exists(e.ctx, "cim:inbox:{0}", "cim:seq:{0}").Val(); n != 0 {
		t.Fatalf("the system user got %d inbox keys", n)
	}
	if e.rdb.Get(e.ctx, "cim:ack:{"+alice.UserID+"}").Val() != "1" {
		t.Fatal("the ACK was not recorded")
	}

	// From a named user: a normal message, with receipts.
	res, err = e.r.Push(e.ctx, PushRequest{To: []string{"alice"}, From: "bob", Text: "from bob"})
	if err != nil || res.Delivered != 1 {
		t.Fatalf("push from bob: %+v %v", res, err)
	}
	if f := e.frames(alice); len(f) != 2 || f[1].Msg.From != bob.UserID || f[1].Msg.FromName != "bob" {
		t.Fatalf("alice got %v", f)
	}
	e.uplink(alice, ackFrame(2))
	if f := e.frames(bob); len(f) != 1 || f[0].GetReceipt().GetStatus() != cimpb.ReceiptStatus_RECEIPT_DELIVERED {
		t.Fatalf("bob got %v, want his DELIVERED receipt", f)
	}

	// Unknown users: all named, nothing sent to anybody.
	before := inbox(alice.UserID)
	_, err = e.r.Push(e.ctx, PushRequest{To: []string{"alice", "ghost", "424242", "7up", "ghost"}, Text: "x"})
	if !errors.Is(err, errs.ErrBadAccount) || !strings.Contains(err.Error(), `"ghost", "424242", "7up"`) {
		t.Fatalf("unknown users: %v", err)
	}
	if inbox(alice.UserID) != before {
		t.Fatal("a push with unknown users stored a message")
	}
	if _, err := e.r.Push(e.ctx, PushRequest{To: []string{"alice"}, From: "ghost", Text: "x"}); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("unknown sender: %v", err)
	}
	if _, err := e.r.Push(e.ctx, PushRequest{To: []string{SystemUserID}, Text: "x"}); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("push to the system user: %v", err)
	}

	// To everybody online: live only.
	res, err = e.r.Push(e.ctx, PushRequest{All: true, Text: "all hands"})
	if err != nil || res.Delivered != 2 || res.MsgID == "" {
		t.Fatalf("push to all: %+v %v", res, err)
	}
	if f := e.frames(bob); len(f) != 2 || !f[1].Msg.Broadcast || f[1].Msg.FromName != SystemUserName {
		t.Fatalf("bob got %v", f)
	}

	for _, bad := range []PushRequest{
		{Text: "x"},
		{To: []string{"alice"}, All: true, Text: "x"},
		{To: []string{"alice"}},
		{To: []string{"alice"}, Text: strings.Repeat("x", MaxText+1)},
		{To: []string{"alice"}, Text: "bad \xff utf-8"},
		{To: make([]string, MaxPushRecipients+1), Text: "x"},
	} {
		if _, err := e.r.Push(e.ctx, bad); !errors.Is(err, errs.ErrBadArgument) {
			t.Errorf("Push(to %d, all %v, %d bytes): %v, want ErrBadArgument", len(bad.To), bad.All, len(bad.Text), err)
		}
	}
	// The text limit holds for /p2pRoute and /groupRoute too.
	if _, err := e.r.P2P(e.ctx, bob.UserID, "alice", strings.Repeat("x", MaxText+1)); !errors.Is(err, errs.ErrBadArgument) {
		t.Fatalf("long p2p: %v", err)
	}
	if _, err := e.r.P2P(e.ctx, bob.UserID, "alice", strings.Repeat("é", MaxText/2)); err != nil {
		t.Fatalf("p2p of exactly %d bytes: %v", MaxText, err)
	}
	if _, _, err := e.r.Broadcast(e.ctx, bob.UserID, "\xc3"); !errors.Is(err, errs.ErrBadArgument) {
		t.Fatalf("broadcast of bad UTF-8: %v", err)
	}
	// Nobody sends as the system user but /api/push.
	if _, err := e.r.P2P(e.ctx, SystemUserID, "alice", "x"); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("p2p from user 0: %v", err)
	}
	if _, err := e.r.Register(e.ctx, "System", "password1"); !errors.Is(err, errs.ErrNameTaken) {
		t.Fatalf("registering the system user's name: %v", err)
	}
}
