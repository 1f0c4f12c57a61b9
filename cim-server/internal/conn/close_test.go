package conn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
	"github.com/gocim/gocim/proto/codes"
)

// waitWriterIdle waits until no writer runs and nothing is queued or being
// written, so that a test starts from an empty queue.
func waitWriterIdle(t *testing.T, c *Conn) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		idle := !c.writing && len(c.pending) == 0 && c.pendingBytes == 0 && c.writingBytes == 0
		c.mu.Unlock()
		if idle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer did not go idle")
		}
		time.Sleep(time.Millisecond)
	}
}

// readToEOF reads what the server still sends until it hangs up and
// returns the last frame.
func readToEOF(t *testing.T, cl *client) *cimpb.Frame {
	t.Helper()
	var last *cimpb.Frame
	for {
		_ = cl.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		f, err := cl.r.ReadFrame()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("read: %v", err)
			}
			return last
		}
		last = f
	}
}

func bodyMsg(id string, n int) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: id, Body: make([]byte, n)}}
}

// TestSlowConsumerByBytes: a client that does not read is a slow consumer
// once the frames queued for it (and being written) would go over
// WriteQueueBytes, long before WriteQueue frames.
func TestSlowConsumerByBytes(t *testing.T) {
	const frames = 10
	enc, err := codec.Encode(bodyMsg("0", 1000))
	if err != nil {
		t.Fatal(err)
	}
	n := len(enc) // what the queue counts: the frame as written, length prefix and all
	h := newHandler()
	cl, c := servePipe(t, testConfig(func(c *Config) {
		c.MaxFrame, c.WriteQueue, c.WriteQueueBytes = 4096, 1024, frames*n
	}), h)
	login(t, cl, goodToken(t))
	waitWriterIdle(t, c)

	// The client stops reading: the writer blocks on the first frame (it
	// still counts: it is not written), the rest queue up.
	accepted := 0
	for i := range 1024 {
		if !c.Send(bodyMsg(fmt.Sprint(i), 1000)) {
			break
		}
		accepted++
	}
	if accepted != frames {
		t.Fatalf("accepted %d frames of %d bytes with a bound of %d bytes, want %d", accepted, n, frames*n, frames)
	}
	if !c.Closing() || c.Send(&cimpb.Frame{Type: cimpb.Type_PONG}) {
		t.Fatal("slow consumer still accepts frames")
	}
	// Reading now: the frame being written (if the writer had taken it),
	// then the reason, then the end.
	if last := readToEOF(t, cl); last.GetType() != cimpb.Type_ERROR || codes.Code(last.GetError().GetCode()) != codes.SlowConsumer {
		t.Fatalf("last frame %v, want ERROR SlowConsumer", last)
	}
	if r := h.waitReason(t); r != (CloseReason{SlowConsumer, true}) {
		t.Fatalf("Closed got %v, want slow consumer", r)
	}
}

// TestFrameOverByteBoundGoesAlone: a frame larger than WriteQueueBytes
// still goes when nothing else is queued or being written; behind one, any
// frame is over the bound.
func TestFrameOverByteBoundGoesAlone(t *testing.T) {
	cfg := testConfig(func(c *Config) { c.MaxFrame, c.WriteQueueBytes = 8192, 100 })
	t.Run("alone", func(t *testing.T) {
		h := newHandler()
		cl, c := serveTCP(t, cfg, h)
		login(t, cl, goodToken(t))
		for i := range 3 {
			waitWriterIdle(t, c)
			if !c.Send(bodyMsg(fmt.Sprint(i), 2000)) {
				t.Fatalf("frame %d over the bound refused on an empty queue", i)
			}
			if f := cl.recv(); f.GetMsg().GetMsgId() != fmt.Sprint(i) {
				t.Fatalf("got %v, want frame %d", f, i)
			}
		}
		if c.Closing() {
			t.Fatal("connection closing")
		}
	})
	t.Run("behind another", func(t *testing.T) {
		h := newHandler()
		cl, c := servePipe(t, cfg, h)
		login(t, cl, goodToken(t))
		waitWriterIdle(t, c)
		if !c.Send(bodyMsg("big", 2000)) {
			t.Fatal("big frame refused on an empty queue")
		}
		if c.Send(&cimpb.Frame{Type: cimpb.Type_PONG}) {
			t.Fatal("a frame behind one over the bound was accepted")
		}
		if last := readToEOF(t, cl); codes.Code(last.GetError().GetCode()) != codes.SlowConsumer {
			t.Fatalf("last frame %v, want ERROR SlowConsumer", last)
		}
		if r := h.waitReason(t); r.Cause != SlowConsumer {
			t.Fatalf("Closed got %v, want slow consumer", r)
		}
	})
}

// failingConn fails every write once fail is set.
type failingConn struct {
	net.Conn
	fail atomic.Bool
}

func (c *failingConn) Write(b []byte) (int, error) {
	if c.fail.Load() {
		return 0, errors.New("injected write failure")
	}
	return c.Conn.Write(b)
}

// TestWriteFailedReason: a failed write closes the connection at once, as
// WriteFailed; the reader's error that follows does not change it.
func TestWriteFailedReason(t *testing.T) {
	cc, sc := net.Pipe()
	fc := &failingConn{Conn: sc}
	h := newHandler()
	cl, c := start(t, cc, fc, testConfig(nil), h)
	login(t, cl, goodToken(t))
	waitWriterIdle(t, c)
	fc.fail.Store(true)
	c.Send(bodyMsg("lost", 10))
	if r := h.waitReason(t); r != (CloseReason{WriteFailed, true}) {
		t.Fatalf("Closed got %v, want write failed", r)
	}
	if c.Send(bodyMsg("late", 10)) {
		t.Fatal("Send accepted after a failed write")
	}
}

// TestReplacedOverridesEarlierCause: a connection replaced by a newer one
// of its session while it is closing for another cause (here: waiting for
// the client to hang up after a KICK) ends as Replaced, so its session is
// not reported offline; once Closed was called, nothing changes any more.
func TestReplacedOverridesEarlierCause(t *testing.T) {
	cfg := testConfig(func(c *Config) { c.CloseTimeout = time.Minute })
	kick := &cimpb.Frame{Type: cimpb.Type_KICK, Kick: &cimpb.Kick{Reason: "bye"}}

	h := newHandler()
	cl, c := serveTCP(t, cfg, h)
	login(t, cl, goodToken(t))
	if !c.CloseWith(Kicked, kick) {
		t.Fatal("CloseWith refused")
	}
	if f := cl.recv(); f.Type != cimpb.Type_KICK {
		t.Fatalf("got %v, want KICK", f)
	}
	// The client has not hung up: the connection is still closing.
	if c.CloseWith(Replaced, kick) {
		t.Fatal("CloseWith accepted on a closing connection")
	}
	if got := c.Cause(); got != Replaced {
		t.Fatalf("cause %v, want replaced", got)
	}
	cl.expectEOF() // no second KICK: nothing more was written
	r := h.waitReason(t)
	if r != (CloseReason{Replaced, true}) || r.EndsSession() {
		t.Fatalf("Closed got %v (ends session %v), want replaced, not ending the session", r, r.EndsSession())
	}

	// Too late: Closed was told already.
	h = newHandler()
	cl, c = serveTCP(t, cfg, h)
	login(t, cl, goodToken(t))
	c.CloseWith(Kicked, kick)
	cl.recv()
	cl.expectEOF()
	if r := h.waitReason(t); r.Cause != Kicked || !r.EndsSession() {
		t.Fatalf("Closed got %v, want kicked, ending the session", r)
	}
	c.CloseWith(Replaced, nil)
	if got := c.Cause(); got != Kicked {
		t.Fatalf("cause %v after Closed, want kicked", got)
	}
}

// TestCloseLoggedOnce: the reason is logged once, at Debug, with the user
// and the remote address, and the detail when there is one.
func TestCloseLoggedOnce(t *testing.T) {
	var logs syncBuffer
	h := newHandler()
	cl, _ := serveTCP(t, testConfig(func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}), h)
	login(t, cl, goodToken(t))
	cl.write([]byte{4, 0xff, 0xff, 0xff, 0xff}) // does not parse
	cl.expectError(codes.BadFrame)
	cl.expectEOF()
	h.waitReason(t)
	out := logs.String()
	if n := strings.Count(out, "connection closed"); n != 1 {
		t.Fatalf("%d close lines, want 1:\n%s", n, out)
	}
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "connection closed") {
			line = l
		}
	}
	for _, want := range []string{"level=DEBUG", `reason="bad frame"`, "online=true", "user=42", "session=s1", "remote=127.0.0.1:", "err="} {
		if !strings.Contains(line, want) {
			t.Fatalf("close line %q lacks %s", line, want)
		}
	}
}

func TestCloseReasonEndsSession(t *testing.T) {
	for cause := Open; cause <= GoingAway; cause++ {
		if cause.String() == "unknown" || cause.String() == "" {
			t.Errorf("cause %d has no name", cause)
		}
		for _, online := range []bool{false, true} {
			r := CloseReason{cause, online}
			if want := online && cause != Replaced; r.EndsSession() != want {
				t.Errorf("%v: EndsSession %v, want %v", r, r.EndsSession(), want)
			}
		}
	}
	if got := Cause(200).String(); got != "unknown" {
		t.Errorf("Cause(200) is %q", got)
	}
}

// TestHandshakeFailedReason: a client that does not speak TLS on a TLS
// port ends as HandshakeFailed, without a frame.
func TestHandshakeFailedReason(t *testing.T) {
	cc, sc := net.Pipe()
	h := newHandler()
	// The ClientHello is read (and found wanting) before a certificate is
	// needed.
	cl, _ := start(t, cc, tls.Server(sc, &tls.Config{}), testConfig(nil), h)
	go func() { _, _ = cl.nc.Write([]byte("GET / HTTP/1.1\r\n\r\n")) }()
	if r := h.waitReason(t); r != (CloseReason{HandshakeFailed, false}) {
		t.Fatalf("Closed got %v, want TLS handshake failed", r)
	}
}
