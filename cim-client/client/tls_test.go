package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// TestTLSToGatewayAndRoute: with Config.TLS the gateway link is TLS,
// verified against the CA for the host /login named, and the private HTTP
// client trusts the same CA for an https:// route.
func TestTLSToGatewayAndRoute(t *testing.T) {
	ca := testenv.NewTLS(t)
	gw := clienttest.NewTLSGateway(t, ca.ServerConfig())
	gw.SetOnMsg(clienttest.Receipts)
	route := clienttest.NewTLSRoute(t, ca.ServerConfig(), gw)
	route.AddUser("alice", "secret1")
	cfg := fastConfig(route.URL)
	cfg.TLS = &tls.Config{RootCAs: ca.Pool}
	if !strings.HasPrefix(route.URL, "https://") {
		t.Fatalf("route URL %s is not https", route.URL)
	}
	c := startClient(t, cfg)
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	if st, ok := conn.TLS(); !ok || !st.HandshakeComplete || st.Version < tls.VersionTLS12 {
		t.Fatalf("gateway link TLS %v, state %+v", ok, st)
	}
	ctx := context.Background()
	id, err := c.Send(ctx, "bob", "over TLS")
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, c, EventReceipt); ev.Receipt.GetClientMsgId() != id {
		t.Errorf("receipt %v", ev.Receipt)
	}
	if m := conn.Next(t, cimpb.Type_MSG).GetMsg(); string(m.GetBody()) != "over TLS" {
		t.Errorf("uplink %v", m)
	}
	if _, err := c.OnlineUsers(ctx); err != nil {
		t.Errorf("OnlineUsers over https: %v", err)
	}
	if cfg.TLS.ServerName != "" {
		t.Error("the caller's tls.Config was modified")
	}
}

// TestTLSServerName: the certificate is checked for the gateway host from
// /login unless Config.TLS.ServerName says otherwise.
func TestTLSServerName(t *testing.T) {
	ca := testenv.NewTLS(t, "gw.example.test") // not for 127.0.0.1
	gw := clienttest.NewTLSGateway(t, ca.ServerConfig())
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")

	cfg := fastConfig(route.URL)
	cfg.TLS = &tls.Config{RootCAs: ca.Pool}
	err := startErr(t, cfg, clienttest.Wait)
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &cve) || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("Start with a certificate for another name: %v, want a verification error at once", err)
	}

	cfg.TLS.ServerName = "gw.example.test"
	startClient(t, cfg)
	if st, _ := gw.Accept(t).TLS(); st.ServerName != "gw.example.test" {
		t.Errorf("SNI %q, want gw.example.test", st.ServerName)
	}
}

// TestTLSMismatch: a plaintext client never logs in to a TLS gateway, a
// TLS client not to a plaintext one, nor one whose CA it does not trust.
func TestTLSMismatch(t *testing.T) {
	ca, other := testenv.NewTLS(t), testenv.NewTLS(t)
	tlsGW := clienttest.NewTLSGateway(t, ca.ServerConfig())
	plainGW := clienttest.NewGateway(t)
	for _, tc := range []struct {
		name      string
		gw        *clienttest.Gateway
		conf      *tls.Config
		permanent bool // Start gives up at once instead of retrying
	}{
		{"plaintext client, TLS gateway", tlsGW, nil, false},
		// The fake closes at the ClientHello (not a frame): EOF, which
		// looks like any dropped connection (a real gateway answers ERROR
		// first, which is a tls.RecordHeaderError: see TestTLSErrorsArePermanentAtStart).
		{"TLS client, plaintext gateway", plainGW, &tls.Config{RootCAs: ca.Pool}, false},
		{"untrusted CA", tlsGW, &tls.Config{RootCAs: other.Pool}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			route := clienttest.NewRoute(t, tc.gw)
			route.AddUser("alice", "secret1")
			logins := tc.gw.Logins()
			cfg := fastConfig(route.URL)
			cfg.TLS = tc.conf
			wait := 300 * time.Millisecond
			if tc.permanent {
				wait = clienttest.Wait
			}
			err := startErr(t, cfg, wait)
			if err == nil {
				t.Fatal("Start succeeded")
			}
			if timedOut := errors.Is(err, context.DeadlineExceeded); timedOut == tc.permanent {
				t.Errorf("Start: %v; want permanent %v", err, tc.permanent)
			}
			if n := tc.gw.Logins() - logins; n != 0 {
				t.Errorf("the gateway got %d LOGINs", n)
			}
		})
	}
}

// TestTLSHandshakeBoundedByDialTimeout: a gateway port that accepts but
// never answers the handshake costs one DialTimeout per attempt.
func TestTLSHandshakeBoundedByDialTimeout(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	held.Add(1)
	go func() {
		defer held.Done()
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { _ = silent.Close(); held.Wait() })

	gw := clienttest.NewGateway(t) // only named by /login
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	cfg := fastConfig(route.URL)
	cfg.TLS = &tls.Config{}
	cfg.DialTimeout = 50 * time.Millisecond
	// The TCP connect is not what this test bounds: a loopback connect
	// completes in the kernel's backlog, but on a loaded machine (CI, -race)
	// the goroutine can miss the 50 ms and the last failure would be the
	// dial. Only the handshake runs under DialTimeout here.
	cfg.Dial = func(_ context.Context, network, _ string) (net.Conn, error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		return d.Dial(network, silent.Addr().String())
	}
	start := time.Now()
	err = startErr(t, cfg, time.Second)
	if err == nil || !strings.Contains(err.Error(), "TLS handshake") {
		t.Fatalf("Start: %v, want the TLS handshake as the last failure", err)
	}
	if route.Logins() < 3 {
		t.Errorf("%d logins in %v: the handshake was not cut at DialTimeout", route.Logins(), time.Since(start))
	}
}

// startErr runs Start for cfg, bounded by wait, and returns its error
// (closing the client).
func startErr(t *testing.T, cfg Config, wait time.Duration) error {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeClient(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err = c.Start(ctx)
	if CodeOf(err) == codes.Unauthorized {
		t.Fatalf("Start: %v", err)
	}
	return err
}

func TestTLSErrorsArePermanentAtStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"certificate", &tls.CertificateVerificationError{Err: errors.New("x509: unknown authority")}, true},
		{"not TLS", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, true},
		{"EOF", errors.New("TLS handshake: EOF"), false},
	} {
		err := fmt.Errorf("dial gateway g: TLS handshake: %w", tc.err)
		if got := permanent(err, true); got != tc.want {
			t.Errorf("%s: permanent at Start = %v, want %v", tc.name, got, tc.want)
		}
		if permanent(err, false) {
			t.Errorf("%s: permanent while reconnecting", tc.name)
		}
	}
}
