// Package clienttest holds in-process fakes of the route's public HTTP API
// and of a gateway's TCP side, for testing the client SDK and the terminal
// program without a cluster. They follow docs/ARCHITECTURE.md's contracts
// but keep no real state: gateway tokens are plain "tok:<uid>:<name>:<sid>"
// strings the fake gateway trusts, access tokens "acc:<uid>:<sid>" strings
// the fake route checks against the user's current session. The TLS
// variants (NewTLSGateway, NewTLSRoute) take a server configuration such
// as internal/testenv's TLS.ServerConfig.
//
// Everything here is safe for concurrent use.
package clienttest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
)

// Wait bounds every wait in the helpers; it is a failure bound, never a
// synchronisation device.
const Wait = 10 * time.Second

// Gateway is a fake gateway: it accepts TCP connections, answers LOGIN with
// LOGIN_ACK (or what OnLogin says), answers PING with PONG unless muted, and
// records every frame a client sends.
type Gateway struct {
	ID      string // "<host>:<tcpPort>:<httpPort>"
	Host    string
	TCPPort int

	ln      net.Listener
	conns   chan *Conn
	mute    atomic.Bool
	onLogin atomic.Pointer[func(*cimpb.Login) *cimpb.Frame]
	onMsg   atomic.Pointer[func(*cimpb.Msg) *cimpb.Frame]
	inbox   atomic.Pointer[func(userID string) *Inbox]
	groups  atomic.Pointer[Route]
	logins  atomic.Int32

	mu     sync.Mutex
	all    []*Conn
	live   map[string][]*Conn // user id → logged-in connections still open
	closed bool
	wg     sync.WaitGroup
}

// NewGateway listens on a free loopback port and closes at test cleanup.
func NewGateway(t testing.TB) *Gateway {
	t.Helper()
	return newGateway(t, nil)
}

// NewTLSGateway is NewGateway speaking TLS with conf (e.g.
// testenv.TLS.ServerConfig) on its client port, like a gateway run with
// --tls-cert/--tls-key. A client that does not speak TLS, or does not trust
// the certificate, never gets to LOGIN.
func NewTLSGateway(t testing.TB, conf *tls.Config) *Gateway {
	t.Helper()
	return newGateway(t, conf)
}

func newGateway(t testing.TB, conf *tls.Config) *Gateway {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if conf != nil {
		ln = tls.NewListener(ln, conf)
	}
	g := &Gateway{
		Host:    "127.0.0.1",
		TCPPort: port,
		// No HTTP side; the id keeps the contract's shape with port+1.
		ID:    fmt.Sprintf("127.0.0.1:%d:%d", port, port+1),
		ln:    ln,
		conns: make(chan *Conn, 64),
		live:  map[string][]*Conn{},
	}
	g.wg.Add(1)
	go g.accept()
	t.Cleanup(g.Close)
	return g
}

// SetOnLogin replaces the LOGIN handler: it returns the frame to answer with;
// anything but LOGIN_ACK is written and the connection closed. nil restores
// the default (LOGIN_ACK built from the token).
func (g *Gateway) SetOnLogin(f func(*cimpb.Login) *cimpb.Frame) {
	if f == nil {
		g.onLogin.Store(nil)
		return
	}
	g.onLogin.Store(&f)
}

// SetOnMsg makes the gateway answer every MSG a client sends with the frame
// f returns (nil: no answer), as a real gateway relays the route's RECEIPT or
// ERROR. By default MSGs are only recorded.
func (g *Gateway) SetOnMsg(f func(*cimpb.Msg) *cimpb.Frame) {
	if f == nil {
		g.onMsg.Store(nil)
		return
	}
	g.onMsg.Store(&f)
}

// SetInbox makes the gateway play the inbox part of the contract with the
// inbox f returns for a user: right after LOGIN_ACK it sends the answer to
// SYNC{after_seq: LOGIN.last_seq, from_acked: last_seq == 0} (what a real
// gateway asks the route on the client's behalf), answers every SYNC the
// client sends and applies its ACKs. nil turns it off (the default): SYNC
// and ACK frames are only recorded.
func (g *Gateway) SetInbox(f func(userID string) *Inbox) {
	if f == nil {
		g.inbox.Store(nil)
		return
	}
	g.inbox.Store(&f)
}

// SetGroups makes the gateway pass group MSGs (Msg.Group set) to r's
// groups, as a real gateway forwards them to the route: a sender that is not
// a member gets ERROR Forbidden, an unknown group ERROR NoGroup; otherwise
// the MSG (msg_id "m-<client_msg_id>", from, from_name, group set) goes to
// every other member (appended to its inbox when SetInbox is on, and
// pushed to its connections to this gateway) and the sender gets
// RECEIPT_SENT with group and count. A resend of a stored message is
// answered SENT again without a second fan-out. nil turns it off; group
// MSGs then go to SetOnMsg's handler like the others.
func (g *Gateway) SetGroups(r *Route) { g.groups.Store(r) }

// groupMsg plays the route for a group MSG from c.
func (g *Gateway) groupMsg(r *Route, c *Conn, m *cimpb.Msg) *cimpb.Frame {
	answer, fanout, to := r.groupSend(c.UserID, m)
	if fanout == nil {
		return answer
	}
	inbox := g.inbox.Load()
	for _, uid := range to {
		f := fanout
		if inbox != nil {
			f = (*inbox)(uid).Append(fanout)
		}
		g.mu.Lock()
		conns := slices.Clone(g.live[uid])
		g.mu.Unlock()
		for _, lc := range conns {
			_ = lc.Send(f) // a closed connection gets it at its next login
		}
	}
	return answer
}

// goLive registers c as logged in, for group fan-outs; leave undoes it.
func (g *Gateway) goLive(c *Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.live[c.UserID] = append(g.live[c.UserID], c)
}

func (g *Gateway) leave(c *Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.live[c.UserID] = slices.DeleteFunc(g.live[c.UserID], func(o *Conn) bool { return o == c })
	if len(g.live[c.UserID]) == 0 {
		delete(g.live, c.UserID)
	}
}

// Receipts is a SetOnMsg handler answering every MSG with RECEIPT_SENT.
func Receipts(m *cimpb.Msg) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_RECEIPT, Receipt: &cimpb.Receipt{
		Status: cimpb.ReceiptStatus_RECEIPT_SENT, MsgId: "m-" + m.GetClientMsgId(), ClientMsgId: m.GetClientMsgId(),
	}}
}

// Mute stops (true) or resumes (false) answering PINGs.
func (g *Gateway) Mute(on bool) { g.mute.Store(on) }

// Logins counts LOGIN frames received.
func (g *Gateway) Logins() int { return int(g.logins.Load()) }

// Accept returns the next connection that completed LOGIN, failing the test
// after Wait.
func (g *Gateway) Accept(t testing.TB) *Conn {
	t.Helper()
	select {
	case c := <-g.conns:
		return c
	case <-time.After(Wait):
		t.Fatalf("gateway %s: no client logged in within %v", g.ID, Wait)
		return nil
	}
}

// Close stops listening, closes every connection and waits for its
// goroutines. Safe to call twice.
func (g *Gateway) Close() {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.closed = true
	all := g.all
	g.mu.Unlock()
	_ = g.ln.Close()
	for _, c := range all {
		c.Close()
	}
	g.wg.Wait()
}

func (g *Gateway) accept() {
	defer g.wg.Done()
	for {
		nc, err := g.ln.Accept()
		if err != nil {
			return
		}
		c := &Conn{
			gw:     g,
			nc:     nc,
			w:      codec.NewWriter(nc),
			Frames: make(chan *cimpb.Frame, 4096),
			done:   make(chan struct{}),
		}
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			_ = nc.Close()
			return
		}
		g.all = append(g.all, c)
		g.wg.Add(1)
		g.mu.Unlock()
		go c.serve()
	}
}

// Conn is one client connection to a fake Gateway.
type Conn struct {
	gw *Gateway
	nc net.Conn
	// Login is the client's LOGIN payload.
	Login *cimpb.Login
	// UserID and SessionID come from the token.
	UserID, UserName, SessionID string
	// Frames receives every frame the client sent after LOGIN, PINGs too.
	Frames chan *cimpb.Frame

	wmu  sync.Mutex
	w    *codec.Writer
	once sync.Once
	done chan struct{}
}

func (c *Conn) serve() {
	defer c.gw.wg.Done()
	defer c.Close()
	r := codec.NewReader(c.nc, 0)
	f, err := r.ReadFrame()
	if err != nil || f.GetType() != cimpb.Type_LOGIN {
		return
	}
	c.gw.logins.Add(1)
	c.Login = f.GetLogin()
	c.UserID, c.UserName, c.SessionID, _ = ParseToken(c.Login.GetToken())
	answer := &cimpb.Frame{Type: cimpb.Type_LOGIN_ACK, ReqId: f.GetReqId(), LoginAck: &cimpb.LoginAck{
		UserId: c.UserID, UserName: c.UserName, SessionId: c.SessionID,
		GatewayId: c.gw.ID, ServerTimeMs: time.Now().UnixMilli(),
	}}
	if h := c.gw.onLogin.Load(); h != nil {
		answer = (*h)(c.Login)
	}
	if err := c.Send(answer); err != nil || answer.GetType() != cimpb.Type_LOGIN_ACK {
		return
	}
	c.gw.goLive(c)
	defer c.gw.leave(c)
	var inbox *Inbox
	if h := c.gw.inbox.Load(); h != nil {
		inbox = (*h)(c.UserID)
		last := c.Login.GetLastSeq()
		if c.SendAll(inbox.Answer(&cimpb.Sync{AfterSeq: last, FromAcked: last == 0})...) != nil {
			return
		}
	}
	select {
	case c.gw.conns <- c:
	default: // nobody collects connections in this test
	}
	for {
		f, err := r.ReadFrame()
		if err != nil {
			return
		}
		var answer []*cimpb.Frame
		switch h, groups := c.gw.onMsg.Load(), c.gw.groups.Load(); {
		case f.GetType() == cimpb.Type_PING && !c.gw.mute.Load():
			answer = []*cimpb.Frame{{Type: cimpb.Type_PONG}}
		case f.GetType() == cimpb.Type_MSG && f.GetMsg().GetGroup() != "" && groups != nil:
			answer = []*cimpb.Frame{c.gw.groupMsg(groups, c, f.GetMsg())}
		case f.GetType() == cimpb.Type_MSG && h != nil:
			if a := (*h)(f.GetMsg()); a != nil {
				answer = []*cimpb.Frame{a}
			}
		case f.GetType() == cimpb.Type_SYNC && inbox != nil:
			answer = inbox.Answer(f.GetSync())
		case f.GetType() == cimpb.Type_ACK && inbox != nil:
			inbox.Ack(f.GetAck().GetSeq())
		}
		if c.SendAll(answer...) != nil {
			return
		}
		select {
		case c.Frames <- f:
		case <-c.done:
			return
		}
	}
}

// Send writes one frame to the client.
func (c *Conn) Send(f *cimpb.Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.w.WriteFrame(f); err != nil {
		return err
	}
	return c.w.Flush()
}

// SendAll writes frames to the client in one flush.
func (c *Conn) SendAll(frames ...*cimpb.Frame) error {
	if len(frames) == 0 {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for _, f := range frames {
		if err := c.w.WriteFrame(f); err != nil {
			return err
		}
	}
	return c.w.Flush()
}

// WriteRaw writes bytes as they are, e.g. a malformed frame.
func (c *Conn) WriteRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.w.Flush(); err != nil {
		return err
	}
	_, err := c.nc.Write(b)
	return err
}

// TLS reports whether the client speaks TLS on this connection, and its
// state.
func (c *Conn) TLS() (tls.ConnectionState, bool) {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return tls.ConnectionState{}, false
	}
	return tc.ConnectionState(), true
}

// Close ends the connection. Safe to call twice.
func (c *Conn) Close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.nc.Close()
	})
}

// Done is closed once the connection ended on either side (the fake notices
// the client's close when its read fails).
func (c *Conn) Done() <-chan struct{} { return c.done }

// Next returns the next frame of type typ the client sent, skipping others
// (such as PINGs), failing the test after Wait.
func (c *Conn) Next(t testing.TB, typ cimpb.Type) *cimpb.Frame {
	t.Helper()
	deadline := time.After(Wait)
	for {
		select {
		case f := <-c.Frames:
			if f.GetType() == typ {
				return f
			}
		case <-deadline:
			t.Fatalf("gateway %s: no %v frame within %v", c.gw.ID, typ, Wait)
			return nil
		}
	}
}

// WaitDone fails the test unless the connection ends within Wait.
func (c *Conn) WaitDone(t testing.TB) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(Wait):
		t.Fatalf("gateway %s: connection still open after %v", c.gw.ID, Wait)
	}
}

// Token returns the fake token for a session.
func Token(uid, name, sid string) string {
	return strings.Join([]string{"tok", uid, name, sid}, ":")
}

// ParseToken reads a fake token.
func ParseToken(tok string) (uid, name, sid string, err error) {
	p := strings.Split(tok, ":")
	if len(p) != 4 || p[0] != "tok" {
		return "", "", "", errors.New("clienttest: not a fake token")
	}
	return p[1], p[2], p[3], nil
}

// ServerJSON is the gateway as the route's /login names it.
func (g *Gateway) ServerJSON() map[string]any {
	return map[string]any{"id": g.ID, "host": g.Host, "tcpPort": g.TCPPort, "httpPort": g.TCPPort + 1}
}

// itoa keeps strconv in one place for the route fake.
func itoa(n int) string { return strconv.Itoa(n) }
