package client

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
	"github.com/gocim/gocim/proto/codes"
)

// waitAck waits for the client's ACK to reach seq.
func waitAck(t *testing.T, conn *clienttest.Conn, seq uint64) {
	t.Helper()
	for {
		f := conn.Next(t, cimpb.Type_ACK)
		if got := f.GetAck().GetSeq(); got == seq {
			return
		} else if got > seq {
			t.Fatalf("ACK %d, want %d", got, seq)
		}
	}
}

// TestOversizedFrameIsSkipped: a frame over the client's MaxFrame (an inbox
// entry the cluster should never have sent) is read past: the link stays,
// the entries after it show, and the SYNC answer that covers its seq lets
// the client acknowledge past it, so that no login ever asks for it again.
// Before, the client dropped the link and got the same frame at every
// reconnect, for good.
func TestOversizedFrameIsSkipped(t *testing.T) {
	c, gw, _, in := inboxSetup(t, func(cfg *Config) { cfg.MaxFrame = 1024 })
	conn := gw.Accept(t)
	next(t, c, EventConnected)

	m1 := in.Append(clienttest.TextMsg("m1", "2", "bob", "before"))
	huge := in.Append(&cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "m2", From: "2", FromName: "bob",
		Kind: cimpb.Kind_KIND_FILE, Body: bytes.Repeat([]byte("x"), 2000)}})
	m3 := in.Append(clienttest.TextMsg("m3", "2", "bob", "after"))
	if err := conn.SendAll(m1, huge, m3); err != nil {
		t.Fatal(err)
	}
	if got := bodies(t, c, 2); !slices.Equal(got, []string{"before", "after"}) {
		t.Fatalf("shown %v, want [before after]", got)
	}
	// The SYNC answer repeats the oversized entry (skipped again) and says
	// it covered seq 3: everything is acknowledged.
	waitAck(t, conn, 3)
	if n := gw.Logins(); n != 1 {
		t.Fatalf("%d logins, want 1: the link must survive the oversized frame", n)
	}
	noEvent(t, c)

	// An oversized entry as the newest one: nothing follows to reveal the
	// gap, and it is acknowledged all the same.
	big2 := in.Append(&cimpb.Frame{Type: cimpb.Type_RECEIPT, Receipt: &cimpb.Receipt{Status: cimpb.ReceiptStatus_RECEIPT_READ,
		MsgId: string(bytes.Repeat([]byte("r"), 1500))}})
	if err := conn.Send(big2); err != nil {
		t.Fatal(err)
	}
	waitAck(t, conn, 4)
	m5 := in.Append(clienttest.TextMsg("m5", "2", "bob", "still here"))
	if err := conn.Send(m5); err != nil {
		t.Fatal(err)
	}
	if got := bodies(t, c, 1); got[0] != "still here" {
		t.Fatalf("shown %v", got)
	}
	waitAck(t, conn, 5)
	if n := gw.Logins(); n != 1 {
		t.Fatalf("%d logins, want 1", n)
	}
	noEvent(t, c)
}

// TestOversizedFrameDuringLogin: a frame over the limit before LOGIN_ACK
// is read past; the login succeeds and the frames around it are kept.
func TestOversizedFrameDuringLogin(t *testing.T) {
	cc, sc := net.Pipe()
	defer cc.Close()
	defer sc.Close()
	cfg := fastConfig("http://unused")
	cfg.MaxFrame = 1024
	cfg.setDefaults()
	l := newLink(cc, &cfg, "gw", testLogger())
	served := make(chan error, 1)
	go func() {
		r := codec.NewReader(sc, 0)
		if f, err := r.ReadFrame(); err != nil || f.GetType() != cimpb.Type_LOGIN {
			served <- fmt.Errorf("want LOGIN, got %v %v", f, err)
			return
		}
		w := codec.NewWriter(sc)
		for _, f := range []*cimpb.Frame{
			{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "big", Seq: 1, Body: bytes.Repeat([]byte("x"), 2000)}},
			{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "early", Seq: 2, Body: []byte("early")}},
			{Type: cimpb.Type_LOGIN_ACK, ReqId: 1, LoginAck: &cimpb.LoginAck{UserId: "1", SessionId: "s"}},
		} {
			if err := w.WriteFrame(f); err != nil {
				served <- err
				return
			}
		}
		served <- w.Flush()
	}()
	if err := l.handshake(t.Context(), "tok", 0, 0, clienttest.Wait); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if len(l.early) != 1 || l.early[0].GetMsg().GetMsgId() != "early" || l.ack.GetSessionId() != "s" {
		t.Fatalf("early frames %v, ack %v", l.early, l.ack)
	}
}

// TestTooManyConnectionsIsRetried: a gateway at its connection cap answers
// ERROR TooManyConnections and hangs up; the client tries again (with
// backoff) instead of giving up.
func TestTooManyConnectionsIsRetried(t *testing.T) {
	gw := clienttest.NewGateway(t)
	var refusals atomic.Int32
	gw.SetOnLogin(func(l *cimpb.Login) *cimpb.Frame {
		if refusals.Add(1) <= 2 {
			return &cimpb.Frame{Type: cimpb.Type_ERROR, Error: &cimpb.Error{Code: int32(codes.TooManyConnections), Text: "too many connections"}}
		}
		uid, name, sid, _ := clienttest.ParseToken(l.GetToken())
		return &cimpb.Frame{Type: cimpb.Type_LOGIN_ACK, ReqId: 1, LoginAck: &cimpb.LoginAck{UserId: uid, UserName: name, SessionId: sid, GatewayId: gw.ID}}
	})
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	c := startClient(t, fastConfig(route.URL))
	next(t, c, EventConnected)
	if n := gw.Logins(); n != 3 {
		t.Fatalf("%d LOGINs, want 3 (two refused, then in)", n)
	}
}
