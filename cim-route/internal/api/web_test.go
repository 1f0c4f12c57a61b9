package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/codes"
)

// /login hands a browser the gateway's WebSocket URL, as the gateway
// published it (ZooKeeper node data, through router.Config.GatewayInfo).
func TestLoginGivesWebSocketURL(t *testing.T) {
	e := newEnv(t, func(_ *Config, r *router.Config) {
		r.GatewayInfo = func(id string) contract.GatewayInfo {
			return contract.GatewayInfo{WSURL: "wss://" + id + "/ws"}
		}
	})
	e.register("alice")
	var l loginData
	e.expect("POST", "/login", `{"userName":"alice","password":"password1"}`, nil, 200, codes.OK, &l)
	if want := "wss://" + l.Server.ID + "/ws"; l.Server.WSURL != want {
		t.Fatalf("wsUrl %q, want %q", l.Server.WSURL, want)
	}
	// A gateway without a WebSocket listener: no wsUrl at all.
	e2 := newEnv(t)
	e2.register("bob")
	_, a, _ := e2.call("POST", e2.url, "/login", `{"userName":"bob","password":"password1"}`, nil)
	if strings.Contains(string(a.Data), "wsUrl") {
		t.Fatalf("login answer %s names a wsUrl", a.Data)
	}
}

// CORS is off by default; with --cors-origins only those origins' pages
// may read answers, and their preflights are answered.
func TestCORS(t *testing.T) {
	preflight := func(e *env, origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodOptions, e.url+"/login", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	get := func(e *env, origin string) http.Header {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.url+"/healthz", nil)
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header
	}

	off := newEnv(t)
	if h := get(off, "https://evil.example"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("default: CORS header %q", h.Get("Access-Control-Allow-Origin"))
	}
	if r := preflight(off, "https://evil.example"); r.StatusCode == http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("default: preflight answered %d %v", r.StatusCode, r.Header)
	}

	on := newEnv(t, func(c *Config, _ *router.Config) { c.CORSOrigins = []string{"https://chat.example.com"} })
	if h := get(on, "https://chat.example.com"); h.Get("Access-Control-Allow-Origin") != "https://chat.example.com" {
		t.Fatalf("allowed origin: headers %v", h)
	}
	if h := get(on, "https://evil.example"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("other origin: CORS header %q", h.Get("Access-Control-Allow-Origin"))
	}
	r := preflight(on, "https://chat.example.com")
	if r.StatusCode != http.StatusNoContent || !strings.Contains(r.Header.Get("Access-Control-Allow-Headers"), "Authorization") ||
		!strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight: %d %v", r.StatusCode, r.Header)
	}
	if r := preflight(on, "https://evil.example"); r.StatusCode == http.StatusNoContent {
		t.Fatal("preflight of another origin answered")
	}
}

// The public listener serves the chat page at / and the JavaScript client
// beside it; the internal listener does not.
func TestChatPageServed(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/", "/web/gocim.js"} {
		resp, err := http.Get(e.url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") == "" {
			t.Fatalf("GET %s: %d %v", p, resp.StatusCode, resp.Header)
		}
	}
	resp, err := http.Get(e.internal + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("internal listener GET /: %d, want 404", resp.StatusCode)
	}
}
