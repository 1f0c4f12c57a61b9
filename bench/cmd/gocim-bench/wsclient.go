package main

// The bench's WebSocket client: what a browser page does with nothing but a
// WebSocket library, in Go, for the WebSocket rows of the idle and p2p
// workloads. It speaks the binary subprotocol: one protobuf Frame
// (proto/cim.proto) per binary message, no length prefix.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/bench/internal/run"
	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
)

const (
	// wsSubprotocol is the gateway's binary encoding (wsconn.Binary).
	wsSubprotocol = "gocim.proto"
	// The SDK's defaults, so that a WebSocket user costs the gateway what
	// an SDK user does: a PING after a minute without writing; a
	// cumulative ACK 100 ms after the first entry it covers was shown but
	// no sooner than 500 ms after the previous ACK, both scaled by a
	// factor between 0.5 and 1.5 drawn for each ACK, or at once when 100
	// wait.
	wsHeartbeat   = client.DefaultHeartbeat
	wsAckDelay    = client.DefaultAckDelay
	wsAckInterval = client.DefaultAckInterval
	wsAckEvery    = client.DefaultAckEvery
	// wsSyncRetry: a gap SYNC whose answer made no progress is asked again
	// after this long (the SDK's sync timeout does the same).
	wsSyncRetry = time.Second
	// wsGapWait: how long a gap may stay open before a SYNC asks for it
	// (the SDK's Config.GapWait): pushes are reordered now and then and
	// the missing entry usually follows within milliseconds.
	wsGapWait       = 200 * time.Millisecond
	wsWriteTimeout  = 10 * time.Second
	wsLoginTimeout  = 10 * time.Second
	wsClientVersion = "gocim-bench-ws/1"
)

// wsWriteBuffers is shared by every wsClient's writes: an idle connection
// holds no write buffer.
var wsWriteBuffers sync.Pool

// wsDialer logs users in through the route's /login and opens the
// WebSocket of the gateway it hands out (server.wsUrl). Safe for
// concurrent use.
type wsDialer struct {
	api *client.API
	ws  websocket.Dialer
}

// newWSDialer returns a dialer that calls the route with api and opens
// WebSockets through dial (nil: a plain dialer).
func newWSDialer(api *client.API, dial dialFunc) *wsDialer {
	return &wsDialer{api: api, ws: websocket.Dialer{
		NetDialContext:   dial,
		HandshakeTimeout: wsLoginTimeout,
		Subprotocols:     []string{wsSubprotocol},
		ReadBufferSize:   1024,
		WriteBufferSize:  1024,
		WriteBufferPool:  &wsWriteBuffers,
	}}
}

// wsClient is one logged-in user on a gateway's WebSocket. Like the SDK it
// heartbeats (PING after wsHeartbeat without writing), shows its inbox in
// seq order (an entry after a gap is held back and one SYNC{after_seq}
// fills the gap) and acknowledges it cumulatively: ACK{seq} of the highest
// contiguous seq shown, so that the route stores DELIVERED receipts for its
// senders, which this client (as a sender) acknowledges in turn. It does
// not reconnect: a lost connection is reported to onEnd.
//
// send may be called from one goroutine at a time per client; everything
// else runs on the client's own reader and timers.
type wsClient struct {
	name, id, gateway string
	ws                *websocket.Conn
	onMsg             func(m *cimpb.Msg, now time.Time) // inbox MSGs, in seq order
	onEnd             func(name string, err error)      // the connection ended before close

	wmu        sync.Mutex // one writer at a time (gorilla/websocket)
	lastWrite  time.Time
	ackWritten uint64 // the highest ACK on the wire: ACKs never go back
	hb         *time.Timer

	mu       sync.Mutex
	last     uint64                  // highest contiguous inbox seq shown
	acked    uint64                  // highest seq an ACK was taken for
	unacked  int                     // entries shown since that ACK
	ackArmed bool                    // an ACK timer is running
	ackedAt  time.Time               // when the last ACK was taken
	syncing  bool                    // a SYNC is outstanding
	gapTimer bool                    // a gap wait is running (gapCheck)
	held     map[uint64]*cimpb.Frame // entries after a gap
	pending  map[string]struct{}     // client_msg_ids sent, not answered yet
	nextID   uint64
	closed   bool

	gapSyncs  atomic.Int64 // SYNCs asked to fill a gap
	errFrames atomic.Int64 // ERROR frames from the gateway
}

// login logs name in through the route, opens the gateway's WebSocket and
// sends LOGIN with the route's token; it returns after LOGIN_ACK. onMsg and
// onEnd may be nil.
func (d *wsDialer) login(ctx context.Context, name string, onMsg func(*cimpb.Msg, time.Time), onEnd func(string, error)) (*wsClient, error) {
	lr, err := d.api.Login(ctx, name, harness.Password)
	if err != nil {
		return nil, fmt.Errorf("route login: %w", err)
	}
	if lr.Server.WSURL == "" {
		return nil, fmt.Errorf("the route handed out gateway %s without a WebSocket URL", lr.Server.ID)
	}
	c, err := d.open(ctx, lr.Server.WSURL, name, lr.Token, onMsg, onEnd)
	if err != nil {
		return nil, err
	}
	c.id, c.gateway = lr.UserID, lr.Server.ID
	return c, nil
}

// open opens the WebSocket at url and logs in with token as name.
func (d *wsDialer) open(ctx context.Context, url, name, token string, onMsg func(*cimpb.Msg, time.Time), onEnd func(string, error)) (*wsClient, error) {
	ws, _, err := d.ws.DialContext(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	if p := ws.Subprotocol(); p != wsSubprotocol {
		ws.Close()
		return nil, fmt.Errorf("%s chose subprotocol %q, want %q", url, p, wsSubprotocol)
	}
	c := &wsClient{name: name, ws: ws, onMsg: onMsg, onEnd: onEnd,
		// The gateway syncs the inbox on the client's behalf after LOGIN.
		syncing: true}
	early, err := c.handshake(ctx, token)
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	c.wmu.Lock()
	c.hb = time.AfterFunc(wsHeartbeat, c.heartbeat)
	c.wmu.Unlock()
	go c.readLoop(early)
	return c, nil
}

// handshake sends LOGIN and reads until LOGIN_ACK; it returns the frames
// that came before it.
func (c *wsClient) handshake(ctx context.Context, token string) ([]*cimpb.Frame, error) {
	err := c.write(&cimpb.Frame{Type: cimpb.Type_LOGIN, ReqId: 1,
		Login: &cimpb.Login{Token: token, ClientVersion: wsClientVersion}})
	if err != nil {
		return nil, fmt.Errorf("LOGIN: %w", err)
	}
	deadline, ok := ctx.Deadline()
	if !ok || time.Until(deadline) > wsLoginTimeout {
		deadline = time.Now().Add(wsLoginTimeout)
	}
	_ = c.ws.SetReadDeadline(deadline)
	defer c.ws.SetReadDeadline(time.Time{})
	var early []*cimpb.Frame
	for {
		f, err := c.read()
		if err != nil {
			return nil, fmt.Errorf("waiting for LOGIN_ACK: %w", err)
		}
		switch f.GetType() {
		case cimpb.Type_LOGIN_ACK:
			return early, nil
		case cimpb.Type_ERROR:
			return nil, fmt.Errorf("LOGIN refused: %d %s", f.GetError().GetCode(), f.GetError().GetText())
		case cimpb.Type_KICK:
			return nil, fmt.Errorf("kicked at LOGIN: %s", f.GetKick().GetReason())
		default:
			early = append(early, f)
		}
	}
}

// read reads one frame.
func (c *wsClient) read() (*cimpb.Frame, error) {
	typ, b, err := c.ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	if typ != websocket.BinaryMessage {
		return nil, errors.New("a text message on a " + wsSubprotocol + " connection")
	}
	f := &cimpb.Frame{}
	if err := proto.Unmarshal(b, f); err != nil {
		return nil, fmt.Errorf("not a Frame: %w", err)
	}
	return f, nil
}

func (c *wsClient) readLoop(early []*cimpb.Frame) {
	for _, f := range early {
		c.handle(f, time.Now())
	}
	for {
		f, err := c.read()
		if err != nil {
			c.mu.Lock()
			closed := c.closed
			c.closed = true
			c.mu.Unlock()
			c.stopHeartbeat()
			c.ws.Close()
			if !closed && c.onEnd != nil {
				c.onEnd(c.name, err)
			}
			return
		}
		c.handle(f, time.Now())
	}
}

// handle acts on one frame from the gateway.
func (c *wsClient) handle(f *cimpb.Frame, now time.Time) {
	switch f.GetType() {
	case cimpb.Type_MSG:
		if seq := f.GetMsg().GetSeq(); seq > 0 {
			c.add(seq, f, now)
		}
	case cimpb.Type_RECEIPT:
		c.answered(f.GetReceipt())
		if seq := f.GetReceipt().GetSeq(); seq > 0 { // SENT carries none: not an inbox entry
			c.add(seq, f, now)
		}
	case cimpb.Type_SYNC:
		if f.GetSync().GetGroup() == "" {
			c.syncAnswer(f.GetSync(), now)
		}
	case cimpb.Type_ERROR:
		c.errFrames.Add(1)
		if id := f.GetError().GetClientMsgId(); id != "" {
			c.unpend(id)
		}
	}
}

// add takes an inbox entry: shown now if it follows the last one shown
// (with whatever was held back behind it), else held back and one SYNC
// asked for the gap.
func (c *wsClient) add(seq uint64, f *cimpb.Frame, now time.Time) {
	c.mu.Lock()
	var show []*cimpb.Frame
	sync, after := false, uint64(0)
	switch {
	case seq <= c.last: // shown already
	case seq == c.last+1:
		c.last = seq
		show = c.flushLocked(append(show, f))
	default:
		if c.held == nil {
			c.held = map[uint64]*cimpb.Frame{}
		}
		c.held[seq] = f
		if !c.syncing && !c.gapTimer {
			c.gapTimer = true
			time.AfterFunc(wsGapWait, c.gapCheck)
		}
	}
	ack := c.shownLocked(len(show))
	c.mu.Unlock()
	c.show(show, now)
	if sync {
		c.gapSyncs.Add(1)
		c.writeQuiet(&cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{AfterSeq: after}})
	}
	c.ack(ack)
}

// gapCheck asks for a gap still open when the gap wait is over.
func (c *wsClient) gapCheck() {
	c.mu.Lock()
	c.gapTimer = false
	sync := !c.syncing && !c.closed && len(c.held) > 0
	if sync {
		c.syncing = true
	}
	after := c.last
	c.mu.Unlock()
	if sync {
		c.gapSyncs.Add(1)
		c.writeQuiet(&cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{AfterSeq: after}})
	}
}

// syncAnswer takes the SYNC that ends a sync answer (its entries came
// before it, through add): entries it covers that are still missing are
// holes, the held ones up to there are shown; more to fetch asks again.
// (The SDK's inbox.answer without its recovery from a Redis that lost its
// tail, which a benchmark does not provoke.)
func (c *wsClient) syncAnswer(s *cimpb.Sync, now time.Time) {
	c.mu.Lock()
	prev := c.last
	c.syncing = false
	var show []*cimpb.Frame
	if after := s.GetAfterSeq(); after > c.last { // from_acked: shown before
		for seq := range c.held {
			if seq <= after {
				delete(c.held, seq)
			}
		}
		c.last = after
	}
	first := s.GetFirstSeq()
	if first == 0 && s.GetLastSeq() == 0 && s.GetHeadSeq() > 0 {
		first = s.GetHeadSeq() + 1 // nothing retained
	}
	if first > c.last+1 {
		show = c.showHeldLocked(show, first-1)
	}
	if covered := s.GetLastSeq(); covered > c.last {
		show = c.showHeldLocked(show, covered)
	}
	show = c.flushLocked(show)
	sync, retry, after := false, false, c.last
	if len(c.held) > 0 || s.GetHeadSeq() > c.last {
		c.syncing = true
		if c.last > prev || s.GetLastSeq() > 0 {
			sync = true // the next page, or the rest of the gap
		} else {
			retry = true // no progress: asking again at once could spin
		}
	}
	ack := c.shownLocked(len(show))
	c.mu.Unlock()
	c.show(show, now)
	if sync {
		c.writeQuiet(&cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{AfterSeq: after}})
	}
	if retry {
		time.AfterFunc(wsSyncRetry, c.resync)
	}
	c.ack(ack)
}

// resync asks again for a gap whose last SYNC made no progress.
func (c *wsClient) resync() {
	c.mu.Lock()
	again := c.syncing && !c.closed
	after := c.last
	c.mu.Unlock()
	if again {
		c.writeQuiet(&cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{AfterSeq: after}})
	}
}

// flushLocked shows the held entries that now follow last.
func (c *wsClient) flushLocked(show []*cimpb.Frame) []*cimpb.Frame {
	for {
		f, ok := c.held[c.last+1]
		if !ok {
			return show
		}
		delete(c.held, c.last+1)
		c.last++
		show = append(show, f)
	}
}

// showHeldLocked moves last to upTo, showing the held entries up to there
// in seq order.
func (c *wsClient) showHeldLocked(show []*cimpb.Frame, upTo uint64) []*cimpb.Frame {
	var seqs []uint64
	for seq := range c.held {
		if seq <= upTo {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	for _, seq := range seqs {
		show = append(show, c.held[seq])
		delete(c.held, seq)
	}
	c.last = upTo
	return show
}

// shownLocked counts n entries shown (last may also have moved past
// holes) and returns the seq to acknowledge at once (0: none now; a timer
// acknowledges within wsAckDelay).
func (c *wsClient) shownLocked(n int) uint64 {
	c.unacked += n
	if c.last <= c.acked {
		return 0
	}
	if c.unacked >= wsAckEvery {
		return c.takeAckLocked()
	}
	if !c.ackArmed {
		c.ackArmed = true
		f := 0.5 + rand.Float64()
		time.AfterFunc(max(scale(wsAckDelay, f), time.Until(c.ackedAt.Add(scale(wsAckInterval, f)))), c.ackDue)
	}
	return 0
}

func scale(d time.Duration, f float64) time.Duration { return time.Duration(float64(d) * f) }

func (c *wsClient) takeAckLocked() uint64 {
	if c.last <= c.acked {
		return 0
	}
	c.acked, c.unacked, c.ackedAt = c.last, 0, time.Now()
	return c.acked
}

func (c *wsClient) ackDue() {
	c.mu.Lock()
	c.ackArmed = false
	var seq uint64
	if !c.closed {
		seq = c.takeAckLocked()
	}
	c.mu.Unlock()
	c.ack(seq)
}

// ack writes ACK{seq} unless a higher one is on the wire already.
func (c *wsClient) ack(seq uint64) {
	if seq == 0 {
		return
	}
	b, err := proto.Marshal(&cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: seq}})
	if err != nil {
		return
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if seq <= c.ackWritten {
		return
	}
	if c.writeLocked(b) == nil {
		c.ackWritten = seq
	}
}

// show hands the inbox MSGs among frames (private ones) to onMsg.
func (c *wsClient) show(frames []*cimpb.Frame, now time.Time) {
	if c.onMsg == nil {
		return
	}
	for _, f := range frames {
		if m := f.GetMsg(); f.GetType() == cimpb.Type_MSG && m.GetGroup() == "" {
			c.onMsg(m, now)
		}
	}
}

// answered notes the route's answer to messages this client sent: any
// receipt for one (SENT first, as a rule) means it was stored.
func (c *wsClient) answered(r *cimpb.Receipt) {
	if id := r.GetClientMsgId(); id != "" {
		c.unpend(id)
	}
	for _, it := range r.GetItems() {
		if id := it.GetClientMsgId(); id != "" {
			c.unpend(id)
		}
	}
}

func (c *wsClient) unpend(id string) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// pendingCount is how many sent messages the route has not answered.
func (c *wsClient) pendingCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// send writes a private text message to the user with id to; like the
// SDK's Send it returns once the frame is written.
func (c *wsClient) send(to, body string) error {
	c.mu.Lock()
	c.nextID++
	id := fmt.Sprintf("%s-%d", c.name, c.nextID)
	if c.pending == nil {
		c.pending = map[string]struct{}{}
	}
	c.pending[id] = struct{}{}
	c.mu.Unlock()
	err := c.write(&cimpb.Frame{Type: cimpb.Type_MSG,
		Msg: &cimpb.Msg{ClientMsgId: id, To: to, Body: []byte(body), Kind: cimpb.Kind_KIND_TEXT}})
	if err != nil {
		c.unpend(id)
	}
	return err
}

// write sends one frame as one binary message.
func (c *wsClient) write(f *cimpb.Frame) error {
	b, err := proto.Marshal(f)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(b)
}

// writeQuiet is write for frames nobody waits for: a failed write shows
// as the connection's end in the reader.
func (c *wsClient) writeQuiet(f *cimpb.Frame) { _ = c.write(f) }

func (c *wsClient) writeLocked(b []byte) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(wsWriteTimeout))
	err := c.ws.WriteMessage(websocket.BinaryMessage, b)
	c.lastWrite = time.Now()
	return err
}

// wsPing is PING, encoded once.
var wsPing = func() []byte {
	b, err := proto.Marshal(&cimpb.Frame{Type: cimpb.Type_PING})
	if err != nil {
		panic(err)
	}
	return b
}()

// heartbeat writes PING after wsHeartbeat without writing (the gateway
// closes connections silent for its --read-timeout, 3 minutes).
func (c *wsClient) heartbeat() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.hb == nil { // stopped
		return
	}
	if idle := time.Since(c.lastWrite); idle < wsHeartbeat {
		c.hb.Reset(wsHeartbeat - idle)
		return
	}
	if c.writeLocked(wsPing) == nil {
		c.hb.Reset(wsHeartbeat)
	}
}

func (c *wsClient) stopHeartbeat() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.hb != nil {
		c.hb.Stop()
		c.hb = nil
	}
}

// close acknowledges what was shown (as the SDK's Close does), says
// goodbye (close 1000) and closes the socket.
func (c *wsClient) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	seq := c.takeAckLocked()
	c.mu.Unlock()
	c.stopHeartbeat()
	c.ack(seq)
	c.wmu.Lock()
	_ = c.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.wmu.Unlock()
	c.ws.Close()
}

// wsClients registers and logs in n users named prefix0… over the
// gateways' WebSockets, par at a time (the route picks each one's gateway).
func wsClients(t *run.T, routeURL, prefix string, n, par int, onMsg func(*cimpb.Msg, time.Time), onEnd func(string, error)) []*wsClient {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: par * 2}}
	t.Cleanup(hc.CloseIdleConnections)
	api := client.NewAPI(routeURL, hc)
	d := newWSDialer(api, nil)
	cls := make([]*wsClient, n)
	failed, firstErr := runParallel(n, par, func(ctx context.Context, i int) error {
		name := fmt.Sprintf("%s%05d", prefix, i)
		if err := register(ctx, api, name); err != nil {
			return fmt.Errorf("register %s: %w", name, err)
		}
		cl, err := d.login(ctx, name, onMsg, onEnd)
		cls[i] = cl
		return err
	})
	t.Cleanup(func() {
		closers := make([]func(), 0, n)
		for _, c := range cls {
			if c != nil {
				closers = append(closers, c.close)
			}
		}
		closeAll(closers)
	})
	if failed > 0 {
		t.Fatalf("connecting %d users over WebSocket: %d failed, first: %v", n, failed, firstErr)
	}
	return cls
}
