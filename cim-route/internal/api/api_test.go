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

	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-route/internal/balance"
	"github.com/gocim/gocim/cim-route/internal/fanout"
	"github.com/gocim/gocim/cim-route/internal/files"
	"github.com/gocim/gocim/cim-route/internal/gatewaytest"
	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/cim-route/internal/store"
	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

var quiet = slog.New(slog.DiscardHandler)

func TestMain(m *testing.M) {
	store.SetRedisLogger(quiet)
	os.Exit(m.Run())
}

type env struct {
	t     *testing.T
	url   string
	redis *testenv.Redis
	bal   *balance.Balancer
	gw    *gatewaytest.Gateway
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, redis: testenv.StartRedis(t), gw: gatewaytest.Start(t)}
	rdb := store.NewClient(store.ClientConfig{Addrs: []string{e.redis.Addr}})
	t.Cleanup(func() { rdb.Close() })
	e.bal = balance.New(balance.Config{Logger: quiet})
	e.bal.SetGateways([]string{e.gw.ID})
	push := fanout.New(fanout.Config{Timeout: 2 * time.Second, Logger: quiet})
	t.Cleanup(push.Close)
	r, err := router.New(router.Config{
		Store: store.New(rdb, "cim:"), Gateways: e.bal, Pusher: push, Files: files.New(t.TempDir(), 1024),
		TokenKeys: [][]byte{[]byte("test-secret-0123456789")}, BcryptCost: bcrypt.MinCost, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Config{Service: r, Logger: quiet, MaxBody: 1024, MaxUpload: 1024}))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

type answer struct {
	Code    codes.Code      `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

func (e *env) do(method, path, body string) (int, answer) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
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
	return resp.StatusCode, a
}

// expect checks status and code, and decodes data into v when given.
func (e *env) expect(method, path, body string, status int, code codes.Code, v any) answer {
	e.t.Helper()
	st, a := e.do(method, path, body)
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

type loginData struct {
	UserID    string `json:"userId"`
	UserName  string `json:"userName"`
	SessionID string `json:"sessionId"`
	Token     string `json:"token"`
	ExpiresAt int64  `json:"expiresAt"`
	Server    struct {
		ID       string `json:"id"`
		Host     string `json:"host"`
		TCPPort  int    `json:"tcpPort"`
		HTTPPort int    `json:"httpPort"`
	} `json:"server"`
}

// online logs name in and plays the gateway: /internal/online and connect.
func (e *env) online(name string) loginData {
	e.t.Helper()
	var l loginData
	e.expect("POST", "/login", `{"userName":"`+name+`","password":"password1"}`, 200, codes.OK, &l)
	e.expect("POST", "/internal/online", `{"userId":"`+l.UserID+`","sessionId":"`+l.SessionID+`","gatewayId":"`+l.Server.ID+`"}`, 200, codes.OK, nil)
	e.gw.Connect(l.UserID, l.SessionID)
	return l
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		method, path, body string
		status             int
		code               codes.Code
	}{
		{"POST", "/registerAccount", `{"userName":`, 400, codes.BadArgument},
		{"POST", "/registerAccount", ``, 400, codes.BadArgument},
		{"POST", "/registerAccount", `[1,2]`, 400, codes.BadArgument},
		{"POST", "/registerAccount", `{"userName":"alice"}`, 400, codes.BadArgument},
		{"POST", "/registerAccount", `{"password":"password1"}`, 400, codes.BadArgument},
		{"POST", "/registerAccount", `{"userName":"7up","password":"password1"}`, 400, codes.BadArgument},
		{"POST", "/registerAccount", `{"userName":"alice","password":"` + strings.Repeat("x", 2000) + `"}`, 413, codes.BadArgument},
		{"POST", "/login", `{"password":"password1"}`, 400, codes.BadArgument},
		{"POST", "/login", `{"userId":true,"password":"password1"}`, 400, codes.BadArgument},
		{"POST", "/login", `{"userId":-3,"password":"password1"}`, 400, codes.BadArgument},
		{"POST", "/login", `{"userName":"ghost","password":"password1"}`, 401, codes.BadAccount},
		{"POST", "/p2pRoute", `{"userId":"1","msg":"x"}`, 400, codes.BadArgument},
		{"POST", "/p2pRoute", `{"receiveUserId":"1","msg":"x"}`, 400, codes.BadArgument},
		{"POST", "/groupRoute", `{"userId":"1"}`, 400, codes.BadArgument},
		{"POST", "/offLine", `{"userId":"1"}`, 400, codes.BadArgument},
		{"POST", "/internal/online", `{"userId":"1","sessionId":"s"}`, 400, codes.BadArgument},
		{"POST", "/internal/offline", `{"sessionId":"s"}`, 400, codes.BadArgument},
		{"GET", "/nope", ``, 404, codes.BadArgument},
		{"GET", "/login", ``, 405, codes.BadArgument},
	}
	for _, tt := range tests {
		e.expect(tt.method, tt.path, tt.body, tt.status, tt.code, nil)
	}
	// Not protobuf.
	resp, err := http.Post(e.url+"/internal/uplink", ProtobufType, strings.NewReader("\xff\xff\xff"))
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
	e.expect("POST", "/registerAccount", `{"userName":"alice","password":"password1"}`, 200, codes.OK, &u)
	if u.UserName != "alice" || u.UserID == "" {
		t.Fatalf("register data %+v", u)
	}
	e.expect("POST", "/registerAccount", `{"userName":"alice","password":"password2"}`, 409, codes.BadAccount, nil)
	e.expect("POST", "/registerAccount", `{"userName":"bob","password":"password1"}`, 200, codes.OK, nil)
	e.expect("POST", "/login", `{"userName":"alice","password":"nope-nope"}`, 401, codes.BadAccount, nil)

	// Login by numeric id (as CIM clients send it).
	var l loginData
	e.expect("POST", "/login", `{"userId":`+u.UserID+`,"password":"password1"}`, 200, codes.OK, &l)
	if l.UserID != u.UserID || l.UserName != "alice" || l.SessionID == "" || l.Token == "" ||
		l.ExpiresAt <= time.Now().Unix() || l.Server.ID != e.gw.ID || l.Server.Host != "127.0.0.1" || l.Server.TCPPort != 1 || l.Server.HTTPPort == 0 {
		t.Fatalf("login data %+v", l)
	}
	// Pending until the gateway confirms: not online yet, so the message
	// waits in the inbox.
	e.expect("POST", "/p2pRoute", `{"userId":"`+u.UserID+`","receiveUserId":"alice","msg":"x"}`, 200, codes.OK, nil)
	e.expect("POST", "/internal/online", `{"userId":"`+l.UserID+`","sessionId":"wrong","gatewayId":"`+e.gw.ID+`"}`, 409, codes.Unauthorized, nil)
	alice := e.online("alice")
	bob := e.online("bob")

	var sent struct {
		MsgID string `json:"msgId"`
	}
	e.expect("POST", "/p2pRoute", `{"userId":"`+bob.UserID+`","receiveUserId":"alice","msg":"hi alice"}`, 200, codes.OK, &sent)
	f := e.gw.Frames(alice.UserID)
	if len(f) != 1 || f[0].Msg.MsgId != sent.MsgID || string(f[0].Msg.Body) != "hi alice" || f[0].Msg.FromName != "bob" {
		t.Fatalf("alice got %v (msg id %q)", f, sent.MsgID)
	}
	e.expect("POST", "/p2pRoute", `{"userId":"`+bob.UserID+`","receiveUserId":"nobody","msg":"x"}`, 401, codes.BadAccount, nil)

	var group struct {
		MsgID     string `json:"msgId"`
		Delivered int    `json:"delivered"`
	}
	e.expect("POST", "/groupRoute", `{"userId":`+alice.UserID+`,"msg":"all"}`, 200, codes.OK, &group)
	if group.Delivered != 1 || group.MsgID == "" {
		t.Fatalf("group data %+v", group)
	}

	var users []struct {
		UserID   string `json:"userId"`
		UserName string `json:"userName"`
	}
	e.expect("GET", "/onlineUser", ``, 200, codes.OK, &users)
	if len(users) != 2 || users[0].UserName != "alice" || users[1].UserName != "bob" {
		t.Fatalf("online users %+v", users)
	}

	// Uplink over the wire: protobuf in, protobuf out.
	batch := &cimpb.UplinkBatch{GatewayId: e.gw.ID, Uplinks: []*cimpb.Uplink{{UserId: alice.UserID, SessionId: alice.SessionID,
		Frame: &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 9, Msg: &cimpb.Msg{ClientMsgId: "c1", To: "bob", Body: []byte("yo")}}}}}
	body, _ := proto.Marshal(batch)
	resp, err := http.Post(e.url+"/internal/uplink", ProtobufType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var out cimpb.PushBatch
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ProtobufType || proto.Unmarshal(raw, &out) != nil {
		t.Fatalf("uplink: HTTP %d %q", resp.StatusCode, raw)
	}
	if len(out.Deliveries) != 1 || out.Deliveries[0].Frame.GetReceipt().GetClientMsgId() != "c1" || out.Deliveries[0].SessionId != alice.SessionID {
		t.Fatalf("uplink answer %v", &out)
	}

	// Log off: idempotent, kicks the connection.
	e.expect("POST", "/offLine", `{"userId":"`+alice.UserID+`","sessionId":"unknown"}`, 200, codes.OK, nil)
	e.expect("POST", "/offLine", `{"userId":"`+alice.UserID+`","sessionId":"`+alice.SessionID+`"}`, 200, codes.OK, nil)
	if _, ok := e.gw.Connected(alice.UserID); ok {
		t.Fatal("logged-off connection not kicked")
	}
	e.expect("POST", "/internal/offline", `{"userId":"`+alice.UserID+`","sessionId":"`+alice.SessionID+`","gatewayId":"`+e.gw.ID+`"}`, 200, codes.OK, nil)
	e.expect("POST", "/p2pRoute", `{"userId":"`+bob.UserID+`","receiveUserId":"alice","msg":"x"}`, 200, codes.OK, nil) // stored

	var health struct {
		Status   string `json:"status"`
		Gateways int    `json:"gateways"`
	}
	e.expect("GET", "/healthz", ``, 200, codes.OK, &health)
	if health.Status != "ok" || health.Gateways != 1 {
		t.Fatalf("healthz %+v", health)
	}

	// No gateway: 7100.
	e.bal.SetGateways(nil)
	e.expect("POST", "/login", `{"userName":"alice","password":"password1"}`, 503, codes.NoServer, nil)
}

func TestStorageDown(t *testing.T) {
	e := newEnv(t)
	e.expect("POST", "/registerAccount", `{"userName":"alice","password":"password1"}`, 200, codes.OK, nil)
	e.redis.Kill()
	a := e.expect("POST", "/login", `{"userName":"alice","password":"password1"}`, 503, codes.Unavailable, nil)
	if !strings.Contains(a.Message, "storage unavailable") {
		t.Fatalf("message %q does not say what failed", a.Message)
	}
	e.expect("GET", "/healthz", ``, 503, codes.Unavailable, nil)
	e.expect("GET", "/onlineUser", ``, 503, codes.Unavailable, nil)
	body, _ := proto.Marshal(&cimpb.UplinkBatch{Uplinks: []*cimpb.Uplink{{UserId: "1", Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{To: "bob"}}}}})
	resp, err := http.Post(e.url+"/internal/uplink", ProtobufType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("uplink with Redis down: HTTP %d, want 503 (so the gateway retries)", resp.StatusCode)
	}
}

func TestPanicIsA500(t *testing.T) {
	srv := httptest.NewServer(New(Config{Service: panicky{}, Logger: quiet}))
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
