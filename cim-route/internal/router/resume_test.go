package router

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/token"
)

// TestResumeToken: a login hands out a resume token; it logs in again
// once, without the password, as the same user and platform, and hands
// out the next one; a used one, and one a newer login, a log-off, a
// password reset, a ban or a deleted account came after, is refused.
func TestResumeToken(t *testing.T) {
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.ResumeTTL = time.Hour })
	resume := func(req LoginRequest) (Session, error) {
		t.Helper()
		return e.r.Login(e.ctx, req)
	}
	refused := func(what string, req LoginRequest) {
		t.Helper()
		if s, err := resume(req); !errors.Is(err, errs.ErrUnauthorized) {
			t.Fatalf("%s: %+v, %v; want ErrUnauthorized", what, s, err)
		}
	}
	s := e.connect("alice")
	c, err := token.VerifyResume(keys, s.ResumeToken, time.Now())
	if err != nil || c.UserID != s.UserID || c.SessionID != s.SessionID || c.ExpiresAt != s.ResumeExpiresAt {
		t.Fatalf("resume token %+v, %v (session %+v)", c, err, s)
	}
	if d := time.Until(time.Unix(s.ResumeExpiresAt, 0)); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("resume token expires in %v, want the resume TTL", d)
	}
	if _, err := token.VerifyAPI(keys, s.ResumeToken, time.Now()); !errors.Is(err, token.ErrAudience) {
		t.Fatalf("resume token accepted as an access token: %v", err)
	}

	s2, err := resume(LoginRequest{Resume: s.ResumeToken})
	if err != nil {
		t.Fatal(err)
	}
	if s2.UserID != s.UserID || s2.UserName != "alice" || s2.SessionID == s.SessionID || s2.ResumeToken == "" || s2.ResumeToken == s.ResumeToken {
		t.Fatalf("resumed: %+v after %+v", s2, s)
	}
	if err := e.r.CheckSession(e.ctx, s2.UserID, s2.SessionID); err != nil {
		t.Fatalf("the resumed session is not current: %v", err)
	}
	refused("another user named", LoginRequest{UserName: "bob", Resume: s2.ResumeToken})
	refused("another platform named", LoginRequest{Platform: "web", Resume: s2.ResumeToken})
	refused("a forged token", LoginRequest{Resume: s2.ResumeToken[:len(s2.ResumeToken)-2] + "xx"})
	refused("an access token", LoginRequest{Resume: s2.AccessToken})
	s3, err := resume(LoginRequest{UserName: "ALICE", UserID: s.UserID, Resume: s2.ResumeToken})
	if err != nil {
		t.Fatalf("resume naming the user: %v", err)
	}
	// (A used token that comes back also ends its chain: see
	// TestResumeTokenReused.)
	refused("a used token", LoginRequest{Resume: s.ResumeToken})
	refused("the latest token of a chain a used one came back to", LoginRequest{Resume: s3.ResumeToken})

	// What comes after a token revokes it.
	s4 := e.connect("alice")
	refused("a token a password login came after", LoginRequest{Resume: s3.ResumeToken})
	if err := e.r.Logoff(e.ctx, s4.UserID, s4.SessionID); err != nil {
		t.Fatal(err)
	}
	refused("a logged-off session's token", LoginRequest{Resume: s4.ResumeToken})
	s5 := e.connect("alice")
	if _, _, err := e.r.AdminResetPassword(e.ctx, "ops", "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	refused("a token from before a password reset", LoginRequest{Resume: s5.ResumeToken})
	s6 := e.connect("alice")
	if _, _, err := e.r.AdminBan(e.ctx, "ops", "alice", "spam", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := resume(LoginRequest{Resume: s6.ResumeToken}); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("a banned user's token: %v, want ErrForbidden", err)
	}
	if _, _, err := e.r.AdminUnban(e.ctx, "ops", "alice"); err != nil {
		t.Fatal(err)
	}
	refused("a token from before a ban", LoginRequest{Resume: s6.ResumeToken})
	s7 := e.connect("alice")
	if _, err := e.r.AdminDeleteUser(e.ctx, "ops", "alice"); err != nil {
		t.Fatal(err)
	}
	refused("a deleted account's token", LoginRequest{Resume: s7.ResumeToken})
}

// TestResumeTokenPerPlatform: with --login-policy platform each platform's
// login has its own resume token; a resume keeps its platform, and what
// revokes one platform's token leaves the others'.
func TestResumeTokenPerPlatform(t *testing.T) {
	e := newEnv(t, PolicyPlatform, 1, func(c *Config) { c.ResumeTTL = time.Hour })
	if _, err := e.r.Register(e.ctx, "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	login := func(req LoginRequest) Session {
		t.Helper()
		s, err := e.r.Login(e.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	mobile := login(LoginRequest{UserName: "alice", Password: "password1", Platform: "mobile"})
	desktop := login(LoginRequest{UserName: "alice", Password: "password1", Platform: "desktop"})
	m2 := login(LoginRequest{Resume: mobile.ResumeToken})
	if !strings.HasPrefix(m2.SessionID, "mobile.") {
		t.Fatalf("resumed mobile session %q, want the mobile slot", m2.SessionID)
	}
	if c, _ := token.VerifyResume(keys, m2.ResumeToken, time.Now()); c.Platform != "mobile" {
		t.Fatalf("the next mobile token is for %q", c.Platform)
	}
	if err := e.r.Logoff(e.ctx, m2.UserID, m2.SessionID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.Login(e.ctx, LoginRequest{Resume: m2.ResumeToken}); !errors.Is(err, errs.ErrUnauthorized) {
		t.Fatalf("the logged-off mobile token: %v", err)
	}
	d2 := login(LoginRequest{Resume: desktop.ResumeToken})
	if !strings.HasPrefix(d2.SessionID, "desktop.") {
		t.Fatalf("resumed desktop session %q", d2.SessionID)
	}
	// A logoff of a session a newer login replaced leaves the newer token.
	if err := e.r.Logoff(e.ctx, desktop.UserID, desktop.SessionID); err != nil {
		t.Fatal(err)
	}
	login(LoginRequest{Resume: d2.ResumeToken})
}

// TestResumeTokenOff: with ResumeTTL 0 no token is handed out or taken.
func TestResumeTokenOff(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	s := e.connect("alice")
	if s.ResumeToken != "" || s.ResumeExpiresAt != 0 {
		t.Fatalf("a resume token with resumes off: %+v", s)
	}
	on := newEnv(t, PolicyKick, 1, func(c *Config) { c.ResumeTTL = time.Hour })
	tok := on.connect("alice").ResumeToken
	if _, err := e.r.Login(e.ctx, LoginRequest{Resume: tok}); !errors.Is(err, errs.ErrUnauthorized) {
		t.Fatalf("a resume with resumes off: %v", err)
	}
}

// TestResumeChainEnds: the resume tokens that descend from one password
// login all expire --resume-ttl after it, however often they are used: the
// password (and an authenticator that may have disabled the user) is
// checked again then.
func TestResumeChainEnds(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
	}
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.ResumeTTL = time.Hour; c.Now = clock; c.TokenTTL = 10 * time.Hour })
	s := e.connect("alice")
	end := s.ResumeExpiresAt
	tok := s.ResumeToken
	for range 3 {
		advance(15 * time.Minute)
		s2, err := e.r.Login(e.ctx, LoginRequest{Resume: tok})
		if err != nil {
			t.Fatal(err)
		}
		if s2.ResumeExpiresAt != end {
			t.Fatalf("a resumed login's token expires at %d, want %d: the chain's end moved", s2.ResumeExpiresAt, end)
		}
		tok = s2.ResumeToken
	}
	advance(15 * time.Minute)
	if _, err := e.r.Login(e.ctx, LoginRequest{Resume: tok}); !errors.Is(err, errs.ErrUnauthorized) {
		t.Fatalf("a resume an hour after the password: %v, want ErrUnauthorized", err)
	}
	s3, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "password1"})
	if err != nil {
		t.Fatal(err)
	}
	if s3.ResumeExpiresAt != clock().Add(time.Hour).Unix() {
		t.Fatalf("a password login's token expires at %d, want an hour on", s3.ResumeExpiresAt)
	}
}

// TestResumeTokenReused: a resume token used once that comes back after
// ResumeGrace (a copy of a remembered login, used by somebody else first
// or after) ends its chain: it is refused, the chain's latest token no
// longer works, and the session that latest token came with is kicked.
// The password begins a new chain, which an old chain's token does not
// disturb.
func TestResumeTokenReused(t *testing.T) {
	clock := newTestClock()
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.ResumeTTL = time.Hour; c.Now = clock.now })
	s := e.connect("alice")
	login := func(what string, tok string) Session {
		t.Helper()
		s, err := e.r.Login(e.ctx, LoginRequest{Resume: tok})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return s
	}
	refused := func(what, tok string) {
		t.Helper()
		if s, err := e.r.Login(e.ctx, LoginRequest{Resume: tok}); !errors.Is(err, errs.ErrUnauthorized) {
			t.Fatalf("%s: %+v, %v; want ErrUnauthorized", what, s, err)
		}
	}
	// The thief resumes first with a copy of the user's token and is
	// connected; the user's own device comes back with the same token.
	thief := login("the copied token", s.ResumeToken)
	if err := e.r.SessionOnline(e.ctx, contract.Session{UserID: thief.UserID, SessionID: thief.SessionID, GatewayID: thief.Gateway.ID}); err != nil {
		t.Fatal(err)
	}
	e.gateway(thief.Gateway.ID).Connect(thief.UserID, thief.SessionID)
	clock.advance(ResumeGrace + time.Second)
	refused("the token used once, back after its grace", s.ResumeToken)
	if !kicked(e.gws[0].Frames(thief.UserID)) {
		t.Fatal("the session of the chain's latest token was not kicked")
	}
	if err := e.r.CheckSession(e.ctx, thief.UserID, thief.SessionID); !errors.Is(err, errs.ErrUnauthorized) {
		t.Fatalf("the chain's latest session is still current: %v", err)
	}
	refused("the chain's latest token after the reuse", thief.ResumeToken)

	// The user logs in with the password: a new chain. A token of the old
	// one is refused and leaves it alone.
	s2 := e.connect("alice")
	s3 := login("the new chain's token", s2.ResumeToken)
	refused("the old chain's first token", s.ResumeToken)
	refused("the old chain's last token", thief.ResumeToken)
	login("the new chain's next token", s3.ResumeToken)
}

// TestResumeTokenGrace: within ResumeGrace of its use a resume token logs
// in again (a client whose answer was lost tries it again; two tabs
// restored together share it), handing out a token of the same nonce as
// the first use did, which logs in in its turn; a token two uses back is
// reuse even within the grace.
func TestResumeTokenGrace(t *testing.T) {
	clock := newTestClock()
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.ResumeTTL = time.Hour; c.Now = clock.now })
	s := e.connect("alice")
	nonce := func(tok string) string {
		t.Helper()
		c, err := token.VerifyResume(keys, tok, clock.now())
		if err != nil {
			t.Fatal(err)
		}
		return c.Nonce
	}
	first, err := e.r.Login(e.ctx, LoginRequest{Resume: s.ResumeToken})
	if err != nil {
		t.Fatal(err)
	}
	clock.advance(ResumeGrace / 2)
	again, err := e.r.Login(e.ctx, LoginRequest{Resume: s.ResumeToken})
	if err != nil {
		t.Fatalf("the same token again within the grace: %v", err)
	}
	if again.SessionID == first.SessionID || nonce(again.ResumeToken) != nonce(first.ResumeToken) {
		t.Fatalf("the retry: session %s, nonce %s; want a new session and the first use's nonce %s", again.SessionID, nonce(again.ResumeToken), nonce(first.ResumeToken))
	}
	next, err := e.r.Login(e.ctx, LoginRequest{Resume: again.ResumeToken})
	if err != nil {
		t.Fatalf("the token the retry handed out: %v", err)
	}
	if _, err := e.r.Login(e.ctx, LoginRequest{Resume: s.ResumeToken}); !errors.Is(err, errs.ErrUnauthorized) {
		t.Fatalf("a token two uses back: %v, want ErrUnauthorized", err)
	}
	if _, err := e.r.Login(e.ctx, LoginRequest{Resume: next.ResumeToken}); !errors.Is(err, errs.ErrUnauthorized) {
		t.Fatalf("the chain's latest after a reuse: %v, want ErrUnauthorized", err)
	}
}
