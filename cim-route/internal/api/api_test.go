package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-route/internal/apikey"
	"github.com/gocim/gocim/cim-route/internal/balance"
	"github.com/gocim/gocim/cim-route/internal/fanout"
	"github.com/gocim/gocim/cim-route/internal/files"
	"github.com/gocim/gocim/cim-route/internal/gatewaytest"
	"github.com/gocim/gocim/cim-route/internal/memstore"
	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/cim-route/internal/store"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

var quiet = slog.New(slog.DiscardHandler)

func TestMain(m *testing.M) {
	store.SetRedisLogger(quiet)
	// go-redis keeps redialling a Redis TestStorageDown killed for a moment
	// after its client closed.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

// Credentials of the test handlers.
const (
	internalSecret = "internal-secret-0123456789"
	oldInternal    = "older-internal-secret-0123"
	pushKey        = "push-key-secret-0123456789"
	adminKey       = "admin-key-secret-0123456789"
)

var tokenKeys = [][]byte{[]byte("test-secret-0123456789")}

type env struct {
	t        *testing.T
	url      string // public
	internal string // internal
	redis    *testenv.Redis
	bal      *balance.Balancer
	gw       *gatewaytest.Gateway
	r        *router.Router
}

// newEnv runs both handlers over a real router, Redis and a fake gateway
// that requires the internal secret. Login rate limits are off unless an
// option sets them.
func newEnv(t *testing.T, opts ...func(*Config, *router.Config)) *env {
	t.Helper()
	e := &env{t: t, gw: gatewaytest.Start(t, gatewaytest.WithSecret(internalSecret))}
	// The handlers' tests run on the in-memory store; only the one about
	// storage going down needs a Redis to stop (CIM_API_STORE=redis: all).
	var st router.Store = memstore.New()
	if t.Name() == "TestStorageDown" || os.Getenv("CIM_API_STORE") == "redis" {
		e.redis = testenv.StartRedis(t)
		rdb := store.NewClient(store.ClientConfig{Addrs: []string{e.redis.Addr}})
		t.Cleanup(func() { rdb.Close() })
		st = store.New(rdb, "cim:")
	}
	e.bal = balance.New(balance.Config{Logger: quiet})
	e.bal.SetGateways([]string{e.gw.ID})
	push := fanout.New(fanout.Config{Timeout: 2 * time.Second, Secret: internalSecret, Logger: quiet})
	t.Cleanup(push.Close)
	keys, err := apikey.Parse("app:"+pushKey+":push,ops:"+adminKey+":admin", 16)
	if err != nil {
		t.Fatal(err)
	}
	rcfg := router.Config{
		Store: st, Gateways: e.bal, Pusher: push, Files: files.New(t.TempDir(), 1024),
		TokenKeys: tokenKeys, BcryptCost: bcrypt.MinCost, Logger: quiet,
	}
	cfg := Config{Logger: quiet, MaxBody: 1024, MaxUpload: 1024, TokenKeys: tokenKeys, APIKeys: keys,
		InternalSecrets: []string{internalSecret, oldInternal}}
	for _, o := range opts {
		o(&cfg, &rcfg)
	}
	if e.r, err = router.New(rcfg); err != nil {
		t.Fatal(err)
	}
	cfg.Service = e.r
	pub, err := NewPublic(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(pub)
	t.Cleanup(srv.Close)
	isrv := httptest.NewServer(NewInternal(cfg))
	t.Cleanup(isrv.Close)
	e.url, e.internal = srv.URL, isrv.URL
	return e
}

type answer struct {
	Code    codes.Code      `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// hdr are request headers: a credential.
type hdr map[string]string

func bearer(tok string) hdr { return hdr{"Authorization": "Bearer " + tok} }

var (
	asPush    = hdr{APIKeyHeader: pushKey}
	asAdmin   = hdr{APIKeyHeader: adminKey}
	asGateway = hdr{contract.Header: internalSecret}
)

// call sends a request to base+path and decodes the JSON envelope.
func (e *env) call(method, base, path, body string, h hdr) (int, answer, http.Header) {
	e.t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		e.t.Fatalf("%s %s: answer is not the JSON envelope: %q", method, path, raw)
	}
	if resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		e.t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, a, resp.Header
}

// check compares status and code, and decodes data into v when given.
func (e *env) check(method, base, path, body string, h hdr, status int, code codes.Code, v any) answer {
	e.t.Helper()
	st, a, _ := e.call(method, base, path, body, h)
	if st != status || a.Code != code {
		e.t.Fatalf("%s %s %s: HTTP %d code %d (%q), want %d/%d", method, path, body, st, a.Code, a.Message, status, code)
	}
	if code != codes.OK && a.Message == "" {
		e.t.Fatalf("%s %s: error without a message", method, path)
	}
	if v != nil {
		if err := json.Unmarshal(a.Data, v); err != nil {
			e.t.Fatalf("%s %s: data %s: %v", method, path, a.Data, err)
		}
	}
	return a
}

// expect calls the public handler.
func (e *env) expect(method, path, body string, h hdr, status int, code codes.Code, v any) answer {
	e.t.Helper()
	return e.check(method, e.url, path, body, h, status, code, v)
}

// expectInternal calls the internal handler as a gateway.
func (e *env) expectInternal(path, body string, status int, code codes.Code) answer {
	e.t.Helper()
	return e.check("POST", e.internal, path, body, asGateway, status, code, nil)
}

type loginData struct {
	UserID          string `json:"userId"`
	UserName        string `json:"userName"`
	SessionID       string `json:"sessionId"`
	Token           string `json:"token"`
	ExpiresAt       int64  `json:"expiresAt"`
	AccessToken     string `json:"accessToken"`
	AccessExpiresAt int64  `json:"accessExpiresAt"`
	ResumeToken     string `json:"resumeToken"`
	Server          struct {
		ID       string `json:"id"`
		Host     string `json:"host"`
		TCPPort  int    `json:"tcpPort"`
		HTTPPort int    `json:"httpPort"`
		WSURL    string `json:"wsUrl"`
	} `json:"server"`
}

func (l loginData) bearer() hdr { return bearer(l.AccessToken) }

// register creates accounts.
func (e *env) register(names ...string) {
	e.t.Helper()
	for _, n := range names {
		e.expect("POST", "/registerAccount", `{"userName":"`+n+`","password":"password1"}`, nil, 200, codes.OK, nil)
	}
}

// online logs name in and plays the gateway: /internal/online and connect.
func (e *env) online(name string) loginData {
	e.t.Helper()
	var l loginData
	e.expect("POST", "/login", `{"userName":"`+name+`","password":"password1"}`, nil, 200, codes.OK, &l)
	e.expectInternal("/internal/online", `{"userId":"`+l.UserID+`","sessionId":"`+l.SessionID+`","gatewayId":"`+l.Server.ID+`"}`, 200, codes.OK)
	e.gw.Connect(l.UserID, l.SessionID)
	return l
}

// uplink posts a protobuf batch to the internal handler with the given
// credential headers.
func (e *env) uplink(b *cimpb.UplinkBatch, h hdr) (int, *cimpb.PushBatch) {
	e.t.Helper()
	body, _ := proto.Marshal(b)
	req, _ := http.NewRequest("POST", e.internal+"/internal/uplink", bytes.NewReader(body))
	req.Header.Set("Content-Type", contract.ProtobufType)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	// The batch's pushes run after the answer: wait for them, so that
	// what the fake gateway got can be checked.
	if err := e.r.WaitDeliveries(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	var out cimpb.PushBatch
	if resp.StatusCode == 200 {
		if resp.Header.Get("Content-Type") != contract.ProtobufType || proto.Unmarshal(raw, &out) != nil {
			e.t.Fatalf("uplink: HTTP %d %q", resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, &out
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	e.register("alice")
	alice := e.online("alice")
	me := alice.bearer()
	tests := []struct {
		method, path, body string
		h                  hdr
		status             int
		code               codes.Code
	}{
		{"POST", "/registerAccount", `{"userName":`, nil, 400, codes.BadArgument},
		{"POST", "/registerAccount", ``, nil, 400, codes.BadArgument},
		{"POST", "/registerAccount", `[1,2]`, nil, 400, codes.BadArgument},
		{"POST", "/registerAccount", `{"userName":"bob"}`, nil, 400, codes.BadArgument},
		{"POST", "/registerAccount", `{"password":"password1"}`, nil, 400, codes.BadArgument},
		{"POST", "/registerAccount", `{"userName":"7up","password":"password1"}`, nil, 400, codes.BadArgument},
		{"POST", "/registerAccount", `{"userName":"bob","password":"` + strings.Repeat("x", 2000) + `"}`, nil, 413, codes.TooLarge},
		{"POST", "/registerAccount", `{"userName":"bob","password":"password1","unknown":[1]}`, nil, 200, codes.OK},
		{"POST", "/login", `{"password":"password1"}`, nil, 400, codes.BadArgument},
		{"POST", "/login", `{"userId":true,"password":"password1"}`, nil, 400, codes.BadArgument},
		{"POST", "/login", `{"userId":-3,"password":"password1"}`, nil, 400, codes.BadArgument},
		{"POST", "/login", `{"userName":"ghost","password":"password1"}`, nil, 401, codes.BadAccount},
		{"POST", "/p2pRoute", `{"userId":"1","msg":"x"}`, me, 400, codes.BadArgument},
		{"POST", "/p2pRoute", `{"receiveUserId":"1","msg":"x"}`, asPush, 400, codes.BadArgument},
		{"POST", "/p2pRoute", `{"receiveUserId":"1","msg":"` + strings.Repeat("x", 4097) + `"}`, me, 413, codes.TooLarge},
		{"POST", "/p2pRoute", `{"receiveUserId":"1","msg":"` + strings.Repeat("x", 900) + `"}`, me, 200, codes.OK},
		{"POST", "/p2pRoute", `{"receiveUserId":"1","msg":5}`, me, 400, codes.BadArgument},
		{"POST", "/groupRoute", `{"userId":"1"}`, me, 400, codes.BadArgument},
		{"POST", "/offLine", `{"userId":"x1"}`, asAdmin, 400, codes.BadArgument},
		{"POST", "/offLine", `{"sessionId":"s"}`, asAdmin, 400, codes.BadArgument},
		{"POST", "/offLine", `{"userId":`, me, 400, codes.BadArgument},
		{"POST", "/api/push", `{"msg":"x"}`, asPush, 400, codes.BadArgument},
		{"POST", "/api/push", `{"to":"alice","msg":"x"}`, asPush, 400, codes.BadArgument},
		{"POST", "/api/push", `{"to":["alice"],"all":true,"msg":"x"}`, asPush, 400, codes.BadArgument},
		{"GET", "/nope", ``, nil, 404, codes.BadArgument},
		{"GET", "/login", ``, nil, 405, codes.BadArgument},
	}
	for _, tt := range tests {
		e.expect(tt.method, tt.path, tt.body, tt.h, tt.status, tt.code, nil)
	}
	for _, tt := range []struct {
		path, body string
		status     int
	}{
		{"/internal/online", `{"userId":"1","sessionId":"s"}`, 400},
		{"/internal/offline", `{"sessionId":"s"}`, 400},
		{"/internal/online", `{"userId":`, 400},
	} {
		e.expectInternal(tt.path, tt.body, tt.status, codes.BadArgument)
	}
	// Not protobuf.
	if st, _ := e.uplink(nil, asGateway); st != 200 {
		t.Fatalf("empty uplink: HTTP %d", st)
	}
	req, _ := http.NewRequest("POST", e.internal+"/internal/uplink", strings.NewReader("\xff\xff\xff"))
	req.Header.Set(contract.Header, internalSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("bad protobuf: HTTP %d", resp.StatusCode)
	}
}

func TestFlow(t *testing.T) {
	e := newEnv(t)
	var u struct {
		UserID   string `json:"userId"`
		UserName string `json:"userName"`
	}
	e.expect("POST", "/registerAccount", `{"userName":"alice","password":"password1"}`, nil, 200, codes.OK, &u)
	if u.UserName != "alice" || u.UserID == "" {
		t.Fatalf("register data %+v", u)
	}
	e.expect("POST", "/registerAccount", `{"userName":"alice","password":"password2"}`, nil, 409, codes.BadAccount, nil)
	e.expect("POST", "/registerAccount", `{"userName":"bob","password":"password1"}`, nil, 200, codes.OK, nil)
	e.expect("POST", "/login", `{"userName":"alice","password":"nope-nope"}`, nil, 401, codes.BadAccount, nil)

	// Login by numeric id (as CIM clients send it).
	var l loginData
	e.expect("POST", "/login", `{"userId":`+u.UserID+`,"password":"password1"}`, nil, 200, codes.OK, &l)
	now := time.Now().Unix()
	if l.UserID != u.UserID || l.UserName != "alice" || l.SessionID == "" || l.Token == "" ||
		l.ExpiresAt <= now || l.Server.ID != e.gw.ID || l.Server.Host != "127.0.0.1" || l.Server.TCPPort != 1 || l.Server.HTTPPort == 0 {
		t.Fatalf("login data %+v", l)
	}
	if l.AccessToken == "" || l.AccessToken == l.Token || l.AccessExpiresAt < now+23*3600 {
		t.Fatalf("login access token %q expiring %d", l.AccessToken, l.AccessExpiresAt)
	}
	// Pending until the gateway confirms: not online yet, so the message
	// waits in the inbox. The pending session's token already works.
	e.expect("POST", "/p2pRoute", `{"userId":"`+u.UserID+`","receiveUserId":"alice","msg":"x"}`, l.bearer(), 200, codes.OK, nil)
	e.expectInternal("/internal/online", `{"userId":"`+l.UserID+`","sessionId":"wrong","gatewayId":"`+e.gw.ID+`"}`, 409, codes.Unauthorized)
	alice := e.online("alice")
	bob := e.online("bob")

	var sent struct {
		MsgID string `json:"msgId"`
	}
	e.expect("POST", "/p2pRoute", `{"receiveUserId":"alice","msg":"hi alice"}`, bob.bearer(), 200, codes.OK, &sent)
	f := e.gw.Frames(alice.UserID)
	if len(f) != 1 || f[0].Msg.MsgId != sent.MsgID || string(f[0].Msg.Body) != "hi alice" || f[0].Msg.FromName != "bob" {
		t.Fatalf("alice got %v (msg id %q)", f, sent.MsgID)
	}
	e.expect("POST", "/p2pRoute", `{"userId":"`+bob.UserID+`","receiveUserId":"nobody","msg":"x"}`, bob.bearer(), 401, codes.BadAccount, nil)
	// An application speaks for a user with a push key.
	e.expect("POST", "/p2pRoute", `{"userId":`+alice.UserID+`,"receiveUserId":"bob","msg":"via app"}`, asPush, 200, codes.OK, &sent)
	if f := e.gw.Frames(bob.UserID); len(f) != 1 || f[0].Msg.From != alice.UserID || f[0].Msg.MsgId != sent.MsgID {
		t.Fatalf("bob got %v", f)
	}

	var group struct {
		MsgID     string `json:"msgId"`
		Delivered int    `json:"delivered"`
	}
	e.expect("POST", "/groupRoute", `{"userId":`+alice.UserID+`,"msg":"all"}`, alice.bearer(), 200, codes.OK, &group)
	if group.Delivered != 1 || group.MsgID == "" {
		t.Fatalf("group data %+v", group)
	}

	var users []struct {
		UserID   string `json:"userId"`
		UserName string `json:"userName"`
	}
	for _, h := range []hdr{alice.bearer(), asAdmin} {
		e.expect("GET", "/onlineUser", ``, h, 200, codes.OK, &users)
		if len(users) != 2 || users[0].UserName != "alice" || users[1].UserName != "bob" {
			t.Fatalf("online users %+v", users)
		}
	}

	// Uplink over the wire: protobuf in, protobuf out.
	batch := &cimpb.UplinkBatch{GatewayId: e.gw.ID, Uplinks: []*cimpb.Uplink{{UserId: alice.UserID, SessionId: alice.SessionID,
		Frame: &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 9, Msg: &cimpb.Msg{ClientMsgId: "c1", To: "bob", Body: []byte("yo")}}}}}
	st, out := e.uplink(batch, asGateway)
	if st != 200 || len(out.Deliveries) != 1 || out.Deliveries[0].Frame.GetReceipt().GetClientMsgId() != "c1" || out.Deliveries[0].SessionId != alice.SessionID {
		t.Fatalf("uplink answer HTTP %d %v", st, out)
	}

	// Log off with the access token: idempotent, kicks the connection, and
	// the token is dead afterwards.
	e.expect("POST", "/offLine", ``, alice.bearer(), 200, codes.OK, nil)
	if _, ok := e.gw.Connected(alice.UserID); ok {
		t.Fatal("logged-off connection not kicked")
	}
	e.expect("POST", "/offLine", `{"userId":"`+alice.UserID+`","sessionId":"`+alice.SessionID+`"}`, alice.bearer(), 200, codes.OK, nil)
	e.expect("GET", "/onlineUser", ``, alice.bearer(), 401, codes.Unauthorized, nil)
	e.expectInternal("/internal/offline", `{"userId":"`+alice.UserID+`","sessionId":"`+alice.SessionID+`","gatewayId":"`+e.gw.ID+`"}`, 200, codes.OK)
	e.expect("POST", "/p2pRoute", `{"userId":"`+bob.UserID+`","receiveUserId":"alice","msg":"x"}`, bob.bearer(), 200, codes.OK, nil) // stored

	// An admin key logs anybody off: bob's current session.
	e.expect("POST", "/offLine", `{"userId":"`+bob.UserID+`"}`, asAdmin, 200, codes.OK, nil)
	if _, ok := e.gw.Connected(bob.UserID); ok {
		t.Fatal("admin logoff did not kick bob")
	}
	e.expect("GET", "/history", ``, bob.bearer(), 401, codes.Unauthorized, nil)

	var health struct {
		Status   string `json:"status"`
		Gateways int    `json:"gateways"`
	}
	for _, base := range []string{e.url, e.internal} {
		e.check("GET", base, "/healthz", ``, nil, 200, codes.OK, &health)
		if health.Status != "ok" || health.Gateways != 1 {
			t.Fatalf("healthz %+v", health)
		}
	}
	if e.gw.Refused() != 0 {
		t.Fatalf("the gateway refused %d pushes: the route did not send the internal secret", e.gw.Refused())
	}

	// No gateway: 7100.
	e.bal.SetGateways(nil)
	e.expect("POST", "/login", `{"userName":"alice","password":"password1"}`, nil, 503, codes.NoServer, nil)
}

func TestStorageDown(t *testing.T) {
	e := newEnv(t)
	e.register("alice")
	alice := e.online("alice")
	e.redis.Kill()
	a := e.expect("POST", "/login", `{"userName":"alice","password":"password1"}`, nil, 503, codes.Unavailable, nil)
	if !strings.Contains(a.Message, "storage unavailable") {
		t.Fatalf("message %q does not say what failed", a.Message)
	}
	e.expect("GET", "/healthz", ``, nil, 503, codes.Unavailable, nil)
	e.expect("GET", "/onlineUser", ``, asAdmin, 503, codes.Unavailable, nil)
	// A bearer whose session cannot be checked: 503, not 401 (the client
	// must not throw its token away).
	e.expect("GET", "/onlineUser", ``, alice.bearer(), 503, codes.Unavailable, nil)
	st, _ := e.uplink(&cimpb.UplinkBatch{Uplinks: []*cimpb.Uplink{{UserId: "1", Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{To: "bob"}}}}}, asGateway)
	if st != 503 {
		t.Fatalf("uplink with Redis down: HTTP %d, want 503 (so the gateway retries)", st)
	}
}

func TestPanicIsA500(t *testing.T) {
	h, err := NewPublic(Config{Service: panicky{}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	if json.NewDecoder(resp.Body).Decode(&a) != nil || resp.StatusCode != 500 || a.Code != codes.Internal {
		t.Fatalf("HTTP %d %+v", resp.StatusCode, a)
	}
}

type panicky struct{ Service }

func (panicky) Health(context.Context) (int, error) { panic("boom") }
