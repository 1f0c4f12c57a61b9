package api

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

var _ AdminService = (*router.Router)(nil)

// syncBuffer is a log sink for the router's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// actions returns the "admin action" log lines as maps.
func (s *syncBuffer) actions(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "admin action" {
			out = append(out, m)
		}
	}
	return out
}

func hasKick(frames []*cimpb.Frame) bool {
	return slices.ContainsFunc(frames, func(f *cimpb.Frame) bool { return f.Type == cimpb.Type_KICK })
}

// TestAdminScopes: every /admin endpoint needs an API key with the admin
// scope: no credential and an unknown key are 401, a user's access token
// and a push-only key 403.
func TestAdminScopes(t *testing.T) {
	e := newEnv(t)
	e.register("alice")
	alice := e.online("alice")
	gw := url.PathEscape(e.gw.ID)
	for _, c := range []struct {
		h      hdr
		status int
		code   codes.Code
	}{{nil, 401, codes.Unauthorized}, {alice.bearer(), 403, codes.Forbidden}, {asPush, 403, codes.Forbidden}, {hdr{APIKeyHeader: "unknown-key-0123456789"}, 401, codes.Unauthorized}} {
		e.expect("GET", "/admin/gateways", "", c.h, c.status, c.code, nil)
		e.expect("POST", "/admin/gateways/"+gw+"/drain", "", c.h, c.status, c.code, nil)
		for _, p := range []string{"kick", "ban", "unban", "password"} {
			e.expect("POST", "/admin/users/alice/"+p, "", c.h, c.status, c.code, nil)
		}
		e.expect("DELETE", "/admin/users/alice", "", c.h, c.status, c.code, nil)
	}
	// Nothing happened to alice.
	if hasKick(e.gw.Frames(alice.UserID)) {
		t.Fatal("a refused request kicked alice")
	}
	e.expect("POST", "/login", `{"userName":"alice","password":"password1"}`, nil, 200, codes.OK, nil)
}

// TestAdminActions: the admin's actions on users through the API, each
// logged with the acting key's name.
func TestAdminActions(t *testing.T) {
	logs := &syncBuffer{}
	e := newEnv(t, func(_ *Config, r *router.Config) { r.Logger = slog.New(slog.NewJSONHandler(logs, nil)) })
	e.register("alice", "bob", "carol")
	alice, bob := e.online("alice"), e.online("bob")

	// Gateways with the users the route has on each.
	var gws []gatewayJSON
	e.expect("GET", "/admin/gateways", "", asAdmin, 200, codes.OK, &gws)
	if len(gws) != 1 || gws[0].ID != e.gw.ID || gws[0].Users != 2 || gws[0].HTTPPort == 0 || gws[0].Connections != 0 || gws[0].Error != "" {
		t.Fatalf("gateways %+v", gws)
	}

	// Kick: the connection gets a KICK, the user is offline.
	var kicked adminUserJSON
	e.expect("POST", "/admin/users/alice/kick", "", asAdmin, 200, codes.OK, &kicked)
	if kicked.UserID != alice.UserID || kicked.UserName != "alice" || kicked.Kicked == nil || *kicked.Kicked != 1 {
		t.Fatalf("kick answered %+v", kicked)
	}
	if !hasKick(e.gw.Frames(alice.UserID)) {
		t.Fatal("kicked user's connection got no KICK")
	}
	var online []struct{ UserID string }
	e.expect("GET", "/onlineUser", "", asAdmin, 200, codes.OK, &online)
	if len(online) != 1 || online[0].UserID != bob.UserID {
		t.Fatalf("online after the kick: %+v", online)
	}
	e.expect("POST", "/admin/users/nobody/kick", "", asAdmin, 401, codes.BadAccount, nil)
	e.expect("POST", "/admin/users/alice/kick?device=fridge", "", asAdmin, 400, codes.BadArgument, nil)

	// Ban: kicked at once, no login, no session confirmed with a token
	// handed out before; unban lets it in again.
	e.expect("POST", "/admin/users/bob/ban", `{"until":"yesterday"}`, asAdmin, 400, codes.BadArgument, nil)
	e.expect("POST", "/admin/users/bob/ban", `{"until":"2001-01-01T00:00:00Z"}`, asAdmin, 400, codes.BadArgument, nil)
	var l loginData
	e.expect("POST", "/login", `{"userName":"bob","password":"password1"}`, nil, 200, codes.OK, &l) // pending, replaces bob's session
	var ban banJSON
	e.expect("POST", "/admin/users/"+bob.UserID+"/ban", `{"reason":"spam","until":"2999-01-01T00:00:00Z"}`, asAdmin, 200, codes.OK, &ban)
	if ban.UserID != bob.UserID || ban.Reason != "spam" || ban.By != "ops" || ban.Until == 0 || ban.At == 0 {
		t.Fatalf("ban answered %+v", ban)
	}
	a := e.expect("POST", "/login", `{"userName":"bob","password":"password1"}`, nil, 403, codes.Forbidden, nil)
	if !strings.Contains(a.Message, "banned") || !strings.Contains(a.Message, "spam") {
		t.Fatalf("banned login's message %q names neither the ban nor its reason", a.Message)
	}
	e.expectInternal("/internal/online", `{"userId":"`+l.UserID+`","sessionId":"`+l.SessionID+`","gatewayId":"`+l.Server.ID+`"}`, 409, codes.Unauthorized)
	var unban adminUserJSON
	e.expect("POST", "/admin/users/bob/unban", "", asAdmin, 200, codes.OK, &unban)
	if unban.WasBanned == nil || !*unban.WasBanned {
		t.Fatalf("unban answered %+v", unban)
	}
	e.expect("POST", "/admin/users/bob/unban", "", asAdmin, 200, codes.OK, &unban)
	if *unban.WasBanned {
		t.Fatal("second unban found a ban")
	}
	bob = e.online("bob")

	// Password reset: given, then generated; sessions end, the old
	// password is refused.
	e.expect("POST", "/admin/users/bob/password", `{"password":"short"}`, asAdmin, 400, codes.BadArgument, nil)
	var pw adminUserJSON
	e.expect("POST", "/admin/users/bob/password", `{"password":"newpassword"}`, asAdmin, 200, codes.OK, &pw)
	if pw.Password != "" {
		t.Fatalf("a given password was answered: %+v", pw)
	}
	if !hasKick(e.gw.Frames(bob.UserID)) {
		t.Fatal("password reset kicked no session")
	}
	e.expect("POST", "/login", `{"userName":"bob","password":"password1"}`, nil, 401, codes.BadAccount, nil)
	e.expect("POST", "/login", `{"userName":"bob","password":"newpassword"}`, nil, 200, codes.OK, nil)
	e.expect("POST", "/admin/users/bob/password", "", asAdmin, 200, codes.OK, &pw)
	if len(pw.Password) < 16 {
		t.Fatalf("generated password %q", pw.Password)
	}
	e.expect("POST", "/login", `{"userName":"bob","password":"`+pw.Password+`"}`, nil, 200, codes.OK, nil)

	// Delete: the name can be registered again, as a new account.
	carol := e.online("carol")
	var del adminUserJSON
	e.expect("DELETE", "/admin/users/carol", "", asAdmin, 200, codes.OK, &del)
	if del.UserID != carol.UserID {
		t.Fatalf("delete answered %+v", del)
	}
	if !hasKick(e.gw.Frames(carol.UserID)) {
		t.Fatal("deleted user's connection got no KICK")
	}
	e.expect("POST", "/login", `{"userName":"carol","password":"password1"}`, nil, 401, codes.BadAccount, nil)
	e.expect("DELETE", "/admin/users/carol", "", asAdmin, 401, codes.BadAccount, nil)
	e.register("carol")
	if again := e.online("carol"); again.UserID == carol.UserID {
		t.Fatal("re-registered carol has the deleted id")
	}

	// Drain: the fake gateway has no drain endpoint; an unknown one is 404.
	e.expect("POST", "/admin/gateways/"+url.PathEscape(e.gw.ID)+"/drain", "", asAdmin, 503, codes.Unavailable, nil)
	e.expect("POST", "/admin/gateways/127.0.0.1:1:2/drain", "", asAdmin, 404, codes.BadArgument, nil)
	e.expect("POST", "/admin/gateways/nonsense/drain", "", asAdmin, 400, codes.BadArgument, nil)

	// Every action was logged with who did it.
	var got []string
	for _, m := range logs.actions(t) {
		if m["by"] != "ops" {
			t.Errorf("admin action logged by %v, want ops: %v", m["by"], m)
		}
		got = append(got, m["action"].(string)+" "+m["target"].(string))
	}
	want := []string{"kick " + alice.UserID, "ban " + bob.UserID, "unban " + bob.UserID, "unban " + bob.UserID,
		"password " + bob.UserID, "password " + bob.UserID, "delete " + carol.UserID}
	if !slices.Equal(got, want) {
		t.Fatalf("logged actions %v, want %v", got, want)
	}
}

// TestAdminSchemas: the schemas of the /admin answers and requests list
// exactly their Go types' JSON fields (as TestOpenAPISchemasMatchGoTypes
// does for the others).
func TestAdminSchemas(t *testing.T) {
	doc := specDoc(t)
	for name, v := range map[string]any{
		"AdminGateway":         gatewayJSON{},
		"AdminUser":            adminUserJSON{},
		"Ban":                  banJSON{},
		"BanRequest":           banRequestJSON{},
		"PasswordResetRequest": passwordRequestJSON{},
		"DrainResult":          drainJSON{},
	} {
		ref := doc.Components.Schemas[name]
		if ref == nil {
			t.Errorf("openapi.json has no schema %s", name)
			continue
		}
		fields, always := jsonFields(t, reflect.TypeOf(v))
		if props := slices.Sorted(maps.Keys(ref.Value.Properties)); !slices.Equal(props, fields) {
			t.Errorf("schema %s has properties %v; Go type %T has JSON fields %v", name, props, v, fields)
		}
		if req := slices.Sorted(slices.Values(ref.Value.Required)); !slices.Equal(req, always) {
			t.Errorf("schema %s requires %v; Go type %T always writes %v", name, req, v, always)
		}
	}
}
