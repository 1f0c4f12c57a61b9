package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
	"github.com/gocim/gocim/proto/codes"
	"github.com/gocim/gocim/proto/token"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	secret         = "gateway-test-secret-0123"
	internalSecret = "internal-test-secret-0123"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type session struct {
	UserID    string `json:"userId"`
	SessionID string `json:"sessionId"`
	GatewayID string `json:"gatewayId"`
	Reassert  bool   `json:"reassert"`
}

// fakeRoute stands in for cim-route's internal API.
type fakeRoute struct {
	srv *httptest.Server

	mu      sync.Mutex
	online  []session
	offline []session
	uplinks []*cimpb.Uplink // all but the SYNCs, which go to syncs
	syncs   []*cimpb.Uplink
	gwIDs   map[string]bool

	badSecret atomic.Int32 // /internal/* calls without the internal secret

	refuse atomic.Bool     // /internal/online answers 409
	stale  map[string]bool // users whose re-assert is refused (under mu)
	fenced map[string]bool // sessions whose uplinks the route refuses (under mu)
	// onOnline runs in /internal/online before it answers (under no lock).
	onOnline atomic.Pointer[func(session)]
	failNext atomic.Int32 // answer this many /internal/* calls with 503
	offlineC chan session
}

func newFakeRoute(t testing.TB) *fakeRoute {
	r := &fakeRoute{gwIDs: map[string]bool{}, stale: map[string]bool{}, fenced: map[string]bool{}, offlineC: make(chan session, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.srv.Close()
		if n := r.badSecret.Load(); n > 0 {
			t.Errorf("%d internal calls reached the route without %s: %s", n, contract.Header, internalSecret)
		}
	})
	return r
}

func (r *fakeRoute) serve(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == contract.PathLive { // open, like the route's: the gateway probes it
		w.Write([]byte(`{"status":"ok"}`))
		return
	}
	// Like the real route: every internal call needs the internal secret.
	if req.Header.Get(contract.Header) != internalSecret {
		r.badSecret.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"code":4010,"message":"unauthorized"}`))
		return
	}
	if r.failNext.Load() > 0 {
		r.failNext.Add(-1)
		http.Error(w, "restarting", http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(req.Body)
	switch req.URL.Path {
	case contract.PathOnline, contract.PathOffline:
		var s session
		if err := json.Unmarshal(body, &s); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		if req.URL.Path == contract.PathOnline {
			r.online = append(r.online, s)
		} else {
			r.offline = append(r.offline, s)
		}
		stale := s.Reassert && r.stale[s.UserID]
		r.mu.Unlock()
		if req.URL.Path == contract.PathOffline {
			select {
			case r.offlineC <- s:
			default: // nobody is waiting for these
			}
		}
		if f := r.onOnline.Load(); f != nil && req.URL.Path == contract.PathOnline {
			(*f)(s)
		}
		if req.URL.Path == contract.PathOnline && (r.refuse.Load() || stale) {
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"code":4010,"message":"session replaced"}`))
			return
		}
		w.Write([]byte(`{"code":9000,"message":"ok"}`))
	case contract.PathUplink:
		var in cimpb.UplinkBatch
		if err := proto.Unmarshal(body, &in); err != nil || req.Header.Get("Content-Type") != contract.ProtobufType {
			http.Error(w, "bad uplink", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, u := range in.Uplinks {
			if u.Frame.GetType() == cimpb.Type_SYNC {
				r.syncs = append(r.syncs, u)
			} else {
				r.uplinks = append(r.uplinks, u)
			}
		}
		r.gwIDs[in.GatewayId] = true
		fenced := maps.Clone(r.fenced)
		r.mu.Unlock()
		out := &cimpb.PushBatch{}
		for _, u := range in.Uplinks {
			if fenced[u.SessionId] {
				out.Deliveries = append(out.Deliveries, &cimpb.Delivery{UserId: u.UserId, SessionId: u.SessionId,
					Frame: &cimpb.Frame{Type: cimpb.Type_ERROR, Error: &cimpb.Error{Code: int32(codes.StaleSession)}}})
				continue
			}
			if m := u.Frame.GetMsg(); m != nil {
				out.Deliveries = append(out.Deliveries, &cimpb.Delivery{UserId: u.UserId, SessionId: u.SessionId,
					Frame: &cimpb.Frame{Type: cimpb.Type_RECEIPT, ReqId: u.Frame.ReqId, Receipt: &cimpb.Receipt{
						Status: cimpb.ReceiptStatus_RECEIPT_SENT, MsgId: "m-" + m.ClientMsgId, ClientMsgId: m.ClientMsgId}}})
			}
		}
		b, _ := proto.Marshal(out)
		w.Header().Set("Content-Type", contract.ProtobufType)
		w.Write(b)
	default:
		http.NotFound(w, req)
	}
}

func (r *fakeRoute) waitOffline(t *testing.T) session {
	t.Helper()
	select {
	case s := <-r.offlineC:
		return s
	case <-time.After(15 * time.Second):
		t.Fatal("no /internal/offline call")
		return session{}
	}
}

func startGateway(t testing.TB, route string, mod func(*Config)) *Gateway {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.HTTPListen = "127.0.0.1:0"
	cfg.ZK = ""
	cfg.Route = route
	cfg.TokenSecret = secret
	cfg.InternalSecret = internalSecret
	cfg.Drain = 100 * time.Millisecond
	cfg.RouteRetry = 2 * time.Second
	if mod != nil {
		mod(&cfg)
	}
	g, err := New(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return g
}

type client struct {
	t  *testing.T
	nc net.Conn
	r  *codec.Reader
}

func dial(t *testing.T, g *Gateway) *client {
	t.Helper()
	nc, err := net.Dial("tcp", g.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: codec.NewReader(nc, 1<<20)}
}

func (c *client) send(f *cimpb.Frame) {
	c.t.Helper()
	b, _ := codec.Encode(f)
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) recv() *cimpb.Frame {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	f, err := c.r.ReadFrame()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

func (c *client) expectEOF() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	if f, err := c.r.ReadFrame(); !errors.Is(err, io.EOF) {
		c.t.Fatalf("want EOF, got %v %v", f, err)
	}
	c.nc.Close()
}

func tokenFor(t testing.TB, gwID, user, sid string) string {
	t.Helper()
	tok, err := token.Sign([]byte(secret), token.Claims{UserID: user, UserName: "name" + user, SessionID: sid,
		GatewayID: gwID, ExpiresAt: time.Now().Add(time.Minute).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// login connects user with session sid and expects LOGIN_ACK.
func login(t *testing.T, g *Gateway, user, sid string) *client {
	t.Helper()
	c := dial(t, g)
	c.send(&cimpb.Frame{Type: cimpb.Type_LOGIN, ReqId: 1, Login: &cimpb.Login{Token: tokenFor(t, g.ID(), user, sid)}})
	if f := c.recv(); f.Type != cimpb.Type_LOGIN_ACK || f.LoginAck.SessionId != sid || f.LoginAck.GatewayId != g.ID() {
		t.Fatalf("login %s: got %v", user, f)
	}
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// postPush posts b to /push with internal secret key (none when empty) and
// returns the status and the body.
func postPush(t *testing.T, g *Gateway, b *cimpb.PushBatch, key string) (int, []byte) {
	t.Helper()
	body, _ := proto.Marshal(b)
	return postPushBody(t, g, body, key)
}

// postPushBody POSTs body to /push as it is.
func postPushBody(t *testing.T, g *Gateway, body []byte, key string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+g.HTTPAddr().String()+"/push", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contract.ProtobufType)
	if key != "" {
		req.Header.Set(contract.Header, key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func push(t *testing.T, g *Gateway, b *cimpb.PushBatch) *cimpb.PushResult {
	t.Helper()
	status, out := postPush(t, g, b, internalSecret)
	if status != http.StatusOK {
		t.Fatalf("/push: %d %s", status, out)
	}
	res := &cimpb.PushResult{}
	if err := proto.Unmarshal(out, res); err != nil {
		t.Fatal(err)
	}
	return res
}

// healthz returns the status and body of /healthz (0 when unreachable).
func healthz(t *testing.T, g *Gateway) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get("http://" + g.HTTPAddr().String() + "/healthz")
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestIDUsesBoundPorts(t *testing.T) {
	g := startGateway(t, newFakeRoute(t).srv.URL, nil)
	tcp := g.Addr().(*net.TCPAddr).Port
	httpPort := g.HTTPAddr().(*net.TCPAddr).Port
	if want := fmt.Sprintf("127.0.0.1:%d:%d", tcp, httpPort); g.ID() != want || tcp == 0 {
		t.Fatalf("ID %q, want %q", g.ID(), want)
	}
	select {
	case <-g.Registered(): // registration disabled: ready at once
	default:
		t.Fatal("Registered not closed with ZooKeeper disabled")
	}
}

func TestLoginMessageReceiptOffline(t *testing.T) {
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, nil)
	c := login(t, g, "7", "s7")

	route.mu.Lock()
	on := route.online
	route.mu.Unlock()
	if len(on) != 1 || on[0] != (session{"7", "s7", g.ID(), false}) {
		t.Fatalf("route saw online %+v", on)
	}
	if code, m := healthz(t, g); code != 200 || m["status"] != "ok" || m["connections"] != float64(1) {
		t.Fatalf("healthz %d %v", code, m)
	}

	c.send(&cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 5, Msg: &cimpb.Msg{ClientMsgId: "c1", To: "8", Body: []byte("hello")}})
	f := c.recv()
	if f.Type != cimpb.Type_RECEIPT || f.Receipt.ClientMsgId != "c1" || f.Receipt.MsgId != "m-c1" || f.ReqId != 5 {
		t.Fatalf("got %v, want RECEIPT for c1", f)
	}
	route.mu.Lock()
	u := route.uplinks[0]
	syncs := route.syncs
	gw := route.gwIDs[g.ID()]
	route.mu.Unlock()
	if u.UserId != "7" || u.SessionId != "s7" || string(u.Frame.Msg.Body) != "hello" || !gw {
		t.Fatalf("uplink %v (gateway id sent: %v)", u, gw)
	}
	if len(syncs) != 1 || syncs[0].UserId != "7" || !syncs[0].Frame.Sync.FromAcked {
		t.Fatalf("login SYNC uplinks %v, want one from_acked SYNC for user 7", syncs)
	}

	c.nc.Close()
	if s := route.waitOffline(t); s != (session{"7", "s7", g.ID(), false}) {
		t.Fatalf("offline %+v", s)
	}
	waitFor(t, "hub to forget the user", func() bool { return g.Connections() == 0 })
}

func TestLoginRefusedByRoute(t *testing.T) {
	route := newFakeRoute(t)
	route.refuse.Store(true)
	g := startGateway(t, route.srv.URL, nil)
	c := dial(t, g)
	c.send(&cimpb.Frame{Type: cimpb.Type_LOGIN, ReqId: 3, Login: &cimpb.Login{Token: tokenFor(t, g.ID(), "7", "s7")}})
	if f := c.recv(); f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.Unauthorized || f.ReqId != 3 {
		t.Fatalf("got %v, want ERROR Unauthorized", f)
	}
	c.expectEOF()
	if g.Connections() != 0 {
		t.Fatal("refused connection in the hub")
	}
}

func TestLoginWithRouteDown(t *testing.T) {
	dead := newFakeRoute(t)
	dead.srv.Close()
	g := startGateway(t, dead.srv.URL, func(c *Config) { c.RouteRetry = 300 * time.Millisecond })
	c := dial(t, g)
	c.send(&cimpb.Frame{Type: cimpb.Type_LOGIN, Login: &cimpb.Login{Token: tokenFor(t, g.ID(), "7", "s7")}})
	if f := c.recv(); f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.Unavailable {
		t.Fatalf("got %v, want ERROR Unavailable", f)
	}
	c.expectEOF()
}

func TestRouteRestartLosesNothing(t *testing.T) {
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, func(c *Config) { c.RouteRetry = 10 * time.Second })
	c := login(t, g, "7", "s7")
	route.failNext.Store(4) // the route is "restarting" for a few calls
	for i := range 3 {
		c.send(&cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: fmt.Sprint(i), To: "8"}})
	}
	for i := range 3 {
		if f := c.recv(); f.Type != cimpb.Type_RECEIPT || f.Receipt.ClientMsgId != fmt.Sprint(i) {
			t.Fatalf("got %v, want RECEIPT %d in order", f, i)
		}
	}
}

func TestRouteGoneAnswersUnavailable(t *testing.T) {
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, func(c *Config) { c.RouteRetry = 300 * time.Millisecond })
	c := login(t, g, "7", "s7")
	route.failNext.Store(1 << 30)
	c.send(&cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 9, Msg: &cimpb.Msg{ClientMsgId: "lost", To: "8"}})
	f := c.recv()
	if f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.Unavailable || f.Error.ClientMsgId != "lost" || f.ReqId != 9 {
		t.Fatalf("got %v, want ERROR Unavailable for client_msg_id lost", f)
	}
	route.failNext.Store(0)
}

func TestSecondLoginKicksFirst(t *testing.T) {
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, nil)
	old := login(t, g, "7", "s1")
	cur := login(t, g, "7", "s2")
	if f := old.recv(); f.Type != cimpb.Type_KICK {
		t.Fatalf("old connection got %v, want KICK", f)
	}
	old.expectEOF()
	// The old session's late offline must not evict the new connection.
	if s := route.waitOffline(t); s.SessionID != "s1" {
		t.Fatalf("offline for %+v, want s1", s)
	}
	if g.Connections() != 1 {
		t.Fatalf("connections %d, want 1", g.Connections())
	}
	res := push(t, g, &cimpb.PushBatch{Deliveries: []*cimpb.Delivery{
		{UserId: "7", Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "x"}}}}})
	if res.Delivered != 1 {
		t.Fatalf("push after re-login: %v", res)
	}
	if f := cur.recv(); f.GetMsg().GetMsgId() != "x" {
		t.Fatalf("new connection got %v", f)
	}
}

// TestDeviceSlotsHoldOneConnectionEach: sessions in different device slots
// of one user (--login-policy platform: the slot is the session id's
// prefix) are separate connections, each reached by its own session; a
// newer login in the same slot kicks the older one only.
func TestDeviceSlotsHoldOneConnectionEach(t *testing.T) {
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, nil)
	mobile := login(t, g, "7", "mobile.a")
	web := login(t, g, "7", "web.b")
	if g.Connections() != 2 {
		t.Fatalf("connections %d, want 2 (one per device)", g.Connections())
	}
	msg := func(id string) *cimpb.Frame { return &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: id}} }
	res := push(t, g, &cimpb.PushBatch{Deliveries: []*cimpb.Delivery{
		{UserId: "7", SessionId: "mobile.a", Frame: msg("m")},
		{UserId: "7", SessionId: "web.b", Frame: msg("w")},
		{UserId: "7", SessionId: "web.old", Frame: msg("no")},
	}})
	if res.Delivered != 2 || fmt.Sprint(res.Missing) != "[2]" {
		t.Fatalf("result %v, want 2 delivered, [2] missing", res)
	}
	if f := mobile.recv(); f.GetMsg().GetMsgId() != "m" {
		t.Fatalf("mobile got %v", f)
	}
	if f := web.recv(); f.GetMsg().GetMsgId() != "w" {
		t.Fatalf("web got %v", f)
	}
	mobile2 := login(t, g, "7", "mobile.c")
	if f := mobile.recv(); f.Type != cimpb.Type_KICK {
		t.Fatalf("older mobile connection got %v, want KICK", f)
	}
	mobile.expectEOF()
	web.send(&cimpb.Frame{Type: cimpb.Type_PING})
	if f := web.recv(); f.Type != cimpb.Type_PONG {
		t.Fatalf("web connection got %v after the mobile re-login, want PONG (still open)", f)
	}
	res = push(t, g, &cimpb.PushBatch{Deliveries: []*cimpb.Delivery{{UserId: "7", SessionId: "mobile.c", Frame: msg("m2")}}})
	if res.Delivered != 1 {
		t.Fatalf("push to the new mobile session: %v", res)
	}
	if f := mobile2.recv(); f.GetMsg().GetMsgId() != "m2" {
		t.Fatalf("new mobile got %v", f)
	}
}

func TestReconnectWithSameSessionStaysOnline(t *testing.T) {
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, nil)
	old := login(t, g, "7", "s7")
	cur := login(t, g, "7", "s7") // same token again, e.g. after a network blip
	if f := old.recv(); f.Type != cimpb.Type_KICK {
		t.Fatalf("old connection got %v, want KICK", f)
	}
	old.expectEOF()
	// The kicked connection's exit must not report s7 offline: it is live
	// on the new connection.
	cur.send(&cimpb.Frame{Type: cimpb.Type_PING})
	if f := cur.recv(); f.Type != cimpb.Type_PONG {
		t.Fatalf("new connection got %v", f)
	}
	if g.Connections() != 1 {
		t.Fatalf("connections %d, want 1", g.Connections())
	}
	// Shutdown sends every queued report before it returns; only the last
	// connection's may be among them.
	done := make(chan error, 1)
	go func() { done <- g.Shutdown(context.Background()) }()
	if f := cur.recv(); f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.GoingAway {
		t.Fatalf("got %v, want GoingAway", f)
	}
	cur.expectEOF()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	route.mu.Lock()
	off := route.offline
	route.mu.Unlock()
	if len(off) != 1 || off[0].SessionID != "s7" {
		t.Fatalf("offline reports %+v, want one for s7", off)
	}
}

func TestPush(t *testing.T) {
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, nil)
	a := login(t, g, "1", "sa")
	b := login(t, g, "2", "sb")
	msg := func(id string) *cimpb.Frame {
		return &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: id, Body: []byte(id)}}
	}
	res := push(t, g, &cimpb.PushBatch{Deliveries: []*cimpb.Delivery{
		{UserId: "1", Frame: msg("a1")},                     // 0: delivered
		{UserId: "2", SessionId: "other", Frame: msg("no")}, // 1: wrong session
		{UserId: "3", Frame: msg("no")},                     // 2: not here
		{UserId: "2", SessionId: "sb", Frame: msg("b1")},    // 3: delivered
		{UserId: "1"},                   // 4: no frame
		{UserId: "1", Frame: msg("a2")}, // 5: delivered
	}})
	if res.Delivered != 3 || fmt.Sprint(res.Missing) != "[1 2 4]" {
		t.Fatalf("result %v, want delivered 3 missing [1 2 4]", res)
	}
	if f := a.recv(); f.Msg.MsgId != "a1" {
		t.Fatalf("a got %v", f)
	}
	if f := a.recv(); f.Msg.MsgId != "a2" {
		t.Fatalf("a got %v", f)
	}
	if f := b.recv(); f.Msg.MsgId != "b1" {
		t.Fatalf("b got %v", f)
	}

	// A shared delivery (a large group's message): one frame, several
	// targets, each counted as one delivery in the result's indexes.
	shared := msg("g1")
	shared.Msg.GroupSeq = 7
	res = push(t, g, &cimpb.PushBatch{Deliveries: []*cimpb.Delivery{
		{UserId: "3", Frame: msg("no")}, // 0: not here
		{Frame: shared, Targets: []*cimpb.Target{
			{UserId: "1", SessionId: "sa"},    // 1: delivered
			{UserId: "3"},                     // 2: not here
			{UserId: "2", SessionId: "other"}, // 3: wrong session
			{UserId: "2"},                     // 4: delivered
		}},
		{UserId: "1", Frame: msg("a3")}, // 5: delivered
	}})
	if res.Delivered != 3 || fmt.Sprint(res.Missing) != "[0 2 3]" {
		t.Fatalf("shared: result %v, want delivered 3 missing [0 2 3]", res)
	}
	for _, c := range []*client{a, b} {
		if f := c.recv(); f.Msg.MsgId != "g1" || f.Msg.GroupSeq != 7 {
			t.Fatalf("shared delivery: got %v", f)
		}
	}
	if f := a.recv(); f.Msg.MsgId != "a3" {
		t.Fatalf("a got %v after the shared one", f)
	}

	// The same with packed targets (what the route sends): counted alike,
	// a malformed tail ends them, and a delivery with none readable counts
	// once.
	packed := msg("g2")
	var p []byte
	for _, t := range [][2]string{{"1", "sa"}, {"3", ""}, {"2", "other"}, {"2", "sb"}, {"2", ""}} {
		p = contract.AppendTarget(p, t[0], t[1]) // 0..4: delivered, not here, wrong session, delivered, delivered
	}
	p = append(p, 9, 'x') // a length past the end: not a target
	res = push(t, g, &cimpb.PushBatch{Deliveries: []*cimpb.Delivery{
		{Frame: packed, PackedTargets: p},
		{Frame: msg("no"), PackedTargets: []byte{0xff}},                                          // 5: nothing readable
		{PackedTargets: contract.AppendTarget(contract.AppendTarget(nil, "1", "sa"), "2", "sb")}, // 6, 7: no frame
		{UserId: "1", Frame: msg("a4")},                                                          // 8: delivered
	}})
	if res.Delivered != 4 || fmt.Sprint(res.Missing) != "[1 2 5 6 7]" {
		t.Fatalf("packed: result %v, want delivered 4 missing [1 2 5 6 7]", res)
	}
	for _, want := range []struct {
		c  *client
		id string
	}{{a, "g2"}, {a, "a4"}, {b, "g2"}, {b, "g2"}} {
		if f := want.c.recv(); f.Msg.MsgId != want.id {
			t.Fatalf("packed delivery: got %v, want %s", f, want.id)
		}
	}

	// A KICK for the wrong session is not delivered; for the right one it
	// is written and the connection closed.
	kick := &cimpb.Frame{Type: cimpb.Type_KICK, Kick: &cimpb.Kick{Reason: "logged off"}}
	res = push(t, g, &cimpb.PushBatch{Deliveries: []*cimpb.Delivery{{UserId: "1", SessionId: "old", Frame: kick}}})
	if res.Delivered != 0 {
		t.Fatalf("kick with wrong session delivered: %v", res)
	}
	res = push(t, g, &cimpb.PushBatch{Deliveries: []*cimpb.Delivery{{UserId: "1", SessionId: "sa", Frame: kick}}})
	if res.Delivered != 1 {
		t.Fatalf("kick not delivered: %v", res)
	}
	if f := a.recv(); f.Type != cimpb.Type_KICK || f.Kick.Reason != "logged off" {
		t.Fatalf("a got %v, want KICK", f)
	}
	a.expectEOF()
	if s := route.waitOffline(t); s.UserID != "1" {
		t.Fatalf("offline %+v", s)
	}
	if g.Connections() != 1 {
		t.Fatalf("connections %d, want 1", g.Connections())
	}
	// Pushing to the kicked user now misses.
	res = push(t, g, &cimpb.PushBatch{Deliveries: []*cimpb.Delivery{{UserId: "1", Frame: msg("late")}}})
	if res.Delivered != 0 || len(res.Missing) != 1 {
		t.Fatalf("push to kicked user: %v", res)
	}
}

// TestPushDuringLoginConfirmation: the route may push to a session the
// moment it confirms it, before its answer to /internal/online is back. The
// connection is reachable from then on: the push is delivered (not
// reported missing, which would make the route drop the session), and the
// client sees LOGIN_ACK first, then the pushed frame.
func TestPushDuringLoginConfirmation(t *testing.T) {
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, nil)
	msg := func(id string) *cimpb.Frame { return &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: id}} }
	results := make(chan *cimpb.PushResult, 1)
	during := func(s session) {
		results <- push(t, g, &cimpb.PushBatch{Deliveries: []*cimpb.Delivery{
			{UserId: s.UserID, SessionId: s.SessionID, Frame: msg("early")},
			{UserId: s.UserID, SessionId: "another", Frame: msg("not for this session")},
		}})
	}
	route.onOnline.Store(&during)
	c := dial(t, g)
	c.send(&cimpb.Frame{Type: cimpb.Type_LOGIN, ReqId: 1, Login: &cimpb.Login{Token: tokenFor(t, g.ID(), "7", "s7")}})
	res := <-results
	if res.Delivered != 1 || fmt.Sprint(res.Missing) != "[1]" {
		t.Fatalf("push during the login: %v, want delivered 1, missing [1]", res)
	}
	if f := c.recv(); f.Type != cimpb.Type_LOGIN_ACK {
		t.Fatalf("first frame %v, want LOGIN_ACK", f)
	}
	if f := c.recv(); f.Type != cimpb.Type_MSG || f.Msg.MsgId != "early" {
		t.Fatalf("second frame %v, want the early push", f)
	}

	// A login the route refuses: what was pushed meanwhile never goes out.
	route.refuse.Store(true)
	d := dial(t, g)
	d.send(&cimpb.Frame{Type: cimpb.Type_LOGIN, ReqId: 1, Login: &cimpb.Login{Token: tokenFor(t, g.ID(), "8", "s8")}})
	if res := <-results; res.Delivered != 1 {
		t.Fatalf("push during the refused login: %v", res)
	}
	if f := d.recv(); f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.Unauthorized {
		t.Fatalf("got %v, want only ERROR Unauthorized", f)
	}
	d.expectEOF()
}

// TestStaleSessionAnswerCloses: when the route refuses a connection's
// uplinks as coming from a stale session, the gateway writes the ERROR
// StaleSession and closes that connection, so that a client still on it
// logs in again; the session is reported offline.
func TestStaleSessionAnswerCloses(t *testing.T) {
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, nil)
	c := login(t, g, "7", "s7")
	other := login(t, g, "8", "s8")
	route.mu.Lock()
	route.fenced["s7"] = true
	route.mu.Unlock()
	c.send(&cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 1, Msg: &cimpb.Msg{ClientMsgId: "late", To: "8", Body: []byte("hi")}})
	if f := c.recv(); f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.StaleSession {
		t.Fatalf("got %v, want ERROR StaleSession", f)
	}
	c.expectEOF()
	if s := route.waitOffline(t); s.UserID != "7" || s.SessionID != "s7" {
		t.Fatalf("offline %+v, want 7/s7", s)
	}
	// The other connection is untouched.
	other.send(&cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 2, Msg: &cimpb.Msg{ClientMsgId: "fine", To: "7", Body: []byte("hi")}})
	if f := other.recv(); f.Type != cimpb.Type_RECEIPT || f.Receipt.ClientMsgId != "fine" {
		t.Fatalf("got %v, want RECEIPT for fine", f)
	}
}

func TestPushBadBody(t *testing.T) {
	g := startGateway(t, newFakeRoute(t).srv.URL, nil)
	req, _ := http.NewRequest(http.MethodPost, "http://"+g.HTTPAddr().String()+"/push", strings.NewReader("\x0a\xff\xff"))
	req.Header.Set(contract.Header, internalSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
}

// TestPushNeedsInternalSecret: a /push without the internal secret, or with
// a wrong one, is 401 and delivers nothing; the current and the previous
// secret (rotation) are accepted; /healthz stays open.
func TestPushNeedsInternalSecret(t *testing.T) {
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, func(c *Config) { c.InternalSecret = internalSecret + ", previous-secret-0123" })
	c := login(t, g, "7", "s7")
	forged := &cimpb.PushBatch{Deliveries: []*cimpb.Delivery{
		{UserId: "7", Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "forged", Body: []byte("send me your password")}}},
		{UserId: "7", Frame: &cimpb.Frame{Type: cimpb.Type_KICK, Kick: &cimpb.Kick{Reason: "forged"}}},
	}}
	for _, key := range []string{"", "wrong-secret-0123456789", internalSecret + "x", internalSecret[1:]} {
		status, body := postPush(t, g, forged, key)
		if status != http.StatusUnauthorized || !strings.Contains(string(body), "4010") {
			t.Fatalf("key %q: /push answered %d %s, want 401 with code 4010", key, status, body)
		}
	}
	// Nothing was delivered: the next frame the client sees is its PONG.
	c.send(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 4})
	if f := c.recv(); f.Type != cimpb.Type_PONG || f.ReqId != 4 {
		t.Fatalf("got %v, want PONG: an unauthenticated push was delivered", f)
	}
	if code, _ := healthz(t, g); code != http.StatusOK {
		t.Fatalf("/healthz without a secret: %d, want 200", code)
	}
	for i, key := range []string{internalSecret, "previous-secret-0123"} {
		id := fmt.Sprint("real-", i)
		status, _ := postPush(t, g, &cimpb.PushBatch{Deliveries: []*cimpb.Delivery{
			{UserId: "7", Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: id}}}}}, key)
		if status != http.StatusOK {
			t.Fatalf("/push with secret #%d: %d", i+1, status)
		}
		if f := c.recv(); f.GetMsg().GetMsgId() != id {
			t.Fatalf("got %v, want %s", f, id)
		}
	}
}

// TestRouteCallsCarryInternalSecret: the gateway's own calls to the route
// (online, uplink, offline) all carry the current secret; the fake route
// refuses and counts any that does not (checked when it is closed).
func TestRouteCallsCarryInternalSecret(t *testing.T) {
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, func(c *Config) { c.InternalSecret = internalSecret + ",older-secret-0123456" })
	c := login(t, g, "7", "s7")
	c.send(&cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "c1", To: "8", Body: []byte("hi")}})
	if f := c.recv(); f.Type != cimpb.Type_RECEIPT {
		t.Fatalf("got %v, want RECEIPT", f)
	}
	c.nc.Close()
	route.waitOffline(t)
	if n := route.badSecret.Load(); n != 0 {
		t.Fatalf("%d calls without the internal secret", n)
	}
}

// TestWrongInternalSecretRefusesLogins: a gateway whose secret the route
// does not know cannot bring anybody online.
func TestWrongInternalSecretRefusesLogins(t *testing.T) {
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, func(c *Config) { c.InternalSecret = "not-the-routes-secret" })
	c := dial(t, g)
	c.send(&cimpb.Frame{Type: cimpb.Type_LOGIN, ReqId: 2, Login: &cimpb.Login{Token: tokenFor(t, g.ID(), "7", "s7")}})
	if f := c.recv(); f.Type != cimpb.Type_ERROR || f.ReqId != 2 {
		t.Fatalf("got %v, want ERROR", f)
	}
	c.expectEOF()
	// One refused call (a 401 is not retried); reset so the route's
	// cleanup check passes.
	if n := route.badSecret.Swap(0); n != 1 || g.Connections() != 0 {
		t.Fatalf("%d calls without the right secret, %d connections; want 1 and 0", n, g.Connections())
	}
}

// TestGatewayAppliesMessageLimits: --max-text and --msg-rate/--msg-burst
// reach the connections.
func TestGatewayAppliesMessageLimits(t *testing.T) {
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, func(c *Config) { c.MaxText, c.MsgRate, c.MsgBurst = 5, 0.0001, 2 })
	c := login(t, g, "7", "s7")
	c.send(&cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 1, Msg: &cimpb.Msg{ClientMsgId: "long", To: "8", Body: []byte("123456")}})
	if f := c.recv(); f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.BadArgument || f.Error.ClientMsgId != "long" {
		t.Fatalf("got %v, want ERROR 3000 for long", f)
	}
	// The bucket holds 2: "long" took one (the rate is checked first),
	// "ok" takes the other, "slow" waits for a token that does not come in
	// time: it is neither refused nor forwarded.
	c.send(&cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 2, Msg: &cimpb.Msg{ClientMsgId: "ok", To: "8", Body: []byte("12345")}})
	if f := c.recv(); f.Type != cimpb.Type_RECEIPT || f.Receipt.ClientMsgId != "ok" {
		t.Fatalf("got %v, want RECEIPT for ok", f)
	}
	c.send(&cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 3, Msg: &cimpb.Msg{ClientMsgId: "slow", To: "8", Body: []byte("hi")}})
	c.send(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 4})
	route.mu.Lock()
	defer route.mu.Unlock()
	if len(route.uplinks) != 1 || route.uplinks[0].Frame.Msg.ClientMsgId != "ok" {
		t.Fatalf("route got %v, want only ok", route.uplinks)
	}
}

func TestGracefulShutdown(t *testing.T) {
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, func(c *Config) { c.Drain = 500 * time.Millisecond })
	var clients []*client
	for i := range 5 {
		clients = append(clients, login(t, g, fmt.Sprint(i), fmt.Sprint("s", i)))
	}
	pending := dial(t, g) // connected, not logged in yet
	waitFor(t, "the pending connection to be accepted", func() bool {
		g.connMu.Lock()
		defer g.connMu.Unlock()
		return len(g.conns) == len(clients)+1
	})

	done := make(chan error, 1)
	go func() { done <- g.Shutdown(context.Background()) }()

	// While draining, /healthz says 503 and no new client gets in.
	waitFor(t, "healthz 503", func() bool { code, _ := healthz(t, g); return code == http.StatusServiceUnavailable })
	if nc, err := net.Dial("tcp", g.Addr().String()); err == nil {
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Read(make([]byte, 1)); err == nil {
			t.Fatal("a new connection was served during shutdown")
		}
		nc.Close()
	}

	for _, c := range append(clients, pending) {
		if f := c.recv(); f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.GoingAway {
			t.Fatalf("got %v, want ERROR GoingAway", f)
		}
		c.expectEOF()
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// Every logged-in client was reported offline before Shutdown returned.
	route.mu.Lock()
	n := len(route.offline)
	route.mu.Unlock()
	if n != len(clients) {
		t.Fatalf("%d offline reports, want %d", n, len(clients))
	}
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if _, err := http.Get("http://" + g.HTTPAddr().String() + "/healthz"); err == nil {
		t.Fatal("HTTP still served after Shutdown")
	}
}

func TestShutdownBeforeStart(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Listen, cfg.TokenSecret, cfg.InternalSecret = "127.0.0.1:0", secret, internalSecret
	g, err := New(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("Start after Shutdown = %v", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cfg := DefaultConfig() // no secrets, unspecified listen
	if _, err := New(cfg, quiet); err == nil || !strings.Contains(err.Error(), "--token-secret") ||
		!strings.Contains(err.Error(), "--internal-secret is required") || !strings.Contains(err.Error(), "--advertise-host") {
		t.Fatalf("New = %v, want errors for both secrets and the advertise host", err)
	}
}

// startRegistered starts a gateway registering under /gwtest in z and waits
// until its node exists.
func startRegistered(t *testing.T, z *testenv.ZooKeeper, route *fakeRoute) *Gateway {
	t.Helper()
	g := startGateway(t, route.srv.URL, func(c *Config) {
		c.ZK = z.Addr
		c.ZKRoot = "/gwtest"
		c.ZKSessionTimeout = 2 * time.Second
	})
	select {
	case <-g.Registered():
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not register")
	}
	return g
}

// TestZooKeeperRegistration runs the gateway against a real ZooKeeper: the
// node is named after the gateway id, the gateway keeps serving while
// ZooKeeper is down, the node is back after ZooKeeper restarts, and it is
// gone as soon as Shutdown returns.
func TestZooKeeperRegistration(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	route := newFakeRoute(t)
	g := startRegistered(t, z, route)
	obs, _, err := zk.Connect([]string{z.Addr}, 10*time.Second, zk.WithLogger(nopLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { obs.Close() }()
	children, _, err := obs.Children("/gwtest/servers")
	if err != nil || len(children) != 1 || children[0] != g.ID() {
		t.Fatalf("servers %v (%v), want [%s]", children, err, g.ID())
	}

	obs.Close()
	z.Kill()
	// ZooKeeper is down: clients still log in and talk.
	c := login(t, g, "7", "s7")
	c.send(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 2})
	if f := c.recv(); f.Type != cimpb.Type_PONG {
		t.Fatalf("got %v, want PONG", f)
	}

	z.Restart()
	obs, _, err = zk.Connect([]string{z.Addr}, 10*time.Second, zk.WithLogger(nopLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node back after restart", func() bool {
		ok, _, err := obs.Exists("/gwtest/servers/" + g.ID())
		return err == nil && ok && g.registry.Connected()
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := obs.Exists("/gwtest/servers/" + g.ID()); err != nil || ok {
		t.Fatalf("node still registered after Shutdown (%v)", err)
	}
}

// TestReassertAfterNodeRecreated: when the gateway's node had to be created
// again (here: somebody deleted it), the route may have cleared the
// gateway's users, so the gateway re-asserts every connection; a session the
// route no longer takes is kicked, the others stay.
func TestReassertAfterNodeRecreated(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	route := newFakeRoute(t)
	g := startRegistered(t, z, route)
	keep := login(t, g, "7", "s7")
	gone := login(t, g, "8", "s8")
	route.mu.Lock()
	route.stale["8"] = true // user 8 logged in elsewhere meanwhile
	route.mu.Unlock()

	obs, _, err := zk.Connect([]string{z.Addr}, 10*time.Second, zk.WithLogger(nopLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	if err := obs.Delete("/gwtest/servers/"+g.ID(), -1); err != nil {
		t.Fatal(err)
	}

	if f := gone.recv(); f.Type != cimpb.Type_KICK {
		t.Fatalf("stale session got %v, want KICK", f)
	}
	gone.expectEOF()
	waitFor(t, "re-asserts", func() bool {
		route.mu.Lock()
		defer route.mu.Unlock()
		n := 0
		for _, s := range route.online {
			if s.Reassert && s.GatewayID == g.ID() && (s.UserID == "7" && s.SessionID == "s7" || s.UserID == "8" && s.SessionID == "s8") {
				n++
			}
		}
		return n == 2
	})
	keep.send(&cimpb.Frame{Type: cimpb.Type_PING})
	if f := keep.recv(); f.Type != cimpb.Type_PONG {
		t.Fatalf("kept connection got %v", f)
	}
	if g.Connections() != 1 {
		t.Fatalf("connections %d, want 1", g.Connections())
	}
	if ok, _, err := obs.Exists("/gwtest/servers/" + g.ID()); err != nil || !ok {
		t.Fatalf("node not re-created (%v)", err)
	}
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
