package mqttconn

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	packets311 "github.com/eclipse/paho.mqtt.golang/packets"
	"go.uber.org/goleak"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/token"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	gatewayID = "127.0.0.1:9000:9100"
	deviceID  = "77"
	secret    = "s3cret"
	wait      = 15 * time.Second
)

var (
	key   = []byte("0123456789abcdef-test-key")
	quiet = slog.New(slog.NewTextHandler(io.Discard, nil))
)

// fakeLogins stands in for the route's device logins: device "77" (or
// "meter") with secret "s3cret". block, when set, holds every call until it
// is closed or the call's context ends.
type fakeLogins struct {
	mu      sync.Mutex
	calls   []contract.DeviceLogin
	err     error
	present bool
	block   chan struct{}
	entered chan struct{} // one value per call that reached the route
}

func (f *fakeLogins) DeviceLogin(ctx context.Context, req contract.DeviceLogin) (contract.DeviceToken, error) {
	f.mu.Lock()
	f.calls = append(f.calls, req)
	err, block, entered := f.err, f.block, f.entered
	f.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return contract.DeviceToken{}, ctx.Err()
		}
	}
	if err != nil {
		return contract.DeviceToken{}, err
	}
	if (req.Device != deviceID && req.Device != "meter") || req.Secret != secret {
		return contract.DeviceToken{}, ErrBadCredentials
	}
	tok, err := token.Sign(key, token.Claims{UserID: deviceID, UserName: "meter", SessionID: "device.1",
		GatewayID: req.GatewayID, Platform: contract.PlatformDevice, ExpiresAt: time.Now().Add(time.Minute).Unix()})
	if err != nil {
		return contract.DeviceToken{}, err
	}
	return contract.DeviceToken{UserID: deviceID, UserName: "meter", SessionID: "device.1", Token: tok, SessionPresent: f.present}, nil
}

func (f *fakeLogins) set(mod func(*fakeLogins)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mod(f)
}

func (f *fakeLogins) last() contract.DeviceLogin {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return contract.DeviceLogin{}
	}
	return f.calls[len(f.calls)-1]
}

// gw is a gateway in miniature: package conn over this package, with a
// handler that records what goes to the route and lets the test answer as
// the route would.
type gw struct {
	t      *testing.T
	ln     net.Listener
	cfg    *Config
	logins *fakeLogins
	// receipts: answer every QoS 1 uplink MSG with RECEIPT_SENT at once.
	receipts atomic.Bool

	mu       sync.Mutex
	uplinks  []*cimpb.Frame
	conns    []*conn.Conn
	mqtt     []*Conn           // every Conn accepted, in order
	upC      chan *cimpb.Frame // every uplink, as it comes
	closed   chan conn.CloseReason
	online   chan *conn.Conn
	wg       sync.WaitGroup
	cancel   context.CancelFunc
	connCfgs *conn.Config
}

func startGW(t *testing.T, mod func(*Config, *conn.Config)) *gw {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gw{t: t, ln: ln, logins: &fakeLogins{},
		upC: make(chan *cimpb.Frame, 1000), closed: make(chan conn.CloseReason, 100), online: make(chan *conn.Conn, 100)}
	cfg := Config{GatewayID: gatewayID, Login: g.logins, MaxFrame: 1024, MaxBody: 256, Logger: quiet}
	// IdleBuffers on, as on a gateway, and short: were a read deadline
	// for the idle spell to reach the device's reads, it would end busy
	// connections here (the Conn waits for packets itself instead:
	// conn.FrameWaiter).
	ccfg := conn.Config{GatewayID: gatewayID, Keys: [][]byte{key}, MaxFrame: 1024, MaxText: 256,
		LoginTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteQueue: 256, Logger: quiet,
		IdleBuffers: time.Millisecond}
	if mod != nil {
		mod(&cfg, &ccfg)
	}
	g.cfg, g.connCfgs = NewConfig(cfg), conn.NewConfig(ccfg)
	g.receipts.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mc := New(nc, g.cfg)
			g.mu.Lock()
			g.mqtt = append(g.mqtt, mc)
			g.mu.Unlock()
			c := conn.New(mc, g.connCfgs, g)
			mc.Bind(owner{g: g, c: c})
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				c.Serve(ctx)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		g.mu.Lock()
		conns := g.conns
		g.mu.Unlock()
		for _, c := range conns {
			c.Close(conn.GoingAway)
		}
		cancel()
		g.wg.Wait()
	})
	return g
}

func (g *gw) addr() string { return g.ln.Addr().String() }

// lastMQTT is the Conn accepted last.
func (g *gw) lastMQTT() *Conn {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mqtt[len(g.mqtt)-1]
}

type owner struct {
	g *gw
	c *conn.Conn
}

func (o owner) Uplink(f *cimpb.Frame) { _ = o.g.Uplink(context.Background(), o.c, f) }
func (o owner) CloseWith(why conn.Cause, f *cimpb.Frame) bool {
	return o.c.CloseWith(why, f)
}

// conn.Handler

func (g *gw) Online(ctx context.Context, c *conn.Conn) error { return nil }

func (g *gw) Register(c *conn.Conn) {
	g.mu.Lock()
	g.conns = append(g.conns, c)
	g.mu.Unlock()
	g.online <- c
}

func (g *gw) Uplink(ctx context.Context, c *conn.Conn, f *cimpb.Frame) error {
	g.mu.Lock()
	g.uplinks = append(g.uplinks, f)
	g.mu.Unlock()
	g.upC <- f
	if m := f.GetMsg(); g.receipts.Load() && f.Type == cimpb.Type_MSG && f.ReqId != 0 {
		c.Send(&cimpb.Frame{Type: cimpb.Type_RECEIPT, ReqId: f.ReqId, Receipt: &cimpb.Receipt{
			Status: cimpb.ReceiptStatus_RECEIPT_SENT, MsgId: "m-" + m.ClientMsgId, ClientMsgId: m.ClientMsgId}})
	}
	return nil
}

func (g *gw) Closed(c *conn.Conn, why conn.CloseReason) { g.closed <- why }

// waitOnline returns the connection that logged in next.
func (g *gw) waitOnline() *conn.Conn {
	g.t.Helper()
	select {
	case c := <-g.online:
		return c
	case <-time.After(wait):
		g.t.Fatal("no connection came online")
		return nil
	}
}

// waitClosed returns why the next connection closed.
func (g *gw) waitClosed() conn.CloseReason {
	g.t.Helper()
	select {
	case why := <-g.closed:
		return why
	case <-time.After(wait):
		g.t.Fatal("no connection closed")
		return conn.CloseReason{}
	}
}

// nextUplink returns the next uplink that matches keep (the login SYNC and
// the like are skipped when keep says so).
func (g *gw) nextUplink(what string, keep func(*cimpb.Frame) bool) *cimpb.Frame {
	g.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case f := <-g.upC:
			if keep(f) {
				return f
			}
		case <-deadline:
			g.t.Fatalf("no uplink: %s", what)
			return nil
		}
	}
}

func isType(t cimpb.Type) func(*cimpb.Frame) bool {
	return func(f *cimpb.Frame) bool { return f.Type == t }
}

// sentUplinks returns the uplinks so far.
func (g *gw) sentUplinks() []*cimpb.Frame {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*cimpb.Frame(nil), g.uplinks...)
}

// answerLoginSync answers the login SYNC: the inbox is empty after
// after.
func answerLoginSync(c *conn.Conn, after uint64) {
	c.Send(&cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{AfterSeq: after, HeadSeq: after}})
}

// ---- a raw MQTT client: packets written and read with the codecs ----

type raw struct {
	t  *testing.T
	nc net.Conn
}

func dialRaw(t *testing.T, g *gw) *raw {
	t.Helper()
	nc, err := net.DialTimeout("tcp", g.addr(), wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &raw{t: t, nc: nc}
}

func (r *raw) send(cp *packets.ControlPacket) {
	r.t.Helper()
	if _, err := cp.WriteTo(r.nc); err != nil {
		r.t.Fatalf("write %s: %v", cp.PacketType(), err)
	}
}

func (r *raw) write(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// recv reads the next MQTT 5 packet.
func (r *raw) recv() *packets.ControlPacket {
	r.t.Helper()
	_ = r.nc.SetReadDeadline(time.Now().Add(wait))
	cp, err := packets.ReadPacket(r.nc)
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return cp
}

// recvBytes reads the next packet's bytes (any protocol level).
func (r *raw) recvBytes() []byte {
	r.t.Helper()
	_ = r.nc.SetReadDeadline(time.Now().Add(wait))
	var hdr [5]byte
	if _, err := io.ReadFull(r.nc, hdr[:2]); err != nil {
		r.t.Fatalf("read: %v", err)
	}
	n, k, shift := int(hdr[1]&0x7f), 2, 7
	for hdr[k-1]&0x80 != 0 {
		if _, err := io.ReadFull(r.nc, hdr[k:k+1]); err != nil {
			r.t.Fatalf("read: %v", err)
		}
		n |= int(hdr[k]&0x7f) << shift
		k, shift = k+1, shift+7
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r.nc, body); err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return append(hdr[:k:k], body...)
}

// expectEnd reads until the gateway ends the connection and returns what
// it sent meanwhile; the end must be a clean close (EOF, or a reset when
// the gateway closed with the client's bytes unread).
func (r *raw) expectEnd() []byte {
	r.t.Helper()
	_ = r.nc.SetReadDeadline(time.Now().Add(wait))
	b, err := io.ReadAll(r.nc)
	if err != nil && !strings.Contains(err.Error(), "connection reset") {
		r.t.Fatalf("connection not closed cleanly: %v (after %x)", err, b)
	}
	r.nc.Close()
	return b
}

// expectDisconnect reads packets until an MQTT 5 DISCONNECT and returns its
// reason; the connection must end after it.
func (r *raw) expectDisconnect() byte {
	r.t.Helper()
	for {
		cp := r.recv()
		if d, ok := cp.Content.(*packets.Disconnect); ok {
			r.expectEnd()
			return d.ReasonCode
		}
	}
}

func connect5(user, pass string, mod func(*packets.Connect)) *packets.ControlPacket {
	cp := packets.NewControlPacket(packets.CONNECT)
	c := cp.Content.(*packets.Connect)
	c.ClientID, c.KeepAlive, c.CleanStart = "probe", 30, true
	if user != "" {
		c.Username, c.UsernameFlag = user, true
	}
	if pass != "" {
		c.Password, c.PasswordFlag = []byte(pass), true
	}
	if mod != nil {
		mod(c)
	}
	return cp
}

// login5 connects an MQTT 5 device and expects CONNACK success; the
// connection is online for the test's gateway, and its login SYNC is
// answered (an empty inbox).
func login5(t *testing.T, g *gw, mod func(*packets.Connect)) (*raw, *conn.Conn, *packets.Connack) {
	t.Helper()
	r := dialRaw(t, g)
	r.send(connect5(deviceID, secret, mod))
	ack, ok := r.recv().Content.(*packets.Connack)
	if !ok || ack.ReasonCode != rcSuccess {
		t.Fatalf("CONNACK %+v", ack)
	}
	c := g.waitOnline()
	answerLoginSync(c, 0)
	return r, c, ack
}

// subscribe5 is an MQTT 5 SUBSCRIBE of filters with packet id pid.
func subscribe5(pid uint16, filters ...packets.SubOptions) *packets.ControlPacket {
	cp := packets.NewControlPacket(packets.SUBSCRIBE)
	sub := cp.Content.(*packets.Subscribe)
	sub.PacketID, sub.Subscriptions = pid, filters
	return cp
}

func publish5(topic string, qos byte, pid uint16, payload string) *packets.ControlPacket {
	cp := packets.NewControlPacket(packets.PUBLISH)
	p := cp.Content.(*packets.Publish)
	p.Topic, p.QoS, p.PacketID, p.Payload = topic, qos, pid, []byte(payload)
	return cp
}

func puback5(pid uint16) *packets.ControlPacket {
	cp := packets.NewControlPacket(packets.PUBACK)
	cp.Content.(*packets.Puback).PacketID = pid
	return cp
}

// ping makes sure everything sent before was handled: the PINGRESP comes
// after the answers to what came before it.
func (r *raw) ping() {
	r.t.Helper()
	r.send(packets.NewControlPacket(packets.PINGREQ))
	for {
		cp := r.recv()
		if cp.Type == packets.PINGRESP {
			return
		}
		r.t.Fatalf("got %s before PINGRESP", cp)
	}
}

// connect311 is an MQTT 3.1.1 CONNECT, written with the 3.1.1 codec.
func connect311(user, pass string, mod func(*packets311.ConnectPacket)) []byte {
	c := packets311.NewControlPacket(packets311.Connect).(*packets311.ConnectPacket)
	c.ProtocolName, c.ProtocolVersion, c.ClientIdentifier, c.CleanSession, c.Keepalive = "MQTT", 4, "probe", true, 30
	if user != "" {
		c.Username, c.UsernameFlag = user, true
	}
	if pass != "" {
		c.Password, c.PasswordFlag = []byte(pass), true
	}
	if mod != nil {
		mod(c)
	}
	var b bytes.Buffer
	_ = c.Write(&b)
	return b.Bytes()
}

// packet311 frames body as a packet whose first byte is first (for
// hand-made, hostile packets).
func packet311(first byte, body []byte) []byte {
	out := []byte{first}
	n := len(body)
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		out = append(out, d)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}
