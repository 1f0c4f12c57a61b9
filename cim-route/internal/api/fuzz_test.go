package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/apikey"
	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/files"
	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
	"github.com/gocim/gocim/proto/token"
)

// fakeService answers like the router without storage: it rejects what
// the router would reject for missing fields and accepts the rest.
type fakeService struct{}

func need(fields ...string) error {
	for _, f := range fields {
		if f == "" {
			return fmt.Errorf("%w: a field is missing", errs.ErrBadArgument)
		}
	}
	return nil
}

func (fakeService) Register(_ context.Context, name, password string) (router.User, error) {
	return router.User{ID: "1", Name: name}, need(name, password)
}

func (fakeService) Login(_ context.Context, req router.LoginRequest) (router.Session, error) {
	if req.UserID == "" && req.UserName == "" {
		return router.Session{}, fmt.Errorf("%w: userName or userId is required", errs.ErrBadArgument)
	}
	if req.Password != "password1" {
		return router.Session{}, fmt.Errorf("%w: wrong user or password", errs.ErrBadAccount)
	}
	return router.Session{UserID: "1", UserName: "alice", SessionID: "s1", Token: "t", AccessToken: "a",
		Gateway: contract.GatewayAddr{ID: "127.0.0.1:1:2", Host: "127.0.0.1", TCPPort: 1, HTTPPort: 2}}, nil
}

func (fakeService) CheckSession(context.Context, string, string) error { return nil }

func (fakeService) Delay(_ context.Context, from, to, text string, d time.Duration) (router.DelayedMsg, error) {
	return router.DelayedMsg{ID: "1", Due: time.UnixMilli(1)}, need(from, to, text)
}

func (fakeService) P2P(_ context.Context, from, to, text string) (string, error) {
	return "m1", need(from, to, text)
}

func (fakeService) Broadcast(_ context.Context, from, text string) (string, int, error) {
	return "m1", 0, need(from, text)
}

func (fakeService) Push(_ context.Context, req router.PushRequest) (router.PushResult, error) {
	if req.Group != "" {
		if req.All || len(req.To) > 0 {
			return router.PushResult{}, fmt.Errorf("%w: one of to, group and all", errs.ErrBadArgument)
		}
		return router.PushResult{MsgIDs: map[string]string{}, MsgID: "m1"}, need(req.Text)
	}
	if req.All == (len(req.To) > 0) {
		return router.PushResult{}, fmt.Errorf("%w: to or all", errs.ErrBadArgument)
	}
	res := router.PushResult{MsgIDs: map[string]string{}}
	for _, to := range req.To {
		res.MsgIDs[to] = "m1"
	}
	return res, need(req.Text)
}

func (fakeService) OnlineUsers(context.Context, router.Page) ([]router.User, error) {
	return nil, nil
}
func (fakeService) Presence(context.Context, string, []string) ([]router.PresenceState, error) {
	return nil, nil
}

func (fakeService) Logoff(_ context.Context, uid, _ string) error { return need(uid) }
func (fakeService) ChangePassword(_ context.Context, uid, sid, current, next string) (router.Secured, error) {
	return router.Secured{}, need(uid, sid, current, next)
}
func (fakeService) Block(_ context.Context, uid, user string) (router.User, error) {
	return router.User{ID: "2", Name: user}, need(uid, user)
}
func (fakeService) Unblock(_ context.Context, uid, user string) (router.User, error) {
	return router.User{ID: "2", Name: user}, need(uid, user)
}
func (fakeService) Blocked(_ context.Context, uid string) ([]router.User, error) {
	return nil, need(uid)
}
func (fakeService) Mute(_ context.Context, uid, user, gid string, d time.Duration) (router.Mute, error) {
	return router.Mute{User: router.User{ID: user}, Group: gid}, need(uid, user+gid)
}
func (fakeService) Unmute(_ context.Context, uid, user, gid string) (router.Mute, error) {
	return router.Mute{User: router.User{ID: user}, Group: gid}, need(uid, user+gid)
}
func (fakeService) Muted(_ context.Context, uid string) ([]router.Mute, error) {
	return nil, need(uid)
}
func (fakeService) DeleteAccount(_ context.Context, uid, sid, password string) (router.User, error) {
	return router.User{ID: uid, Name: "alice"}, need(uid, sid, password)
}
func (fakeService) LogoutOthers(_ context.Context, uid, sid, password string) (router.Secured, error) {
	return router.Secured{}, need(uid, sid, password)
}

func (fakeService) SessionOnline(_ context.Context, s contract.Session) error {
	uid, sid, gw := s.UserID, s.SessionID, s.GatewayID
	return need(uid, sid, gw)
}

func (fakeService) SessionOffline(_ context.Context, s contract.Session) error {
	return need(s.UserID, s.SessionID)
}

func (fakeService) Uplink(context.Context, *cimpb.UplinkBatch) (*cimpb.PushBatch, error) {
	return &cimpb.PushBatch{}, nil
}

func (fakeService) Health(context.Context) (int, error) { return 1, nil }

func (fakeService) History(context.Context, router.HistoryQuery) (router.HistoryPage, error) {
	return router.HistoryPage{}, nil
}

func (fakeService) DeleteHistory(_ context.Context, uid string, msgIDs []string) error {
	return need(append([]string{uid}, msgIDs...)...)
}

func (fakeService) Upload(context.Context, string, string, string, string, int64, io.Reader) (files.Info, error) {
	return files.Info{}, nil
}

func (fakeService) LimitKey(_ context.Context, uid, name string) string { return uid + "/" + name }

func (fakeService) FileFetched(string, files.Info) {}

func (fakeService) OpenFile(string) (files.File, files.Info, time.Time, error) {
	return nil, files.Info{}, time.Time{}, errs.ErrNotFound
}

func (fakeService) CreateGroup(_ context.Context, uid, name string, open bool) (router.Group, error) {
	return router.Group{ID: "1", Name: name, Owner: uid, Open: open, Members: 1}, need(uid, name)
}

func (fakeService) Groups(_ context.Context, uid string) ([]router.Group, error) {
	return nil, need(uid)
}

func (fakeService) Group(_ context.Context, uid, gid string) (router.Group, error) {
	return router.Group{ID: gid}, need(uid, gid)
}

func (fakeService) GroupMembers(_ context.Context, uid, gid string, _ router.Page) ([]router.User, error) {
	return nil, need(uid, gid)
}

func (fakeService) JoinGroup(_ context.Context, uid, gid string) (router.Group, error) {
	return router.Group{ID: gid}, need(uid, gid)
}

func (fakeService) InviteToGroup(_ context.Context, uid, gid string, users []string) ([]string, error) {
	if len(users) == 0 {
		return nil, need("")
	}
	return users, need(append([]string{uid, gid}, users...)...)
}

func (fakeService) LeaveGroup(_ context.Context, uid, gid string) error { return need(uid, gid) }

func (fakeService) KickFromGroup(_ context.Context, uid, gid, user string) error {
	return need(uid, gid, user)
}

func (fakeService) RenameGroup(_ context.Context, uid, gid, name string) (router.Group, error) {
	return router.Group{ID: gid, Name: name}, need(uid, gid, name)
}

func (fakeService) TransferGroup(_ context.Context, uid, gid, user string) (router.Group, error) {
	return router.Group{ID: gid, Owner: user}, need(uid, gid, user)
}

func (fakeService) DissolveGroup(_ context.Context, uid, gid string) error { return need(uid, gid) }

func (fakeService) GroupReceipts(_ context.Context, uid string, ids []string) (map[string]router.ReceiptCount, error) {
	out := map[string]router.ReceiptCount{}
	for _, id := range ids {
		out[id] = router.ReceiptCount{}
	}
	return out, need(uid)
}

func (fakeService) CreateDevice(_ context.Context, name string) (router.DeviceSecret, error) {
	return router.DeviceSecret{DeviceInfo: router.DeviceInfo{ID: "7", Name: name}, Secret: "s"}, need(name)
}

func (fakeService) Devices(context.Context, string, int) ([]router.DeviceInfo, string, error) {
	return nil, "", nil
}

func (fakeService) Device(_ context.Context, ref string) (router.DeviceInfo, error) {
	return router.DeviceInfo{ID: ref}, need(ref)
}

func (fakeService) RevokeDevice(_ context.Context, ref string) error { return need(ref) }

func (fakeService) RotateDeviceSecret(_ context.Context, ref string) (router.DeviceSecret, error) {
	return router.DeviceSecret{DeviceInfo: router.DeviceInfo{ID: ref}, Secret: "s"}, need(ref)
}

func (fakeService) DeviceLogin(_ context.Context, req contract.DeviceLogin) (contract.DeviceToken, error) {
	return contract.DeviceToken{UserID: "7", SessionID: "s"}, need(req.Device, req.Secret, req.GatewayID)
}

// maxFuzzBody is the longest body FuzzJSONHandlers tries.
const maxFuzzBody = 128

// FuzzJSONHandlers sends arbitrary bodies to the JSON endpoints (the first
// input picks one), each with a credential it accepts so the body is
// decoded: no panic, no 5xx, and always the JSON envelope with a code.
// Bodies are kept short (maxFuzzBody) and far below the body limit: JSON's
// structure shows in short inputs, while minimizing a long interesting
// input (quadratic in its length) would stall a 15-second run; the limit
// has its own tests. Run it with
//
//	go test -run '^$' -fuzz FuzzJSONHandlers -fuzztime 15s ./internal/api/
func FuzzJSONHandlers(f *testing.F) {
	keys, err := apikey.Parse("app:"+pushKey+":push,ops:"+adminKey+":admin", 16)
	if err != nil {
		f.Fatal(err)
	}
	cfg := Config{Service: fakeService{}, Logger: quiet, TokenKeys: tokenKeys, APIKeys: keys,
		InternalSecrets: []string{internalSecret}, MaxBody: 1 << 20}
	public, err := NewPublic(cfg)
	if err != nil {
		f.Fatal(err)
	}
	internal := NewInternal(cfg)
	access, err := token.Sign(tokenKeys[0], token.Claims{UserID: "1", UserName: "alice", SessionID: "s1",
		ExpiresAt: time.Now().Add(time.Hour).Unix(), Audience: token.AudienceAPI})
	if err != nil {
		f.Fatal(err)
	}
	user := hdr{"Authorization": "Bearer " + access}
	endpoints := []struct {
		h    http.Handler
		path string
		cred hdr
	}{
		{public, "/registerAccount", nil},
		{public, "/login", nil},
		{public, "/p2pRoute", user},
		{public, "/p2pRoute", asPush},
		{public, "/groupRoute", user},
		{public, "/groupRoute", asPush},
		{public, "/offLine", user},
		{public, "/offLine", asAdmin},
		{public, "/api/push", asPush},
		{internal, "/internal/online", asGateway},
		{internal, "/internal/offline", asGateway},
		{public, "/groups", user},
		{public, "/groups/7/invite", user},
		{public, "/groups/7/kick", user},
		{public, "/groups/7/rename", user},
		{public, "/groups/7/join", user},
		{public, "/delay", user},
		{public, "/history/delete", user},
		{public, "/devices", asAdmin},
		{public, "/devices/7/secret", asAdmin},
		{internal, contract.PathDeviceLogin, asGateway},
		{public, "/account/password", user},
		{public, "/account/logout-others", user},
		{public, "/blocks", user},
		{public, "/account/delete", user},
	}

	// Each endpoint with a body it accepts, then broken and odd ones spread
	// over the endpoints (a short corpus: gathering its coverage is part of
	// every run's time).
	valid := []string{
		`{"userName":"alice","password":"password1"}`, `{"userId":12,"password":"password1"}`,
		`{"userId":"1","receiveUserId":"bob","msg":"hi"}`, `{"userId":1,"receiveUserId":2,"msg":"hi"}`,
		`{"userId":"1","msg":"all"}`, `{"userId":"1","msg":"all"}`, `{"userId":"1","sessionId":"s1"}`,
		`{"userId":"2"}`, `{"to":["alice",2],"from":"bob","msg":"x"}`,
		`{"userId":"1","sessionId":"s","gatewayId":"g","reassert":true}`, `{"userId":"1","sessionId":"s","gatewayId":"g"}`,
		`{"name":"team","open":true}`, `{"users":["bob",3]}`, `{"userId":"bob"}`, `{"name":"new name"}`, ``,
		`{"to":"bob","msg":"later","delaySeconds":60}`,
		`{"msgIds":["0123456789abcdef0123456789abcdef"]}`,
		`{"name":"sensor-1"}`, ``,
		`{"device":"sensor-1","secret":"s","gatewayId":"127.0.0.1:9000:9100","clean":true}`,
		`{"password":"password1","newPassword":"password2"}`,
		`{"password":"password1"}`,
		`{"user":"bob"}`,
		`{"password":"password1"}`,
	}
	for i, seed := range valid {
		f.Add(uint8(i), []byte(seed))
	}
	for i, seed := range []string{
		``, `{}`, `null`, `[]`, `"x"`, `1`, `{"userName":`, `{"userId":-1}`, `{"userId":1e9}`, `{"userId":true}`,
		`{"userId":null,"sessionId":null}`, `{"receiveUserId":2,"msg":"\u00e9\ud800"}`, `{"to":"alice"}`,
		`{"all":true,"msg":"x","from":"bob"}`, `{"to":[null,{}],"all":"yes"}`, `{"reassert":"x"}`,
		`{"a":{"b":{"c":[[[[]]]]}}}`, "{\"msg\":\"\xff\xfe\"}", `{"userId":"1"}{"userId":"2"}`,
		`{"userId":"99999999999999999999999","password":"p"}`, `  {"userName" : "alice" , "password" : "password1" }  `,
		`{"name":null,"open":"yes"}`, `{"users":"bob"}`, `{"users":[true]}`, `{"to":["a"],"group":7,"msg":"x"}`, `{"group":"7","msg":"x"}`,
	} {
		f.Add(uint8(i%len(endpoints)), []byte(seed))
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		if len(body) > maxFuzzBody {
			t.Skip()
		}
		ep := endpoints[int(which)%len(endpoints)]
		req := httptest.NewRequest("POST", ep.path, bytes.NewReader(body))
		req.RemoteAddr = "192.0.2.1:1234"
		req.Header.Set("Content-Type", "application/json")
		for k, v := range ep.cred {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		ep.h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q: HTTP %d %s", ep.path, body, rec.Code, rec.Body)
		}
		var env struct {
			Code    *codes.Code     `json:"code"`
			Message string          `json:"message"`
			Data    json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Code == nil || *env.Code == 0 {
			t.Fatalf("%s %q: answer %q is not the JSON envelope with a code", ep.path, body, rec.Body)
		}
		if (*env.Code == codes.OK) != (rec.Code == http.StatusOK) {
			t.Fatalf("%s %q: HTTP %d with code %d", ep.path, body, rec.Code, *env.Code)
		}
	})
}
