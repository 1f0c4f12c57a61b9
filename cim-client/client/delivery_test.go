package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// inboxSetup is a gateway playing the inbox contract for alice.
func inboxSetup(t *testing.T, tune func(*Config)) (*Client, *clienttest.Gateway, *clienttest.Route, *clienttest.Inbox) {
	t.Helper()
	gw := clienttest.NewGateway(t)
	in := clienttest.NewInbox()
	gw.SetInbox(func(string) *clienttest.Inbox { return in })
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	cfg := fastConfig(route.URL)
	if tune != nil {
		tune(&cfg)
	}
	return startClient(t, cfg), gw, route, in
}

// bodies reads n events, which must be messages, and returns their bodies.
func bodies(t *testing.T, c *Client, n int) []string {
	t.Helper()
	var got []string
	for range n {
		got = append(got, string(next(t, c, EventMessage).Msg.GetBody()))
	}
	return got
}

// nextFrame returns the next frame the client sent other than PING.
func nextFrame(t *testing.T, conn *clienttest.Conn) *cimpb.Frame {
	t.Helper()
	deadline := time.After(clienttest.Wait)
	for {
		select {
		case f := <-conn.Frames:
			if f.GetType() != cimpb.Type_PING {
				return f
			}
		case <-deadline:
			t.Fatal("the client sent nothing")
			return nil
		}
	}
}

// quiet fails if the client sends anything but PINGs within d.
func quiet(t *testing.T, conn *clienttest.Conn, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case f := <-conn.Frames:
			if f.GetType() != cimpb.Type_PING {
				t.Fatalf("unexpected %v frame: %v", f.GetType(), f)
			}
		case <-deadline:
			return
		}
	}
}

func TestLoginSyncDeliversStoredMessagesAndAcks(t *testing.T) {
	in := clienttest.NewInbox()
	for i := range 3 {
		in.Append(clienttest.TextMsg(fmt.Sprintf("m%d", i+1), "2", "bob", fmt.Sprintf("stored %d", i+1)))
	}
	in.Ack(1) // shown by an earlier run of this user
	gw := clienttest.NewGateway(t)
	gw.SetInbox(func(string) *clienttest.Inbox { return in })
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	c := startClient(t, fastConfig(route.URL))
	conn := gw.Accept(t)
	next(t, c, EventConnected)

	// A new client (last_seq 0) gets what follows the server-side ack.
	if got := bodies(t, c, 2); !slices.Equal(got, []string{"stored 2", "stored 3"}) {
		t.Fatalf("messages %v", got)
	}
	// The client asks for no SYNC of its own: the gateway did it at login.
	f := nextFrame(t, conn)
	if f.GetType() != cimpb.Type_ACK || f.GetAck().GetSeq() != 3 {
		t.Fatalf("first frame after login %v, want ACK 3 (and no SYNC)", f)
	}
	if syncs := in.Syncs(); len(syncs) != 1 || !syncs[0].GetFromAcked() || syncs[0].GetAfterSeq() != 0 {
		t.Errorf("SYNC requests %v, want only the login one with from_acked", syncs)
	}

	// Reconnecting carries last_seq and gets nothing twice.
	in.Append(clienttest.TextMsg("m4", "2", "bob", "while away"))
	conn.Close()
	next(t, c, EventDisconnected)
	next(t, c, EventConnected)
	conn2 := gw.Accept(t)
	if conn2.Login.GetLastSeq() != 3 {
		t.Errorf("LOGIN last_seq %d, want 3", conn2.Login.GetLastSeq())
	}
	if got := bodies(t, c, 1); got[0] != "while away" {
		t.Errorf("after reconnect %v", got)
	}
	// A new link first repeats the last ACK (it may have died with the old
	// link), then acknowledges the new entry.
	for f := conn2.Next(t, cimpb.Type_ACK); f.GetAck().GetSeq() != 4; f = conn2.Next(t, cimpb.Type_ACK) {
		if f.GetAck().GetSeq() != 3 {
			t.Fatalf("ACK %d, want 3 then 4", f.GetAck().GetSeq())
		}
	}
	noEvent(t, c)
}

func TestGapIsFilledBySync(t *testing.T) {
	c, gw, _, in := inboxSetup(t, nil)
	conn := gw.Accept(t)
	next(t, c, EventConnected)

	var live []*cimpb.Frame
	for i := range 4 {
		live = append(live, in.Append(clienttest.TextMsg(fmt.Sprintf("m%d", i+1), "2", "bob", fmt.Sprint(i+1))))
	}
	// Only 1 and 4 are pushed live: 2 and 3 got lost on the way.
	if err := conn.SendAll(live[0], live[3]); err != nil {
		t.Fatal(err)
	}
	if got := bodies(t, c, 4); !slices.Equal(got, []string{"1", "2", "3", "4"}) {
		t.Fatalf("shown %v, want 1..4 in order", got)
	}
	f := conn.Next(t, cimpb.Type_SYNC)
	if f.GetSync().GetAfterSeq() != 1 {
		t.Errorf("SYNC after %d, want 1", f.GetSync().GetAfterSeq())
	}
	if n := len(in.Syncs()); n != 2 {
		t.Errorf("%d SYNCs answered, want the login one and one more", n)
	}
	noEvent(t, c)
}

// Live pushes interleave with the login sync's answer: nothing is shown
// twice or out of order, and the client sends no SYNC of its own.
func TestLivePushDuringLoginSync(t *testing.T) {
	gw := clienttest.NewGateway(t) // no inbox: the test plays the route by hand
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	cfg := fastConfig(route.URL)
	cfg.AckDelay = time.Hour
	cfg.AckEvery = 1000
	c := startClient(t, cfg)
	conn := gw.Accept(t)
	next(t, c, EventConnected)

	in := clienttest.NewInbox()
	var e []*cimpb.Frame
	for i := range 5 {
		e = append(e, in.Append(clienttest.TextMsg(fmt.Sprintf("m%d", i+1), "2", "bob", fmt.Sprint(i+1))))
	}
	answer := &cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{HeadSeq: 4, FirstSeq: 1, LastSeq: 4}}
	// Login answer: 1, 2, [live 5], [live 3], 3, 4, SYNC; then live 4 late.
	if err := conn.SendAll(e[0], e[1], e[4], e[2], e[2], e[3], answer, e[3]); err != nil {
		t.Fatal(err)
	}
	if got := bodies(t, c, 5); !slices.Equal(got, []string{"1", "2", "3", "4", "5"}) {
		t.Fatalf("shown %v", got)
	}
	quiet(t, conn, 50*time.Millisecond)
	noEvent(t, c)
}

// TestNewLinkAcknowledgesWhatOldShowed: entries shown on a link that died
// before their ACK was due are acknowledged first thing on the next link;
// a first link acknowledges nothing until its own timing says so.
func TestNewLinkAcknowledgesWhatOldShowed(t *testing.T) {
	c, gw, _, in := inboxSetup(t, func(cfg *Config) {
		cfg.AckDelay = time.Hour
		cfg.AckEvery = 1000
	})
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	if err := conn.SendAll(in.Append(clienttest.TextMsg("m1", "2", "bob", "1")), in.Append(clienttest.TextMsg("m2", "2", "bob", "2"))); err != nil {
		t.Fatal(err)
	}
	bodies(t, c, 2)
	quiet(t, conn, 20*time.Millisecond) // not due: 2 < 1000, an hour
	conn.Close()
	next(t, c, EventDisconnected)
	next(t, c, EventConnected)
	conn2 := gw.Accept(t)
	if f := nextFrame(t, conn2); f.GetType() != cimpb.Type_ACK || f.GetAck().GetSeq() != 2 {
		t.Fatalf("first frame on the new link %v, want ACK 2", f)
	}
	quiet(t, conn2, 20*time.Millisecond)
	noEvent(t, c)
}

func TestAckBatchedByCountAndOnClose(t *testing.T) {
	c, gw, route, in := inboxSetup(t, func(cfg *Config) {
		cfg.AckDelay = time.Hour
		cfg.AckEvery = 5
	})
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	push := func(n int) {
		var fs []*cimpb.Frame
		for range n {
			fs = append(fs, in.Append(clienttest.TextMsg(fmt.Sprintf("m%d", in.Head()+1), "2", "bob", "x")))
		}
		if err := conn.SendAll(fs...); err != nil {
			t.Fatal(err)
		}
		bodies(t, c, n)
	}
	push(5)
	if f := nextFrame(t, conn); f.GetType() != cimpb.Type_ACK || f.GetAck().GetSeq() != 5 {
		t.Fatalf("frame %v, want ACK 5 after 5 entries", f)
	}
	push(2)
	quiet(t, conn, 50*time.Millisecond) // 2 < 5 and the delay is an hour

	closeClient(t, c)
	f := nextFrame(t, conn)
	if f.GetType() != cimpb.Type_ACK || f.GetAck().GetSeq() != 7 {
		t.Fatalf("frame on Close %v, want ACK 7", f)
	}
	if len(route.Offlines()) != 1 {
		t.Errorf("offLine calls %v", route.Offlines())
	}
}

func TestAckBatchedByDelay(t *testing.T) {
	c, gw, _, in := inboxSetup(t, func(cfg *Config) { cfg.AckDelay = 200 * time.Millisecond })
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	var fs []*cimpb.Frame
	for i := range 3 {
		fs = append(fs, in.Append(clienttest.TextMsg(fmt.Sprintf("m%d", i), "2", "bob", "x")))
	}
	start := time.Now()
	if err := conn.SendAll(fs...); err != nil {
		t.Fatal(err)
	}
	bodies(t, c, 3)
	f := nextFrame(t, conn)
	if f.GetType() != cimpb.Type_ACK || f.GetAck().GetSeq() != 3 {
		t.Fatalf("frame %v, want one ACK 3 for the batch", f)
	}
	// A batch's waits are AckDelay × 0.5–1.5 (ackSpread).
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("ACK after %v, want it batched for 100–300ms", d)
	}
	if in.Acked() != 3 {
		t.Errorf("inbox acked %d", in.Acked())
	}
	quiet(t, conn, 50*time.Millisecond)
}

func TestResendAfterTimeoutThenGiveUp(t *testing.T) {
	gw := clienttest.NewGateway(t) // never answers
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	cfg := fastConfig(route.URL)
	cfg.ResendTimeout = 20 * time.Millisecond
	cfg.ResendMax = 3
	c := startClient(t, cfg)
	conn := gw.Accept(t)
	next(t, c, EventConnected)

	id, err := c.Send(context.Background(), "bob", "anyone there?")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if m := conn.Next(t, cimpb.Type_MSG).GetMsg(); m.GetClientMsgId() != id || string(m.GetBody()) != "anyone there?" {
			t.Fatalf("try %d: %v, want the same message and client_msg_id", i+1, m)
		}
	}
	ev := next(t, c, EventError)
	if ev.Err.GetClientMsgId() != id || codes.Code(ev.Err.GetCode()) != codes.Unavailable ||
		ev.Err.GetText() != "message to bob not sent: no answer after 3 tries" {
		t.Errorf("final error %v", ev.Err)
	}
	if st, ok := c.Status(id); !ok || st.Status != StatusFailed || st.Tries != 3 {
		t.Errorf("Status = %+v, %v", st, ok)
	}
	quiet(t, conn, 100*time.Millisecond) // no fourth try
	noEvent(t, c)
}

func TestResendAnsweredOnSecondTry(t *testing.T) {
	gw := clienttest.NewGateway(t)
	var n atomic.Int32
	gw.SetOnMsg(func(m *cimpb.Msg) *cimpb.Frame {
		if n.Add(1) == 1 {
			return nil // the first answer is lost
		}
		return clienttest.Receipts(m)
	})
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	cfg := fastConfig(route.URL)
	cfg.ResendTimeout = 50 * time.Millisecond
	c := startClient(t, cfg)
	conn := gw.Accept(t)
	next(t, c, EventConnected)

	id, err := c.Send(context.Background(), "bob", "hi")
	if err != nil {
		t.Fatal(err)
	}
	ev := next(t, c, EventReceipt)
	if ev.Receipt.GetClientMsgId() != id || ev.Receipt.GetStatus() != cimpb.ReceiptStatus_RECEIPT_SENT {
		t.Fatalf("receipt %v", ev.Receipt)
	}
	st, _ := c.Status(id)
	if st.Status != StatusSent || st.Tries != 2 || st.MsgID != "m-"+id || st.Text != "hi" || st.To != "bob" {
		t.Errorf("Status = %+v", st)
	}
	conn.Next(t, cimpb.Type_MSG)
	conn.Next(t, cimpb.Type_MSG)
	quiet(t, conn, 150*time.Millisecond) // answered: no third try
}

func TestResendAfterReconnectKeepsOrder(t *testing.T) {
	gw1, gw2 := clienttest.NewGateway(t), clienttest.NewGateway(t) // gw1 never answers
	gw2.SetOnMsg(clienttest.Receipts)
	route := clienttest.NewRoute(t, gw1, gw2)
	route.AddUser("alice", "secret1")
	c := startClient(t, fastConfig(route.URL)) // the resend timeout is a minute
	conn1 := gw1.Accept(t)
	next(t, c, EventConnected)
	ctx := context.Background()

	var ids []string
	for _, text := range []string{"one", "two", "three"} {
		id, err := c.Send(ctx, "bob", text)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		conn1.Next(t, cimpb.Type_MSG)
	}
	bc, err := c.Broadcast(ctx, "all of you")
	if err != nil {
		t.Fatal(err)
	}
	conn1.Next(t, cimpb.Type_MSG)
	conn1.Close()
	next(t, c, EventDisconnected)
	next(t, c, EventConnected)
	id4, err := c.Send(ctx, "bob", "four")
	if err != nil {
		t.Fatal(err)
	}

	conn2 := gw2.Accept(t)
	var got []string
	for range 4 {
		m := conn2.Next(t, cimpb.Type_MSG).GetMsg()
		got = append(got, m.GetClientMsgId()+"="+string(m.GetBody()))
	}
	want := []string{ids[0] + "=one", ids[1] + "=two", ids[2] + "=three", id4 + "=four"}
	if !slices.Equal(got, want) {
		t.Fatalf("second gateway got %v, want the replay in order before the new message %v", got, want)
	}
	for range 4 {
		next(t, c, EventReceipt)
	}
	// The broadcast is not replayed (the route cannot deduplicate it); with
	// its answer lost it stays pending until its timeout.
	if st, _ := c.Status(bc); st.Status != StatusPending {
		t.Errorf("broadcast status %v", st.Status)
	}
	if c.Pending() != 1 {
		t.Errorf("Pending() = %d, want 1 (the broadcast)", c.Pending())
	}
}

func TestUnavailableIsRetried(t *testing.T) {
	for _, tc := range []struct {
		name      string
		answers   []codes.Code // per try; OK means RECEIPT_SENT
		wantTries int
		wantCode  codes.Code // final EventError code, 0 for a receipt
	}{
		{"then sent", []codes.Code{codes.Unavailable, codes.OK}, 2, 0},
		{"until the last try", []codes.Code{codes.Unavailable, codes.Unavailable, codes.Unavailable}, 3, codes.Unavailable},
		{"other codes are final", []codes.Code{codes.BadAccount}, 1, codes.BadAccount},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := clienttest.NewGateway(t)
			var n atomic.Int32
			gw.SetOnMsg(func(m *cimpb.Msg) *cimpb.Frame {
				code := tc.answers[min(int(n.Add(1)), len(tc.answers))-1]
				if code == codes.OK {
					return clienttest.Receipts(m)
				}
				return &cimpb.Frame{Type: cimpb.Type_ERROR, Error: &cimpb.Error{Code: int32(code), Text: code.Text(), ClientMsgId: m.GetClientMsgId()}}
			})
			route := clienttest.NewRoute(t, gw)
			route.AddUser("alice", "secret1")
			cfg := fastConfig(route.URL)
			cfg.ResendTimeout = 20 * time.Millisecond
			cfg.ResendMax = 3
			c := startClient(t, cfg)
			conn := gw.Accept(t)
			next(t, c, EventConnected)

			id, err := c.Send(context.Background(), "bob", "x")
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantCode == 0 {
				if ev := next(t, c, EventReceipt); ev.Receipt.GetClientMsgId() != id {
					t.Errorf("receipt %v", ev.Receipt)
				}
			} else {
				ev := next(t, c, EventError)
				if ev.Err.GetClientMsgId() != id || codes.Code(ev.Err.GetCode()) != tc.wantCode {
					t.Errorf("error %v, want code %d", ev.Err, tc.wantCode)
				}
			}
			for range tc.wantTries {
				conn.Next(t, cimpb.Type_MSG)
			}
			quiet(t, conn, 100*time.Millisecond)
			noEvent(t, c)
			if st, _ := c.Status(id); st.Tries != tc.wantTries {
				t.Errorf("tries %d, want %d", st.Tries, tc.wantTries)
			}
		})
	}
}

// TestSentKept: Config.SentKept bounds the sent messages Status and Recent
// remember, the oldest answered forgotten first; one still unanswered is
// kept (and resent) whatever the bound.
func TestSentKept(t *testing.T) {
	c, gw, _, _ := inboxSetup(t, func(cfg *Config) { cfg.SentKept, cfg.ResendTimeout = 2, time.Hour })
	answered := true
	var mu sync.Mutex
	gw.SetOnMsg(func(m *cimpb.Msg) *cimpb.Frame {
		mu.Lock()
		defer mu.Unlock()
		if !answered {
			return nil
		}
		return clienttest.Receipts(m)
	})
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	ctx := context.Background()

	mu.Lock()
	answered = false
	mu.Unlock()
	waiting, err := c.Send(ctx, "bob", "unanswered")
	if err != nil {
		t.Fatal(err)
	}
	conn.Next(t, cimpb.Type_MSG)
	mu.Lock()
	answered = true
	mu.Unlock()
	var ids []string
	for i := range 4 {
		id, err := c.Send(ctx, "bob", fmt.Sprint("m", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		conn.Next(t, cimpb.Type_MSG)
		if ev := next(t, c, EventReceipt); ev.Receipt.GetClientMsgId() != id {
			t.Fatalf("receipt %v, want one for %s", ev.Receipt, id)
		}
	}
	var got []string
	for _, m := range c.Recent(0) {
		got = append(got, m.ClientMsgID)
	}
	if want := []string{waiting, ids[3]}; !slices.Equal(got, want) {
		t.Fatalf("Recent has %q, want %q: the unanswered one and the last", got, want)
	}
	if _, ok := c.Status(ids[2]); ok {
		t.Errorf("Status still knows %s, answered before the last", ids[2])
	}
	if st, ok := c.Status(waiting); !ok || st.Status != StatusPending {
		t.Errorf("unanswered message: %+v %v, want pending", st, ok)
	}
}

func TestReceiptsAndStatus(t *testing.T) {
	c, gw, _, in := inboxSetup(t, nil)
	gw.SetOnMsg(clienttest.Receipts)
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	ctx := context.Background()

	id, err := c.Send(ctx, "bob", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, c, EventReceipt); ev.Receipt.GetStatus() != cimpb.ReceiptStatus_RECEIPT_SENT {
		t.Fatalf("receipt %v", ev.Receipt)
	}
	mid := "m-" + id
	const delivered, read = cimpb.ReceiptStatus_RECEIPT_DELIVERED, cimpb.ReceiptStatus_RECEIPT_READ
	for _, f := range []*cimpb.Frame{
		in.Append(clienttest.ReceiptFrame(delivered, mid, id, "2")),
		in.Append(clienttest.ReceiptFrame(delivered, mid, id, "2")), // at-least-once
		in.Append(clienttest.ReceiptFrame(read, mid, "", "2")),      // READ names the msgId only
		in.Append(clienttest.ReceiptFrame(delivered, "m-older", "older-id", "2")),
	} {
		if err := conn.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []cimpb.ReceiptStatus{delivered, read} {
		if ev := next(t, c, EventReceipt); ev.Receipt.GetStatus() != want || ev.Receipt.GetMsgId() != mid {
			t.Fatalf("receipt %v, want %v for %s", ev.Receipt, want, mid)
		}
	}
	// A receipt for a message of an earlier run is passed on as it is.
	if ev := next(t, c, EventReceipt); ev.Receipt.GetClientMsgId() != "older-id" {
		t.Fatalf("receipt %v", ev.Receipt)
	}
	st, ok := c.Status(id)
	if !ok || st.Status != StatusRead || st.MsgID != mid {
		t.Errorf("Status = %+v, %v", st, ok)
	}
	if r := c.Recent(0); len(r) != 1 || r[0].ClientMsgID != id || r[0].Status != StatusRead {
		t.Errorf("Recent = %+v", r)
	}
	// Receipts are inbox entries too: acknowledged.
	if f := conn.Next(t, cimpb.Type_ACK); f.GetAck().GetSeq() != 4 {
		t.Errorf("ACK %d, want 4", f.GetAck().GetSeq())
	}
	noEvent(t, c)
}

// TestReceiptItems: one receipt covering several messages (the route's
// answer to one acknowledgement or READ) reaches the application as one
// receipt per message, and each message's status follows.
func TestReceiptItems(t *testing.T) {
	c, gw, _, in := inboxSetup(t, nil)
	gw.SetOnMsg(clienttest.Receipts)
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	ctx := context.Background()
	var ids []string
	for _, text := range []string{"one", "two"} {
		id, err := c.Send(ctx, "bob", text)
		if err != nil {
			t.Fatal(err)
		}
		if ev := next(t, c, EventReceipt); ev.Receipt.GetStatus() != cimpb.ReceiptStatus_RECEIPT_SENT {
			t.Fatalf("receipt %v", ev.Receipt)
		}
		ids = append(ids, id)
	}
	const delivered, read = cimpb.ReceiptStatus_RECEIPT_DELIVERED, cimpb.ReceiptStatus_RECEIPT_READ
	batch := func(status cimpb.ReceiptStatus, withClientIDs bool) *cimpb.Frame {
		f := clienttest.ReceiptFrame(status, "", "", "2")
		for _, id := range ids {
			it := &cimpb.ReceiptItem{MsgId: "m-" + id}
			if withClientIDs {
				it.ClientMsgId = id
			}
			f.Receipt.Items = append(f.Receipt.Items, it)
		}
		return in.Append(f)
	}
	for _, f := range []*cimpb.Frame{batch(delivered, true), batch(read, false)} {
		if err := conn.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []cimpb.ReceiptStatus{delivered, read} {
		for _, id := range ids {
			if ev := next(t, c, EventReceipt); ev.Receipt.GetStatus() != want || ev.Receipt.GetMsgId() != "m-"+id || len(ev.Receipt.Items) != 0 {
				t.Fatalf("receipt %v, want %v for m-%s", ev.Receipt, want, id)
			}
		}
	}
	for _, id := range ids {
		if st, ok := c.Status(id); !ok || st.Status != StatusRead {
			t.Errorf("Status(%s) = %+v, %v; want read", id, st, ok)
		}
	}
	noEvent(t, c)
}

func TestMarkRead(t *testing.T) {
	c, gw, _, in := inboxSetup(t, func(cfg *Config) {
		cfg.AckDelay = time.Hour
		cfg.MaxFrame = 1024
	})
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	ctx := context.Background()
	if err := conn.Send(in.Append(clienttest.TextMsg("m1", "2", "bob", "x"))); err != nil {
		t.Fatal(err)
	}
	next(t, c, EventMessage)

	if err := c.MarkRead(ctx, "bob", "m1", "m0"); err != nil {
		t.Fatal(err)
	}
	// What was shown is acknowledged first, so DELIVERED precedes READ.
	if f := nextFrame(t, conn); f.GetType() != cimpb.Type_ACK || f.GetAck().GetSeq() != 1 {
		t.Fatalf("frame %v, want ACK 1 before READ", f)
	}
	// m0 was never shown: the route could not find it, so it is not sent;
	// m1 goes with its inbox seq.
	if f := nextFrame(t, conn); f.GetType() != cimpb.Type_READ || f.GetRead().GetPeer() != "bob" ||
		!slices.Equal(f.GetRead().GetMsgIds(), []string{"m1"}) || !slices.Equal(f.GetRead().GetSeqs(), []uint64{1}) {
		t.Fatalf("frame %v, want READ m1 (seq 1) for bob", f)
	}

	// Many ids are split over frames that fit, each id with its seq.
	var ids []string
	for i := range 200 {
		id := fmt.Sprintf("msg-%016d", i)
		ids = append(ids, id)
		c.shown.Add(id, shownMsg{seq: uint64(i + 1)})
	}
	if err := c.MarkRead(ctx, "bob", ids...); err != nil {
		t.Fatal(err)
	}
	var got []string
	var seqs []uint64
	frames := 0
	for len(got) < len(ids) {
		f := conn.Next(t, cimpb.Type_READ)
		frames++
		got = append(got, f.GetRead().GetMsgIds()...)
		seqs = append(seqs, f.GetRead().GetSeqs()...)
	}
	if !slices.Equal(got, ids) || frames < 2 {
		t.Errorf("%d ids in %d frames, want all 200 in order over several", len(got), frames)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("seq %d of the READs is %d, want %d", i, s, i+1)
		}
	}
	if err := c.MarkRead(ctx, "", "m1"); !errors.Is(err, ErrNoRecipient) {
		t.Errorf("MarkRead without a peer: %v", err)
	}
	if err := c.MarkRead(ctx, "bob"); err != nil {
		t.Errorf("MarkRead of nothing: %v", err)
	}
	quiet(t, conn, 20*time.Millisecond)
}

// TestMarkReadAcknowledgesWhatItNames: the reader counts a shown message
// for the next ACK only after the application has it, so MarkRead right
// after the event must still acknowledge it first (white box: the message
// is remembered as shown but not yet counted).
func TestMarkReadAcknowledgesWhatItNames(t *testing.T) {
	c, gw, _, _ := inboxSetup(t, func(cfg *Config) { cfg.AckDelay = time.Hour })
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	// A first READ: once it is out, the link is open and its replay done.
	c.shown.Add("m0", shownMsg{seq: 1})
	if err := c.MarkRead(context.Background(), "bob", "m0"); err != nil {
		t.Fatal(err)
	}
	// ACK 1 (perhaps twice: the new link's too), then the READ.
	for f := nextFrame(t, conn); f.GetType() != cimpb.Type_READ; f = nextFrame(t, conn) {
		if f.GetType() != cimpb.Type_ACK || f.GetAck().GetSeq() != 1 {
			t.Fatalf("frame %v, want ACK 1 before READ m0", f)
		}
	}
	c.shown.Add("m3", shownMsg{seq: 3})
	if err := c.MarkRead(context.Background(), "bob", "m3"); err != nil {
		t.Fatal(err)
	}
	if f := nextFrame(t, conn); f.GetType() != cimpb.Type_ACK || f.GetAck().GetSeq() != 3 {
		t.Fatalf("frame %v, want ACK 3 before READ", f)
	}
	if f := nextFrame(t, conn); f.GetType() != cimpb.Type_READ {
		t.Fatalf("frame %v, want READ", f)
	}
}

func TestHistory(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	uid := route.AddUser("alice", "secret1")
	bob := route.AddUser("bob", "secret1")
	carol := route.AddUser("carol", "secret1")
	ctx := context.Background()

	c, err := New(fastConfig(route.URL))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.History(ctx, HistoryQuery{}); !errors.Is(err, ErrNotLoggedIn) {
		t.Errorf("History before Start: %v", err)
	}
	closeClient(t, c)

	route.AddHistory(
		clienttest.HistoryMsg{MsgID: "h1", Seq: 1, From: bob, FromName: "bob", To: uid, Body: "hello alice", TimestampMs: 1000},
		clienttest.HistoryMsg{MsgID: "h2", Seq: 1, From: uid, FromName: "alice", To: bob, Body: "Hello bob", TimestampMs: 2000},
		clienttest.HistoryMsg{MsgID: "h3", Seq: 2, From: carol, FromName: "carol", To: uid, Body: "hello from carol", TimestampMs: 3000},
		clienttest.HistoryMsg{MsgID: "h4", Seq: 3, From: bob, FromName: "bob", To: uid, Body: "bye", TimestampMs: 4000},
		clienttest.HistoryMsg{MsgID: "h5", Seq: 4, From: bob, FromName: "bob", To: uid, Kind: 1, TimestampMs: 5000,
			File: &clienttest.FileJSON{Name: "x.png", Size: 3, ContentType: "image/png", Ref: "ab"}},
	)
	c = startClient(t, fastConfig(route.URL))
	page, err := c.History(ctx, HistoryQuery{Peer: "bob", Keyword: "HELLO", Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 || page.Messages[0].GetMsgId() != "h2" || page.Next != "h2" {
		t.Fatalf("first page %v next %q", page.Messages, page.Next)
	}
	m := page.Messages[0]
	if m.GetFrom() != uid || m.GetFromName() != "alice" || m.GetTo() != bob || string(m.GetBody()) != "Hello bob" || m.GetTimestampMs() != 2000 {
		t.Errorf("message %v", m)
	}
	page, err = c.History(ctx, HistoryQuery{Peer: "bob", Keyword: "HELLO", Limit: 1, Before: page.Next})
	if err != nil || len(page.Messages) != 1 || page.Messages[0].GetMsgId() != "h1" || page.Next != "" {
		t.Fatalf("second page %v next %q, %v", page.Messages, page.Next, err)
	}
	q := route.HistoryQueries()[1]
	if q.Get("userId") != uid || q.Get("sessionId") != "s1" || q.Get("peer") != "bob" || q.Get("keyword") != "HELLO" ||
		q.Get("before") != "h2" || q.Get("limit") != "1" {
		t.Errorf("query %v", q)
	}
	page, err = c.History(ctx, HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range page.Messages {
		got = append(got, m.GetMsgId())
	}
	if !slices.Equal(got, []string{"h5", "h4", "h3", "h2", "h1"}) {
		t.Errorf("all history %v, want newest first", got)
	}
	if f := page.Messages[0]; f.GetKind() != cimpb.Kind_KIND_FILE || f.GetFile().GetName() != "x.png" || f.GetFile().GetRef() != "ab" {
		t.Errorf("file message %v", f)
	}
	if _, err := c.History(ctx, HistoryQuery{Group: "3", Keyword: "hello"}); err != nil {
		t.Fatal(err)
	}
	if q := route.HistoryQueries(); q[len(q)-1].Get("group") != "3" || q[len(q)-1].Has("peer") {
		t.Errorf("group history query %v", q[len(q)-1])
	}
	if _, err := c.History(ctx, HistoryQuery{Peer: "nobody"}); CodeOf(err) != codes.BadAccount {
		t.Errorf("unknown peer: %v", err)
	}
}

func TestHistoryAnswerShapes(t *testing.T) {
	for _, tc := range []struct {
		json string
		want *cimpb.Msg
	}{
		{`{"msgId":"a","seq":"5","from":7,"fromName":"bob","to":"1","kind":0,"body":"hi","timestampMs":"12"}`,
			&cimpb.Msg{MsgId: "a", Seq: 5, From: "7", FromName: "bob", To: "1", Body: []byte("hi"), TimestampMs: 12}},
		{`{"msgId":"b","kind":"KIND_FILE","body":"AAEC","file":{"name":"f.bin","size":3,"contentType":"application/octet-stream"}}`,
			&cimpb.Msg{MsgId: "b", Kind: cimpb.Kind_KIND_FILE, Body: []byte{0, 1, 2}, File: &cimpb.FileInfo{Name: "f.bin", Size: 3, ContentType: "application/octet-stream"}}},
		{`{"msgId":"c","kind":"file","file":{"name":"g","size":"9","ref":"ff"}}`,
			&cimpb.Msg{MsgId: "c", Kind: cimpb.Kind_KIND_FILE, Body: []byte{}, File: &cimpb.FileInfo{Name: "g", Size: 9, Ref: "ff"}}},
		{`{"msgId":"e","seq":4,"group":"3","groupSeq":4,"from":"7","body":"timeline"}`,
			&cimpb.Msg{MsgId: "e", Group: "3", GroupSeq: 4, From: "7", Body: []byte("timeline")}},
		{`{"msgId":"f","seq":2,"group":3,"body":"inbox copy"}`,
			&cimpb.Msg{MsgId: "f", Seq: 2, Group: "3", Body: []byte("inbox copy")}},
		{`{"msgId":"d","file":{"name":"h","size":1,"ref":"ee"}}`,
			&cimpb.Msg{MsgId: "d", Kind: cimpb.Kind_KIND_FILE, Body: []byte{}, File: &cimpb.FileInfo{Name: "h", Size: 1, Ref: "ee"}}},
	} {
		var h historyMsg
		if err := json.Unmarshal([]byte(tc.json), &h); err != nil {
			t.Fatalf("%s: %v", tc.json, err)
		}
		got := h.msg()
		if got.String() != tc.want.String() {
			t.Errorf("%s:\n got %v\nwant %v", tc.json, got, tc.want)
		}
	}
	var h historyMsg
	if err := json.Unmarshal([]byte(`{"kind":"sticker"}`), &h); err == nil {
		t.Error("an unknown kind name was accepted")
	}
}

func TestNotLoggedInAndBadInput(t *testing.T) {
	route := clienttest.NewRoute(t)
	c, err := New(fastConfig(route.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer closeClient(t, c)
	if _, err := c.SendFile(context.Background(), "", "x"); !errors.Is(err, ErrNoRecipient) {
		t.Errorf("SendFile without recipient: %v", err)
	}
	if err := c.SaveFile(context.Background(), &cimpb.Msg{Body: []byte("x")}, t.TempDir()+"/x"); err == nil || !strings.Contains(err.Error(), "not a file") {
		t.Errorf("SaveFile of a text message: %v", err)
	}
}

// A gateway that never answers the login SYNC gets asked again, by the
// client, after SyncTimeout; an answered one is not repeated.
func TestUnansweredSyncIsAskedAgain(t *testing.T) {
	gw := clienttest.NewGateway(t) // no inbox: SYNCs go unanswered
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	cfg := fastConfig(route.URL)
	cfg.SyncTimeout = 50 * time.Millisecond
	var dials atomic.Int32
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	c := startClient(t, cfg)
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	if dials.Load() != 1 {
		t.Errorf("Config.Dial used %d times, want 1", dials.Load())
	}
	start := time.Now()
	f := nextFrame(t, conn)
	if f.GetType() != cimpb.Type_SYNC || f.GetSync().GetAfterSeq() != 0 || time.Since(start) < 30*time.Millisecond {
		t.Fatalf("frame %v after %v, want a SYNC after about 50ms", f, time.Since(start))
	}
	if err := conn.Send(&cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{}}); err != nil {
		t.Fatal(err)
	}
	// One more SYNC may have crossed the answer on a slow machine; none
	// follows once the answer arrived.
	syncs := 0
	for deadline := time.After(300 * time.Millisecond); ; {
		select {
		case f := <-conn.Frames:
			if f.GetType() == cimpb.Type_SYNC {
				syncs++
			}
			continue
		case <-deadline:
		}
		break
	}
	if syncs > 1 {
		t.Errorf("%d SYNCs after the answer", syncs)
	}
}

// TestRateLimitedIsRetried: a MSG the gateway answers with ERROR 4291 is
// kept and sent again with the same client_msg_id when its resend timer
// fires (EventRetrying tells the application once), so it is delivered
// exactly once; 3000, 9100 and 4131 stay final.
func TestRateLimitedIsRetried(t *testing.T) {
	const timeout = 100 * time.Millisecond
	for _, tc := range []struct {
		name      string
		broadcast bool
		answers   []codes.Code // per try; OK means forwarded and RECEIPT_SENT
		wantTries int
		wantCode  codes.Code // final EventError code, 0 for SENT
		retrying  bool       // one EventRetrying first
	}{
		{"then sent", false, []codes.Code{codes.RateLimited, codes.OK}, 2, 0, true},
		{"twice then sent, told once", false, []codes.Code{codes.RateLimited, codes.RateLimited, codes.OK}, 3, 0, true},
		{"until the last try", false, []codes.Code{codes.RateLimited, codes.RateLimited, codes.RateLimited}, 3, codes.RateLimited, true},
		{"a broadcast too", true, []codes.Code{codes.RateLimited, codes.OK}, 2, 0, true},
		{"bad argument is final", false, []codes.Code{codes.BadArgument}, 1, codes.BadArgument, false},
		{"bad account is final", false, []codes.Code{codes.BadAccount}, 1, codes.BadAccount, false},
		{"too large is final", false, []codes.Code{codes.TooLarge}, 1, codes.TooLarge, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := clienttest.NewGateway(t)
			var mu sync.Mutex
			var tries []time.Time
			delivered := map[string]int{} // client_msg_id → copies forwarded to the recipient
			gw.SetOnMsg(func(m *cimpb.Msg) *cimpb.Frame {
				mu.Lock()
				defer mu.Unlock()
				tries = append(tries, time.Now())
				code := tc.answers[min(len(tries), len(tc.answers))-1]
				if code == codes.OK {
					delivered[m.GetClientMsgId()]++
					return clienttest.Receipts(m)
				}
				return &cimpb.Frame{Type: cimpb.Type_ERROR, Error: &cimpb.Error{Code: int32(code), Text: code.Text(), ClientMsgId: m.GetClientMsgId()}}
			})
			route := clienttest.NewRoute(t, gw)
			route.AddUser("alice", "secret1")
			cfg := fastConfig(route.URL)
			cfg.ResendTimeout = timeout
			cfg.ResendMax = 3
			c := startClient(t, cfg)
			conn := gw.Accept(t)
			next(t, c, EventConnected)

			ctx := context.Background()
			var id string
			var err error
			if tc.broadcast {
				id, err = c.Broadcast(ctx, "x")
			} else {
				id, err = c.Send(ctx, "bob", "x")
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.retrying {
				ev := next(t, c, EventRetrying)
				if ev.Err.GetClientMsgId() != id || codes.Code(ev.Err.GetCode()) != codes.RateLimited {
					t.Errorf("retrying event %v", ev.Err)
				}
				if st, _ := c.Status(id); st.Status != StatusPending {
					t.Errorf("status after the rate limit %v, want pending", st.Status)
				}
			}
			if tc.wantCode == 0 {
				ev := next(t, c, EventReceipt)
				if ev.Receipt.GetClientMsgId() != id || ev.Receipt.GetStatus() != cimpb.ReceiptStatus_RECEIPT_SENT {
					t.Errorf("receipt %v", ev.Receipt)
				}
			} else {
				ev := next(t, c, EventError)
				if ev.Err.GetClientMsgId() != id || codes.Code(ev.Err.GetCode()) != tc.wantCode {
					t.Errorf("error %v, want code %d", ev.Err, tc.wantCode)
				}
			}
			for i := range tc.wantTries {
				if m := conn.Next(t, cimpb.Type_MSG).GetMsg(); m.GetClientMsgId() != id {
					t.Fatalf("try %d: client_msg_id %q, want %q", i+1, m.GetClientMsgId(), id)
				}
			}
			quiet(t, conn, 3*timeout)
			noEvent(t, c) // one EventRetrying, whatever the number of rate limits
			if st, _ := c.Status(id); st.Tries != tc.wantTries {
				t.Errorf("tries %d, want %d", st.Tries, tc.wantTries)
			}
			mu.Lock()
			defer mu.Unlock()
			if want := map[bool]int{true: 1, false: 0}[tc.wantCode == 0]; delivered[id] != want {
				t.Errorf("delivered %d times, want %d", delivered[id], want)
			}
			for i := 1; i < len(tries); i++ {
				// The resend waits for its timer: never right after the answer.
				if gap := tries[i].Sub(tries[i-1]); gap < timeout/2 {
					t.Errorf("try %d came %v after the one before, want about %v", i+1, gap, timeout<<(i-1))
				}
			}
		})
	}
}

// showOld pushes old1..old5 (seqs 1-5) and waits until they are shown.
func showOld(t *testing.T, c *Client, conn *clienttest.Conn, in *clienttest.Inbox) {
	t.Helper()
	for i := range 5 {
		if err := conn.Send(in.Append(clienttest.TextMsg(fmt.Sprintf("m%d", i+1), "2", "bob", fmt.Sprint("old", i+1)))); err != nil {
			t.Fatal(err)
		}
	}
	if got := bodies(t, c, 5); !slices.Equal(got, []string{"old1", "old2", "old3", "old4", "old5"}) {
		t.Fatalf("shown %v", got)
	}
}

// TestSeqsGoingBack: the server lost the tail of an inbox (Redis crashed
// within its fsync window) and hands the seqs of messages this client has
// shown out again, for new messages. A new message under a reused seq,
// live, makes the client sync again from below; it shows the new messages
// once, in order, and none it had shown.
func TestSeqsGoingBack(t *testing.T) {
	c, gw, _, in := inboxSetup(t, nil)
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	showOld(t, c, conn, in)
	in.LoseTail(3) // old4 and old5 are gone; seq 4 and 5 come again
	fresh := in.Append(clienttest.TextMsg("n1", "2", "bob", "new1"))
	in.Append(clienttest.TextMsg("n2", "2", "bob", "new2")) // stored, its push lost
	if fresh.GetMsg().GetSeq() != 4 {
		t.Fatalf("setup: new message has seq %d, want 4", fresh.GetMsg().GetSeq())
	}
	if err := conn.Send(fresh); err != nil {
		t.Fatal(err)
	}
	if got := bodies(t, c, 2); !slices.Equal(got, []string{"new1", "new2"}) {
		t.Fatalf("after the server lost its tail: shown %v, want new1 new2", got)
	}
	noEvent(t, c)
	if c.inbox.lastSeq() != 5 {
		t.Fatalf("last seq %d, want 5", c.inbox.lastSeq())
	}
}

// TestSeqsGoingBackOnLogin: the link dies while the server loses the tail
// of the inbox; the LOGIN's SYNC after the client's last seq finds the
// inbox's head below it, and the client syncs again from below: the new
// messages under reused seqs are shown, the old ones are not shown again.
func TestSeqsGoingBackOnLogin(t *testing.T) {
	c, gw, _, in := inboxSetup(t, nil)
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	showOld(t, c, conn, in)
	in.LoseTail(2)
	in.Append(clienttest.TextMsg("n1", "2", "bob", "new1")) // seq 3
	conn.Close()
	next(t, c, EventDisconnected)
	gw.Accept(t)
	next(t, c, EventConnected)
	if got := bodies(t, c, 1); !slices.Equal(got, []string{"new1"}) {
		t.Fatalf("after the login: shown %v, want new1", got)
	}
	noEvent(t, c)
}

// TestSeqsGoingBackWhileAway: while the client's link is down, the server
// loses the tail of its inbox and as many new messages arrive as were lost,
// so the inbox's head is back at the client's last seq. The LOGIN names the
// timestamp of the entry the client was shown at its last seq; the answer
// says the inbox holds another one there now, and the client syncs again
// from below: the new messages are shown, the old ones not again.
func TestSeqsGoingBackWhileAway(t *testing.T) {
	c, gw, _, in := inboxSetup(t, nil)
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	showOld(t, c, conn, in)
	conn.Close()
	next(t, c, EventDisconnected)
	in.LoseTail(2)
	for i := range 3 { // seqs 3, 4, 5 again
		in.Append(clienttest.TextMsg(fmt.Sprintf("n%d", i+1), "2", "bob", fmt.Sprint("new", i+1)))
	}
	conn = gw.Accept(t)
	if conn.Login.GetLastSeq() != 5 || conn.Login.GetLastTsMs() == 0 {
		t.Fatalf("LOGIN last_seq %d last_ts_ms %d, want 5 and the stamp of old5", conn.Login.GetLastSeq(), conn.Login.GetLastTsMs())
	}
	next(t, c, EventConnected)
	if got := bodies(t, c, 3); !slices.Equal(got, []string{"new1", "new2", "new3"}) {
		t.Fatalf("after the login: shown %v, want new1 new2 new3", got)
	}
	noEvent(t, c)
}

// TestReorderedPushCostsNoSync: entries pushed out of order (concurrent
// batches, several route replicas) are shown in order without a SYNC when
// the missing one follows within GapWait: the client's next frame is the
// ACK, where without the wait it would be a SYNC written at once. A gap
// that stays open is asked for once the wait is over.
func TestReorderedPushCostsNoSync(t *testing.T) {
	c, gw, _, in := inboxSetup(t, func(cfg *Config) { cfg.GapWait = 50 * time.Millisecond })
	conn := gw.Accept(t)
	next(t, c, EventConnected)

	var live []*cimpb.Frame
	for i := range 4 {
		live = append(live, in.Append(clienttest.TextMsg(fmt.Sprintf("m%d", i+1), "2", "bob", fmt.Sprint(i+1))))
	}
	if err := conn.SendAll(live[1], live[0]); err != nil { // 2 before 1
		t.Fatal(err)
	}
	if got := bodies(t, c, 2); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("shown %v, want 1, 2", got)
	}
	if f := nextFrame(t, conn); f.GetType() != cimpb.Type_ACK || f.GetAck().GetSeq() != 2 {
		t.Fatalf("frame %v after the swapped pair, want ACK 2 and no SYNC", f)
	}

	if err := conn.Send(live[3]); err != nil { // 3 got lost
		t.Fatal(err)
	}
	f := conn.Next(t, cimpb.Type_SYNC)
	if f.GetSync().GetAfterSeq() != 2 {
		t.Errorf("SYNC after %d, want 2", f.GetSync().GetAfterSeq())
	}
	if got := bodies(t, c, 2); !slices.Equal(got, []string{"3", "4"}) {
		t.Fatalf("shown %v, want 3, 4", got)
	}
	if n := len(in.Syncs()); n != 2 {
		t.Errorf("%d SYNCs answered, want the login one and the gap's", n)
	}
	noEvent(t, c)
}
