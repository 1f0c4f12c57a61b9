package conn

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
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

// TestMsgWaitsForItsTurn: MSGs over the rate wait, in order, instead of
// being refused: a refused one would be sent again after newer ones and
// break the sender's order. Nothing is answered with an ERROR, all are
// forwarded in the order sent, and a close ends the wait.
func TestMsgWaitsForItsTurn(t *testing.T) {
	pace := newFakePace(2)
	h := newHandler()
	cl, c := serveTCP(t, testConfig(func(c *Config) {
		c.MsgRate, c.MsgBurst = 1, 2
		c.newMsgWaiter = func() waiter { return pace }
	}), h)
	login(t, cl, goodToken(t))
	for i := range 5 {
		cl.send(textMsg(fmt.Sprint("m", i), []byte("hi")))
	}
	pace.awaitWaiting(t) // the third waits
	if got := strings.Join(h.forwardedMsgs(), " "); got != "m0 m1" {
		t.Fatalf("forwarded %q before the pace allowed more, want \"m0 m1\"", got)
	}
	for i := range 3 {
		pace.tokens <- struct{}{}
		if i < 2 {
			pace.awaitWaiting(t) // the next one waits
		}
	}
	cl.sync() // no ERROR came first, and the connection works
	if got := strings.Join(h.forwardedMsgs(), " "); got != "m0 m1 m2 m3 m4" {
		t.Fatalf("forwarded %q, want all five in order", got)
	}

	cl.send(textMsg("late", []byte("hi")))
	pace.awaitWaiting(t)
	c.CloseWith(Kicked, &cimpb.Frame{Type: cimpb.Type_KICK, Kick: &cimpb.Kick{Reason: "bye"}})
	select {
	case <-pace.aborted:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting MSG was not aborted by the close")
	}
	if f := cl.recv(); f.Type != cimpb.Type_KICK {
		t.Fatalf("got %v, want KICK", f)
	}
	cl.expectEOF()
	h.waitClosed(t)
	if n := len(h.forwardedMsgs()); n != 5 {
		t.Fatalf("%d MSGs forwarded, want 5 (not the one aborted)", n)
	}
}

// TestMsgPaceWithTokenBucket: the default MSG pace is a token bucket;
// messages beyond its burst are delayed, never refused.
func TestMsgPaceWithTokenBucket(t *testing.T) {
	h := newHandler()
	cl, c := serveTCP(t, testConfig(func(c *Config) { c.MsgRate, c.MsgBurst = 200, 1 }), h)
	login(t, cl, goodToken(t))
	for i := range 4 {
		cl.send(textMsg(fmt.Sprint("m", i), []byte("hi")))
	}
	cl.sync()
	if got := strings.Join(h.forwardedMsgs(), " "); got != "m0 m1 m2 m3" {
		t.Fatalf("forwarded %q, want all four in order", got)
	}
	if _, ok := c.lim.msg.(*rate.Limiter); !ok {
		t.Fatalf("pace %T, want a token bucket", c.lim.msg)
	}
}

// TestOtherUplinksRateLimit: ACK/READ have their own bucket of 10× the
// burst; an excess one is dropped without an answer, and it does not use up
// the MSG bucket. SYNC is not charged to it (it has its own pace).
func TestOtherUplinksRateLimit(t *testing.T) {
	const burst = 2
	h := newHandler()
	cl, _ := serveTCP(t, testConfig(func(c *Config) { c.MsgRate, c.MsgBurst = 0.0001, burst }), h)
	login(t, cl, goodToken(t))
	others := []*cimpb.Frame{
		{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: 1}},
		{Type: cimpb.Type_READ, Read: &cimpb.Read{MsgIds: []string{"x"}, Peer: "bob"}},
	}
	for i := range 10*burst + 2 {
		cl.send(others[i%len(others)])
	}
	// No ERROR came before the PONG; the login SYNC does not count.
	cl.sync()
	if n := len(h.forwarded()) - 1; n != 10*burst {
		t.Fatalf("%d ACK/READ forwarded, want %d", n, 10*burst)
	}
	cl.send(textMsg("m0", []byte("hi")))
	cl.sync()
	if got := h.forwardedMsgs(); len(got) != 1 {
		t.Fatalf("MSG after the other bucket ran dry: forwarded %v", got)
	}
	// With the ACK/READ bucket empty, SYNCs (unpaced here) all still go.
	for i := range 3 * burst {
		cl.send(&cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{AfterSeq: uint64(i)}})
	}
	cl.sync()
	if n := len(forwardedSyncs(h)) - 1; n != 3*burst {
		t.Fatalf("%d SYNCs forwarded after the ACK/READ bucket ran dry, want %d", n, 3*burst)
	}
}

// forwardedSyncs returns the SYNC uplinks so far (the login one first).
func forwardedSyncs(h *fakeHandler) []*cimpb.Frame {
	var out []*cimpb.Frame
	for _, f := range h.forwarded() {
		if f.Type == cimpb.Type_SYNC {
			out = append(out, f)
		}
	}
	return out
}

// fakePace is a SYNC pace the test controls: free Waits return at once,
// then each Wait says so on waiting and blocks until the test hands out a
// token or the connection closes.
type fakePace struct {
	mu      sync.Mutex
	free    int
	waiting chan struct{}
	tokens  chan struct{}
	aborted chan struct{}
}

func newFakePace(free int) *fakePace {
	return &fakePace{free: free, waiting: make(chan struct{}, 100), tokens: make(chan struct{}), aborted: make(chan struct{}, 100)}
}

func (p *fakePace) Allow() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.free > 0 {
		p.free--
		return true
	}
	return false
}

func (p *fakePace) Wait(ctx context.Context) error {
	p.waiting <- struct{}{}
	select {
	case <-p.tokens:
		return nil
	case <-ctx.Done():
		p.aborted <- struct{}{}
		return ctx.Err()
	}
}

func (p *fakePace) awaitWaiting(t *testing.T) {
	t.Helper()
	select {
	case <-p.waiting:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing waited for its turn")
	}
}

// TestSyncWaitsForItsTurn: SYNCs over the pace wait (in order) instead of
// being dropped; the reader forwards the next one only when the pace lets
// it, and a close ends the wait.
func TestSyncWaitsForItsTurn(t *testing.T) {
	pace := newFakePace(2)
	h := newHandler()
	cl, c := serveTCP(t, testConfig(func(c *Config) {
		c.SyncRate = 1
		c.newSyncWaiter = func() waiter { return pace }
	}), h)
	login(t, cl, goodToken(t))
	syncs := func() (after []uint64) {
		for _, f := range forwardedSyncs(h)[1:] { // not the login SYNC
			after = append(after, f.Sync.AfterSeq)
		}
		return after
	}
	for i := range 5 {
		cl.send(&cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{AfterSeq: uint64(10 + i)}})
	}
	pace.awaitWaiting(t) // the third SYNC waits
	if got := fmt.Sprint(syncs()); got != "[10 11]" {
		t.Fatalf("forwarded %s before the pace allowed more, want [10 11]", got)
	}
	pace.tokens <- struct{}{}
	pace.awaitWaiting(t) // the fourth waits
	if got := fmt.Sprint(syncs()); got != "[10 11 12]" {
		t.Fatalf("forwarded %s, want [10 11 12]", got)
	}
	pace.tokens <- struct{}{}
	pace.awaitWaiting(t)
	pace.tokens <- struct{}{}
	cl.sync() // nothing was dropped, and the connection works
	if got := fmt.Sprint(syncs()); got != "[10 11 12 13 14]" {
		t.Fatalf("forwarded %s, want all five in order", got)
	}

	// A SYNC waiting when the gateway closes the connection gives up.
	cl.send(&cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{AfterSeq: 99}})
	pace.awaitWaiting(t)
	c.CloseWith(Kicked, &cimpb.Frame{Type: cimpb.Type_KICK, Kick: &cimpb.Kick{Reason: "bye"}})
	select {
	case <-pace.aborted:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting SYNC was not aborted by the close")
	}
	if f := cl.recv(); f.Type != cimpb.Type_KICK {
		t.Fatalf("got %v, want KICK", f)
	}
	cl.expectEOF()
	h.waitClosed(t)
	if n := len(syncs()); n != 5 {
		t.Fatalf("%d SYNCs forwarded, want 5 (not the one aborted)", n)
	}
}

// TestSyncPaceWithTokenBucket: the default pace is a token bucket; SYNCs
// beyond its burst are delayed, never lost.
func TestSyncPaceWithTokenBucket(t *testing.T) {
	h := newHandler()
	cl, c := serveTCP(t, testConfig(func(c *Config) { c.SyncRate, c.SyncBurst = 200, 1 }), h)
	login(t, cl, goodToken(t))
	for i := range 4 {
		cl.send(&cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{AfterSeq: uint64(i)}})
	}
	cl.sync()
	if n := len(forwardedSyncs(h)) - 1; n != 4 {
		t.Fatalf("%d of 4 SYNCs forwarded", n)
	}
	if _, ok := c.syncPace.(*rate.Limiter); !ok {
		t.Fatalf("pace %T, want a token bucket", c.syncPace)
	}
}

// TestUnknownKindRefused: a MSG of a kind the protocol does not define is
// ERROR BadArgument with its client_msg_id, is not forwarded, and the
// connection stays usable.
func TestUnknownKindRefused(t *testing.T) {
	h := newHandler()
	cl, _ := serveTCP(t, testConfig(nil), h)
	login(t, cl, goodToken(t))
	for _, k := range []cimpb.Kind{3, 99, -1} { // 2 is KIND_BINARY
		id := fmt.Sprint("kind", int32(k))
		cl.send(&cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 70, Msg: &cimpb.Msg{ClientMsgId: id, To: "bob", Kind: k, Body: []byte("\xff not text")}})
		e := cl.expectError(codes.BadArgument)
		if e.Error.ClientMsgId != id || !strings.Contains(e.Error.Text, "unknown message kind") {
			t.Fatalf("got %v, want ERROR 3000 unknown kind for %s", e, id)
		}
	}
	cl.send(textMsg("fine", []byte("hi")))
	cl.sync()
	if got := strings.Join(h.forwardedMsgs(), " "); got != "fine" {
		t.Fatalf("forwarded %q, want only \"fine\"", got)
	}
}

// TestFloodingCloses: more than MsgBurst ACK/READ frames refused in a row
// (dropped without an answer) end the connection with ERROR RateLimited
// "flooding".
func TestFloodingCloses(t *testing.T) {
	const burst = 5
	h := newHandler()
	cl, _ := serveTCP(t, testConfig(func(c *Config) { c.MsgRate, c.MsgBurst = 0.0001, burst }), h)
	login(t, cl, goodToken(t))
	ack := func(i int) { cl.send(&cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: uint64(i + 1)}}) }
	for i := range otherFactor*burst + burst { // the bucket, then burst refused
		ack(i)
	}
	cl.sync() // tolerated: still open
	ack(0)    // one more in a row is flooding
	if e := cl.expectError(codes.RateLimited); !strings.Contains(e.Error.Text, "flooding") {
		t.Fatalf("got %v, want 4291 flooding", e)
	}
	cl.expectEOF()
	if r := h.waitReason(t); r != (CloseReason{Flooding, true}) {
		t.Fatalf("Closed got %v, want flooding", r)
	}
	if n := len(h.forwarded()) - 1; n != otherFactor*burst { // not the login SYNC
		t.Fatalf("%d ACKs forwarded, want %d", n, otherFactor*burst)
	}
}

// TestAdmittedFrameResetsFloodCount: refusals separated by an admitted
// frame are not "in a row".
func TestAdmittedFrameResetsFloodCount(t *testing.T) {
	const burst = 2
	h := newHandler()
	cl, _ := serveTCP(t, testConfig(func(c *Config) {
		c.MsgRate, c.MsgBurst = 0.0001, burst
		c.newMsgWaiter = func() waiter { return newFakePace(100) }
	}), h)
	login(t, cl, goodToken(t))
	for i := range otherFactor * burst { // use up the ACK/READ bucket
		cl.send(&cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: uint64(i + 1)}})
	}
	for round := range 3 {
		for i := range burst {
			cl.send(&cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: uint64(100 + 10*round + i)}}) // refused
		}
		cl.send(textMsg(fmt.Sprint("r", round), []byte("hi"))) // admitted
	}
	cl.sync() // still open: never more than burst refused in a row
	if got := strings.Join(h.forwardedMsgs(), " "); got != "r0 r1 r2" {
		t.Fatalf("forwarded %q, want r0 r1 r2", got)
	}
}

// TestPingFloodCloses: PINGs closer than a second apart share a bucket of
// the MSG rate and burst; over it they go unanswered, and more than
// MsgBurst unanswered in a row end the connection as flooding. Without the
// bound every PING had its PONG, as fast as a client could send them.
func TestPingFloodCloses(t *testing.T) {
	const burst = 5
	h := newHandler()
	cl, _ := serveTCP(t, testConfig(func(c *Config) { c.MsgRate, c.MsgBurst = 0.0001, burst }), h)
	login(t, cl, goodToken(t))
	var flood []byte
	for i := range 1 + burst + burst + 1 { // a free one, the bucket, burst refused, one more
		b, _ := codec.Encode(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: uint64(i + 1)})
		flood = append(flood, b...)
	}
	cl.write(flood)
	for i := range 1 + burst {
		if f := cl.recv(); f.Type != cimpb.Type_PONG || f.ReqId != uint64(i+1) {
			t.Fatalf("answer %d: got %v, want PONG %d", i, f, i+1)
		}
	}
	if e := cl.expectError(codes.RateLimited); !strings.Contains(e.Error.Text, "flooding") {
		t.Fatalf("got %v, want 4291 flooding", e)
	}
	cl.expectEOF()
	if r := h.waitReason(t); r != (CloseReason{Flooding, true}) {
		t.Fatalf("Closed got %v, want flooding", r)
	}
}

// TestFloodingClientGoesOn: a client closed for flooding that goes on
// sending is read for at most maxDiscard bytes more, without decoding,
// then cut off; the gateway used to decode all it sent until CloseTimeout.
func TestFloodingClientGoesOn(t *testing.T) {
	const burst = 5
	h := newHandler()
	cl, _ := serveTCP(t, testConfig(func(c *Config) {
		c.MsgRate, c.MsgBurst = 0.0001, burst
		c.CloseTimeout = time.Minute
	}), h)
	login(t, cl, goodToken(t))
	ping, _ := codec.Encode(&cimpb.Frame{Type: cimpb.Type_PING})
	flood := bytes.Repeat(ping, 64*maxDiscard/len(ping))
	wrote := make(chan error, 1)
	go func() {
		_ = cl.nc.SetWriteDeadline(time.Now().Add(time.Minute))
		_, err := cl.nc.Write(flood)
		wrote <- err
	}()
	if r := h.waitReason(t); r != (CloseReason{Flooding, true}) {
		t.Fatalf("Closed got %v, want flooding", r)
	}
	if err := <-wrote; err == nil {
		t.Fatalf("the gateway took all %d bytes after closing the connection", len(flood))
	}
}

// TestBadFrameFloodCloses: frames the connection answers with an ERROR
// and stays open after (an unexpected type, an ACK or MSG without its
// payload, a malformed TYPING) are bounded the same way: a
// client cannot make the gateway write an ERROR for every few bytes it
// sends.
func TestBadFrameFloodCloses(t *testing.T) {
	const burst = 4
	h := newHandler()
	cl, _ := serveTCP(t, testConfig(func(c *Config) { c.MsgRate, c.MsgBurst = 0.0001, burst }), h)
	login(t, cl, goodToken(t))
	bad := []*cimpb.Frame{
		{Type: cimpb.Type_PONG, ReqId: 1},
		{Type: cimpb.Type_ACK, ReqId: 2},
		{Type: cimpb.Type_TYPING, ReqId: 3, Typing: &cimpb.Typing{}},
		{Type: cimpb.Type_MSG, ReqId: 4},
	}
	var flood []byte
	for i := range burst + burst + 1 { // the bucket, burst refused, one more
		b, _ := codec.Encode(bad[i%len(bad)])
		flood = append(flood, b...)
	}
	cl.write(flood)
	for i := range burst {
		if e := cl.expectError(codes.BadFrame); e.ReqId != uint64(i+1) {
			t.Fatalf("answer %d: got %v, want the ERROR for request %d", i, e, i+1)
		}
	}
	if e := cl.expectError(codes.RateLimited); !strings.Contains(e.Error.Text, "flooding") {
		t.Fatalf("got %v, want 4291 flooding", e)
	}
	cl.expectEOF()
	if r := h.waitReason(t); r != (CloseReason{Flooding, true}) {
		t.Fatalf("Closed got %v, want flooding", r)
	}
	if n := len(h.forwarded()) - 1; n != 0 { // not the login SYNC
		t.Fatalf("%d bad frames forwarded, want none", n)
	}
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
	ctx := context.Background()
	c.admit(ctx, msg) // creates the limiters
	n := testing.AllocsPerRun(1000, func() {
		if !c.admit(ctx, msg) || !c.admit(ctx, ack) || msgProblem(msg.Msg, c.cfg.MaxText) != "" {
			t.Fatal("refused")
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per admitted frame pair, want 0", n)
	}
}
