package wsconn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
)

// clientFrame is a frame as a client sends it (masked), RFC 6455 §5.2.
func clientFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	h := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		h = append(h, 0x80|byte(n))
	case n < 1<<16:
		h = append(h, 0x80|126, byte(n>>8), byte(n))
	default:
		h = binary.BigEndian.AppendUint64(append(h, 0x80|127), uint64(n))
	}
	key := [4]byte{0x11, 0x22, 0x33, 0x44}
	h = append(h, key[:]...)
	for i, c := range payload {
		h = append(h, c^key[i%4])
	}
	return h
}

const (
	opCont, opText, opBinary, opPing = 0, 1, 2, 9
)

// source counts a message when its final data frame has passed, whatever
// the sizes of the reads that pass it on, and not for control frames or
// the first fragments of one.
func TestSourceFollowsFrames(t *testing.T) {
	var stream []byte
	var ends []int // where each message ends
	add := func(f []byte, endsMessage bool) {
		stream = append(stream, f...)
		if endsMessage {
			ends = append(ends, len(stream))
		}
	}
	add(clientFrame(true, opBinary, []byte("abc")), true)
	add(clientFrame(true, opBinary, nil), true)
	add(clientFrame(true, opPing, []byte("p")), false)
	add(clientFrame(true, opBinary, bytes.Repeat([]byte{7}, 300)), true)    // 16-bit length
	add(clientFrame(false, opText, []byte("frag")), false)                  // a first fragment
	add(clientFrame(true, opPing, nil), false)                              // a ping between fragments
	add(clientFrame(true, opCont, []byte("ment")), true)                    // the last
	add(clientFrame(true, opBinary, bytes.Repeat([]byte{9}, 70_000)), true) // 64-bit length
	for _, chunk := range []int{1, 2, 5, 13, 1000, len(stream)} {
		s := &source{}
		whole := 0
		for off := 0; off < len(stream); off += chunk {
			part := stream[off:min(off+chunk, len(stream))]
			s.scan(part)
			at := off + len(part)
			for whole < len(ends) && ends[whole] <= at {
				whole++
			}
			if s.whole != whole {
				t.Fatalf("chunks of %d, at %d: %d messages counted, want %d", chunk, at, s.whole, whole)
			}
			if atEnd := whole > 0 && ends[whole-1] == at; (s.passed == s.end) != atEnd {
				t.Fatalf("chunks of %d, at %d: at a message's end %v, want %v", chunk, at, s.passed == s.end, atEnd)
			}
		}
		for range whole {
			s.took()
		}
		if !s.quiet() {
			t.Fatalf("chunks of %d: not quiet after the last message", chunk)
		}
	}
}

// Messages that came in one segment are all read, and a ping after them
// answered: the connection waits on the socket only when the library holds
// nothing.
func TestMessagesInOneSegment(t *testing.T) {
	var stream []byte
	var want []*cimpb.Frame
	for i := range 4 {
		// Longer than what the wait reads ahead: the library reads the
		// rest of the segment with the first message.
		f := &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: uint64(i + 1), Msg: &cimpb.Msg{Body: bytes.Repeat([]byte{'x'}, 40)}}
		b, _ := proto.Marshal(f)
		want = append(want, f)
		if i == 2 { // in two fragments, a ping between them
			stream = append(stream, clientFrame(false, opBinary, b[:1])...)
			stream = append(stream, clientFrame(true, opPing, nil)...)
			stream = append(stream, clientFrame(true, opCont, b[1:])...)
			continue
		}
		stream = append(stream, clientFrame(true, opBinary, b)...)
	}
	// A ping after the last message: answered though nothing follows it.
	stream = append(stream, clientFrame(true, opPing, []byte("hi"))...)
	got := make(chan *cimpb.Frame, len(want))
	errc := make(chan error, 1)
	url := serve(t, 1024, func(c *Conn) {
		// A read that waited for more would end at this deadline.
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		r := codec.NewReader(c, 1024)
		for range want {
			f, err := r.ReadFrame()
			if err != nil {
				errc <- err
				return
			}
			got <- f
		}
		_, _ = r.ReadFrame() // on, for the ping, until the client hangs up
	})
	ws := dial(t, url, Binary)
	pong := make(chan string, 2)
	ws.SetPongHandler(func(s string) error { pong <- s; return nil })
	ended := make(chan error, 1)
	go func() { _, _, err := ws.ReadMessage(); ended <- err }() // runs the pong handler
	if _, err := ws.NetConn().Write(stream); err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		select {
		case f := <-got:
			if !proto.Equal(f, w) {
				t.Fatalf("got %v, want %v", f, w)
			}
		case err := <-errc:
			t.Fatalf("reading %v: %v", w, err)
		}
	}
	for _, want := range []string{"", "hi"} { // the ping between fragments, the last one
		select {
		case p := <-pong:
			if p != want {
				t.Fatalf("pong %q, want %q", p, want)
			}
		case err := <-ended:
			t.Fatalf("no pong %q: %v", want, err)
		}
	}
}

// waitingIn returns the stack of the connection reader parked waiting for
// its client (Conn.Read in an IO wait), once there is one.
func waitingIn(t *testing.T) string {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "wsconn.(*Conn).Read") && strings.Contains(g, "[IO wait") {
				return g
			}
		}
	}
	t.Fatal("no connection reader parked")
	return ""
}

// A client's ping (and pong) that comes while the connection waits is
// answered (dropped) in source.wait: the reader goes on waiting there, not
// inside the library's frame reader, where the stack stays large. A ping
// in the same segment as a message is answered, and the message read.
func TestPingAnsweredWhileWaiting(t *testing.T) {
	read := make(chan *cimpb.Frame, 4)
	url := serve(t, 1024, func(c *Conn) {
		r := codec.NewReader(c, 1024)
		for {
			f, err := r.ReadFrame()
			if err != nil {
				return
			}
			read <- f
		}
	})
	ws := dial(t, url, Binary)
	pong := make(chan string, 4)
	ws.SetPongHandler(func(s string) error { pong <- s; return nil })
	go func() { _, _, _ = ws.ReadMessage() }() // runs the pong handler
	expectPong := func(want string) {
		t.Helper()
		select {
		case p := <-pong:
			if p != want {
				t.Fatalf("pong %q, want %q", p, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no pong %q", want)
		}
	}
	write := func(b []byte) {
		t.Helper()
		if _, err := ws.NetConn().Write(b); err != nil {
			t.Fatal(err)
		}
	}
	write(clientFrame(true, opPing, []byte("one")))
	expectPong("one")
	if where := waitingIn(t); !strings.Contains(where, "wsconn.(*source).wait") || strings.Contains(where, "gorilla/websocket") {
		t.Fatalf("after a ping the idle reader waits elsewhere:\n%s", where)
	}
	// A pong, two pings and a message in one segment.
	b, _ := proto.Marshal(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 3})
	var seg []byte
	seg = append(seg, clientFrame(true, 0xa, []byte("unasked"))...)
	seg = append(seg, clientFrame(true, opPing, []byte("two"))...)
	seg = append(seg, clientFrame(true, opPing, nil)...)
	seg = append(seg, clientFrame(true, opBinary, b)...)
	write(seg)
	expectPong("two")
	expectPong("")
	select {
	case f := <-read:
		if f.Type != cimpb.Type_PING || f.ReqId != 3 {
			t.Fatalf("read %v", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the message after the pings was not read")
	}
}

// control takes only a whole, final, masked ping or pong of at most 125
// bytes, and unmasks a ping's payload.
func TestControl(t *testing.T) {
	ping := clientFrame(true, opPing, []byte("abc"))
	if n, op, p := control(append(append([]byte{}, ping...), 0x82)); n != len(ping) || op != opPingFrame || string(p) != "abc" {
		t.Fatalf("ping: %d %#x %q", n, op, p)
	}
	long := clientFrame(true, opPing, bytes.Repeat([]byte{'x'}, 125))
	if n, _, _ := control(long); n != len(long) {
		t.Fatalf("a 125-byte ping: %d", n)
	}
	unmasked := []byte{0x89, 0x01, 'x', 0, 0, 0, 0}
	rsv := append([]byte{0x89 | 0x40}, ping[1:]...)
	notFinal := append([]byte{0x09}, ping[1:]...)
	for name, b := range map[string][]byte{
		"cut":       ping[:len(ping)-1],
		"header":    ping[:5],
		"unmasked":  unmasked,
		"reserved":  rsv,
		"not final": notFinal,
		"close":     clientFrame(true, 0x8, nil),
		"binary":    clientFrame(true, opBinary, []byte("abc")),
		"126 bytes": clientFrame(true, opPing, bytes.Repeat([]byte{'x'}, 126)),
	} {
		if n, _, _ := control(b); n != 0 {
			t.Errorf("%s: took %d bytes, want none", name, n)
		}
	}
}

// An idle connection waits for its client in source.wait, near the top of
// its stack, not inside the library's frame reader.
func TestIdleConnectionWaitsInSource(t *testing.T) {
	read := make(chan error, 2)
	url := serve(t, 1024, func(c *Conn) {
		r := codec.NewReader(c, 1024)
		for {
			_, err := r.ReadFrame()
			read <- err
			if err != nil {
				return
			}
		}
	})
	ws := dial(t, url, Binary)
	b, _ := proto.Marshal(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 1})
	if _, err := ws.NetConn().Write(clientFrame(true, opBinary, b)); err != nil {
		t.Fatal(err)
	}
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	// The reader goroutine parks once it has nothing left: look for it.
	var where string
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "wsconn.(*Conn).Read") && strings.Contains(g, "[IO wait") {
				where = g
			}
		}
		if where != "" {
			break
		}
	}
	if !strings.Contains(where, "wsconn.(*source).wait") || strings.Contains(where, "gorilla/websocket") {
		t.Fatalf("the idle reader waits elsewhere:\n%s", where)
	}
}

// A read deadline that passes while the connection waits for a message
// leaves it usable (the library's own read errors are final); one that
// passes once a message has begun does not cut it: the message has the
// read timeout to come whole, and no more.
func TestDeadlinesAroundAMessage(t *testing.T) {
	ping, _ := proto.Marshal(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 5})
	frame := clientFrame(true, opBinary, ping)
	const readTimeout = time.Second
	type result struct {
		f   *cimpb.Frame
		err error
	}
	res := make(chan result, 4)
	next := make(chan time.Duration)
	url := serveWith(t, NewUpgrader(1024, nil, 5*time.Second, readTimeout), func(c *Conn) {
		r := codec.NewReader(c, 1024)
		for d := range next {
			_ = c.SetReadDeadline(time.Now().Add(d))
			f, err := r.ReadFrame()
			res <- result{f, err}
		}
	})
	ws := dial(t, url, Binary)
	defer close(next)
	write := func(b []byte) {
		t.Helper()
		if _, err := ws.NetConn().Write(b); err != nil {
			t.Fatal(err)
		}
	}
	read := func(what string, timeout bool) {
		t.Helper()
		r := <-res
		if timeout && !errors.Is(r.err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: %v, %v; want a deadline error", what, r.f, r.err)
		}
		if !timeout && (r.err != nil || r.f.GetReqId() != 5) {
			t.Fatalf("%s: %v, %v", what, r.f, r.err)
		}
	}

	// Nothing comes before the deadline: a timeout, and the connection reads on.
	next <- 20 * time.Millisecond
	read("silent client", true)
	next <- 10 * time.Second
	write(frame)
	read("after a timeout", false)

	// A message begun before a short deadline and finished after it is read.
	write(frame[:3])
	next <- 50 * time.Millisecond
	time.Sleep(200 * time.Millisecond) // past the deadline, within the read timeout
	write(frame[3:])
	read("a message across the deadline", false)

	// A message that never finishes ends at the read timeout.
	write(frame[:3])
	next <- 10 * time.Millisecond
	read("an unfinished message", true)
}
