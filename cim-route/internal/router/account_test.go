package router

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/internal/contract"
)

// devices logs alice in on three device slots (--login-policy platform):
// mobile and desktop online, web gone offline since (its resume token is
// a remembered login, as a closed laptop keeps).
func devices(t *testing.T, e *env) (mobile, desktop, web Session) {
	t.Helper()
	if _, err := e.r.Register(e.ctx, "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	login := func(platform string) Session {
		t.Helper()
		s, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "password1", Platform: platform})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.r.SessionOnline(e.ctx, contract.Session{UserID: s.UserID, SessionID: s.SessionID, GatewayID: s.Gateway.ID, Platform: platform}); err != nil {
			t.Fatal(err)
		}
		e.waitPushes()
		e.gateway(s.Gateway.ID).Connect(s.UserID, s.SessionID)
		return s
	}
	mobile, desktop, web = login("mobile"), login("desktop"), login("web")
	if err := e.r.SessionOffline(e.ctx, contract.Session{UserID: web.UserID, SessionID: web.SessionID, GatewayID: web.Gateway.ID, Platform: "web"}); err != nil {
		t.Fatal(err)
	}
	return mobile, desktop, web
}

func (e *env) resumeRefused(t *testing.T, what string, s Session) {
	t.Helper()
	if _, err := e.r.Login(e.ctx, LoginRequest{Resume: s.ResumeToken}); !errors.Is(err, errs.ErrUnauthorized) {
		t.Fatalf("%s's resume token after securing the account: %v, want ErrUnauthorized", what, err)
	}
}

// TestChangePassword: with the current password a user sets a new one;
// every other session is kicked and every resume token revoked, the
// offline device's remembered login too; the caller's session stays and
// gets a new resume token; the old password no longer logs in. A wrong
// current password or a too short new one changes nothing.
func TestChangePassword(t *testing.T) {
	e := newEnv(t, PolicyPlatform, 1, func(c *Config) { c.ResumeTTL = time.Hour })
	mobile, desktop, web := devices(t, e)
	uid := desktop.UserID

	if _, err := e.r.ChangePassword(e.ctx, uid, desktop.SessionID, "wrong-pw", "password2"); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("a wrong current password: %v, want ErrForbidden", err)
	}
	if _, err := e.r.ChangePassword(e.ctx, uid, desktop.SessionID, "password1", "short"); !errors.Is(err, errs.ErrBadArgument) {
		t.Fatalf("a too short new password: %v, want ErrBadArgument", err)
	}
	if err := e.r.CheckSession(e.ctx, uid, mobile.SessionID); err != nil {
		t.Fatalf("a refused change ended the other session: %v", err)
	}

	got, err := e.r.ChangePassword(e.ctx, uid, desktop.SessionID, "password1", "password2")
	if err != nil {
		t.Fatal(err)
	}
	if got.Ended != 1 || got.ResumeToken == "" {
		t.Fatalf("changed: %+v, want the mobile session ended and a new resume token", got)
	}
	e.waitPushes()
	if !kicked(e.gws[0].Frames(contract.DeviceKey(uid, mobile.SessionID))) {
		t.Fatal("the mobile connection got no KICK")
	}
	if err := e.r.CheckSession(e.ctx, uid, mobile.SessionID); !errors.Is(err, errs.ErrUnauthorized) {
		t.Fatalf("the other session is still current: %v", err)
	}
	if err := e.r.CheckSession(e.ctx, uid, desktop.SessionID); err != nil {
		t.Fatalf("the caller's session ended: %v", err)
	}
	e.resumeRefused(t, "the offline web device", web)
	e.resumeRefused(t, "the mobile", mobile)
	e.resumeRefused(t, "the caller's old", desktop)
	if _, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "password1", Platform: "web"}); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("the old password: %v, want ErrBadAccount", err)
	}
	if s, err := e.r.Login(e.ctx, LoginRequest{Resume: got.ResumeToken}); err != nil || s.UserID != uid {
		t.Fatalf("the caller's new resume token: %+v, %v", s, err)
	}
	if _, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "password2", Platform: "web"}); err != nil {
		t.Fatalf("the new password: %v", err)
	}
}

// dropResumesFails fails DropResumes while fail is set: Redis giving out
// between a password change's steps.
type dropResumesFails struct {
	Store
	fail atomic.Bool
}

func (s *dropResumesFails) DropResumes(ctx context.Context, uid, sid string) error {
	if s.fail.Load() {
		return errs.ErrUnavailable
	}
	return s.Store.DropResumes(ctx, uid, sid)
}

// TestChangePasswordRetried: a change that set the new password and then
// failed (the store gave out before the other sessions ended) is retried
// with the same passwords, and the retry ends them; without the first
// step done, a wrong current password is still refused.
func TestChangePasswordRetried(t *testing.T) {
	var st *dropResumesFails
	e := newEnv(t, PolicyPlatform, 1, func(c *Config) {
		c.ResumeTTL = time.Hour
		st = &dropResumesFails{Store: c.Store}
		c.Store = st
	})
	mobile, desktop, _ := devices(t, e)
	uid := desktop.UserID
	st.fail.Store(true)
	if _, err := e.r.ChangePassword(e.ctx, uid, desktop.SessionID, "password1", "password2"); !errors.Is(err, errs.ErrUnavailable) {
		t.Fatalf("change with the store failing: %v, want ErrUnavailable", err)
	}
	if err := e.r.CheckSession(e.ctx, uid, mobile.SessionID); err != nil {
		t.Fatalf("the failed change ended the mobile session: %v", err)
	}
	st.fail.Store(false)
	if _, err := e.r.ChangePassword(e.ctx, uid, desktop.SessionID, "wrong-pw", "password3"); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("another change with a wrong current password: %v, want ErrForbidden", err)
	}
	got, err := e.r.ChangePassword(e.ctx, uid, desktop.SessionID, "password1", "password2")
	if err != nil || got.Ended != 1 || got.ResumeToken == "" {
		t.Fatalf("the retry: %+v, %v; want the mobile session ended and a new resume token", got, err)
	}
	if err := e.r.CheckSession(e.ctx, uid, mobile.SessionID); !errors.Is(err, errs.ErrUnauthorized) {
		t.Fatalf("the mobile session is still current after the retry: %v", err)
	}
	if _, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "password2", Platform: "web"}); err != nil {
		t.Fatalf("the new password: %v", err)
	}
}

// TestLogoutOthers: with the password, every other session ends and every
// resume token but the caller's new one is revoked; the password stays.
func TestLogoutOthers(t *testing.T) {
	e := newEnv(t, PolicyPlatform, 1, func(c *Config) { c.ResumeTTL = time.Hour })
	mobile, desktop, web := devices(t, e)
	uid := mobile.UserID
	if _, err := e.r.LogoutOthers(e.ctx, uid, mobile.SessionID, "wrong-pw"); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("a wrong password: %v, want ErrForbidden", err)
	}
	got, err := e.r.LogoutOthers(e.ctx, uid, mobile.SessionID, "password1")
	if err != nil || got.Ended != 1 {
		t.Fatalf("logout others: %+v, %v; want the desktop session ended", got, err)
	}
	if err := e.r.CheckSession(e.ctx, uid, desktop.SessionID); !errors.Is(err, errs.ErrUnauthorized) {
		t.Fatalf("the desktop session is still current: %v", err)
	}
	e.resumeRefused(t, "the offline web device", web)
	e.resumeRefused(t, "the desktop", desktop)
	if _, err := e.r.Login(e.ctx, LoginRequest{Resume: got.ResumeToken}); err != nil {
		t.Fatalf("the caller's new resume token: %v", err)
	}
	if _, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "password1", Platform: "desktop"}); err != nil {
		t.Fatalf("the password after logging the others out: %v", err)
	}
}

// TestSecureAccountExternal: with an external authenticator the route
// neither knows nor changes the password.
func TestSecureAccountExternal(t *testing.T) {
	fa := &fakeAuth{users: map[string]string{"alice": "ldap-pw-1"}}
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.Authenticator = fa })
	s, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "ldap-pw-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.ChangePassword(e.ctx, s.UserID, s.SessionID, "ldap-pw-1", "password2"); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("change password with an external authenticator: %v, want ErrForbidden", err)
	}
	if _, err := e.r.LogoutOthers(e.ctx, s.UserID, s.SessionID, "ldap-pw-1"); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("logout others with an external authenticator: %v, want ErrForbidden", err)
	}
}

// TestDeleteAccount: with the password, a user deletes their own account:
// both online devices are kicked (the caller's too), the remembered logins
// and the password stop working, the name is free, and a message to the
// name finds nobody. A wrong password or a stale session deletes nothing.
func TestDeleteAccount(t *testing.T) {
	e := newEnv(t, PolicyPlatform, 1, func(c *Config) { c.ResumeTTL = time.Hour })
	mobile, desktop, web := devices(t, e)
	uid := desktop.UserID
	if _, err := e.r.DeleteAccount(e.ctx, uid, desktop.SessionID, "wrong-pw"); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("a wrong password: %v, want ErrForbidden", err)
	}
	if _, err := e.r.DeleteAccount(e.ctx, uid, "stale-session", "password1"); !errors.Is(err, errs.ErrUnauthorized) {
		t.Fatalf("a stale session: %v, want ErrUnauthorized", err)
	}
	if _, err := e.st.UserByID(e.ctx, uid); err != nil {
		t.Fatalf("a refused delete deleted: %v", err)
	}
	u, err := e.r.DeleteAccount(e.ctx, uid, desktop.SessionID, "password1")
	if err != nil || u.ID != uid || u.Name != "alice" {
		t.Fatalf("DeleteAccount = %+v, %v", u, err)
	}
	e.waitPushes()
	for _, s := range []Session{mobile, desktop} {
		if !kicked(e.gws[0].Frames(contract.DeviceKey(uid, s.SessionID))) {
			t.Fatalf("session %s got no KICK", s.SessionID)
		}
	}
	if _, err := e.st.UserByID(e.ctx, uid); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("the account after the delete: %v, want ErrBadAccount", err)
	}
	e.resumeRefused(t, "the offline web device", web)
	if _, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "password1"}); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("the old password: %v, want ErrBadAccount", err)
	}
	bob := e.connect("bob")
	if _, err := e.r.P2P(e.ctx, bob.UserID, "alice", "still there?"); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("a message to the deleted name: %v, want ErrBadAccount", err)
	}
	if n, err := e.r.Register(e.ctx, "alice", "password9"); err != nil || n.ID == uid {
		t.Fatalf("registering the name again: %+v, %v; want a new account", n, err)
	}
}
