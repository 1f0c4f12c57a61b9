package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
	"github.com/gocim/gocim/proto/codes"
)

// dialFrom connects to g from the local address ip.
func dialFrom(t *testing.T, g *Gateway, ip string) *client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", g.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: codec.NewReader(nc, 1<<20)}
}

// expectRefused: the gateway said TooManyConnections and hung up, without
// waiting for anything from the client.
func (c *client) expectRefused() {
	c.t.Helper()
	if f := c.recv(); f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.TooManyConnections {
		c.t.Fatalf("got %v, want ERROR %d", f, codes.TooManyConnections)
	}
	c.expectEOF()
}

// expectAccepted: the connection is being served (a PING before LOGIN is
// answered as a bad first frame, not with TooManyConnections).
func (c *client) expectAccepted() {
	c.t.Helper()
	c.send(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 3})
	if f := c.recv(); f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.BadFrame {
		c.t.Fatalf("got %v, want ERROR %d (the connection was served)", f, codes.BadFrame)
	}
}

// TestUnauthenticatedCaps: one address holds at most MaxUnauthPerAddr
// connections that have not logged in, all addresses MaxUnauth; the excess
// is refused at once with ERROR TooManyConnections. A successful LOGIN and a
// close give the slot back.
func TestUnauthenticatedCaps(t *testing.T) {
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, func(c *Config) { c.MaxUnauthPerAddr, c.MaxUnauth = 2, 3 })

	a1 := dialFrom(t, g, "127.0.0.1")
	dialFrom(t, g, "127.0.0.1")                 // stays, not logged in
	dialFrom(t, g, "127.0.0.1").expectRefused() // per address
	b1 := dialFrom(t, g, "127.0.0.2")           // another address still gets in
	dialFrom(t, g, "127.0.0.3").expectRefused() // total: 3 not logged in
	if n := g.Refused(); n != 2 {
		t.Fatalf("Refused() = %d, want 2", n)
	}

	// a1 logs in: it no longer counts as unauthenticated.
	a1.send(&cimpb.Frame{Type: cimpb.Type_LOGIN, ReqId: 1, Login: &cimpb.Login{Token: tokenFor(t, g.ID(), "7", "s7")}})
	if f := a1.recv(); f.Type != cimpb.Type_LOGIN_ACK {
		t.Fatalf("login: %v", f)
	}
	a1.send(&cimpb.Frame{Type: cimpb.Type_PING})
	if f := a1.recv(); f.Type != cimpb.Type_PONG { // registered by now
		t.Fatalf("got %v, want PONG", f)
	}
	a3 := dialFrom(t, g, "127.0.0.1")
	a3.expectAccepted() // and is closed for it
	a3.expectEOF()
	// b1 hangs up: its slot comes back.
	b1.nc.Close()
	waitFor(t, "b1's slot back", func() bool { return g.unauth.Count() == 1 })
	dialFrom(t, g, "127.0.0.3").expectAccepted()
}

// TestConnectionCap: MaxConns counts every connection, logged in or not.
func TestConnectionCap(t *testing.T) {
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, func(c *Config) { c.MaxConns, c.MaxUnauth, c.MaxUnauthPerAddr = 3, 2, 0 })
	login(t, g, "1", "s1")
	login(t, g, "2", "s2")
	c3 := dial(t, g)
	dialFrom(t, g, "127.0.0.2").expectRefused()
	c3.expectAccepted()
	c3.expectEOF()
	waitFor(t, "c3's slot back", func() bool { return g.open.Load() == 2 })
	dialFrom(t, g, "127.0.0.2").expectAccepted()
}

// flakyListener fails Accept with errs in turn (a nil error hands out conn),
// then reports itself closed.
type flakyListener struct {
	errs  []error
	conn  net.Conn
	calls int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.calls++
	if l.calls > len(l.errs) {
		return nil, net.ErrClosed
	}
	if err := l.errs[l.calls-1]; err != nil {
		return nil, err
	}
	return l.conn, nil
}

func (l *flakyListener) Close() error   { return nil }
func (l *flakyListener) Addr() net.Addr { return &net.TCPAddr{} }

// refusedConn is an accepted connection the caps refuse.
type refusedConn struct {
	net.Conn
	closed bool
}

func (c *refusedConn) Write(b []byte) (int, error)       { return len(b), nil }
func (c *refusedConn) SetWriteDeadline(time.Time) error  { return nil }
func (c *refusedConn) Close() error                      { c.closed = true; return nil }
func (c *refusedConn) RemoteAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1} }
func (c *refusedConn) LocalAddr() net.Addr               { return &net.TCPAddr{} }
func (c *refusedConn) SetReadDeadline(t time.Time) error { return nil }
func (c *refusedConn) SetDeadline(t time.Time) error     { return nil }
func (c *refusedConn) Read(b []byte) (n int, err error)  { return 0, errors.New("not read") }

// TestAcceptErrorsBackOff: failing Accepts are retried after a pause that
// doubles up to a second, and a connection accepted in between resets it.
func TestAcceptErrorsBackOff(t *testing.T) {
	emfile := fmt.Errorf("accept: %w", syscall.EMFILE)
	var errs []error
	for range 10 {
		errs = append(errs, emfile)
	}
	errs = append(errs, nil, emfile, emfile) // a connection, then errors again
	rc := &refusedConn{}
	ln := &flakyListener{errs: errs, conn: rc}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := &Gateway{log: quiet, ln: ln, ctx: ctx, conns: map[*conn.Conn]func(){}, refusals: conn.NewThrottle(time.Second)}
	var pauses []time.Duration
	g.pause = func(d time.Duration) bool { pauses = append(pauses, d); return true }
	g.setLimits(connLimits{total: 1})
	g.open.Store(1) // full: the accepted one is refused

	g.acceptLoop() // returns at net.ErrClosed

	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	want := []time.Duration{ms(5), ms(10), ms(20), ms(40), ms(80), ms(160), ms(320), ms(640), time.Second, time.Second, ms(5), ms(10)}
	if fmt.Sprint(pauses) != fmt.Sprint(want) {
		t.Fatalf("pauses %v, want %v", pauses, want)
	}
	if ln.calls != len(errs)+1 {
		t.Fatalf("%d Accept calls, want %d: one per pause, no spinning", ln.calls, len(errs)+1)
	}
	if !rc.closed || g.Refused() != 1 {
		t.Fatalf("the connection over the cap: closed %v, refused %d", rc.closed, g.Refused())
	}

	// A pause cut short by shutdown ends the loop.
	ln2 := &flakyListener{errs: []error{emfile, emfile}}
	g.ln = ln2
	g.pause = func(time.Duration) bool { return false }
	g.acceptLoop()
	if ln2.calls != 1 {
		t.Fatalf("%d Accept calls after the pause said stop, want 1", ln2.calls)
	}
}
