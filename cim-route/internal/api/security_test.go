package api

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/auth"
	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
	"github.com/gocim/gocim/proto/token"
)

func TestInternalSecret(t *testing.T) {
	e := newEnv(t)
	e.register("alice")
	var l loginData
	e.expect("POST", "/login", `{"userName":"alice","password":"password1"}`, nil, 200, codes.OK, &l)
	online := `{"userId":"` + l.UserID + `","sessionId":"` + l.SessionID + `","gatewayId":"` + e.gw.ID + `"}`

	for _, h := range []hdr{nil, {contract.Header: ""}, {contract.Header: "internal-secret-012345678"}, {contract.Header: internalSecret + "x"}, asPush, l.bearer()} {
		for _, path := range []string{"/internal/online", "/internal/offline"} {
			e.check("POST", e.internal, path, online, h, 401, codes.Unauthorized, nil)
		}
		if st, _ := e.uplink(&cimpb.UplinkBatch{}, h); st != 401 {
			t.Fatalf("uplink with %v: HTTP %d, want 401", h, st)
		}
	}
	// Not served on the public listener at all, with or without the secret.
	for _, path := range []string{"/internal/online", "/internal/offline", "/internal/uplink"} {
		e.expect("POST", path, online, asGateway, 404, codes.BadArgument, nil)
	}
	// ... and the public API is not on the internal one.
	e.check("POST", e.internal, "/login", `{"userName":"alice","password":"password1"}`, nil, 404, codes.BadArgument, nil)
	// Health stays open on both.
	e.check("GET", e.internal, "/healthz", ``, nil, 200, codes.OK, nil)
	// The previous secret still works during a rotation.
	e.check("POST", e.internal, "/internal/online", online, hdr{contract.Header: oldInternal}, 200, codes.OK, nil)
}

func TestBearer(t *testing.T) {
	e := newEnv(t)
	e.register("alice", "bob")
	alice, bob := e.online("alice"), e.online("bob")

	// No credential, or a bad one: 401.
	e.expect("POST", "/p2pRoute", `{"userId":"`+alice.UserID+`","receiveUserId":"bob","msg":"x"}`, nil, 401, codes.Unauthorized, nil)
	forged, _ := token.Sign([]byte("another-secret-0123456789"), token.Claims{UserID: alice.UserID, SessionID: alice.SessionID,
		ExpiresAt: time.Now().Add(time.Hour).Unix(), Audience: token.AudienceAPI})
	expired, _ := token.Sign(tokenKeys[0], token.Claims{UserID: alice.UserID, SessionID: alice.SessionID,
		ExpiresAt: time.Now().Add(-time.Second).Unix(), Audience: token.AudienceAPI})
	for name, h := range map[string]hdr{
		"gateway token":  bearer(alice.Token),
		"forged":         bearer(forged),
		"expired":        bearer(expired),
		"malformed":      bearer("abc"),
		"empty":          {"Authorization": "Bearer "},
		"other scheme":   {"Authorization": "Basic " + alice.AccessToken},
		"no scheme":      {"Authorization": alice.AccessToken},
		"unknown APIkey": {APIKeyHeader: "no-such-key-0123456789"},
	} {
		for _, ep := range []struct{ method, path, body string }{
			{"POST", "/p2pRoute", `{"receiveUserId":"bob","msg":"x"}`},
			{"GET", "/history", ``},
			{"GET", "/onlineUser", ``},
			{"POST", "/offLine", ``},
		} {
			st, a, _ := e.call(ep.method, e.url, ep.path, ep.body, h)
			if st != 401 || a.Code != codes.Unauthorized {
				t.Errorf("%s on %s: HTTP %d code %d (%s), want 401/4010", name, ep.path, st, a.Code, a.Message)
			}
		}
	}
	if f := e.gw.Frames(bob.UserID); len(f) != 0 {
		t.Fatalf("bob got %v from refused requests", f)
	}

	// Another user's data: 403.
	me := alice.bearer()
	e.expect("POST", "/p2pRoute", `{"userId":"`+bob.UserID+`","receiveUserId":"alice","msg":"x"}`, me, 403, codes.Forbidden, nil)
	e.expect("POST", "/groupRoute", `{"userId":`+bob.UserID+`,"msg":"x"}`, me, 403, codes.Forbidden, nil)
	e.expect("POST", "/offLine", `{"userId":"`+bob.UserID+`"}`, me, 403, codes.Forbidden, nil)
	e.expect("POST", "/offLine", `{"userId":"`+alice.UserID+`","sessionId":"`+bob.SessionID+`"}`, me, 403, codes.Forbidden, nil)
	e.expect("GET", "/history?userId="+bob.UserID, ``, me, 403, codes.Forbidden, nil)
	if _, ok := e.gw.Connected(bob.UserID); !ok {
		t.Fatal("alice logged bob off")
	}
	// A bearer is not an application.
	e.expect("POST", "/api/push", `{"to":["bob"],"msg":"x"}`, me, 403, codes.Forbidden, nil)

	// A new login makes the old session's token stale: 401 everywhere but
	// /offLine, where logging off twice is fine — and touches nothing.
	alice2 := e.online("alice")
	e.expect("GET", "/history", ``, me, 401, codes.Unauthorized, nil)
	e.expect("GET", "/onlineUser", ``, me, 401, codes.Unauthorized, nil)
	e.expect("POST", "/p2pRoute", `{"receiveUserId":"bob","msg":"x"}`, me, 401, codes.Unauthorized, nil)
	e.expect("POST", "/offLine", ``, me, 200, codes.OK, nil)
	if sid, ok := e.gw.Connected(alice.UserID); !ok || sid != alice2.SessionID {
		t.Fatal("a stale token's /offLine ended the new session")
	}
	e.expect("GET", "/history", ``, alice2.bearer(), 200, codes.OK, nil)
	// "bearer" is case-insensitive.
	e.expect("GET", "/onlineUser", ``, hdr{"Authorization": "bearer " + alice2.AccessToken}, 200, codes.OK, nil)
}

func TestAPIKeyScopes(t *testing.T) {
	e := newEnv(t)
	e.register("alice", "bob")
	alice := e.online("alice")
	e.online("bob")
	tests := []struct {
		method, path, body string
		h                  hdr
		status             int
		code               codes.Code
	}{
		// Missing scope.
		{"GET", "/onlineUser", ``, asPush, 403, codes.Forbidden},
		{"POST", "/offLine", `{"userId":"` + alice.UserID + `"}`, asPush, 403, codes.Forbidden},
		{"POST", "/p2pRoute", `{"userId":"` + alice.UserID + `","receiveUserId":"bob","msg":"x"}`, asAdmin, 403, codes.Forbidden},
		{"POST", "/groupRoute", `{"userId":"` + alice.UserID + `","msg":"x"}`, asAdmin, 403, codes.Forbidden},
		{"POST", "/api/push", `{"to":["bob"],"msg":"x"}`, asAdmin, 403, codes.Forbidden},
		// User-only endpoints.
		{"GET", "/history?userId=" + alice.UserID, ``, asAdmin, 403, codes.Forbidden},
		{"GET", "/history", ``, asPush, 403, codes.Forbidden},
		// Without a credential.
		{"POST", "/api/push", `{"to":["bob"],"msg":"x"}`, nil, 401, codes.Unauthorized},
		{"GET", "/onlineUser", ``, nil, 401, codes.Unauthorized},
		{"POST", "/offLine", `{"userId":"` + alice.UserID + `"}`, nil, 401, codes.Unauthorized},
		// With the scope.
		{"GET", "/onlineUser", ``, asAdmin, 200, codes.OK},
		{"POST", "/api/push", `{"to":["bob"],"msg":"x"}`, asPush, 200, codes.OK},
		{"POST", "/groupRoute", `{"userId":"` + alice.UserID + `","msg":"x"}`, asPush, 200, codes.OK},
	}
	for _, tt := range tests {
		e.expect(tt.method, tt.path, tt.body, tt.h, tt.status, tt.code, nil)
	}
	if _, ok := e.gw.Connected(alice.UserID); !ok {
		t.Fatal("a refused /offLine logged alice off")
	}
	e.expect("POST", "/offLine", `{"userId":"`+alice.UserID+`","sessionId":"`+alice.SessionID+`"}`, asAdmin, 200, codes.OK, nil)
	if _, ok := e.gw.Connected(alice.UserID); ok {
		t.Fatal("admin /offLine did not log alice off")
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *router.Config) {
		c.LoginRate, c.LoginBurst = 0.001, 3
		c.TrustedProxies = []string{"127.0.0.1"}
	})
	e.register("alice") // one attempt of 127.0.0.1 and of alice
	from := func(ip string) hdr { return hdr{"X-Forwarded-For": ip} }
	login := func(name string, h hdr) (int, answer, string) {
		st, a, hd := e.call("POST", e.url, "/login", `{"userName":"`+name+`","password":"wrong-password"}`, h)
		return st, a, hd.Get("Retry-After")
	}
	limited := func(st int, a answer, retry string) bool {
		n, err := strconv.Atoi(retry)
		return st == 429 && a.Code == codes.RateLimited && err == nil && n >= 1
	}
	for i := range 2 {
		if st, a, _ := login("alice", from("10.0.0.1")); st != 401 || a.Code != codes.BadAccount {
			t.Fatalf("attempt %d: HTTP %d code %d", i+1, st, a.Code)
		}
	}
	// alice's burst of 3 is used up (the registration counted): any IP.
	if st, a, retry := login("alice", from("10.0.0.2")); !limited(st, a, retry) {
		t.Fatalf("4th attempt for alice: HTTP %d code %d Retry-After %q, want 429/4291 with Retry-After", st, a.Code, retry)
	}
	// 10.0.0.1 has one attempt left, then its burst is used up: any name.
	if st, _, _ := login("bob", from("10.0.0.1")); st != 401 {
		t.Fatalf("bob from 10.0.0.1: HTTP %d, want 401", st)
	}
	if st, a, retry := login("carol", from("10.0.0.1")); !limited(st, a, retry) {
		t.Fatalf("4th attempt from 10.0.0.1: HTTP %d code %d", st, a.Code)
	}
	// Registration shares the limits; names compare case-insensitively.
	if st, a, _ := e.call("POST", e.url, "/registerAccount", `{"userName":"dave","password":"password1"}`, from("10.0.0.1")); st != 429 || a.Code != codes.RateLimited {
		t.Fatalf("register from a limited IP: HTTP %d code %d", st, a.Code)
	}
	if st, a, retry := login("ALICE", from("10.0.0.9")); !limited(st, a, retry) {
		t.Fatalf("ALICE: HTTP %d code %d", st, a.Code)
	}
	// Others are not affected.
	if st, _, _ := login("bob", from("10.0.0.3")); st != 401 {
		t.Fatalf("bob from 10.0.0.3: HTTP %d, want 401", st)
	}
}

func TestRateLimitIgnoresForwardedForWithoutTrustedProxies(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *router.Config) { c.LoginRate, c.LoginBurst = 0.001, 2 })
	for i, ip := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		st, _, _ := e.call("POST", e.url, "/login", `{"userName":"user`+strconv.Itoa(i)+`","password":"wrong-password"}`, hdr{"X-Forwarded-For": ip})
		if want := map[bool]int{true: 429, false: 401}[i == 2]; st != want {
			t.Fatalf("attempt %d with X-Forwarded-For %s: HTTP %d, want %d", i+1, ip, st, want)
		}
	}
}

func TestAPIPush(t *testing.T) {
	e := newEnv(t)
	e.register("alice", "carol")
	alice := e.online("alice")

	var res struct {
		MsgIDs    map[string]string `json:"msgIds"`
		MsgID     string            `json:"msgId"`
		Delivered int               `json:"delivered"`
	}
	body := `{"to":["carol",` + alice.UserID + `],"msg":"hello from the app"}`
	e.expect("POST", "/api/push", body, asPush, 200, codes.OK, &res)
	if res.Delivered != 1 || len(res.MsgIDs) != 2 || res.MsgIDs["carol"] == "" || res.MsgIDs[alice.UserID] == "" {
		t.Fatalf("push data %+v", res)
	}
	if f := e.gw.Frames(alice.UserID); len(f) != 1 || f[0].Msg.From != router.SystemUserID || f[0].Msg.FromName != router.SystemUserName {
		t.Fatalf("alice got %v", f)
	}
	// Carol was offline: the message is in her inbox.
	carol := e.online("carol")
	var page struct {
		Messages []struct {
			MsgID, From, FromName, Body string
		} `json:"messages"`
	}
	e.expect("GET", "/history", ``, carol.bearer(), 200, codes.OK, &page)
	if len(page.Messages) != 1 || page.Messages[0].MsgID != res.MsgIDs["carol"] || page.Messages[0].From != "0" ||
		page.Messages[0].FromName != "system" || page.Messages[0].Body != "hello from the app" {
		t.Fatalf("carol's history %+v", page)
	}

	// Unknown users: 9100 naming them, nothing sent.
	a := e.expect("POST", "/api/push", `{"to":["carol","ghost"],"msg":"x"}`, asPush, 401, codes.BadAccount, nil)
	if !strings.Contains(a.Message, `"ghost"`) {
		t.Fatalf("message %q does not name the unknown user", a.Message)
	}
	if f := e.gw.Frames(carol.UserID); len(f) != 0 {
		t.Fatalf("carol got %v", f)
	}
	// From a user; to everybody online.
	e.expect("POST", "/api/push", `{"to":["carol"],"from":"alice","msg":"hi"}`, asPush, 200, codes.OK, nil)
	if f := e.gw.Frames(carol.UserID); len(f) != 1 || f[0].Msg.FromName != "alice" {
		t.Fatalf("carol got %v", f)
	}
	res.MsgIDs = nil
	e.expect("POST", "/api/push", `{"all":true,"msg":"all hands"}`, asPush, 200, codes.OK, &res)
	if res.Delivered != 2 || res.MsgID == "" || len(res.MsgIDs) != 0 {
		t.Fatalf("push to all %+v", res)
	}
}

func TestTextAndBodyLimits(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *router.Config) { c.MaxBody = 64 << 10 })
	e.register("alice")
	me := e.online("alice").bearer()
	msg := func(text string) string {
		b, _ := json.Marshal(map[string]string{"receiveUserId": "alice", "msg": text})
		return string(b)
	}
	e.expect("POST", "/p2pRoute", msg(strings.Repeat("é", 2048)), me, 200, codes.OK, nil)
	e.expect("POST", "/p2pRoute", msg(strings.Repeat("x", 4097)), me, 400, codes.BadArgument, nil)
	e.expect("POST", "/groupRoute", `{"msg":"`+strings.Repeat("x", 4097)+`"}`, me, 400, codes.BadArgument, nil)
	e.expect("POST", "/api/push", `{"to":["alice"],"msg":"`+strings.Repeat("x", 4097)+`"}`, asPush, 400, codes.BadArgument, nil)
	e.expect("POST", "/p2pRoute", msg(strings.Repeat("x", 64<<10)), me, 413, codes.TooLarge, nil)
	// /api/push takes up to 1 MiB: 10,000 recipients must fit.
	to := make([]string, 10000)
	for i := range to {
		to[i] = `"alice"`
	}
	e.expect("POST", "/api/push", `{"to":[`+strings.Join(to, ",")+`],"msg":"x"}`, asPush, 200, codes.OK, nil)
	e.expect("POST", "/api/push", `{"to":[`+strings.Join(to, ",")+`,"alice"],"msg":"x"}`, asPush, 400, codes.BadArgument, nil)
}

// oneUser is an external user system with one user.
type oneUser struct{}

func (oneUser) Name() string { return "fake" }

func (oneUser) Authenticate(_ context.Context, name, password string) (auth.Identity, error) {
	if name == "erin" && password == "directory-pw" {
		return auth.Identity{Name: name}, nil
	}
	return auth.Identity{}, auth.ErrBadCredentials
}

func TestExternalAuth(t *testing.T) {
	e := newEnv(t, func(_ *Config, r *router.Config) { r.Authenticator = oneUser{} })
	a := e.expect("POST", "/registerAccount", `{"userName":"alice","password":"password1"}`, nil, 403, codes.Forbidden, nil)
	if !strings.Contains(a.Message, "accounts are managed by fake") {
		t.Fatalf("message %q", a.Message)
	}
	e.expect("POST", "/login", `{"userName":"erin","password":"wrong-pw"}`, nil, 401, codes.BadAccount, nil)
	var l loginData
	e.expect("POST", "/login", `{"userName":"erin","password":"directory-pw"}`, nil, 200, codes.OK, &l)
	if l.UserName != "erin" || l.UserID != "1" || l.AccessToken == "" {
		t.Fatalf("login %+v", l)
	}
}

// TestResumeLimitedPerAccount: a /login with a genuine resume token takes
// from its account's bucket only, so the users behind one address come
// back together when their address's bucket is used up; a forged one is
// an attempt of its address.
func TestResumeLimitedPerAccount(t *testing.T) {
	e := newEnv(t, func(c *Config, r *router.Config) {
		c.LoginRate, c.LoginBurst = 0.001, 3
		r.ResumeTTL = time.Hour
	})
	e.register("alice", "bob") // two attempts of 127.0.0.1
	var l loginData
	e.expect("POST", "/login", `{"userName":"alice","password":"password1"}`, nil, 200, codes.OK, &l)
	// The address's burst is used up: a password login is refused...
	e.expect("POST", "/login", `{"userName":"bob","password":"password1"}`, nil, 429, codes.RateLimited, nil)
	// ...and a genuine resume token passes, from alice's bucket (her
	// registration and login took two of its three).
	e.expect("POST", "/login", `{"resumeToken":"`+l.ResumeToken+`"}`, nil, 200, codes.OK, &l)
	e.expect("POST", "/login", `{"resumeToken":"`+l.ResumeToken+`"}`, nil, 429, codes.RateLimited, nil)
	// A forged token counts against the address.
	forged := l.ResumeToken[:len(l.ResumeToken)-2] + "xx"
	e.expect("POST", "/login", `{"resumeToken":"`+forged+`"}`, nil, 429, codes.RateLimited, nil)
}

// TestSecureAccountEndpoints: /account/password and /account/logout-others
// need the bearer; a wrong password is 403/4030; each attempt checks a
// password, so it takes from the account's /login bucket (a stolen access
// token cannot guess the password), and a change answers the caller's new
// resume token, which logs in.
func TestSecureAccountEndpoints(t *testing.T) {
	e := newEnv(t, func(c *Config, r *router.Config) {
		c.LoginRate, c.LoginBurst = 0.001, 5
		r.ResumeTTL = time.Hour
	})
	e.register("alice") // one of 127.0.0.1's and alice's five
	var l loginData
	e.expect("POST", "/login", `{"userName":"alice","password":"password1"}`, nil, 200, codes.OK, &l) // two
	e.expect("POST", "/account/password", `{"password":"password1","newPassword":"password2"}`, nil, 401, codes.Unauthorized, nil)
	e.expect("POST", "/account/logout-others", `{"password":"wrong-pw"}`, bearer(l.AccessToken), 403, codes.Forbidden, nil) // three
	var s struct {
		SessionsEnded int    `json:"sessionsEnded"`
		ResumeToken   string `json:"resumeToken"`
	}
	e.expect("POST", "/account/password", `{"password":"password1","newPassword":"password2"}`, bearer(l.AccessToken), 200, codes.OK, &s) // four
	if s.ResumeToken == "" {
		t.Fatalf("no new resume token: %+v", s)
	}
	e.expect("POST", "/login", `{"resumeToken":"`+s.ResumeToken+`"}`, nil, 200, codes.OK, &l) // five (resumes take from the account)
	e.expect("POST", "/account/logout-others", `{"password":"password2"}`, bearer(l.AccessToken), 429, codes.RateLimited, nil)
}

// TestDeleteAccountEndpoint: POST /account/delete wants the bearer and the
// password (wrong: 403/4030); then the account is gone: its bearer is
// stale, its password logs in no more, its name registers anew.
func TestDeleteAccountEndpoint(t *testing.T) {
	e := newEnv(t)
	e.register("alice")
	var l loginData
	e.expect("POST", "/login", `{"userName":"alice","password":"password1"}`, nil, 200, codes.OK, &l)
	e.expect("POST", "/account/delete", `{"password":"password1"}`, nil, 401, codes.Unauthorized, nil)
	e.expect("POST", "/account/delete", `{"password":"wrong-pw"}`, bearer(l.AccessToken), 403, codes.Forbidden, nil)
	var u struct {
		UserID   string `json:"userId"`
		UserName string `json:"userName"`
	}
	e.expect("POST", "/account/delete", `{"password":"password1"}`, bearer(l.AccessToken), 200, codes.OK, &u)
	if u.UserID != l.UserID || u.UserName != "alice" {
		t.Fatalf("answer %+v, want alice (%s)", u, l.UserID)
	}
	e.expect("POST", "/account/delete", `{"password":"password1"}`, bearer(l.AccessToken), 401, codes.Unauthorized, nil)
	e.expect("POST", "/login", `{"userName":"alice","password":"password1"}`, nil, 401, codes.BadAccount, nil)
	e.register("alice")
}
