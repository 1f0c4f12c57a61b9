package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
	"github.com/gocim/gocim/proto/codes"
)

func TestStartHandshakeAndClose(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	uid := route.AddUser("alice", "secret1")

	c := startClient(t, fastConfig(route.URL))
	conn := gw.Accept(t)
	if want := clienttest.Token(uid, "alice", "s1"); conn.Login.GetToken() != want {
		t.Errorf("LOGIN token %q, want %q", conn.Login.GetToken(), want)
	}
	if conn.Login.GetLastSeq() != 0 || conn.Login.GetClientVersion() == "" {
		t.Errorf("LOGIN last_seq %d version %q, want 0 and a version", conn.Login.GetLastSeq(), conn.Login.GetClientVersion())
	}
	if ev := next(t, c, EventConnected); ev.Gateway != gw.ID || ev.At.IsZero() {
		t.Errorf("connected event %+v, want gateway %s and a time", ev, gw.ID)
	}
	want := Info{UserID: uid, UserName: "alice", SessionID: "s1", Gateway: gw.ID, Connected: true}
	if got := c.Info(); got != want {
		t.Errorf("Info() = %+v, want %+v", got, want)
	}
	if err := c.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v, want ErrStarted", err)
	}

	ctx := context.Background()
	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := route.Offlines(); len(got) != 1 || got[0] != (clienttest.OfflineCall{UserID: uid, SessionID: "s1"}) {
		t.Errorf("offLine calls %+v, want one for session s1", got)
	}
	conn.WaitDone(t)
	next(t, c, EventClosed)
	if ev, ok := <-c.Events(); ok {
		t.Fatalf("event %v after EventClosed, want the channel closed", ev.Kind)
	}
	if err := c.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if c.Info().Connected {
		t.Error("Info().Connected after Close")
	}
	if _, err := c.Send(ctx, "bob", "hi"); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close: %v, want ErrClosed", err)
	}
	if err := c.Start(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
	if len(route.Offlines()) != 1 {
		t.Errorf("second Close called /offLine again")
	}
}

func TestHeartbeatPingsWhenIdle(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	cfg := fastConfig(route.URL)
	cfg.Heartbeat = 10 * time.Millisecond
	c := startClient(t, cfg)
	conn := gw.Accept(t)
	next(t, c, EventConnected)

	// Several rounds of PING/PONG keep the link: PONGs are understood and
	// produce no events.
	for range 5 {
		conn.Next(t, cimpb.Type_PING)
	}
	noEvent(t, c)
	if route.Logins() != 1 || !c.Info().Connected {
		t.Fatalf("logins %d connected %v, want one login still connected", route.Logins(), c.Info().Connected)
	}
}

func TestDeadLinkReconnectsThroughRouteToAnotherGateway(t *testing.T) {
	gw1, gw2 := clienttest.NewGateway(t), clienttest.NewGateway(t)
	gw1.Mute(true) // swallows PINGs: a half-dead link
	route := clienttest.NewRoute(t, gw1, gw2)
	route.AddUser("alice", "secret1")
	cfg := fastConfig(route.URL)
	cfg.Heartbeat = 20 * time.Millisecond
	cfg.PongTimeout = 50 * time.Millisecond
	c := startClient(t, cfg)

	conn1 := gw1.Accept(t)
	next(t, c, EventConnected)
	conn1.Next(t, cimpb.Type_PING)
	ev := next(t, c, EventDisconnected)
	if !strings.Contains(ev.Reason, "PONG") || ev.Gateway != gw1.ID {
		t.Errorf("disconnect %+v, want a missing-PONG reason on %s", ev, gw1.ID)
	}
	conn1.WaitDone(t) // the client dropped the dead connection
	if ev := next(t, c, EventConnected); ev.Gateway != gw2.ID {
		t.Errorf("reconnected via %q, want %q", ev.Gateway, gw2.ID)
	}
	conn2 := gw2.Accept(t)
	if _, _, sid, _ := clienttest.ParseToken(conn2.Login.GetToken()); sid != "s2" {
		t.Errorf("second LOGIN uses session %q, want a fresh login (s2)", sid)
	}
	// Only the gateway is asserted from here on: gw2 answers PINGs, but a
	// heavily loaded test machine may still miss a 50 ms PONG and relog.
	if info := c.Info(); info.Gateway != gw2.ID {
		t.Errorf("Info() = %+v after reconnect, want gateway %s", info, gw2.ID)
	}
}

// TestBusySenderNoticesFrozenGateway: a client that keeps writing
// messages to a gateway that answers nothing (frozen: its socket still
// takes bytes) PINGs anyway once it has read nothing for Heartbeat, finds
// the link dead and moves on; without that it would keep writing into the
// frozen gateway for as long as it has something to send.
func TestBusySenderNoticesFrozenGateway(t *testing.T) {
	gw1, gw2 := clienttest.NewGateway(t), clienttest.NewGateway(t)
	gw1.Mute(true) // no PONG, and no answer to MSGs (the default)
	route := clienttest.NewRoute(t, gw1, gw2)
	route.AddUser("alice", "secret1")
	cfg := fastConfig(route.URL)
	cfg.Heartbeat = 100 * time.Millisecond
	cfg.PongTimeout = 100 * time.Millisecond
	c := startClient(t, cfg)
	conn1 := gw1.Accept(t)
	next(t, c, EventConnected)

	pings := make(chan struct{}, 1)
	go func() { // keep the frozen gateway's socket drained
		for {
			select {
			case f := <-conn1.Frames:
				if f.GetType() == cimpb.Type_PING {
					select {
					case pings <- struct{}{}:
					default:
					}
				}
			case <-conn1.Done():
				return
			}
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sending := make(chan struct{})
	go func() { // a message every 10 ms: never idle for a heartbeat
		defer close(sending)
		for i := 0; i < 3000 && ctx.Err() == nil; i++ {
			sctx, scancel := context.WithTimeout(ctx, 10*time.Millisecond)
			_, _ = c.Send(sctx, "bob", fmt.Sprint("m", i))
			scancel()
			time.Sleep(10 * time.Millisecond) // the pace of a busy sender
		}
	}()
	ev := next(t, c, EventDisconnected)
	if !strings.Contains(ev.Reason, "PONG") || ev.Gateway != gw1.ID {
		t.Errorf("disconnect %+v, want a missing-PONG reason on %s", ev, gw1.ID)
	}
	select {
	case <-pings:
	default:
		t.Error("no PING reached the frozen gateway")
	}
	cancel()
	<-sending
}

func TestStoppedByServer(t *testing.T) {
	for _, tc := range []struct {
		name       string
		frame      *cimpb.Frame
		wantReason string
		wantCode   codes.Code
	}{
		{"kick", &cimpb.Frame{Type: cimpb.Type_KICK, Kick: &cimpb.Kick{Reason: "logged in elsewhere"}}, "logged in elsewhere", 0},
		{"kick without reason", &cimpb.Frame{Type: cimpb.Type_KICK}, "kicked by the server", 0},
		{"unauthorized", &cimpb.Frame{Type: cimpb.Type_ERROR, Error: &cimpb.Error{Code: int32(codes.Unauthorized), Text: "session revoked"}}, "session revoked", codes.Unauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := clienttest.NewGateway(t)
			route := clienttest.NewRoute(t, gw)
			route.AddUser("alice", "secret1")
			c := startClient(t, fastConfig(route.URL))
			conn := gw.Accept(t)
			next(t, c, EventConnected)

			if err := conn.Send(tc.frame); err != nil {
				t.Fatal(err)
			}
			conn.Close()
			ev := next(t, c, EventKicked)
			if !strings.Contains(ev.Reason, tc.wantReason) {
				t.Errorf("kicked reason %q, want it to contain %q", ev.Reason, tc.wantReason)
			}
			if got := codes.Code(ev.Err.GetCode()); got != tc.wantCode {
				t.Errorf("kicked event code %d, want %d", got, tc.wantCode)
			}
			if _, err := c.Send(context.Background(), "bob", "hi"); !errors.Is(err, ErrStopped) {
				t.Errorf("Send after kick: %v, want ErrStopped", err)
			}
			closeClient(t, c)
			// Close waited for every goroutine, so a reconnect would show here.
			if route.Logins() != 1 {
				t.Errorf("route saw %d logins, want 1 (no reconnect after being stopped)", route.Logins())
			}
			if n := len(route.Offlines()); n != 0 {
				t.Errorf("Close after a kick called /offLine %d times; the session is not ours any more", n)
			}
		})
	}
}

func TestPermanentLoginFailures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		password string
		answer   *clienttest.Answer
		onLogin  func(*cimpb.Login) *cimpb.Frame
		wantCode codes.Code
		api      bool
	}{
		{name: "bad password", password: "wrong-pw", wantCode: codes.BadAccount, api: true},
		{name: "repeat login", password: "secret1", answer: &clienttest.Answer{Code: codes.RepeatLogin, Status: 409}, wantCode: codes.RepeatLogin, api: true},
		{name: "bad argument", password: "secret1", answer: &clienttest.Answer{Code: codes.BadArgument, Status: 400}, wantCode: codes.BadArgument, api: true},
		{name: "unauthorized frame", password: "secret1", onLogin: func(*cimpb.Login) *cimpb.Frame {
			return &cimpb.Frame{Type: cimpb.Type_ERROR, ReqId: 1, Error: &cimpb.Error{Code: int32(codes.Unauthorized), Text: "bad token"}}
		}, wantCode: codes.Unauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := clienttest.NewGateway(t)
			gw.SetOnLogin(tc.onLogin)
			route := clienttest.NewRoute(t, gw)
			route.AddUser("alice", "secret1")
			if tc.answer != nil {
				route.SetLoginHook(func(context.Context, int) *clienttest.Answer { return tc.answer })
			}
			cfg := fastConfig(route.URL)
			cfg.Password = tc.password
			c, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer closeClient(t, c)

			err = c.Start(context.Background())
			if CodeOf(err) != tc.wantCode {
				t.Fatalf("Start: %v (code %d), want code %d", err, CodeOf(err), tc.wantCode)
			}
			var ae *APIError
			var ge *GatewayError
			if tc.api && !errors.As(err, &ae) || !tc.api && !errors.As(err, &ge) {
				t.Errorf("Start error %T does not unwrap to the expected type", err)
			}
			if route.Logins() != 1 {
				t.Errorf("route saw %d logins, want 1 (no retry)", route.Logins())
			}
			if c.Info().Connected {
				t.Error("connected after a failed Start")
			}
		})
	}
}

func TestStartRetriesTransientFailures(t *testing.T) {
	dead := clienttest.NewGateway(t)
	dead.Close() // its port refuses connections now
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, dead, gw)
	route.AddUser("alice", "secret1")
	route.SetLoginHook(func(_ context.Context, n int) *clienttest.Answer {
		switch n {
		case 1:
			return &clienttest.Answer{Code: codes.NoServer, Status: 503}
		case 2:
			return &clienttest.Answer{Code: codes.Unavailable, Status: 503}
		}
		return nil // 3: the dead gateway, 4: gw
	})
	c := startClient(t, fastConfig(route.URL))
	if ev := next(t, c, EventConnected); ev.Gateway != gw.ID {
		t.Errorf("connected via %q, want %q", ev.Gateway, gw.ID)
	}
	if route.Logins() != 4 {
		t.Errorf("route saw %d logins, want 4", route.Logins())
	}
}

func TestStartGivesUpWhenContextEnds(t *testing.T) {
	route := clienttest.NewRoute(t)
	route.AddUser("alice", "secret1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	route.SetLoginHook(func(_ context.Context, n int) *clienttest.Answer {
		if n == 3 {
			cancel()
		}
		return &clienttest.Answer{Code: codes.NoServer, Status: 503}
	})
	c, err := New(fastConfig(route.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer closeClient(t, c)
	err = c.Start(ctx)
	if !errors.Is(err, context.Canceled) || CodeOf(err) != codes.NoServer {
		t.Fatalf("Start: %v, want context.Canceled carrying the last NoServer answer", err)
	}
	if n := route.Logins(); n != 3 {
		t.Errorf("route saw %d logins, want 3", n)
	}
}

func TestSendWaitsAcrossReconnect(t *testing.T) {
	gw1, gw2 := clienttest.NewGateway(t), clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw1, gw2)
	route.AddUser("alice", "secret1")
	release := make(chan struct{})
	route.SetLoginHook(func(ctx context.Context, n int) *clienttest.Answer {
		if n == 2 {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return nil
	})
	c := startClient(t, fastConfig(route.URL))
	conn1 := gw1.Accept(t)
	next(t, c, EventConnected)
	if n := route.NextLogin(t); n != 1 {
		t.Fatalf("login attempt %d, want 1", n)
	}

	conn1.Close()
	next(t, c, EventDisconnected)
	if n := route.NextLogin(t); n != 2 {
		t.Fatalf("login attempt %d, want 2", n)
	}
	// The link is down and the login is held: this send must wait.
	type result struct {
		id  string
		err error
	}
	done := make(chan result, 1)
	go func() {
		id, err := c.Send(context.Background(), "bob", "across")
		done <- result{id, err}
	}()
	close(release)

	conn2 := gw2.Accept(t)
	f := conn2.Next(t, cimpb.Type_MSG)
	r := <-done
	if r.err != nil {
		t.Fatalf("Send: %v", r.err)
	}
	if f.GetMsg().GetClientMsgId() != r.id || string(f.GetMsg().GetBody()) != "across" {
		t.Errorf("gateway 2 got %v, want client_msg_id %q body across", f.GetMsg(), r.id)
	}
	next(t, c, EventConnected)
}

func TestSendBoundedByContextWhileDown(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	route.SetLoginHook(func(ctx context.Context, n int) *clienttest.Answer {
		if n > 1 {
			<-ctx.Done() // never let it back in
		}
		return nil
	})
	c := startClient(t, fastConfig(route.URL))
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	conn.Close()
	next(t, c, EventDisconnected)

	ctx, cancel := context.WithCancel(context.Background())
	route.NextLogin(t)
	route.NextLogin(t) // the held attempt: the client is surely down
	cancel()
	if _, err := c.Send(ctx, "bob", "hi"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send while down with a cancelled context: %v", err)
	}
	// Close while a reconnect is in flight must still end everything.
	closeClient(t, c)
}

func TestUplinkFrames(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	c := startClient(t, fastConfig(route.URL))
	conn := gw.Accept(t)
	ctx := context.Background()

	id, err := c.Send(ctx, "bob", "hello")
	if err != nil {
		t.Fatal(err)
	}
	m := conn.Next(t, cimpb.Type_MSG).GetMsg()
	if m.GetTo() != "bob" || string(m.GetBody()) != "hello" || m.GetBroadcast() || m.GetClientMsgId() != id || id == "" {
		t.Errorf("private uplink %v, want to bob, body hello, id %q", m, id)
	}
	id, err = c.Broadcast(ctx, "hi all")
	if err != nil {
		t.Fatal(err)
	}
	m = conn.Next(t, cimpb.Type_MSG).GetMsg()
	if m.GetTo() != "" || !m.GetBroadcast() || string(m.GetBody()) != "hi all" || m.GetClientMsgId() != id {
		t.Errorf("broadcast uplink %v", m)
	}
	// Send and Broadcast reuse their Msg: nothing of one leaks into the next.
	id, err = c.Send(ctx, "carol", "hey")
	if err != nil {
		t.Fatal(err)
	}
	m = conn.Next(t, cimpb.Type_MSG).GetMsg()
	if m.GetTo() != "carol" || m.GetBroadcast() || string(m.GetBody()) != "hey" || m.GetClientMsgId() != id {
		t.Errorf("private uplink after a broadcast %v", m)
	}
	if st, ok := c.Status(id); !ok || st.Text != "hey" || st.To != "carol" || st.Broadcast {
		t.Errorf("status %+v, want the text hey to carol", st)
	}
	raw := &cimpb.Msg{ClientMsgId: "mine-1", To: "7", Body: []byte("x"), Kind: cimpb.Kind_KIND_TEXT}
	if err := c.SendMsg(ctx, raw); err != nil {
		t.Fatal(err)
	}
	if m = conn.Next(t, cimpb.Type_MSG).GetMsg(); m.GetClientMsgId() != "mine-1" {
		t.Errorf("SendMsg replaced the caller's client_msg_id: %q", m.GetClientMsgId())
	}
	if st, _ := c.Status("mine-1"); st.Text != "x" || string(raw.GetBody()) != "x" || raw.GetTo() != "7" {
		t.Errorf("status text %q, caller's message %v", st.Text, raw)
	}

	if _, err := c.Send(ctx, "", "x"); !errors.Is(err, ErrNoRecipient) {
		t.Errorf("Send without recipient: %v", err)
	}
	if _, err := c.Send(ctx, "bob", strings.Repeat("x", 70<<10)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized Send: %v", err)
	}

	// Concurrent senders: every message arrives once, ids never repeat.
	const senders, each = 8, 50
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				if _, err := c.Send(ctx, "bob", fmt.Sprintf("%d-%d", s, i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	bodies := map[string]bool{}
	for range senders * each {
		m := conn.Next(t, cimpb.Type_MSG).GetMsg()
		if seen[m.GetClientMsgId()] {
			t.Fatalf("client_msg_id %q repeated", m.GetClientMsgId())
		}
		seen[m.GetClientMsgId()] = true
		bodies[string(m.GetBody())] = true
	}
	if len(bodies) != senders*each {
		t.Errorf("%d distinct bodies, want %d", len(bodies), senders*each)
	}
}

// TestSendWritesItself: a Send on a link nobody is writing to writes its
// frame from the caller's goroutine, with no hand-off to the writer and
// back; one whose ctx ends before PongTimeout goes through the writer (so
// that it can stop waiting). Every frame arrives, in order.
func TestSendWritesItself(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	cfg := fastConfig(route.URL) // no heartbeat: the writer writes nothing of its own
	cfg.PongTimeout = time.Minute
	c := startClient(t, cfg)
	conn := gw.Accept(t)
	c.mu.Lock()
	l := c.cur
	c.mu.Unlock()
	if l == nil {
		t.Fatal("no link after the gateway accepted")
	}
	before := l.direct.Load()
	for i := range 5 {
		if _, err := c.Send(context.Background(), "bob", fmt.Sprint("direct ", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.direct.Load() - before; n != 5 {
		t.Fatalf("%d of 5 sends on an idle link wrote themselves", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Send(ctx, "bob", "queued"); err != nil {
		t.Fatal(err)
	}
	if n := l.direct.Load() - before; n != 5 {
		t.Fatalf("a send whose ctx ends before PongTimeout wrote itself (%d direct)", n)
	}
	for _, want := range []string{"direct 0", "direct 1", "direct 2", "direct 3", "direct 4", "queued"} {
		if m := conn.Next(t, cimpb.Type_MSG).GetMsg(); string(m.GetBody()) != want {
			t.Fatalf("gateway got %q, want %q", m.GetBody(), want)
		}
	}
}

func TestDownlinkEventsInOrderAndLastSeq(t *testing.T) {
	gw1, gw2 := clienttest.NewGateway(t), clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw1, gw2)
	route.AddUser("alice", "secret1")
	c := startClient(t, fastConfig(route.URL))
	conn := gw1.Accept(t)
	next(t, c, EventConnected)

	frames := []*cimpb.Frame{
		{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "m1", Seq: 1, From: "2", FromName: "bob", Body: []byte("one")}},
		{Type: cimpb.Type_RECEIPT, Receipt: &cimpb.Receipt{Status: cimpb.ReceiptStatus_RECEIPT_SENT, MsgId: "m9", ClientMsgId: "c1"}},
		{Type: cimpb.Type_PONG},
		{Type: cimpb.Type_ERROR, Error: &cimpb.Error{Code: int32(codes.Offline), Text: "user offline", ClientMsgId: "c2"}},
		{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "m2", Seq: 2, From: "2", FromName: "bob", Body: []byte("two")}},
		{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "m2", Seq: 2, From: "2", FromName: "bob", Body: []byte("two again")}},
		{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "m3", From: "2", FromName: "bob", Broadcast: true, Body: []byte("all")}},
	}
	for _, f := range frames {
		if err := conn.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	if ev := next(t, c, EventMessage); ev.Msg.GetMsgId() != "m1" {
		t.Errorf("first message %v", ev.Msg)
	}
	if ev := next(t, c, EventReceipt); ev.Receipt.GetClientMsgId() != "c1" {
		t.Errorf("receipt %v", ev.Receipt)
	}
	if ev := next(t, c, EventError); ev.Err.GetClientMsgId() != "c2" || codes.Code(ev.Err.GetCode()) != codes.Offline {
		t.Errorf("error %v", ev.Err)
	}
	if ev := next(t, c, EventMessage); string(ev.Msg.GetBody()) != "two" {
		t.Errorf("second message %v", ev.Msg)
	}
	// The replay of seq 2 is dropped; the unsequenced broadcast is not.
	if ev := next(t, c, EventMessage); ev.Msg.GetMsgId() != "m3" {
		t.Errorf("third message %v, want the broadcast m3", ev.Msg)
	}

	conn.Close()
	next(t, c, EventDisconnected)
	next(t, c, EventConnected)
	if got := gw2.Accept(t).Login.GetLastSeq(); got != 2 {
		t.Errorf("LOGIN after reconnect has last_seq %d, want 2", got)
	}
}

func TestBadFramesFromGatewayEndTheLink(t *testing.T) {
	const maxFrame = 1024
	for _, tc := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"bad length", bytes.Repeat([]byte{0xff}, 6), "malformed length"},
		{"unparsable", []byte{0x02, 0xff, 0xff}, "malformed frame"},
		{"truncated", []byte{0x0a, 0x08}, "closed the connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw1, gw2 := clienttest.NewGateway(t), clienttest.NewGateway(t)
			route := clienttest.NewRoute(t, gw1, gw2)
			route.AddUser("alice", "secret1")
			cfg := fastConfig(route.URL)
			cfg.MaxFrame = maxFrame
			c := startClient(t, cfg)
			conn := gw1.Accept(t)
			next(t, c, EventConnected)

			if err := conn.WriteRaw(tc.raw); err != nil {
				t.Fatal(err)
			}
			if tc.name == "truncated" {
				conn.Close()
			}
			if ev := next(t, c, EventDisconnected); !strings.Contains(ev.Reason, tc.want) {
				t.Errorf("disconnect reason %q, want it to mention %q", ev.Reason, tc.want)
			}
			conn.WaitDone(t)
			if ev := next(t, c, EventConnected); ev.Gateway != gw2.ID {
				t.Errorf("reconnected via %q, want %q", ev.Gateway, gw2.ID)
			}
		})
	}
}

func TestGatewayErrorBeforeCloseIsTheReason(t *testing.T) {
	gw1, gw2 := clienttest.NewGateway(t), clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw1, gw2)
	route.AddUser("alice", "secret1")
	c := startClient(t, fastConfig(route.URL))
	conn := gw1.Accept(t)
	next(t, c, EventConnected)

	if err := conn.Send(&cimpb.Frame{Type: cimpb.Type_ERROR, Error: &cimpb.Error{Code: int32(codes.GoingAway), Text: "gateway going away"}}); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if ev := next(t, c, EventError); codes.Code(ev.Err.GetCode()) != codes.GoingAway {
		t.Errorf("error event %v", ev.Err)
	}
	if ev := next(t, c, EventDisconnected); !strings.Contains(ev.Reason, "going away") {
		t.Errorf("disconnect reason %q, want the gateway's", ev.Reason)
	}
	next(t, c, EventConnected)
}

// A slow application must not make a live link look dead: while the reader
// waits to hand over an event, unread PONGs are not missing PONGs.
func TestStalledConsumerKeepsTheLink(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	cfg := fastConfig(route.URL)
	cfg.Heartbeat = 5 * time.Millisecond
	cfg.PongTimeout = 20 * time.Millisecond
	cfg.EventBuffer = 1
	c := startClient(t, cfg)
	conn := gw.Accept(t)
	for i := range 3 {
		if err := conn.Send(&cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{Seq: uint64(i + 1), Body: []byte("m")}}); err != nil {
			t.Fatal(err)
		}
	}
	// EventConnected fills the buffer and the reader blocks on the first
	// message. Every PING after the first one means a PONG check passed
	// while the reader was stalled.
	for range 4 {
		conn.Next(t, cimpb.Type_PING)
	}
	next(t, c, EventConnected)
	for range 3 {
		next(t, c, EventMessage)
	}
	noEvent(t, c)
	if route.Logins() != 1 {
		t.Errorf("route saw %d logins, want 1", route.Logins())
	}
}

// Close ends every goroutine the client started, including a heartbeat and
// a reader blocked on a full Events channel, after a reconnect. (Closing
// during a reconnect is TestSendBoundedByContextWhileDown; TestMain checks
// the whole package for leaks too.)
func TestCloseLeavesNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	gw1, gw2 := clienttest.NewGateway(t), clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw1, gw2)
	route.AddUser("alice", "secret1")
	cfg := fastConfig(route.URL)
	cfg.Heartbeat = 10 * time.Millisecond
	cfg.EventBuffer = 1
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	next(t, c, EventConnected)
	gw1.Accept(t).Close()
	next(t, c, EventDisconnected)
	conn2 := gw2.Accept(t)
	// Fill the channel and leave the reader blocked on the next message.
	for i := range 3 {
		if err := conn2.Send(&cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{Seq: uint64(i + 1)}}); err != nil {
			t.Fatal(err)
		}
	}
	conn2.Next(t, cimpb.Type_PING)

	ctx, cancel := context.WithTimeout(context.Background(), clienttest.Wait)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Close(ctx) }()
	// Close needs room for EventClosed: read until the channel closes.
	var kinds []EventKind
	for ev := range c.Events() {
		kinds = append(kinds, ev.Kind)
	}
	if err := <-done; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if len(kinds) == 0 || kinds[len(kinds)-1] != EventClosed {
		t.Errorf("events during Close %v, want EventClosed last", kinds)
	}
	if off := route.Offlines(); len(off) != 1 || off[0].SessionID != "s2" {
		t.Errorf("offLine calls %+v, want one for the current session s2", off)
	}
	conn2.WaitDone(t)
	gw1.Close()
	gw2.Close()
	route.Close()
}

func TestReconnectRefusals(t *testing.T) {
	for _, tc := range []struct {
		name       string
		answer     clienttest.Answer // for the first reconnect attempt
		wantStop   bool
		wantLogins int
	}{
		// The password changed meanwhile: retrying cannot help.
		{"bad account stops", clienttest.Answer{Code: codes.BadAccount, Status: 401}, true, 2},
		// Reject policy: the route has not yet seen our dead link go away.
		{"repeat login is retried", clienttest.Answer{Code: codes.RepeatLogin, Status: 409}, false, 3},
		{"no server is retried", clienttest.Answer{Code: codes.NoServer, Status: 503}, false, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := clienttest.NewGateway(t)
			route := clienttest.NewRoute(t, gw)
			route.AddUser("alice", "secret1")
			route.SetLoginHook(func(_ context.Context, n int) *clienttest.Answer {
				if n == 2 {
					return &tc.answer
				}
				return nil
			})
			c := startClient(t, fastConfig(route.URL))
			next(t, c, EventConnected)
			gw.Accept(t).Close()
			next(t, c, EventDisconnected)
			if tc.wantStop {
				ev := next(t, c, EventKicked)
				if !strings.Contains(ev.Reason, "login refused") || !strings.Contains(ev.Reason, "9100") {
					t.Errorf("kicked reason %q", ev.Reason)
				}
				if _, err := c.Send(context.Background(), "bob", "x"); !errors.Is(err, ErrStopped) {
					t.Errorf("Send after a refused login: %v", err)
				}
			} else {
				next(t, c, EventConnected)
			}
			closeClient(t, c)
			if n := route.Logins(); n != tc.wantLogins {
				t.Errorf("route saw %d logins, want %d", n, tc.wantLogins)
			}
		})
	}
}

// TestEncodeMsgAllocations: encoding an uplink MSG allocates only the
// encoded frame (a busy sender's garbage is the load generator's and a
// phone's collector's work).
func TestEncodeMsgAllocations(t *testing.T) {
	m := &cimpb.Msg{ClientMsgId: "c-1", To: "bob", Body: []byte("hello"), Kind: cimpb.Kind_KIND_TEXT}
	b, err := encodeMsg(m, codec.DefaultMaxFrame)
	if err != nil {
		t.Fatal(err)
	}
	if f, _, err := codec.Decode(b, 0); err != nil || f.GetType() != cimpb.Type_MSG || !proto.Equal(f.GetMsg(), m) {
		t.Fatalf("decoded %v, %v", f, err)
	}
	if _, err := encodeMsg(m, len(b)/2); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: %v, want ErrTooLarge", err)
	}
	if raceEnabled {
		t.Skip("allocation count not checked under -race (make allocs checks it)")
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := encodeMsg(m, codec.DefaultMaxFrame); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Fatalf("encodeMsg allocated %v times, want 1", n)
	}
}

// TestReconnectResumes: a reconnect logs in with the last login's resume
// token, not the password; a refused token (revoked) falls back to the
// password at once, and the next reconnect resumes again.
func TestReconnectResumes(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	route.HandOutResumes()
	route.AddUser("alice", "secret1")
	c := startClient(t, fastConfig(route.URL))
	next(t, c, EventConnected)
	reconnect := func() {
		t.Helper()
		gw.Accept(t).Close()
		next(t, c, EventDisconnected)
		next(t, c, EventConnected)
	}
	reconnect()
	reconnect()
	if n, r := route.Logins(), route.Resumed(); n != 3 || r != 2 {
		t.Fatalf("%d logins, %d with a resume token; want 3 and 2 (the password only at the start)", n, r)
	}
	route.RevokeResumes()
	reconnect()
	if n, r := route.Logins(), route.Resumed(); n != 5 || r != 2 {
		t.Fatalf("after the revocation: %d logins, %d resumed; want 5 (a refused resume, then the password) and 2", n, r)
	}
	reconnect()
	if n, r := route.Logins(), route.Resumed(); n != 6 || r != 3 {
		t.Fatalf("after the password login: %d logins, %d resumed; want 6 and 3", n, r)
	}
	closeClient(t, c)
}

// tokens records what Config.OnResumeToken hears.
type tokens struct {
	mu   sync.Mutex
	seen []string
}

func (k *tokens) record(tok string, at time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if (tok == "") != at.IsZero() {
		panic(fmt.Sprintf("token %q with expiry %v", tok, at))
	}
	k.seen = append(k.seen, tok)
}

func (k *tokens) all() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.seen)
}

func (k *tokens) last(t *testing.T) string {
	t.Helper()
	all := k.all()
	if len(all) == 0 {
		t.Fatal("OnResumeToken was never called")
	}
	return all[len(all)-1]
}

// TestResumeTokenAcrossClients: a Client started with the resume token an
// earlier one handed to OnResumeToken logs in without the password, as
// long as the earlier one ended with Disconnect; Close logs off, which
// revokes it, and a Client without a password then stops at once with
// ErrResumeRefused.
func TestResumeTokenAcrossClients(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	route.HandOutResumes()
	route.AddUser("alice", "secret1")

	var k1 tokens
	cfg := fastConfig(route.URL)
	cfg.OnResumeToken = k1.record
	c1 := startClient(t, cfg)
	next(t, c1, EventConnected)
	first := k1.last(t)
	if first == "" {
		t.Fatal("no resume token after the password login")
	}
	drainEvents(c1)
	if err := c1.Disconnect(context.Background()); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	if n := len(route.Offlines()); n != 0 {
		t.Fatalf("Disconnect sent %d /offLine calls, want none", n)
	}
	if got := k1.all(); len(got) != 1 {
		t.Fatalf("OnResumeToken heard %q, want only the login's token (Disconnect keeps it)", got)
	}

	var k2 tokens
	cfg = fastConfig(route.URL)
	cfg.Password, cfg.ResumeToken, cfg.OnResumeToken = "", first, k2.record
	c2 := startClient(t, cfg)
	next(t, c2, EventConnected)
	if n, r := route.Logins(), route.Resumed(); n != 2 || r != 1 {
		t.Fatalf("%d logins, %d with a resume token; want 2 and 1", n, r)
	}
	second := k2.last(t)
	if second == "" || second == first {
		t.Fatalf("after the resume OnResumeToken heard %q, want a new token", k2.all())
	}
	closeClient(t, c2)
	if got := k2.all(); len(got) != 2 || got[1] != "" {
		t.Fatalf("OnResumeToken heard %q, want the new token then \"\" (Close logs off)", got)
	}

	// The token of a session that logged off: refused, and no password
	// to fall back on, so Start gives up after one attempt.
	cfg = fastConfig(route.URL)
	cfg.Password, cfg.ResumeToken = "", second
	c3, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeClient(t, c3)
	ctx, cancel := context.WithTimeout(context.Background(), clienttest.Wait)
	defer cancel()
	err = c3.Start(ctx)
	var ae *APIError
	if !errors.Is(err, ErrResumeRefused) || !errors.As(err, &ae) || ae.Code != codes.Unauthorized || ctx.Err() != nil {
		t.Fatalf("Start with a revoked token and no password: %v; want ErrResumeRefused with the route's 4010, at once", err)
	}
	if n := route.Logins(); n != 3 {
		t.Fatalf("%d logins, want 3: a refused resume is not tried again", n)
	}
}

// TestResumeRefusedOnReconnect: a client without a password whose token
// is revoked while it is connected stops at its next reconnect, and tells
// OnResumeToken to forget the token.
func TestResumeRefusedOnReconnect(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	route.HandOutResumes()
	route.AddUser("alice", "secret1")
	cfg := fastConfig(route.URL)
	c0 := startClient(t, cfg)
	next(t, c0, EventConnected)
	tok := c0.resume
	drainEvents(c0)
	if err := c0.Disconnect(context.Background()); err != nil {
		t.Fatal(err)
	}
	gw.Accept(t)

	var k tokens
	cfg.Password, cfg.ResumeToken, cfg.OnResumeToken = "", tok, k.record
	c := startClient(t, cfg)
	next(t, c, EventConnected)
	route.RevokeResumes()
	gw.Accept(t).Close()
	next(t, c, EventDisconnected)
	ev := next(t, c, EventKicked)
	if !strings.Contains(ev.Reason, "login refused") {
		t.Fatalf("stopped for %q, want the refused login", ev.Reason)
	}
	if got := k.all(); len(got) != 2 || got[1] != "" {
		t.Fatalf("OnResumeToken heard %q, want the resumed login's token then \"\"", got)
	}
	if _, err := c.Send(context.Background(), "bob", "hi"); !errors.Is(err, ErrStopped) {
		t.Fatalf("Send after the refusal: %v, want ErrStopped", err)
	}
}

func TestConfigNeedsPasswordOrResumeToken(t *testing.T) {
	cfg := fastConfig("http://127.0.0.1:1")
	cfg.Password = ""
	if _, err := New(cfg); err == nil {
		t.Fatal("New without a password or a resume token: no error")
	}
	cfg.ResumeToken = "rs"
	if _, err := New(cfg); err != nil {
		t.Fatalf("New with a resume token and no password: %v", err)
	}
}

// drainEvents reads c's events until Close or Disconnect closes them, so
// that ending c never waits on the test.
func drainEvents(c *Client) {
	go func() {
		for range c.Events() {
		}
	}()
}

// TestPasswordChangedDuringReconnect: a reconnect's /login under way with
// the old credentials when ChangePassword changes them (the route refuses
// the old password and, with resume tokens, the old token) is tried again
// with the new ones: the client comes back instead of stopping, and the
// token ChangePassword handed out is not dropped by the old one's refusal.
func TestPasswordChangedDuringReconnect(t *testing.T) {
	for _, resumes := range []bool{false, true} {
		t.Run(fmt.Sprint("resumes=", resumes), func(t *testing.T) {
			gw := clienttest.NewGateway(t)
			route := clienttest.NewRoute(t, gw)
			if resumes {
				route.HandOutResumes()
			}
			route.AddUser("alice", "secret1")
			c := startClient(t, fastConfig(route.URL))
			next(t, c, EventConnected)
			first := route.NextLogin(t)
			hold := make(chan struct{})
			route.SetLoginHook(func(ctx context.Context, n int) *clienttest.Answer {
				if n == first+1 {
					select {
					case <-hold:
					case <-ctx.Done():
					}
				}
				return nil
			})
			gw.Accept(t).Close()
			next(t, c, EventDisconnected)
			route.NextLogin(t) // held, with the old credentials
			if _, err := c.ChangePassword(context.Background(), "secret1", "secret2"); err != nil {
				t.Fatal(err)
			}
			changed := c.resume
			close(hold)
			next(t, c, EventConnected) // not EventKicked for the refused old password
			if resumes && (changed == "" || route.Resumed() != 1) {
				t.Fatalf("ChangePassword's token %q, resumed logins %d: want the retry to use that token", changed, route.Resumed())
			}
		})
	}
}

// TestDeleteAccount: a wrong password leaves the client and the account
// as they were; the right one deletes the account and ends the client
// without a log-off (no session is left), telling OnResumeToken "".
func TestDeleteAccount(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	route.HandOutResumes()
	route.AddUser("alice", "secret1")
	var k tokens
	cfg := fastConfig(route.URL)
	cfg.OnResumeToken = k.record
	c := startClient(t, cfg)
	next(t, c, EventConnected)
	ctx := context.Background()
	var ae *APIError
	if _, err := c.DeleteAccount(ctx, "wrong"); !errors.As(err, &ae) || ae.Code != codes.Forbidden {
		t.Fatalf("a wrong password: %v, want an APIError 4030", err)
	}
	if c.isClosing() {
		t.Fatal("a refused delete ended the client")
	}
	u, err := c.DeleteAccount(ctx, "secret1")
	if err != nil || u.UserName != "alice" {
		t.Fatalf("DeleteAccount = %+v, %v", u, err)
	}
	next(t, c, EventClosed)
	if got := k.all(); len(got) != 2 || got[1] != "" {
		t.Fatalf("OnResumeToken heard %q, want the login's token then \"\"", got)
	}
	if n := len(route.Offlines()); n != 0 {
		t.Fatalf("%d /offLine calls after the delete, want none", n)
	}
	if _, err := c.API().Login(ctx, "alice", "secret1"); !errors.As(err, &ae) || ae.Code != codes.BadAccount {
		t.Fatalf("a login after the delete: %v, want 9100", err)
	}
}
