package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/internal/backoff"
	"github.com/gocim/gocim/proto/codes"
)

func TestAPIAgainstFakeRoute(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	api := NewAPI(route.URL+"/", nil)
	ctx := context.Background()

	u, err := api.Register(ctx, "alice", "secret1")
	if err != nil || u.UserName != "alice" || u.UserID == "" {
		t.Fatalf("Register = %+v, %v", u, err)
	}
	_, err = api.Register(ctx, "alice", "other-pw")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != codes.BadAccount || ae.HTTPStatus != http.StatusConflict {
		t.Fatalf("Register of a taken name: %v, want APIError 9100/409", err)
	}

	res, err := api.Login(ctx, u.UserID, "secret1") // by id
	if err != nil {
		t.Fatal(err)
	}
	if res.UserID != u.UserID || res.UserName != "alice" || res.SessionID == "" || res.Token == "" ||
		res.Server.ID != gw.ID || res.Server.Addr() != "127.0.0.1:"+strconv.Itoa(gw.TCPPort) || res.ExpiresAt == 0 {
		t.Errorf("Login = %+v", res)
	}
	users, err := api.OnlineUsers(ctx)
	if err != nil || len(users) != 1 || users[0] != (User{UserID: u.UserID, UserName: "alice"}) {
		t.Errorf("OnlineUsers = %+v, %v", users, err)
	}
	if err := api.Offline(ctx, u.UserID, res.SessionID); err != nil {
		t.Fatal(err)
	}
	if users, _ := api.OnlineUsers(ctx); len(users) != 0 {
		t.Errorf("OnlineUsers after offLine = %+v", users)
	}
	if _, err := api.Login(ctx, "alice", "nope-nope"); CodeOf(err) != codes.BadAccount {
		t.Errorf("Login with a bad password: %v", err)
	}
}

func TestAPIAnswers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		body     string
		wantErr  bool
		wantCode codes.Code
		check    func(t *testing.T, res LoginResult)
	}{
		{
			name: "numbers where strings are expected", status: 200,
			body: `{"code":9000,"message":"ok","data":{"userId":7,"userName":"bob","sessionId":"x1","token":"t","expiresAt":"1700000000",` +
				`"server":{"id":"","host":"10.0.0.1","tcpPort":"9000","httpPort":9100}}}`,
			check: func(t *testing.T, res LoginResult) {
				if res.UserID != "7" || res.ExpiresAt != 1700000000 || res.Server.ID != "10.0.0.1:9000:9100" || res.Server.TCPPort != 9000 {
					t.Errorf("LoginResult = %+v", res)
				}
			},
		},
		{name: "no server", status: 503, body: `{"code":7100,"message":"no server","data":null}`, wantErr: true, wantCode: codes.NoServer},
		{name: "proxy page", status: 502, body: `<html>bad gateway</html>`, wantErr: true, wantCode: 0},
		{name: "ok without gateway", status: 200, body: `{"code":9000,"message":"ok","data":{"userId":"1","token":"t"}}`, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var in map[string]string
				_ = json.NewDecoder(r.Body).Decode(&in)
				if r.URL.Path != "/login" || in["userName"] != "bob" || in["password"] != "pw" || r.Header.Get("Content-Type") != "application/json" {
					t.Errorf("request %s %v", r.URL.Path, in)
				}
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			res, err := NewAPI(srv.URL, nil).Login(context.Background(), "bob", "pw")
			if (err != nil) != tc.wantErr {
				t.Fatalf("Login: %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				var ae *APIError
				if tc.wantCode != 0 || tc.status != 200 {
					if !errors.As(err, &ae) || ae.Code != tc.wantCode || ae.HTTPStatus != tc.status {
						t.Errorf("error %#v, want APIError code %d HTTP %d", err, tc.wantCode, tc.status)
					}
				}
				return
			}
			tc.check(t, res)
		})
	}
}

// TestBackoffWindows: logins are spaced with full jitter between the
// configured bounds (package backoff tests the windows themselves), and the
// real random source stays inside them.
func TestBackoffWindows(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, time.Second
	if b := newBackoff(lo, hi); b.Min != lo || b.Max != hi || b.Jitter != backoff.Full {
		t.Fatalf("newBackoff = %+v, want full jitter over [%v, %v]", b, lo, hi)
	}
	r := newBackoff(lo, hi)
	for range 100 {
		if d := r.Next(); d < lo || d > hi {
			t.Fatalf("delay %v outside [%v, %v]", d, lo, hi)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{RouteURL: "http://127.0.0.1:8080", UserName: "alice", Password: "secret1"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"no route":      func(c *Config) { c.RouteURL = "" },
		"not http":      func(c *Config) { c.RouteURL = "tcp://x:1" },
		"no host":       func(c *Config) { c.RouteURL = "http://" },
		"no user":       func(c *Config) { c.UserName = "" },
		"no password":   func(c *Config) { c.Password = "" },
		"min above max": func(c *Config) { c.ReconnectMin, c.ReconnectMax = time.Minute, time.Second },
	} {
		c := ok
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

// TestBearerOnEveryEndpoint: the calls that act for a session carry the
// latest login's access token (the fake route refuses them without it),
// and a token whose session was replaced comes back as ErrUnauthorized
// without a new login.
func TestBearerOnEveryEndpoint(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	uid := route.AddUser("alice", "secret1")
	c := startClient(t, fastConfig(route.URL))
	gw.Accept(t)
	next(t, c, EventConnected)
	ctx := context.Background()
	want := "Bearer " + clienttest.AccessToken(uid, "s1")
	if got := "Bearer " + c.API().AccessToken(); got != want {
		t.Fatalf("access token %q, want %q", got, want)
	}
	ref := route.PutFile(clienttest.StoredFile{Name: "f.txt", ContentType: "text/plain", Data: []byte("file")})

	calls := []struct {
		endpoint string
		call     func() error
	}{
		{"/onlineUser", func() error { _, err := c.OnlineUsers(ctx); return err }},
		{"/history", func() error { _, err := c.History(ctx, HistoryQuery{}); return err }},
		{"/upload", func() error {
			_, err := c.API().Upload(ctx, "", "", "x.bin", "", strings.NewReader("abc"), 3) // the bearer alone says who
			return err
		}},
		{"/files/", func() error {
			rc, _, err := c.API().Download(ctx, ref)
			if err == nil {
				err = rc.Close()
			}
			return err
		}},
	}
	for _, tc := range calls {
		if err := tc.call(); err != nil {
			t.Errorf("%s: %v", tc.endpoint, err)
		}
		if got := route.Bearer(tc.endpoint); got != want {
			t.Errorf("%s: Authorization %q, want %q", tc.endpoint, got, want)
		}
	}

	// Another login replaces the session: its token is dead at once.
	if _, err := NewAPI(route.URL, nil).Login(ctx, "alice", "secret1"); err != nil {
		t.Fatal(err)
	}
	logins := route.Logins()
	for _, tc := range calls {
		err := tc.call()
		if !errors.Is(err, ErrUnauthorized) || CodeOf(err) != codes.Unauthorized || !strings.Contains(err.Error(), "access token refused") {
			t.Errorf("%s with a replaced session: %v, want ErrUnauthorized (4010)", tc.endpoint, err)
		}
	}
	if route.Logins() != logins {
		t.Errorf("a 401 made the client log in again (%d logins, want %d)", route.Logins(), logins)
	}
	// Logging off a replaced session is fine (9000), still with the bearer.
	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := route.Bearer("/offLine"); got != want {
		t.Errorf("/offLine: Authorization %q, want %q", got, want)
	}
	if off := route.Offlines(); len(off) != 1 || off[0] != (clienttest.OfflineCall{UserID: uid, SessionID: "s1"}) {
		t.Errorf("offLine calls %+v", off)
	}

	// An API that never logged in sends no bearer, and the route says so.
	if _, err := NewAPI(route.URL, nil).OnlineUsers(ctx); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("OnlineUsers without a login: %v, want ErrUnauthorized", err)
	}
	if got := route.Bearer("/onlineUser"); got != "" {
		t.Errorf("Authorization %q without a login", got)
	}
}

func TestLoginAccessToken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			_, _ = io.WriteString(w, `{"code":9000,"data":{"userId":"7","sessionId":"x1","token":"t","expiresAt":1,`+
				`"accessToken":"acc-7","accessExpiresAt":"1700000000","server":{"host":"10.0.0.1","tcpPort":9000,"httpPort":9100}}}`)
		case "/onlineUser":
			if r.Header.Get("Authorization") != "Bearer acc-7" {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, "no")
				return
			}
			_, _ = io.WriteString(w, `{"code":9000,"data":[]}`)
		}
	}))
	defer srv.Close()
	api := NewAPI(srv.URL, nil)
	ctx := context.Background()
	if _, err := api.OnlineUsers(ctx); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("a bare 401 before login: %v, want ErrUnauthorized", err)
	}
	res, err := api.Login(ctx, "bob", "pw")
	if err != nil || res.AccessToken != "acc-7" || res.AccessExpiresAt != 1700000000 {
		t.Fatalf("Login = %+v, %v", res, err)
	}
	if _, err := api.OnlineUsers(ctx); err != nil {
		t.Errorf("OnlineUsers after login: %v", err)
	}
	api.SetAccessToken("")
	if _, err := api.OnlineUsers(ctx); err == nil {
		t.Error("OnlineUsers after SetAccessToken(\"\") passed")
	}
}
