package conn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
	"github.com/gocim/gocim/proto/codes"
	"github.com/gocim/gocim/proto/token"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const gatewayID = "127.0.0.1:9000:9100"

var key = []byte("0123456789abcdef-test-key")

func signToken(t *testing.T, c token.Claims) string {
	t.Helper()
	if c.ExpiresAt == 0 {
		c.ExpiresAt = time.Now().Add(time.Minute).Unix()
	}
	tok, err := token.Sign(key, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func goodToken(t *testing.T) string {
	return signToken(t, token.Claims{UserID: "42", UserName: "alice", SessionID: "s1", GatewayID: gatewayID})
}

// fakeHandler records what a connection asks of the gateway.
type fakeHandler struct {
	onlineErr   error
	onlineBlock bool          // Online waits for its context to end
	onlineWait  chan struct{} // closed when a blocking Online started
	uplinkErr   error

	onlineCalls atomic.Int32
	mu          sync.Mutex
	registered  []*Conn
	uplinks     []*cimpb.Frame
	closed      chan CloseReason // once per connection
}

func newHandler() *fakeHandler { return &fakeHandler{closed: make(chan CloseReason, 1)} }

func (h *fakeHandler) Online(ctx context.Context, c *Conn) error {
	h.onlineCalls.Add(1)
	if h.onlineBlock {
		close(h.onlineWait)
		<-ctx.Done()
		return ctx.Err()
	}
	return h.onlineErr
}

func (h *fakeHandler) Register(c *Conn) {
	h.mu.Lock()
	h.registered = append(h.registered, c)
	h.mu.Unlock()
}

func (h *fakeHandler) Uplink(ctx context.Context, c *Conn, f *cimpb.Frame) error {
	h.mu.Lock()
	h.uplinks = append(h.uplinks, f)
	h.mu.Unlock()
	return h.uplinkErr
}

// forwarded returns a copy of the uplinks so far.
func (h *fakeHandler) forwarded() []*cimpb.Frame {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*cimpb.Frame(nil), h.uplinks...)
}

func (h *fakeHandler) Closed(c *Conn, why CloseReason) { h.closed <- why }

// waitClosed waits for Handler.Closed and returns whether the connection
// was online.
func (h *fakeHandler) waitClosed(t *testing.T) bool {
	t.Helper()
	return h.waitReason(t).WasOnline
}

// waitReason waits for Handler.Closed and returns the reason it was given.
func (h *fakeHandler) waitReason(t *testing.T) CloseReason {
	t.Helper()
	select {
	case v := <-h.closed:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("Handler.Closed was not called")
		return CloseReason{}
	}
}

func testConfig(mod func(*Config)) *Config {
	cfg := Config{GatewayID: gatewayID, Keys: [][]byte{key}, MaxFrame: 1024,
		LoginTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteQueue: 64}
	if mod != nil {
		mod(&cfg)
	}
	return NewConfig(cfg)
}

// client is the test's end of a connection.
type client struct {
	t  *testing.T
	nc net.Conn
	r  *codec.Reader
}

func (c *client) send(f *cimpb.Frame) {
	c.t.Helper()
	b, err := codec.Encode(f)
	if err != nil {
		c.t.Fatal(err)
	}
	c.write(b)
}

func (c *client) write(b []byte) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("client write: %v", err)
	}
}

func (c *client) recv() *cimpb.Frame {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := c.r.ReadFrame()
	if err != nil {
		c.t.Fatalf("client read: %v", err)
	}
	return f
}

func (c *client) expectError(code codes.Code) *cimpb.Frame {
	c.t.Helper()
	f := c.recv()
	if f.Type != cimpb.Type_ERROR || codes.Code(f.GetError().GetCode()) != code {
		c.t.Fatalf("got %v, want ERROR %d", f, code)
	}
	return f
}

// expectEOF asserts the server closed the connection cleanly, and hangs up
// as a client does then.
func (c *client) expectEOF() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := c.r.ReadFrame()
	if !errors.Is(err, io.EOF) {
		c.t.Fatalf("want EOF, got frame %v err %v", f, err)
	}
	c.nc.Close()
}

// serveTCP runs a Conn over loopback TCP and returns the client side.
func serveTCP(t *testing.T, cfg *Config, h Handler) (*client, *Conn) {
	t.Helper()
	cc, sc := tcpPair(t)
	return start(t, cc, sc, cfg, h)
}

// tcpPair returns both ends of a loopback TCP connection: the client's and
// the server's.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return cc, sc
}

// servePipe runs a Conn over net.Pipe, which has no buffering: a write
// blocks until the client reads it.
func servePipe(t *testing.T, cfg *Config, h Handler) (*client, *Conn) {
	t.Helper()
	cc, sc := net.Pipe()
	return start(t, cc, sc, cfg, h)
}

func start(t *testing.T, cc, sc net.Conn, cfg *Config, h Handler) (*client, *Conn) {
	c := New(sc, cfg, h)
	done := make(chan struct{})
	go func() { defer close(done); c.Serve(context.Background()) }()
	t.Cleanup(func() {
		cc.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after the client closed")
		}
	})
	return &client{t: t, nc: cc, r: codec.NewReader(cc, 1<<20)}, c
}

func login(t *testing.T, cl *client, tok string) *cimpb.Frame {
	t.Helper()
	cl.send(&cimpb.Frame{Type: cimpb.Type_LOGIN, ReqId: 11, Login: &cimpb.Login{Token: tok}})
	return cl.recv()
}

func TestLoginAck(t *testing.T) {
	h := newHandler()
	cl, c := serveTCP(t, testConfig(nil), h)
	f := login(t, cl, goodToken(t))
	if f.Type != cimpb.Type_LOGIN_ACK || f.ReqId != 11 {
		t.Fatalf("got %v, want LOGIN_ACK with req_id 11", f)
	}
	a := f.LoginAck
	if a.UserId != "42" || a.UserName != "alice" || a.SessionId != "s1" || a.GatewayId != gatewayID || a.ServerTimeMs == 0 {
		t.Fatalf("LOGIN_ACK fields: %v", a)
	}
	if c.UserID() != "42" || c.SessionID() != "s1" || c.UserName() != "alice" {
		t.Fatalf("conn identity %q %q %q", c.UserID(), c.SessionID(), c.UserName())
	}
	// The connection registers before it queues LOGIN_ACK: a client that
	// got LOGIN_ACK is reachable.
	h.mu.Lock()
	reg := len(h.registered) == 1 && h.registered[0] == c
	h.mu.Unlock()
	if !reg || h.onlineCalls.Load() != 1 {
		t.Fatalf("registered=%v online calls=%d", reg, h.onlineCalls.Load())
	}
	cl.nc.Close()
	if r := h.waitReason(t); r != (CloseReason{PeerClosed, true}) {
		t.Fatalf("Closed got %v, want peer closed after a successful login", r)
	}
}

func TestLoginRefused(t *testing.T) {
	other := signToken(t, token.Claims{UserID: "42", SessionID: "s1", GatewayID: "10.0.0.1:9000:9100"})
	expired := signToken(t, token.Claims{UserID: "42", SessionID: "s1", GatewayID: gatewayID, ExpiresAt: time.Now().Add(-time.Second).Unix()})
	forged, err := token.Sign([]byte("another-key-of-16-bytes"), token.Claims{UserID: "42", SessionID: "s1", GatewayID: gatewayID, ExpiresAt: time.Now().Add(time.Minute).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	// The route's access (bearer) token: right key, right user, wrong kind.
	access := signToken(t, token.Claims{UserID: "42", UserName: "alice", SessionID: "s1", Audience: token.AudienceAPI})
	// An access token naming this gateway is still not a gateway token.
	accessGW := signToken(t, token.Claims{UserID: "42", SessionID: "s1", GatewayID: gatewayID, Audience: token.AudienceAPI})
	cases := []struct {
		name  string
		tok   string
		code  codes.Code
		route error // what Online answers
	}{
		{"wrong gateway", other, codes.WrongGateway, nil},
		{"expired", expired, codes.Unauthorized, nil},
		{"forged", forged, codes.Unauthorized, nil},
		{"access token", access, codes.Unauthorized, nil},
		{"access token naming this gateway", accessGW, codes.Unauthorized, nil},
		{"garbage", "not-a-token", codes.Unauthorized, nil},
		{"empty", "", codes.Unauthorized, nil},
		{"route says not current", goodToken(t), codes.Unauthorized, fmt.Errorf("x: %w", contract.ErrNotCurrent)},
		{"route unreachable", goodToken(t), codes.Unavailable, fmt.Errorf("x: %w", contract.ErrUnavailable)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHandler()
			h.onlineErr = tc.route
			cl, _ := serveTCP(t, testConfig(nil), h)
			f := login(t, cl, tc.tok)
			if f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != tc.code || f.ReqId != 11 {
				t.Fatalf("got %v, want ERROR %d for req 11", f, tc.code)
			}
			cl.expectEOF()
			if r := h.waitReason(t); r != (CloseReason{LoginRefused, false}) {
				t.Fatalf("Closed got %v, want login refused, not online", r)
			}
			if wantOnline := tc.route != nil; (h.onlineCalls.Load() == 1) != wantOnline {
				t.Fatalf("Online called %d times", h.onlineCalls.Load())
			}
			if len(h.registered) != 0 {
				t.Fatal("refused connection was registered")
			}
		})
	}
}

// TestFirstFrameMustBeLogin: anything before a LOGIN (or a LOGIN without
// its payload) is ERROR BadFrame and the end of the connection.
func TestFirstFrameMustBeLogin(t *testing.T) {
	for name, f := range map[string]*cimpb.Frame{
		"PING":          {Type: cimpb.Type_PING, ReqId: 3},
		"MSG":           {Type: cimpb.Type_MSG, ReqId: 3, Msg: &cimpb.Msg{ClientMsgId: "c1", To: "bob", Body: []byte("hi")}},
		"SYNC":          {Type: cimpb.Type_SYNC, ReqId: 3, Sync: &cimpb.Sync{}},
		"unknown type":  {Type: cimpb.Type(99), ReqId: 3},
		"empty LOGIN":   {Type: cimpb.Type_LOGIN, ReqId: 3},
		"LOGIN_ACK":     {Type: cimpb.Type_LOGIN_ACK, ReqId: 3, LoginAck: &cimpb.LoginAck{UserId: "42"}},
		"ERROR":         {Type: cimpb.Type_ERROR, ReqId: 3, Error: &cimpb.Error{Code: 1}},
		"type 0 (none)": {ReqId: 3},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHandler()
			cl, _ := serveTCP(t, testConfig(nil), h)
			cl.send(f)
			if e := cl.expectError(codes.BadFrame); e.ReqId != 3 {
				t.Fatalf("error req_id %d, want 3", e.ReqId)
			}
			cl.expectEOF()
			if r := h.waitReason(t); r != (CloseReason{BadFrame, false}) {
				t.Fatalf("Closed got %v, want bad frame", r)
			}
			if h.onlineCalls.Load() != 0 || len(h.forwarded()) != 0 {
				t.Fatalf("a connection without LOGIN went online (%d Online calls, uplinks %v)", h.onlineCalls.Load(), h.forwarded())
			}
		})
	}
}

// TestSecondLoginCloses: one LOGIN per connection; a second one, even for
// the same or another valid identity, is ERROR BadFrame and the end of the
// connection, and the identity does not change.
func TestSecondLoginCloses(t *testing.T) {
	other := signToken(t, token.Claims{UserID: "43", UserName: "mallory", SessionID: "s2", GatewayID: gatewayID})
	for name, tok := range map[string]string{"same token": goodToken(t), "other user": other} {
		t.Run(name, func(t *testing.T) {
			h := newHandler()
			cl, c := serveTCP(t, testConfig(nil), h)
			login(t, cl, goodToken(t))
			cl.send(&cimpb.Frame{Type: cimpb.Type_LOGIN, ReqId: 12, Login: &cimpb.Login{Token: tok}})
			if e := cl.expectError(codes.BadFrame); e.ReqId != 12 {
				t.Fatalf("error req_id %d, want 12", e.ReqId)
			}
			cl.expectEOF()
			if r := h.waitReason(t); r != (CloseReason{BadFrame, true}) {
				t.Fatalf("Closed got %v, want bad frame after the first, successful login", r)
			}
			if h.onlineCalls.Load() != 1 || c.UserID() != "42" || c.SessionID() != "s1" {
				t.Fatalf("second LOGIN changed something: %d Online calls, user %q session %q",
					h.onlineCalls.Load(), c.UserID(), c.SessionID())
			}
		})
	}
}

func TestLoginTimeout(t *testing.T) {
	h := newHandler()
	cl, _ := serveTCP(t, testConfig(func(c *Config) { c.LoginTimeout = 100 * time.Millisecond }), h)
	cl.expectError(codes.LoginTimeout)
	cl.expectEOF()
	if r := h.waitReason(t); r != (CloseReason{LoginTimeout, false}) {
		t.Fatalf("Closed got %v, want login timeout, not online", r)
	}
}

func TestOversizedFrame(t *testing.T) {
	big := &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{Body: make([]byte, 2000)}}
	for _, afterLogin := range []bool{false, true} {
		t.Run(fmt.Sprintf("afterLogin=%v", afterLogin), func(t *testing.T) {
			h := newHandler()
			cl, _ := serveTCP(t, testConfig(nil), h) // MaxFrame 1024
			if afterLogin {
				login(t, cl, goodToken(t))
			}
			cl.send(big)
			cl.expectError(codes.FrameTooLarge)
			cl.expectEOF()
			if r := h.waitReason(t); r != (CloseReason{BadFrame, afterLogin}) {
				t.Fatalf("Closed got %v, want bad frame (online %v)", r, afterLogin)
			}
			for _, f := range h.forwarded() {
				if f.Type == cimpb.Type_MSG {
					t.Fatal("oversized frame was forwarded")
				}
			}
		})
	}
}

func TestGarbage(t *testing.T) {
	cases := map[string][]byte{
		"unparsable payload": {4, 0xff, 0xff, 0xff, 0xff},
		"bad length prefix":  {0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
	for name, garbage := range cases {
		for _, afterLogin := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/afterLogin=%v", name, afterLogin), func(t *testing.T) {
				h := newHandler()
				cl, _ := serveTCP(t, testConfig(nil), h)
				if afterLogin {
					login(t, cl, goodToken(t))
				}
				cl.write(garbage)
				cl.expectError(codes.BadFrame)
				cl.expectEOF()
				if r := h.waitReason(t); r != (CloseReason{BadFrame, afterLogin}) {
					t.Fatalf("Closed got %v, want bad frame (online %v)", r, afterLogin)
				}
			})
		}
	}
}

func TestPingPong(t *testing.T) {
	cl, _ := serveTCP(t, testConfig(nil), newHandler())
	login(t, cl, goodToken(t))
	cl.send(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 7})
	if f := cl.recv(); f.Type != cimpb.Type_PONG || f.ReqId != 7 {
		t.Fatalf("got %v, want PONG 7", f)
	}
	cl.send(&cimpb.Frame{Type: cimpb.Type_PING})
	if f := cl.recv(); f.Type != cimpb.Type_PONG || f.ReqId != 0 {
		t.Fatalf("got %v, want PONG", f)
	}
}

func TestUnexpectedFrameKeepsConnection(t *testing.T) {
	h := newHandler()
	cl, _ := serveTCP(t, testConfig(nil), h)
	login(t, cl, goodToken(t))
	for _, f := range []*cimpb.Frame{
		{Type: cimpb.Type_LOGIN_ACK, ReqId: 1},
		{Type: cimpb.Type_KICK, ReqId: 2},
		{Type: cimpb.Type_TYPE_UNSPECIFIED, ReqId: 3},
		{Type: cimpb.Type(99), ReqId: 4},
		{Type: cimpb.Type_MSG, ReqId: 5}, // MSG without its payload
	} {
		cl.send(f)
		if e := cl.expectError(codes.BadFrame); e.ReqId != f.ReqId {
			t.Fatalf("error for %v has req_id %d", f, e.ReqId)
		}
	}
	cl.send(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 9})
	if f := cl.recv(); f.Type != cimpb.Type_PONG {
		t.Fatalf("connection unusable after bad frames: %v", f)
	}
	if up := h.forwarded(); len(up) != 1 || up[0].Type != cimpb.Type_SYNC { // just the login SYNC
		t.Fatalf("bad frames were forwarded: %v", up)
	}
}

func TestUplinksForwardedInOrder(t *testing.T) {
	h := newHandler()
	cl, _ := serveTCP(t, testConfig(nil), h)
	login(t, cl, goodToken(t))
	sent := []*cimpb.Frame{
		{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "c1", To: "bob", Body: []byte("hi")}},
		{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: 5}},
		{Type: cimpb.Type_READ, Read: &cimpb.Read{MsgIds: []string{"m1"}}},
		{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{AfterSeq: 3}},
		{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "c2", To: "bob", Body: []byte("there")}},
	}
	for _, f := range sent {
		cl.send(f)
	}
	// A PING after them: once its PONG is back, all were dispatched.
	cl.send(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 1})
	if f := cl.recv(); f.Type != cimpb.Type_PONG {
		t.Fatalf("got %v", f)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// The first uplink is the SYNC the gateway forwards for the LOGIN.
	if len(h.uplinks) != len(sent)+1 || h.uplinks[0].Type != cimpb.Type_SYNC {
		t.Fatalf("forwarded %v, want the login SYNC then %d frames", h.uplinks, len(sent))
	}
	for i, f := range h.uplinks[1:] {
		if f.Type != sent[i].Type || f.GetMsg().GetClientMsgId() != sent[i].GetMsg().GetClientMsgId() {
			t.Fatalf("uplink %d = %v, want %v", i, f, sent[i])
		}
	}
}

// TestLoginForwardsSync: the LOGIN's last_seq becomes a SYNC uplink right
// after LOGIN_ACK, so the client gets everything after it; a client with no
// state (0) asks to start after its server-side ack.
func TestLoginForwardsSync(t *testing.T) {
	for _, last := range []uint64{0, 42} {
		h := newHandler()
		cl, _ := serveTCP(t, testConfig(nil), h)
		cl.send(&cimpb.Frame{Type: cimpb.Type_LOGIN, ReqId: 1, Login: &cimpb.Login{Token: goodToken(t), LastSeq: last}})
		if f := cl.recv(); f.Type != cimpb.Type_LOGIN_ACK {
			t.Fatalf("got %v, want LOGIN_ACK", f)
		}
		cl.send(&cimpb.Frame{Type: cimpb.Type_PING})
		cl.recv()
		h.mu.Lock()
		up := h.uplinks
		h.mu.Unlock()
		if len(up) != 1 || up[0].Type != cimpb.Type_SYNC || up[0].Sync.AfterSeq != last || up[0].Sync.FromAcked != (last == 0) {
			t.Fatalf("last_seq %d: uplinks %v, want one SYNC after %d (from_acked %v)", last, up, last, last == 0)
		}
	}
}

func TestUplinkFailureAnswersSender(t *testing.T) {
	h := newHandler()
	h.uplinkErr = errors.New("batcher closed")
	cl, _ := serveTCP(t, testConfig(nil), h)
	login(t, cl, goodToken(t))
	cl.send(&cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 4, Msg: &cimpb.Msg{ClientMsgId: "c9", To: "bob"}})
	f := cl.expectError(codes.Unavailable)
	if f.Error.ClientMsgId != "c9" || f.ReqId != 4 {
		t.Fatalf("error %v, want client_msg_id c9 req 4", f)
	}
	// A failed ACK has no answer; the next frame is the PONG.
	cl.send(&cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: 1}})
	cl.send(&cimpb.Frame{Type: cimpb.Type_PING})
	if f := cl.recv(); f.Type != cimpb.Type_PONG {
		t.Fatalf("got %v, want PONG", f)
	}
}

func TestReadTimeout(t *testing.T) {
	// Also with the read buffers given back after 20 ms of silence: the
	// idle wait keeps the read timeout.
	for _, idle := range []time.Duration{0, 20 * time.Millisecond} {
		t.Run(fmt.Sprintf("idle-buffers=%v", idle), func(t *testing.T) { testReadTimeout(t, idle) })
	}
}

func testReadTimeout(t *testing.T, idle time.Duration) {
	h := newHandler()
	cl, _ := serveTCP(t, testConfig(func(c *Config) { c.ReadTimeout, c.IdleBuffers = 200*time.Millisecond, idle }), h)
	login(t, cl, goodToken(t))
	// Frames keep the connection alive...
	for range 3 {
		cl.send(&cimpb.Frame{Type: cimpb.Type_PING})
		cl.recv()
		if idle > 0 {
			time.Sleep(2 * idle) // silences longer than the idle spell
		}
	}
	// ...silence ends it, without a frame.
	cl.expectEOF()
	if r := h.waitReason(t); r != (CloseReason{Idle, true}) {
		t.Fatalf("Closed got %v, want idle timeout", r)
	}
}

func TestSlowConsumer(t *testing.T) {
	h := newHandler()
	cl, c := servePipe(t, testConfig(func(c *Config) { c.WriteQueue = 4 }), h)
	login(t, cl, goodToken(t))

	// The client stops reading. The writer blocks on the first frame, the
	// queue fills, and the Send that overflows it drops the client; no Send
	// blocks.
	sendsDone := make(chan int)
	go func() {
		accepted := 0
		for i := range 100 {
			if !c.Send(&cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: fmt.Sprint(i)}}) {
				break
			}
			accepted++
		}
		sendsDone <- accepted
	}()
	var accepted int
	select {
	case accepted = <-sendsDone:
	case <-time.After(10 * time.Second):
		t.Fatal("Send blocked on a client that does not read")
	}
	if accepted < 4 || accepted > 8 {
		t.Fatalf("accepted %d frames before dropping, want the queue (4) plus at most one queue held by the writer", accepted)
	}
	if !c.Closing() || c.Send(&cimpb.Frame{Type: cimpb.Type_PONG}) {
		t.Fatal("slow consumer still accepts frames")
	}
	// Reading now: whatever was already being written, then the reason,
	// then the end.
	var last *cimpb.Frame
	for {
		_ = cl.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		f, err := cl.r.ReadFrame()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("read: %v", err)
			}
			break
		}
		last = f
	}
	if last == nil || last.Type != cimpb.Type_ERROR || codes.Code(last.Error.Code) != codes.SlowConsumer {
		t.Fatalf("last frame %v, want ERROR SlowConsumer", last)
	}
	if r := h.waitReason(t); r != (CloseReason{SlowConsumer, true}) {
		t.Fatalf("Closed got %v, want slow consumer", r)
	}
}

// countingConn counts writes to check that queued frames are coalesced.
type countingConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

func TestWritesAreCoalesced(t *testing.T) {
	cc, sc := net.Pipe()
	counted := &countingConn{Conn: sc}
	cl, c := start(t, cc, counted, testConfig(func(c *Config) { c.WriteQueue = 1000 }), newHandler())
	login(t, cl, goodToken(t))
	before := counted.writes.Load()
	// The first frame's write blocks (net.Pipe) until the client reads, so
	// the other 99 queue up behind it and go out in one write.
	for i := range 100 {
		if !c.Send(&cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: fmt.Sprint(i)}}) {
			t.Fatalf("Send %d refused", i)
		}
	}
	for i := range 100 {
		f := cl.recv()
		if f.GetMsg().GetMsgId() != fmt.Sprint(i) {
			t.Fatalf("frame %d is %v: order lost", i, f)
		}
	}
	if w := counted.writes.Load() - before; w > 2 {
		t.Fatalf("100 queued frames took %d writes, want at most 2", w)
	}
}

func TestCloseWithKick(t *testing.T) {
	h := newHandler()
	cl, c := serveTCP(t, testConfig(nil), h)
	login(t, cl, goodToken(t))
	c.Send(&cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "before"}})
	if !c.CloseWith(Kicked, &cimpb.Frame{Type: cimpb.Type_KICK, Kick: &cimpb.Kick{Reason: "bye"}}) {
		t.Fatal("CloseWith refused")
	}
	if c.CloseWith(GoingAway, nil) {
		t.Fatal("second CloseWith accepted")
	}
	if f := cl.recv(); f.GetMsg().GetMsgId() != "before" {
		t.Fatalf("got %v, want the frame queued before the kick", f)
	}
	if f := cl.recv(); f.Type != cimpb.Type_KICK || f.Kick.Reason != "bye" {
		t.Fatalf("got %v, want KICK", f)
	}
	cl.expectEOF()
	// The second CloseWith did not change the reason.
	if r := h.waitReason(t); r != (CloseReason{Kicked, true}) {
		t.Fatalf("Closed got %v, want kicked", r)
	}
}

// TestClosingClientThatKeepsSending checks that a closing connection still
// ends when the client keeps writing and never hangs up.
func TestClosingClientThatKeepsSending(t *testing.T) {
	h := newHandler()
	cl, c := serveTCP(t, testConfig(func(c *Config) { c.CloseTimeout = 200 * time.Millisecond }), h)
	login(t, cl, goodToken(t))
	c.CloseWith(GoingAway, ErrorFrame(0, codes.GoingAway, "", ""))
	cl.expectError(codes.GoingAway)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		b, _ := codec.Encode(&cimpb.Frame{Type: cimpb.Type_PING})
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := cl.nc.Write(b); err != nil {
				return
			}
		}
	}()
	h.waitClosed(t)
}

func TestCloseAbortsLoginWaitingForRoute(t *testing.T) {
	h := newHandler()
	h.onlineBlock, h.onlineWait = true, make(chan struct{})
	cl, c := serveTCP(t, testConfig(nil), h)
	cl.send(&cimpb.Frame{Type: cimpb.Type_LOGIN, Login: &cimpb.Login{Token: goodToken(t)}})
	select {
	case <-h.onlineWait:
	case <-time.After(10 * time.Second):
		t.Fatal("Online never called")
	}
	c.CloseWith(GoingAway, ErrorFrame(0, codes.GoingAway, "", ""))
	cl.expectError(codes.GoingAway)
	cl.expectEOF()
	// Online failed (its context was cancelled) after the close: the
	// reason stays the close's.
	if r := h.waitReason(t); r != (CloseReason{GoingAway, false}) {
		t.Fatalf("Closed got %v, want going away, not online", r)
	}
}

func TestForcedClose(t *testing.T) {
	h := newHandler()
	cl, c := serveTCP(t, testConfig(nil), h)
	login(t, cl, goodToken(t))
	c.Close(GoingAway)
	if r := h.waitReason(t); r != (CloseReason{GoingAway, true}) {
		t.Fatalf("Closed got %v, want going away", r)
	}
	if c.Send(&cimpb.Frame{Type: cimpb.Type_PONG}) {
		t.Fatal("Send accepted after Close")
	}
	_ = cl.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := cl.r.ReadFrame(); err == nil {
		t.Fatal("connection still open after Close")
	}
}

// FuzzServe feeds arbitrary bytes to a logged-in connection: whatever
// arrives, the connection must not panic, must answer only with frames that
// parse, and must end once the client hangs up.
func FuzzServe(f *testing.F) {
	ping, _ := codec.Encode(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 1})
	msg, _ := codec.Encode(&cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "c", Body: []byte("x")}})
	f.Add(ping)
	f.Add(append(append([]byte{}, msg...), ping...))
	f.Add(ping[:len(ping)-1])                         // frame cut short
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})       // huge length
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x01}) // over-long varint
	f.Add([]byte{3, 0x08, 0x99, 0x01})                // unknown type 153
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h := newHandler()
		cc, sc := net.Pipe()
		c := New(sc, testConfig(func(c *Config) { c.CloseTimeout = 100 * time.Millisecond }), h)
		done := make(chan struct{})
		go func() { defer close(done); c.Serve(context.Background()) }()

		cl := &client{t: t, nc: cc, r: codec.NewReader(cc, 1<<20)}
		login(t, cl, goodToken(t))
		// Read everything the server sends while the input goes in.
		readErr := make(chan error, 1)
		go func() {
			for {
				fr, err := cl.r.ReadFrame()
				if err != nil {
					if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) {
						err = nil
					}
					readErr <- err
					return
				}
				switch fr.Type {
				case cimpb.Type_PONG, cimpb.Type_ERROR:
				default:
					readErr <- fmt.Errorf("unexpected frame %v", fr)
					return
				}
			}
		}()
		_ = cc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = cc.Write(data)
		cc.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not end after the client hung up")
		}
		if err := <-readErr; err != nil {
			t.Fatal(err)
		}
		h.waitClosed(t)
	})
}

// syncBuffer is a log destination safe for the writer goroutine and the
// test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

// TestOversizedFrameNotSent: the writer never sends a frame over MaxFrame
// (the client could not take it): it is dropped with one warning, and the
// frames around it go out.
func TestOversizedFrameNotSent(t *testing.T) {
	var logs syncBuffer
	h := newHandler()
	cl, c := serveTCP(t, testConfig(func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	}), h) // MaxFrame 1024
	login(t, cl, goodToken(t))
	msg := func(id string, n int) *cimpb.Frame {
		return &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: id, Seq: 7, Body: make([]byte, n)}}
	}
	c.Send(msg("before", 10))
	c.Send(msg("huge", 2000))
	c.Send(msg("huge2", 1020)) // just over with its other fields
	c.Send(msg("after", 900))
	for _, want := range []string{"before", "after"} {
		if f := cl.recv(); f.GetMsg().GetMsgId() != want {
			t.Fatalf("got %v, want %s", f, want)
		}
	}
	cl.send(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 5})
	if f := cl.recv(); f.Type != cimpb.Type_PONG {
		t.Fatalf("got %v, want PONG: nothing else may have been sent", f)
	}
	if n := strings.Count(logs.String(), "frame over the client's limit dropped"); n != 1 {
		t.Fatalf("%d warnings for 2 dropped frames within the interval, want 1:\n%s", n, logs.String())
	}
}

func TestThrottle(t *testing.T) {
	th := NewThrottle(time.Second)
	t0 := time.Unix(1000, 0)
	if ok, held := th.Allow(t0); !ok || held != 0 {
		t.Fatalf("first: %v %d", ok, held)
	}
	for i := range 3 {
		if ok, _ := th.Allow(t0.Add(time.Duration(i) * 100 * time.Millisecond)); ok {
			t.Fatal("let through within the interval")
		}
	}
	if ok, held := th.Allow(t0.Add(time.Second)); !ok || held != 3 {
		t.Fatalf("after the interval: %v %d, want true 3", ok, held)
	}
}

// TestSendShared: a shared frame goes out like any other, in queue order,
// and one over MaxFrame is dropped like any other.
func TestSendShared(t *testing.T) {
	cl, c := serveTCP(t, testConfig(nil), newHandler()) // MaxFrame 1024
	login(t, cl, goodToken(t))
	msg := func(id string, n int) *cimpb.Frame {
		return &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: id, Group: "9", GroupSeq: 3, Body: make([]byte, n)}}
	}
	shared := NewShared(msg("shared", 10))
	c.Send(msg("before", 10))
	c.SendShared(shared)
	c.SendShared(NewShared(msg("huge", 2000)))
	c.SendShared(shared) // the same bytes again
	c.Send(msg("after", 10))
	for _, want := range []string{"before", "shared", "shared", "after"} {
		if f := cl.recv(); f.GetMsg().GetMsgId() != want || (want == "shared" && f.GetMsg().GetGroupSeq() != 3) {
			t.Fatalf("got %v, want %s", f, want)
		}
	}
}

// TestSendEncoded: a frame given encoded goes out as those bytes, in queue
// order with frames given as structs, through a Cork in one write with
// them; one over MaxFrame is dropped (and logged) like any other, and
// counts as sent.
func TestSendEncoded(t *testing.T) {
	var logs syncBuffer
	cl, c := serveTCP(t, testConfig(func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	}), newHandler()) // MaxFrame 1024
	login(t, cl, goodToken(t))
	msg := func(id string, n int) *cimpb.Frame {
		return &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: id, Seq: 4, Body: make([]byte, n)}}
	}
	encoded := func(f *cimpb.Frame) []byte {
		b, err := proto.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var k Cork
	if !k.Send(c, msg("before", 10)) || !k.SendEncoded(c, cimpb.Type_MSG, encoded(msg("encoded", 10))) ||
		!k.SendEncoded(c, cimpb.Type_MSG, encoded(msg("huge", 2000))) || !k.Send(c, msg("after", 10)) {
		t.Fatal("a send was refused")
	}
	k.Flush()
	for _, want := range []string{"before", "encoded", "after"} {
		if f := cl.recv(); f.GetMsg().GetMsgId() != want || f.GetMsg().GetSeq() != 4 {
			t.Fatalf("got %v, want %s", f, want)
		}
	}
	if !strings.Contains(logs.String(), "frame over the client's limit dropped") || !strings.Contains(logs.String(), "seq=4") {
		t.Fatalf("no warning naming the dropped frame's seq:\n%s", logs.String())
	}
}

// TestFlushWritesInline: Flush writes what a plain TCP connection has
// queued on the caller's goroutine, in one non-blocking write, when the
// socket takes it all: the connection's writer is done when Flush returns,
// with no goroutine started.
func TestFlushWritesInline(t *testing.T) {
	cl, c := serveTCP(t, testConfig(nil), newHandler())
	login(t, cl, goodToken(t))
	c.writer.Wait() // LOGIN_ACK's writer is done: the next send starts one
	msg := func(id string) *cimpb.Frame { return &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: id}} }
	// The writer goroutine leaves its last write's deadline behind; once
	// past, it must not fail a write that never waits.
	_ = c.nc.SetWriteDeadline(time.Now().Add(-time.Second))
	var k Cork
	k.Send(c, msg("a"))
	k.Send(c, msg("b"))
	k.Flush()
	if k.inline != 1 {
		t.Fatalf("%d writers finished inline, want 1 (closed: %v)", k.inline, c.Closing())
	}
	c.mu.Lock()
	writing, pending := c.writing, len(c.pending)
	c.mu.Unlock()
	if writing || pending != 0 {
		t.Fatalf("after Flush: writing %v, %d queued; want an idle connection", writing, pending)
	}
	for _, want := range []string{"a", "b"} {
		if f := cl.recv(); f.GetMsg().GetMsgId() != want {
			t.Fatalf("got %v, want %s", f, want)
		}
	}
}

// TestFlushLeavesTheRestToTheWriter: a burst larger than the socket takes
// at once is begun inline and finished by the writer goroutine; a client
// that reads only later gets every frame whole, in order, and what was
// sent after the burst behind it.
func TestFlushLeavesTheRestToTheWriter(t *testing.T) {
	const frames, size = 40, 900 << 10 // 36 MB: more than loopback's buffers hold
	cl, c := serveTCP(t, testConfig(func(c *Config) {
		c.MaxFrame, c.WriteQueue, c.WriteQueueBytes = 1<<20, 2*frames, 2*frames*size
	}), newHandler())
	login(t, cl, goodToken(t))
	c.writer.Wait()
	msg := func(id string, n int) *cimpb.Frame {
		return &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: id, Body: make([]byte, n)}}
	}
	var k Cork
	for i := range frames {
		k.Send(c, msg(fmt.Sprint(i), size))
	}
	k.Flush()
	if k.inline != 0 {
		t.Fatalf("%d MB went out in one non-blocking write", frames*size>>20)
	}
	c.Send(msg("after", 10))
	for i := range frames {
		if f := cl.recv(); f.GetMsg().GetMsgId() != fmt.Sprint(i) || len(f.GetMsg().GetBody()) != size {
			t.Fatalf("frame %d: got %q with %d bytes", i, f.GetMsg().GetMsgId(), len(f.GetMsg().GetBody()))
		}
	}
	if f := cl.recv(); f.GetMsg().GetMsgId() != "after" {
		t.Fatalf("got %v, want after", f)
	}
}

// TestDropQueueKeepsAPartWrittenFrame: the rest of a frame a non-blocking
// write began stays when the queue is dropped (a slow consumer's frames
// replaced by the reason): without it, what follows would not parse.
func TestDropQueueKeepsAPartWrittenFrame(t *testing.T) {
	c := &Conn{pending: []queued{{b: []byte("rest"), rest: true}, {b: []byte("next")}}, pendingBytes: 8}
	c.dropQueueLocked()
	if len(c.pending) != 1 || string(c.pending[0].b) != "rest" || c.pendingBytes != 4 {
		t.Fatalf("after drop: %+v, %d bytes; want the rest alone", c.pending, c.pendingBytes)
	}
	c.pending[0].rest = false
	c.dropQueueLocked()
	if len(c.pending) != 0 || c.pendingBytes != 0 {
		t.Fatalf("after drop: %+v, %d bytes; want nothing", c.pending, c.pendingBytes)
	}
}
