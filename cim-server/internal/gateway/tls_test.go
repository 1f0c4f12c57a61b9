package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
	"github.com/gocim/gocim/proto/codes"
)

func startTLSGateway(t *testing.T, pki *testenv.TLS, mod func(*Config)) (*Gateway, *fakeRoute) {
	t.Helper()
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, func(c *Config) {
		c.TLSCert, c.TLSKey = pki.CertFile, pki.KeyFile
		if mod != nil {
			mod(c)
		}
	})
	return g, route
}

// dialTLS connects with cfg (ServerName 127.0.0.1 and the test CA unless
// set) and finishes the handshake.
func dialTLS(t *testing.T, g *Gateway, pki *testenv.TLS, cfg *tls.Config) (*client, error) {
	t.Helper()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.RootCAs == nil {
		cfg.RootCAs = pki.Pool
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "127.0.0.1"
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	nc, err := tls.DialWithDialer(d, "tcp", g.Addr().String(), cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: codec.NewReader(nc, 1<<20)}, nil
}

// TestTLSLogin: with --tls-cert/--tls-key a client that trusts the CA logs
// in and chats over TLS, with at least TLS 1.2.
func TestTLSLogin(t *testing.T) {
	pki := testenv.NewTLS(t)
	g, _ := startTLSGateway(t, pki, nil)
	c, err := dialTLS(t, g, pki, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v := c.nc.(*tls.Conn).ConnectionState().Version; v < tls.VersionTLS12 {
		t.Fatalf("negotiated TLS version %x", v)
	}
	c.send(&cimpb.Frame{Type: cimpb.Type_LOGIN, ReqId: 1, Login: &cimpb.Login{Token: tokenFor(t, g.ID(), "7", "s7")}})
	if f := c.recv(); f.Type != cimpb.Type_LOGIN_ACK || f.LoginAck.UserId != "7" {
		t.Fatalf("got %v, want LOGIN_ACK", f)
	}
	c.send(&cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 2, Msg: &cimpb.Msg{ClientMsgId: "c1", To: "8", Body: []byte("hi")}})
	if f := c.recv(); f.Type != cimpb.Type_RECEIPT || f.Receipt.ClientMsgId != "c1" {
		t.Fatalf("got %v, want RECEIPT", f)
	}
	// A pushed frame arrives over TLS too.
	push(t, g, &cimpb.PushBatch{Deliveries: []*cimpb.Delivery{
		{UserId: "7", Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "p1"}}}}})
	if f := c.recv(); f.GetMsg().GetMsgId() != "p1" {
		t.Fatalf("got %v, want pushed p1", f)
	}
}

// TestTLSRefusesOthers: a plaintext client, a client that does not trust
// the CA and a client limited to TLS 1.1 get no session.
func TestTLSRefusesOthers(t *testing.T) {
	pki := testenv.NewTLS(t)
	g, route := startTLSGateway(t, pki, nil)

	plain := dial(t, g)
	plain.send(&cimpb.Frame{Type: cimpb.Type_LOGIN, ReqId: 1, Login: &cimpb.Login{Token: tokenFor(t, g.ID(), "7", "s7")}})
	_ = plain.nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	if f, err := plain.r.ReadFrame(); err == nil {
		t.Fatalf("a plaintext client got %v from the TLS port", f)
	}

	if _, err := dialTLS(t, g, pki, &tls.Config{RootCAs: x509.NewCertPool()}); err == nil {
		t.Fatal("handshake succeeded without trusting the CA")
	}
	if _, err := dialTLS(t, g, pki, &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("handshake succeeded with TLS 1.1")
	}
	route.mu.Lock()
	defer route.mu.Unlock()
	if len(route.online) != 0 || g.Connections() != 0 {
		t.Fatalf("online calls %v, connections %d: want none", route.online, g.Connections())
	}
}

// TestTLSHandshakeBoundByLoginTimeout: a client that connects and never
// starts the handshake neither blocks other clients (the handshake is not
// done in the accept loop) nor stays longer than the login timeout; a
// client that finishes the handshake but sends no LOGIN gets LoginTimeout.
func TestTLSHandshakeBoundByLoginTimeout(t *testing.T) {
	const loginTimeout = 2 * time.Second
	pki := testenv.NewTLS(t)
	g, _ := startTLSGateway(t, pki, func(c *Config) { c.LoginTimeout = loginTimeout })

	start := time.Now()
	idle, err := net.Dial("tcp", g.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	waitFor(t, "the idle connection to be accepted", func() bool {
		g.connMu.Lock()
		defer g.connMu.Unlock()
		return len(g.conns) == 1
	})

	// Another client gets in while the idle one holds its handshake open.
	c, err := dialTLS(t, g, pki, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.send(&cimpb.Frame{Type: cimpb.Type_LOGIN, ReqId: 1, Login: &cimpb.Login{Token: tokenFor(t, g.ID(), "7", "s7")}})
	if f := c.recv(); f.Type != cimpb.Type_LOGIN_ACK {
		t.Fatalf("got %v, want LOGIN_ACK", f)
	}
	_ = idle.SetReadDeadline(time.Now().Add(time.Millisecond))
	if _, err := idle.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the idle connection ended before the second client was served (%v): the accept loop waited on its handshake", err)
	}

	// The idle one is closed once the login timeout has passed.
	_ = idle.SetReadDeadline(time.Now().Add(loginTimeout + 10*time.Second))
	n, err := idle.Read(make([]byte, 64))
	if elapsed := time.Since(start); err == nil || errors.Is(err, os.ErrDeadlineExceeded) || elapsed < loginTimeout-100*time.Millisecond {
		t.Fatalf("idle connection: read %d bytes, err %v after %v; want it closed after the login timeout (%v)", n, err, elapsed, loginTimeout)
	}

	// Handshake done, no LOGIN: ERROR LoginTimeout, then the end.
	quiet, err := dialTLS(t, g, pki, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f := quiet.recv(); f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.LoginTimeout {
		t.Fatalf("got %v, want ERROR LoginTimeout", f)
	}
	_ = quiet.nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := quiet.r.ReadFrame(); !errors.Is(err, io.EOF) {
		t.Fatalf("want EOF after LoginTimeout, got %v", err)
	}
	waitFor(t, "only the logged-in connection left", func() bool {
		g.connMu.Lock()
		defer g.connMu.Unlock()
		return len(g.conns) == 1
	})
}

// TestTLSConfigErrors: a half TLS configuration or unreadable files stop
// the gateway at startup.
func TestTLSConfigErrors(t *testing.T) {
	pki := testenv.NewTLS(t)
	for name, tc := range map[string]struct{ cert, key, want string }{
		"cert only":    {pki.CertFile, "", "give both or neither"},
		"key only":     {"", pki.KeyFile, "give both or neither"},
		"missing file": {pki.CertFile, filepath.Join(t.TempDir(), "nope.pem"), "--tls-cert/--tls-key"},
		"swapped":      {pki.KeyFile, pki.CertFile, "--tls-cert/--tls-key"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Listen, cfg.TokenSecret, cfg.InternalSecret = "127.0.0.1:0", secret, internalSecret
			cfg.TLSCert, cfg.TLSKey = tc.cert, tc.key
			if _, err := New(cfg, quiet); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}
