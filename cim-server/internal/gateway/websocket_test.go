package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-server/internal/wsconn"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

func startWSGateway(t *testing.T, mod func(*Config)) (*Gateway, *fakeRoute) {
	t.Helper()
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, func(c *Config) {
		c.WSListen = "127.0.0.1:0"
		if mod != nil {
			mod(c)
		}
	})
	return g, route
}

// wsClient is a WebSocket client speaking one of the two encodings.
type wsClient struct {
	t    *testing.T
	ws   *websocket.Conn
	json bool
}

func dialWS(t *testing.T, url, subprotocol string, h http.Header, tlsCfg *tls.Config) (*wsClient, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, TLSClientConfig: tlsCfg}
	if subprotocol != "" {
		d.Subprotocols = []string{subprotocol}
	}
	ws, resp, err := d.Dial(url, h)
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { ws.Close() })
	return &wsClient{t: t, ws: ws, json: ws.Subprotocol() != wsconn.Binary}, resp, nil
}

func (c *wsClient) send(f *cimpb.Frame) {
	c.t.Helper()
	var err error
	if c.json {
		b, _ := protojson.Marshal(f)
		err = c.ws.WriteMessage(websocket.TextMessage, b)
	} else {
		b, _ := proto.Marshal(f)
		err = c.ws.WriteMessage(websocket.BinaryMessage, b)
	}
	if err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// recv reads one frame, checking it came in this connection's encoding.
func (c *wsClient) recv() *cimpb.Frame {
	c.t.Helper()
	f, err := c.read()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

func (c *wsClient) read() (*cimpb.Frame, error) {
	_ = c.ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	typ, b, err := c.ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	f := &cimpb.Frame{}
	switch {
	case c.json && typ == websocket.TextMessage:
		err = protojson.Unmarshal(b, f)
	case !c.json && typ == websocket.BinaryMessage:
		err = proto.Unmarshal(b, f)
	default:
		c.t.Fatalf("message type %d on a json=%v connection", typ, c.json)
	}
	return f, err
}

// expectClose reads until the gateway closes, and returns the close code.
func (c *wsClient) expectClose() int {
	c.t.Helper()
	for {
		_, err := c.read()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		c.t.Fatalf("want a close message, got %v", err)
	}
}

func (c *wsClient) login(g *Gateway, user, sid string) {
	c.t.Helper()
	c.send(&cimpb.Frame{Type: cimpb.Type_LOGIN, ReqId: 1, Login: &cimpb.Login{Token: tokenFor(c.t, g.ID(), user, sid)}})
	if f := c.recv(); f.Type != cimpb.Type_LOGIN_ACK || f.LoginAck.SessionId != sid || f.LoginAck.GatewayId != g.ID() {
		c.t.Fatalf("login %s over WebSocket: got %v", user, f)
	}
}

func wsLogin(t *testing.T, g *Gateway, subprotocol, user, sid string) *wsClient {
	t.Helper()
	c, _, err := dialWS(t, g.WSURL(), subprotocol, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.login(g, user, sid)
	return c
}

// Both encodings carry the whole protocol: login, a message up and its
// receipt, pushes (plain and shared, as a large group's are), PING; a TCP
// client and WebSocket clients on the same gateway get the same frames.
func TestWebSocketChat(t *testing.T) {
	g, route := startWSGateway(t, nil)
	if want := "ws://" + g.WSAddr().String() + "/ws"; g.WSURL() != want {
		t.Fatalf("WSURL %q, want %q", g.WSURL(), want)
	}
	for _, sp := range []string{wsconn.JSON, wsconn.Binary, ""} {
		t.Run("subprotocol="+sp, func(t *testing.T) {
			user := "w" + strings.TrimPrefix(sp, "gocim.")
			c := wsLogin(t, g, sp, user, "s-"+user)
			if wantJSON := sp != wsconn.Binary; c.json != wantJSON {
				t.Fatalf("subprotocol %q chosen for %q", c.ws.Subprotocol(), sp)
			}
			c.send(&cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 5, Msg: &cimpb.Msg{ClientMsgId: "c-" + user, To: "tcp", Body: []byte("héllo")}})
			if f := c.recv(); f.Type != cimpb.Type_RECEIPT || f.Receipt.ClientMsgId != "c-"+user || f.ReqId != 5 {
				t.Fatalf("got %v, want RECEIPT", f)
			}
			route.mu.Lock()
			var up *cimpb.Uplink
			for _, u := range route.uplinks {
				if u.UserId == user {
					up = u
				}
			}
			route.mu.Unlock()
			if up == nil || string(up.Frame.GetMsg().GetBody()) != "héllo" || up.SessionId != "s-"+user {
				t.Fatalf("uplink %v", up)
			}
			c.send(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 6})
			if f := c.recv(); f.Type != cimpb.Type_PONG || f.ReqId != 6 {
				t.Fatalf("got %v, want PONG", f)
			}

			tcp := login(t, g, "tcp-"+user, "st-"+user)
			msg := &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "m1", Seq: 7, From: "x", Body: []byte{0, 1, 2, 255}}}
			res := push(t, g, &cimpb.PushBatch{Deliveries: []*cimpb.Delivery{
				{UserId: user, Frame: msg},
				{Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "g1", Group: "big", GroupSeq: 3}},
					Targets: []*cimpb.Target{{UserId: user}, {UserId: "tcp-" + user}}},
			}})
			if res.Delivered != 3 {
				t.Fatalf("push result %v, want 3 delivered", res)
			}
			if f := c.recv(); !proto.Equal(f, msg) {
				t.Fatalf("WebSocket got %v, want %v", f, msg)
			}
			for _, f := range []*cimpb.Frame{c.recv(), tcp.recv()} {
				if f.GetMsg().GetMsgId() != "g1" || f.GetMsg().GetGroupSeq() != 3 {
					t.Fatalf("shared delivery arrived as %v", f)
				}
			}
		})
	}
}

// Bad input over WebSocket ends like bad input over TCP: an ERROR frame
// saying what was wrong, then a clean close; a message over the limit is
// refused by the WebSocket layer (1009). Nothing reaches the route.
func TestWebSocketBadInput(t *testing.T) {
	g, route := startWSGateway(t, func(c *Config) { c.MaxFrame = 1024 })
	cases := []struct {
		name     string
		sp       string
		write    func(ws *websocket.Conn) error
		wantCode codes.Code // 0: no ERROR frame, only the close
		close    int
	}{
		{"not JSON", wsconn.JSON, func(ws *websocket.Conn) error { return ws.WriteMessage(websocket.TextMessage, []byte(`{"type":`)) }, codes.BadFrame, websocket.CloseNormalClosure},
		{"not a Frame", wsconn.JSON, func(ws *websocket.Conn) error {
			return ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"NO_SUCH_TYPE"}`))
		}, codes.BadFrame, websocket.CloseNormalClosure},
		{"binary on JSON", wsconn.JSON, func(ws *websocket.Conn) error { return ws.WriteMessage(websocket.BinaryMessage, []byte{8, 1}) }, codes.BadFrame, websocket.CloseNormalClosure},
		{"text on binary", wsconn.Binary, func(ws *websocket.Conn) error { return ws.WriteMessage(websocket.TextMessage, []byte(`{}`)) }, codes.BadFrame, websocket.CloseNormalClosure},
		{"garbage protobuf", wsconn.Binary, func(ws *websocket.Conn) error {
			return ws.WriteMessage(websocket.BinaryMessage, []byte{0xff, 0xff, 0xff})
		}, codes.BadFrame, websocket.CloseNormalClosure},
		{"first frame not LOGIN", wsconn.JSON, func(ws *websocket.Conn) error {
			return ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"PING"}`))
		}, codes.BadFrame, websocket.CloseNormalClosure},
		{"bad token", wsconn.JSON, func(ws *websocket.Conn) error {
			return ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"LOGIN","login":{"token":"forged"}}`))
		}, codes.Unauthorized, websocket.CloseNormalClosure},
		{"oversized binary", wsconn.Binary, func(ws *websocket.Conn) error {
			return ws.WriteMessage(websocket.BinaryMessage, make([]byte, 1025))
		}, 0, websocket.CloseMessageTooBig},
		{"oversized JSON", wsconn.JSON, func(ws *websocket.Conn) error {
			return ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"LOGIN","login":{"token":"`+strings.Repeat("a", 8<<10)+`"}}`))
		}, 0, websocket.CloseMessageTooBig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := dialWS(t, g.WSURL(), tc.sp, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.write(c.ws); err != nil {
				if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
					t.Fatal(err)
				}
				// The gateway refused the frame from its header and closed
				// before the rest was written: its close message may be
				// lost with the reset, but it did close.
				return
			}
			if tc.wantCode != 0 {
				f := c.recv()
				if f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != tc.wantCode {
					t.Fatalf("got %v, want ERROR %v", f, tc.wantCode)
				}
			}
			if code := c.expectClose(); code != tc.close {
				t.Fatalf("closed with %d, want %d", code, tc.close)
			}
		})
	}
	// A logged-in user's bad frame is refused the same way, after the login.
	c := wsLogin(t, g, wsconn.JSON, "5", "s5")
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`[1,2]`)); err != nil {
		t.Fatal(err)
	}
	if f := c.recv(); f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.BadFrame {
		t.Fatalf("got %v, want ERROR BadFrame", f)
	}
	c.expectClose()
	route.waitOffline(t)
	route.mu.Lock()
	defer route.mu.Unlock()
	if len(route.uplinks) != 0 {
		t.Fatalf("bad input reached the route: %v", route.uplinks)
	}
}

// A WebSocket that never logs in is closed at the login timeout, like a
// TCP one; so is a handshake that never finishes.
func TestWebSocketLoginTimeout(t *testing.T) {
	g, _ := startWSGateway(t, func(c *Config) { c.LoginTimeout = 300 * time.Millisecond })
	c, _, err := dialWS(t, g.WSURL(), wsconn.JSON, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f := c.recv(); f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.LoginTimeout {
		t.Fatalf("got %v, want ERROR LoginTimeout", f)
	}
	c.expectClose()
}

// Pages from other sites may not open a WebSocket; the gateway's own host
// may (the route's chat page), and so may non-browsers (no Origin), and
// --ws-origins names the allowed pages.
func TestWebSocketOrigins(t *testing.T) {
	try := func(g *Gateway, origin string) int {
		t.Helper()
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		_, resp, err := dialWS(t, g.WSURL(), wsconn.JSON, h, nil)
		if err == nil {
			return http.StatusSwitchingProtocols
		}
		if resp == nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	g, _ := startWSGateway(t, nil)
	for origin, want := range map[string]int{
		"":                         101,
		"http://127.0.0.1:8080":    101,
		"https://127.0.0.1":        101,
		"https://evil.example":     403,
		"http://127.0.0.1.evil.io": 403,
		"null":                     403,
	} {
		if got := try(g, origin); got != want {
			t.Errorf("default, Origin %q: HTTP %d, want %d", origin, got, want)
		}
	}
	listed, _ := startWSGateway(t, func(c *Config) { c.WSOrigins = "https://chat.example.com" })
	for origin, want := range map[string]int{
		"https://chat.example.com": 101,
		"http://127.0.0.1:8080":    403,
		"":                         101,
	} {
		if got := try(listed, origin); got != want {
			t.Errorf("--ws-origins, Origin %q: HTTP %d, want %d", origin, got, want)
		}
	}
}

// With --tls-cert the WebSocket port speaks TLS too, and the published
// URL says wss://.
func TestWebSocketTLS(t *testing.T) {
	pki := testenv.NewTLS(t)
	g, _ := startTLSGateway(t, pki, func(c *Config) { c.WSListen = "127.0.0.1:0" })
	if !strings.HasPrefix(g.WSURL(), "wss://") {
		t.Fatalf("WSURL %q, want wss://", g.WSURL())
	}
	if _, _, err := dialWS(t, strings.Replace(g.WSURL(), "wss://", "ws://", 1), wsconn.JSON, nil, nil); err == nil {
		t.Fatal("plain ws:// accepted by a TLS gateway")
	}
	c, _, err := dialWS(t, g.WSURL(), wsconn.Binary, nil, &tls.Config{RootCAs: pki.Pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	c.login(g, "9", "s9")
}

// The connection caps hold for WebSockets from the accept on: sockets
// that never send a handshake take the per-address share of connections
// not logged in, and one over it is closed at once; a WebSocket that logs
// in leaves the share, and a socket that goes away gives its slot back.
func TestWebSocketCaps(t *testing.T) {
	g, _ := startWSGateway(t, func(c *Config) { c.MaxUnauthPerAddr = 2 })
	var raw []net.Conn
	for i := 0; i < 2; i++ {
		nc, err := net.Dial("tcp", g.WSAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		raw = append(raw, nc)
	}
	// The two silent sockets hold the share: a third connection, even a
	// proper handshake, is closed without an answer.
	waitFor(t, "both silent sockets counted", func() bool { return g.unauth.Count() == 2 })
	if _, _, err := dialWS(t, g.WSURL(), wsconn.JSON, nil, nil); err == nil {
		t.Fatal("a third connection from one address was upgraded")
	}
	if g.Refused() != 1 {
		t.Fatalf("refused %d, want 1", g.Refused())
	}
	raw[0].Close()
	waitFor(t, "the closed socket's slot given back", func() bool { return g.unauth.Count() == 1 })
	c := wsLogin(t, g, wsconn.JSON, "7", "s7")
	// Logged in: out of the share, so another socket fits again.
	waitFor(t, "the login to leave the share", func() bool { return g.unauth.Count() == 1 })
	if _, _, err := dialWS(t, g.WSURL(), wsconn.JSON, nil, nil); err != nil {
		t.Fatalf("a connection within the share: %v", err)
	}
	c.send(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 2})
	if f := c.recv(); f.Type != cimpb.Type_PONG {
		t.Fatalf("got %v", f)
	}
}

// The gateway's ZooKeeper node carries its WebSocket URL for the route.
func TestWebSocketURLRegistered(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, func(c *Config) {
		c.ZK, c.ZKRoot, c.ZKSessionTimeout = z.Addr, "/gwtest", 2*time.Second
		c.WSListen = "127.0.0.1:0"
		c.WSPublicURL = "wss://chat.example.com/gw1/ws"
	})
	select {
	case <-g.Registered():
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not register")
	}
	obs, _, err := zk.Connect([]string{z.Addr}, 10*time.Second, zk.WithLogger(nopLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	data, _, err := obs.Get("/gwtest/servers/" + g.ID())
	if err != nil {
		t.Fatal(err)
	}
	info, err := contract.ParseGatewayInfo(data)
	if err != nil || info.WSURL != "wss://chat.example.com/gw1/ws" {
		t.Fatalf("node data %q: %+v %v", data, info, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// On shutdown WebSocket clients are drained like TCP ones: ERROR GoingAway,
// then a close message; no new WebSocket is accepted meanwhile.
func TestWebSocketDrain(t *testing.T) {
	g, route := startWSGateway(t, func(c *Config) { c.Drain = 300 * time.Millisecond })
	a := wsLogin(t, g, wsconn.JSON, "1", "s1")
	b := wsLogin(t, g, wsconn.Binary, "2", "s2")
	done := make(chan error, 1)
	go func() { done <- g.Shutdown(context.Background()) }()
	for _, c := range []*wsClient{a, b} {
		if f := c.recv(); f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.GoingAway {
			t.Fatalf("got %v, want ERROR GoingAway", f)
		}
		if code := c.expectClose(); code != websocket.CloseNormalClosure {
			t.Fatalf("closed with %d, want 1000", code)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, _, err := dialWS(t, g.WSURL(), wsconn.JSON, nil, nil); err == nil {
		t.Fatal("a WebSocket was accepted after Shutdown")
	}
	route.mu.Lock()
	defer route.mu.Unlock()
	if len(route.offline) != 2 {
		t.Fatalf("%d offline reports, want 2", len(route.offline))
	}
}

// A WebSocket client that falls silent is reaped at --read-timeout, as on
// TCP; one that sends PINGs stays.
func TestWebSocketIdleReaped(t *testing.T) {
	g, route := startWSGateway(t, func(c *Config) { c.ReadTimeout = 400 * time.Millisecond })
	silent := wsLogin(t, g, wsconn.JSON, "1", "s1")
	alive := wsLogin(t, g, wsconn.JSON, "2", "s2")
	stop := make(chan struct{})
	pinged := make(chan struct{})
	go func() {
		defer close(pinged)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				b, _ := protojson.Marshal(&cimpb.Frame{Type: cimpb.Type_PING})
				if alive.ws.WriteMessage(websocket.TextMessage, b) != nil {
					return
				}
			}
		}
	}()
	if s := route.waitOffline(t); s.UserID != "1" {
		t.Fatalf("offline %+v, want the silent user 1", s)
	}
	// The silent one's socket is gone (no close message: like TCP, an idle
	// peer is just dropped); the pinging one still gets answers.
	if _, err := silent.read(); err == nil {
		t.Fatal("the silent WebSocket still reads frames")
	}
	for {
		f := alive.recv()
		if f.Type == cimpb.Type_PONG {
			break
		}
	}
	close(stop)
	<-pinged
}

// TestSilentClientsKeepTheirConnections: with a short --idle-buffers, a TCP
// client silent for longer gives its read buffers back and reads on when
// it speaks again; so does a WebSocket client, whose connection the idle
// spell's read deadline would end if it passed inside the WebSocket
// library (package wsconn waits itself).
func TestSilentClientsKeepTheirConnections(t *testing.T) {
	const idle = 50 * time.Millisecond
	g, _ := startWSGateway(t, func(c *Config) { c.IdleBuffers = idle })
	tcp := login(t, g, "t1", "s-t1")
	ws := wsLogin(t, g, wsconn.Binary, "w1", "s-w1")
	tcpPing := func(id uint64) {
		t.Helper()
		tcp.send(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: id})
		if f := tcp.recv(); f.Type != cimpb.Type_PONG || f.ReqId != id {
			t.Fatalf("TCP: %v, want PONG %d", f, id)
		}
	}
	wsPing := func(id uint64) {
		t.Helper()
		ws.send(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: id})
		if f := ws.recv(); f.Type != cimpb.Type_PONG || f.ReqId != id {
			t.Fatalf("WebSocket: %v, want PONG %d", f, id)
		}
	}
	// Frames back to back make a connection busy: it waits for the next
	// under a read deadline the idle spell away.
	for id := range uint64(3) {
		tcpPing(id + 1)
		wsPing(id + 1)
	}
	// Both are silent for many times the idle spell.
	time.Sleep(10 * idle)
	tcpPing(7)
	wsPing(8)
}
