package conn

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
)

// TestIdleConnectionGivesItsBuffersBack: a connection gives its read buffers
// back once online, and again after each frame while it stays idle, and
// once a busy connection sent nothing for IdleBuffers; it reads on
// correctly when bytes come: a frame whose first byte is all that came while idle, a frame
// whose bytes trickle in slower than IdleBuffers (a frame under way is
// never interrupted), and frames back to back; over TCP and over TLS.
func TestIdleConnectionGivesItsBuffersBack(t *testing.T) {
	t.Run("tcp", func(t *testing.T) { testIdleBuffers(t, false) })
	t.Run("tls", func(t *testing.T) { testIdleBuffers(t, true) })
}

func testIdleBuffers(t *testing.T, withTLS bool) {
	idled := make(chan bool, 64)
	const idle = 20 * time.Millisecond
	cfg := testConfig(func(c *Config) {
		c.IdleBuffers = idle
		c.idled = func(timer bool) { idled <- timer }
	})
	h := newHandler()
	var cl *client
	if withTLS {
		pki := testenv.NewTLS(t, "127.0.0.1")
		cc, sc := tcpPair(t)
		ccfg := pki.ClientConfig()
		ccfg.ServerName = "127.0.0.1"
		tc := tls.Client(cc, ccfg)
		cl, _ = start(t, tc, tls.Server(sc, pki.ServerConfig()), cfg, h)
	} else {
		cl, _ = serveTCP(t, cfg, h)
	}
	login(t, cl, goodToken(t))
	waitIdled := func(what string) {
		t.Helper()
		select {
		case <-idled:
		case <-time.After(10 * time.Second):
			t.Fatalf("the connection kept its buffers %s", what)
		}
	}
	waitIdled("after the login")

	cl.send(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 1})
	if f := cl.recv(); f.Type != cimpb.Type_PONG || f.ReqId != 1 {
		t.Fatalf("after an idle spell: %v, want PONG 1", f)
	}
	waitIdled("after a PING")

	b, err := codec.Encode(&cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 2, Msg: &cimpb.Msg{ClientMsgId: "c2", To: "bob", Body: []byte("slowly")}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		cl.write(b[i : i+1])
		// A slow peer: each byte comes after the connection would have
		// gone idle between frames.
		time.Sleep(2 * idle)
	}
	cl.send(&cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 3, Msg: &cimpb.Msg{ClientMsgId: "c3", To: "bob", Body: []byte("next")}})
	cl.send(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 4})
	if f := cl.recv(); f.Type != cimpb.Type_PONG || f.ReqId != 4 {
		t.Fatalf("after a slow frame: %v, want PONG 4", f)
	}
	// A PING right after a PONG makes the connection busy: it keeps its
	// buffers until the idle spell passes. (A machine slower than the spell
	// between the two makes it look idle: try again.)
	for try := 0; ; try++ {
		cl.send(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 5})
		cl.recv()
		cl.send(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 6})
		cl.recv()
		if timerRelease(idled) {
			break
		}
		if try == 20 {
			t.Fatal("a busy connection never gave its buffers back after its idle spell")
		}
	}
	var got []*cimpb.Frame
	for _, f := range h.forwarded() {
		if f.Type == cimpb.Type_MSG {
			got = append(got, f)
		}
	}
	if len(got) != 2 || got[0].GetMsg().GetClientMsgId() != "c2" || string(got[0].GetMsg().GetBody()) != "slowly" ||
		got[1].GetMsg().GetClientMsgId() != "c3" {
		t.Fatalf("forwarded %v, want c2 (slowly), c3", got)
	}
}

// timerRelease reports whether a busy connection's release after its idle
// spell (true on idled) comes before idled is quiet for a second.
func timerRelease(idled chan bool) bool {
	for {
		select {
		case timer := <-idled:
			if timer {
				return true
			}
		case <-time.After(time.Second):
			return false
		}
	}
}

// waitingConn is a transport that waits for frames itself (a FrameWaiter,
// as package mqttconn is): it reads a few bytes at a time and keeps them
// until they are read. waits counts the WaitFrame calls that had nothing
// at hand.
type waitingConn struct {
	net.Conn
	kept  []byte
	buf   [4]byte
	err   error
	waits chan struct{}
}

func (w *waitingConn) WaitFrame() {
	if len(w.kept) > 0 || w.err != nil {
		return
	}
	w.waits <- struct{}{}
	n, err := w.Conn.Read(w.buf[:])
	w.kept, w.err = w.buf[:n], err
}

func (w *waitingConn) Read(p []byte) (int, error) {
	w.WaitFrame()
	if len(w.kept) > 0 {
		n := copy(p, w.kept)
		w.kept = w.kept[n:]
		return n, nil
	}
	err := w.err
	w.err = nil
	return 0, err
}

// TestFrameWaiterGetsBuffersBackAtEveryWait: on a transport that waits for
// frames itself, a connection gives its read buffers back at every wait
// for the peer, busy or not (no idle spell: here an hour), lets the
// transport wait, and reads frames whole however their bytes come; the
// read deadline still ends a silent peer.
func TestFrameWaiterGetsBuffersBackAtEveryWait(t *testing.T) {
	idled := make(chan bool, 64)
	cfg := testConfig(func(c *Config) {
		c.IdleBuffers = time.Hour
		c.ReadTimeout = time.Second
		c.idled = func(timer bool) { idled <- timer }
	})
	h := newHandler()
	cc, sc := tcpPair(t)
	wc := &waitingConn{Conn: sc, waits: make(chan struct{}, 64)}
	cl, _ := start(t, cc, wc, cfg, h)
	login(t, cl, goodToken(t))
	released := func(what string) {
		t.Helper()
		select {
		case timer := <-idled:
			if timer {
				t.Fatalf("%s: given back after an idle spell, want at the wait", what)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the connection kept its buffers %s", what)
		}
		select {
		case <-wc.waits:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the transport was not left to wait", what)
		}
	}
	released("after the login")
	// Back to back: a busy connection gives them back all the same.
	for id := range uint64(3) {
		cl.send(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: id + 1})
		if f := cl.recv(); f.Type != cimpb.Type_PONG || f.ReqId != id+1 {
			t.Fatalf("got %v, want PONG %d", f, id+1)
		}
		released("after a PING")
	}
	// A frame longer than the transport's reads, and one more behind it
	// in the same write.
	a, err := codec.Encode(&cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 5, Msg: &cimpb.Msg{ClientMsgId: "c5", To: "bob", Body: []byte("a body of some length")}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := codec.Encode(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 6})
	if err != nil {
		t.Fatal(err)
	}
	cl.write(append(a, b...))
	if f := cl.recv(); f.Type != cimpb.Type_PONG || f.ReqId != 6 {
		t.Fatalf("got %v, want PONG 6", f)
	}
	var msgs []*cimpb.Frame
	for _, f := range h.forwarded() {
		if f.Type == cimpb.Type_MSG {
			msgs = append(msgs, f)
		}
	}
	if len(msgs) != 1 || string(msgs[0].GetMsg().GetBody()) != "a body of some length" {
		t.Fatalf("forwarded %v, want the MSG c5 whole", msgs)
	}
	// Silent past the read timeout: the wait ends it.
	if why := h.waitReason(t); why.Cause != Idle {
		t.Fatalf("closed for %v, want %v", why.Cause, Idle)
	}
}
