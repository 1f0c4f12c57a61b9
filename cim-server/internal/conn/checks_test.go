package conn

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

func textMsg(id string, body []byte) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 70, Msg: &cimpb.Msg{ClientMsgId: id, To: "bob", Body: body}}
}

// sync waits until everything sent so far was dispatched: a PING's PONG
// comes after the answers to the frames before it.
func (c *client) sync() {
	c.t.Helper()
	c.send(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 999})
	if f := c.recv(); f.Type != cimpb.Type_PONG || f.ReqId != 999 {
		c.t.Fatalf("got %v, want PONG 999", f)
	}
}

// forwardedMsgs returns the client_msg_ids of the MSG uplinks so far.
func (h *fakeHandler) forwardedMsgs() []string {
	var ids []string
	for _, f := range h.forwarded() {
		if f.Type == cimpb.Type_MSG {
			ids = append(ids, f.Msg.ClientMsgId)
		}
	}
	return ids
}

// TestTextChecks: a text body over MaxText or not valid UTF-8 is ERROR
// BadArgument with its client_msg_id, is not forwarded, and the connection
// stays usable; a body of exactly MaxText bytes and a large file body pass.
func TestTextChecks(t *testing.T) {
	h := newHandler()
	cl, _ := serveTCP(t, testConfig(func(c *Config) { c.MaxText = 10 }), h)
	login(t, cl, goodToken(t))

	bad := []struct {
		id, want string
		body     []byte
	}{
		{"long", "11 bytes, the limit is 10", []byte("hello world")},
		{"long-utf8", "12 bytes", []byte("äöüäöü")}, // 6 characters, 12 bytes
		{"latin1", "not valid UTF-8", []byte("caf\xe9")},
		{"cut", "not valid UTF-8", []byte("\xe2\x82")}, // half a "€"
		{"surrogate", "not valid UTF-8", []byte("\xed\xa0\x80")},
	}
	for _, tc := range bad {
		cl.send(textMsg(tc.id, tc.body))
		e := cl.expectError(codes.BadArgument)
		if e.Error.ClientMsgId != tc.id || e.ReqId != 70 || !strings.Contains(e.Error.Text, tc.want) {
			t.Fatalf("%s: got %v, want ERROR 3000 for %s saying %q", tc.id, e, tc.id, tc.want)
		}
		// The next valid message still goes through.
		cl.send(textMsg("ok-after-"+tc.id, []byte("hi €")))
	}
	cl.send(textMsg("exact", []byte("0123456789")))
	cl.send(&cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "file", To: "bob",
		Kind: cimpb.Kind_KIND_FILE, Body: []byte("\xff\xfe binary, longer than 10 bytes")}})
	cl.sync()
	want := "ok-after-long ok-after-long-utf8 ok-after-latin1 ok-after-cut ok-after-surrogate exact file"
	if got := strings.Join(h.forwardedMsgs(), " "); got != want {
		t.Fatalf("forwarded %q, want %q", got, want)
	}
}

// TestMsgRateLimit: with the bucket full, burst+N messages sent at once
// give exactly burst forwarded and exactly N ERROR RateLimited with the
// refused messages' client_msg_ids; the connection stays, PING is never
// limited.
func TestMsgRateLimit(t *testing.T) {
	const burst, extra = 5, 3
	h := newHandler()
	// A rate so low that no token comes back during the test.
	cl, _ := serveTCP(t, testConfig(func(c *Config) { c.MsgRate, c.MsgBurst = 0.0001, burst }), h)
	login(t, cl, goodToken(t))
	for i := range burst + extra {
		cl.send(textMsg(fmt.Sprint("m", i), []byte("hi")))
	}
	for i := burst; i < burst+extra; i++ {
		e := cl.expectError(codes.RateLimited)
		if e.Error.ClientMsgId != fmt.Sprint("m", i) || e.ReqId != 70 {
			t.Fatalf("got %v, want ERROR 4291 for m%d", e, i)
		}
	}
	for range 3 * burst { // PING is not limited and does not count as refused
		cl.sync()
	}
	if got, want := strings.Join(h.forwardedMsgs(), " "), "m0 m1 m2 m3 m4"; got != want {
		t.Fatalf("forwarded %q, want %q", got, want)
	}
}

// TestOtherUplinksRateLimit: ACK/READ/SYNC have their own bucket of 10× the
// burst; an excess one is dropped without an answer, and it does not use up
// the MSG bucket.
func TestOtherUplinksRateLimit(t *testing.T) {
	const burst = 2
	h := newHandler()
	cl, _ := serveTCP(t, testConfig(func(c *Config) { c.MsgRate, c.MsgBurst = 0.0001, burst }), h)
	login(t, cl, goodToken(t))
	others := []*cimpb.Frame{
		{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: 1}},
		{Type: cimpb.Type_READ, Read: &cimpb.Read{MsgIds: []string{"x"}, Peer: "bob"}},
		{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{AfterSeq: 1}},
	}
	for i := range 10*burst + 2 {
		cl.send(others[i%len(others)])
	}
	// No ERROR came before the PONG; the login SYNC does not count.
	cl.sync()
	if n := len(h.forwarded()) - 1; n != 10*burst {
		t.Fatalf("%d ACK/READ/SYNC forwarded, want %d", n, 10*burst)
	}
	cl.send(textMsg("m0", []byte("hi")))
	cl.sync()
	if got := h.forwardedMsgs(); len(got) != 1 {
		t.Fatalf("MSG after the other bucket ran dry: forwarded %v", got)
	}
}

// TestRateLimitRefills: the bucket refills at MsgRate.
func TestRateLimitRefills(t *testing.T) {
	h := newHandler()
	cl, _ := serveTCP(t, testConfig(func(c *Config) { c.MsgRate, c.MsgBurst = 4, 1 }), h)
	login(t, cl, goodToken(t))
	cl.send(textMsg("a", []byte("1")))
	cl.send(textMsg("b", []byte("2")))
	if e := cl.expectError(codes.RateLimited); e.Error.ClientMsgId != "b" {
		t.Fatalf("got %v, want 4291 for b", e)
	}
	time.Sleep(300 * time.Millisecond) // a token is back after 250ms
	cl.send(textMsg("c", []byte("3")))
	cl.sync()
	if got := strings.Join(h.forwardedMsgs(), " "); got != "a c" {
		t.Fatalf("forwarded %q, want \"a c\"", got)
	}
}

// TestFloodingCloses: more than MsgBurst refused frames in a row end the
// connection with ERROR RateLimited "flooding".
func TestFloodingCloses(t *testing.T) {
	const burst = 5
	h := newHandler()
	cl, _ := serveTCP(t, testConfig(func(c *Config) { c.MsgRate, c.MsgBurst = 0.0001, burst }), h)
	login(t, cl, goodToken(t))
	for i := range 2*burst + 1 {
		cl.send(textMsg(fmt.Sprint("m", i), []byte("hi")))
	}
	// burst refused in a row are tolerated...
	for i := burst; i < 2*burst; i++ {
		if e := cl.expectError(codes.RateLimited); e.Error.ClientMsgId != fmt.Sprint("m", i) || strings.Contains(e.Error.Text, "flooding") {
			t.Fatalf("got %v, want a plain 4291 for m%d", e, i)
		}
	}
	// ...one more is flooding.
	if e := cl.expectError(codes.RateLimited); !strings.Contains(e.Error.Text, "flooding") || e.Error.ClientMsgId != fmt.Sprint("m", 2*burst) {
		t.Fatalf("got %v, want 4291 flooding for m%d", e, 2*burst)
	}
	cl.expectEOF()
	if !h.waitClosed(t) {
		t.Fatal("wasOnline=false")
	}
	if n := len(h.forwardedMsgs()); n != burst {
		t.Fatalf("%d messages forwarded, want %d", n, burst)
	}
}

// TestAdmittedFrameResetsFloodCount: refusals separated by an admitted
// frame are not "in a row".
func TestAdmittedFrameResetsFloodCount(t *testing.T) {
	const burst = 2
	h := newHandler()
	cl, _ := serveTCP(t, testConfig(func(c *Config) { c.MsgRate, c.MsgBurst = 0.0001, burst }), h)
	login(t, cl, goodToken(t))
	for i := range burst { // use up the MSG bucket
		cl.send(textMsg(fmt.Sprint("m", i), []byte("hi")))
	}
	for round := range 3 {
		for i := range burst {
			cl.send(textMsg(fmt.Sprint("r", round, i), []byte("hi")))
			cl.expectError(codes.RateLimited)
		}
		cl.send(&cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: uint64(round)}}) // admitted
	}
	cl.sync() // still open: never more than burst refused in a row
}

// TestRateLimitOff: MsgRate 0 forwards everything and creates no limiter.
func TestRateLimitOff(t *testing.T) {
	h := newHandler()
	cl, c := serveTCP(t, testConfig(func(c *Config) { c.MsgRate, c.MsgBurst = 0, 1 }), h)
	login(t, cl, goodToken(t))
	const n = 300
	for i := range n {
		cl.send(textMsg(fmt.Sprint("m", i), []byte("hi")))
		cl.send(&cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: uint64(i)}})
	}
	cl.sync()
	if got := len(h.forwardedMsgs()); got != n {
		t.Fatalf("%d of %d messages forwarded with rate limiting off", got, n)
	}
	if c.lim != nil {
		t.Fatal("limiters created with rate limiting off")
	}
}

// TestChecksDoNotAllocate: admitting a frame and checking its text cost no
// allocation (the limiters themselves are made once per connection).
func TestChecksDoNotAllocate(t *testing.T) {
	c := New(nil, testConfig(func(c *Config) { c.MsgRate, c.MsgBurst = 1e9, 1<<20 }), newHandler())
	msg := textMsg("c1", []byte("hello, wörld"))
	ack := &cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: 1}}
	c.admit(msg) // creates the limiters
	n := testing.AllocsPerRun(1000, func() {
		if !c.admit(msg) || !c.admit(ack) || textProblem(msg.Msg, c.cfg.MaxText) != "" {
			t.Fatal("refused")
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per admitted frame pair, want 0", n)
	}
}
