package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/proto/cimpb"
)

// fakeGateway is one WebSocket connection's gateway end: the test reads
// what the client wrote from frames and pushes with push.
type fakeGateway struct {
	t      *testing.T
	url    string
	conns  chan *websocket.Conn
	ws     *websocket.Conn
	frames chan *cimpb.Frame
}

func newFakeGateway(t *testing.T) *fakeGateway {
	g := &fakeGateway{t: t, conns: make(chan *websocket.Conn, 1), frames: make(chan *cimpb.Frame, 64)}
	up := websocket.Upgrader{Subprotocols: []string{wsSubprotocol}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		g.conns <- ws
	}))
	t.Cleanup(srv.Close)
	g.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	return g
}

// accept takes the client's connection and answers its LOGIN, then reads
// in the background.
func (g *fakeGateway) accept() {
	g.t.Helper()
	select {
	case g.ws = <-g.conns:
	case <-time.After(5 * time.Second):
		g.t.Fatal("no connection")
	}
	g.t.Cleanup(func() { g.ws.Close() })
	go func() {
		defer close(g.frames)
		for {
			typ, b, err := g.ws.ReadMessage()
			if err != nil {
				return
			}
			f := &cimpb.Frame{}
			if typ != websocket.BinaryMessage || proto.Unmarshal(b, f) != nil {
				g.t.Errorf("not a binary frame: %q", b)
				return
			}
			g.frames <- f
		}
	}()
	login := g.next("LOGIN", func(f *cimpb.Frame) bool { return true })
	if login.GetType() != cimpb.Type_LOGIN || login.GetLogin().GetToken() != "tok" {
		g.t.Fatalf("first frame %v, want LOGIN with the token", login)
	}
	g.push(&cimpb.Frame{Type: cimpb.Type_LOGIN_ACK, ReqId: login.GetReqId(), LoginAck: &cimpb.LoginAck{UserId: "u1"}})
}

func (g *fakeGateway) push(fs ...*cimpb.Frame) {
	g.t.Helper()
	for _, f := range fs {
		b, _ := proto.Marshal(f)
		if err := g.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
			g.t.Fatal(err)
		}
	}
}

// next returns the next frame the client wrote that matches (others are
// dropped).
func (g *fakeGateway) next(what string, match func(*cimpb.Frame) bool) *cimpb.Frame {
	g.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case f, ok := <-g.frames:
			if !ok {
				g.t.Fatalf("waiting for %s: connection closed", what)
			}
			if match(f) {
				return f
			}
		case <-timeout:
			g.t.Fatalf("no %s within 5s", what)
		}
	}
}

func msgFrame(seq uint64, body string) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{Seq: seq, MsgId: "m" + body, From: "u2", Body: []byte(body)}}
}

// TestWSClientInbox: the bench's WebSocket client logs in, shows its inbox
// in seq order exactly once (a gap is filled by one SYNC), acknowledges it
// cumulatively, tracks its sends until the route answers, and closes
// politely.
func TestWSClientInbox(t *testing.T) {
	g := newFakeGateway(t)
	var mu sync.Mutex
	var got []string
	shown := make(chan struct{}, 16)
	d := newWSDialer(nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	var c *wsClient
	go func() {
		defer close(done)
		var err error
		c, err = d.open(ctx, g.url, "alice", "tok", func(m *cimpb.Msg, _ time.Time) {
			mu.Lock()
			got = append(got, string(m.GetBody()))
			mu.Unlock()
			shown <- struct{}{}
		}, nil)
		if err != nil {
			t.Error(err)
		}
	}()
	g.accept()
	<-done
	if c == nil {
		t.FailNow()
	}
	defer c.close()

	// The login SYNC's answer (empty inbox), then 2 before 1 (a swap that
	// fills within the gap wait: no SYNC), then 4 without 3 (lost).
	g.push(&cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{}}, msgFrame(2, "2"), msgFrame(1, "1"), msgFrame(4, "4"))
	sync := g.next("SYNC for the gap", func(f *cimpb.Frame) bool { return f.GetType() == cimpb.Type_SYNC })
	if sync.GetSync().GetAfterSeq() != 2 {
		t.Fatalf("SYNC %v, want after_seq 2 (the swap of 1 and 2 asks nothing)", sync)
	}
	// The answer: 3 and 4 again, then the SYNC that ends it.
	g.push(msgFrame(3, "3"), msgFrame(4, "4"), &cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{AfterSeq: 2, LastSeq: 4, HeadSeq: 4}})
	var acked uint64
	for acked < 4 {
		ack := g.next("ACK", func(f *cimpb.Frame) bool { return f.GetType() == cimpb.Type_ACK })
		if s := ack.GetAck().GetSeq(); s <= acked {
			t.Fatalf("ACK %d after ACK %d", s, acked)
		} else {
			acked = s
		}
	}
	for range 4 {
		<-shown
	}
	mu.Lock()
	if strings.Join(got, ",") != "1,2,3,4" {
		t.Fatalf("shown %q, want 1,2,3,4", got)
	}
	mu.Unlock()
	if n := c.gapSyncs.Load(); n != 1 {
		t.Errorf("%d gap SYNCs, want 1", n)
	}

	// A send waits for the route's answer: SENT, then a DELIVERED receipt
	// (in the sender's inbox, so acknowledged too).
	if err := c.send("u2", "hi"); err != nil {
		t.Fatal(err)
	}
	msg := g.next("MSG", func(f *cimpb.Frame) bool { return f.GetType() == cimpb.Type_MSG })
	if m := msg.GetMsg(); m.GetTo() != "u2" || string(m.GetBody()) != "hi" || m.GetClientMsgId() == "" {
		t.Fatalf("sent %v", msg)
	}
	if n := c.pendingCount(); n != 1 {
		t.Fatalf("pending %d, want 1", n)
	}
	id := msg.GetMsg().GetClientMsgId()
	g.push(&cimpb.Frame{Type: cimpb.Type_RECEIPT, Receipt: &cimpb.Receipt{Status: cimpb.ReceiptStatus_RECEIPT_SENT, ClientMsgId: id, MsgId: "x"}},
		&cimpb.Frame{Type: cimpb.Type_RECEIPT, Receipt: &cimpb.Receipt{Status: cimpb.ReceiptStatus_RECEIPT_DELIVERED, Seq: 5,
			Items: []*cimpb.ReceiptItem{{MsgId: "x", ClientMsgId: id}}}})
	ack := g.next("ACK of the receipt", func(f *cimpb.Frame) bool { return f.GetType() == cimpb.Type_ACK })
	if ack.GetAck().GetSeq() != 5 {
		t.Fatalf("ACK %v, want seq 5", ack)
	}
	if n := c.pendingCount(); n != 0 {
		t.Fatalf("pending %d after SENT, want 0", n)
	}
	c.close()
	select {
	case _, ok := <-g.frames:
		if ok {
			t.Fatal("a frame after close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("connection not closed")
	}
}
