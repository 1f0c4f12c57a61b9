package router

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// errorOf returns the ERROR of a one-frame answer, failing otherwise.
func errorOf(t *testing.T, ds []*cimpb.Delivery) *cimpb.Error {
	t.Helper()
	if len(ds) != 1 || ds[0].Frame.GetType() != cimpb.Type_ERROR {
		t.Fatalf("answer %v, want one ERROR", ds)
	}
	return ds[0].Frame.GetError()
}

// TestMessageOverTheFrameLimitRefused: a MSG whose delivery (with the
// sender's id and name, msgId, timestamp and seq the route adds) would not
// fit a client's frame is refused with ERROR 4131 and stored nowhere; the
// largest one that fits goes through.
func TestMessageOverTheFrameLimitRefused(t *testing.T) {
	const limit = 4096
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.MaxFrame = limit })
	alice, bob := e.connect("alice"), e.connect("bob")
	file := func(n int) *cimpb.Frame {
		return &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 1, Msg: &cimpb.Msg{ClientMsgId: fmt.Sprint("c", n), To: "bob",
			Kind: cimpb.Kind_KIND_FILE, Body: bytes.Repeat([]byte{'x'}, n), File: &cimpb.FileInfo{Name: "f.bin", Size: int64(n)}}}
	}
	// Exactly the limit as an uplink: over it once the route's fields are in.
	up := file(1)
	for range 3 { // the body's length prefix may grow a byte
		up.Msg.Body = bytes.Repeat([]byte{'x'}, len(up.Msg.Body)+limit-proto.Size(up))
	}
	if proto.Size(up) != limit {
		t.Fatalf("uplink of %d bytes, want %d", proto.Size(up), limit)
	}
	if er := errorOf(t, e.uplink(alice, up)); er.Code != int32(codes.TooLarge) || !strings.Contains(er.Text, "frame limit") {
		t.Fatalf("error %v, want 4131 naming the frame limit", er)
	}
	if in := e.inbox(bob.UserID); len(in) != 0 {
		t.Fatalf("bob's inbox holds %v after a refused message", in)
	}
	// Smaller: stored, and its delivery fits.
	ok := file(limit - 200)
	sentIDs(t, e.uplink(alice, ok))
	e.waitPushes()
	got := e.frames(bob)
	if len(got) != 1 || proto.Size(got[0]) > limit {
		t.Fatalf("bob got %d frames (%d bytes), want one within %d", len(got), proto.Size(got[0]), limit)
	}
}

// TestUnknownKindsAndFileBroadcastsRefused: a MSG of a kind the protocol
// does not define, and a broadcast that is not text, are refused.
func TestUnknownKindsAndFileBroadcastsRefused(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	alice := e.connect("alice")
	e.connect("bob")
	odd := &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 1, Msg: &cimpb.Msg{ClientMsgId: "k", To: "bob", Kind: cimpb.Kind(9), Body: []byte{0xff}}}
	if er := errorOf(t, e.uplink(alice, odd)); er.Code != int32(codes.BadArgument) || !strings.Contains(er.Text, "kind") {
		t.Fatalf("unknown kind: %v", er)
	}
	bc := &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 2, Msg: &cimpb.Msg{ClientMsgId: "b", Broadcast: true, Kind: cimpb.Kind_KIND_FILE, Body: []byte("x")}}
	if er := errorOf(t, e.uplink(alice, bc)); er.Code != int32(codes.BadArgument) || !strings.Contains(er.Text, "text only") {
		t.Fatalf("file broadcast: %v", er)
	}
}

// TestSyncSkipsEntriesTooLargeToSend: an entry stored before sizes were
// checked, too large for a client, is left out of SYNC answers, whose
// last_seq still moves past it.
func TestSyncSkipsEntriesTooLargeToSend(t *testing.T) {
	const limit = 2048
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.MaxFrame = limit })
	bob := e.connect("bob")
	big, _ := proto.Marshal(&cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "big", From: "1", To: bob.UserID, Body: bytes.Repeat([]byte{'x'}, limit)}})
	small, _ := proto.Marshal(&cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "small", From: "1", To: bob.UserID, Body: []byte("hi")}})
	if _, err := e.st.Write(e.ctx, model.Write{Appends: []model.Append{{UserID: bob.UserID, Frame: big}, {UserID: bob.UserID, Frame: small}}}); err != nil {
		t.Fatal(err)
	}
	ans := e.uplink(bob, syncFrame(1, 0, 0, false))
	if len(ans) != 2 || ans[0].Frame.GetMsg().GetMsgId() != "small" || ans[1].Frame.GetSync().GetLastSeq() != 2 {
		t.Fatalf("sync answer %v, want the small entry and last_seq 2", ans)
	}
}

// TestFakeReadsCountNothing: a READ counts only for entries of the
// reader's own inbox that hold that msgId from that peer, once each; made-up
// ids, other people's messages and repeats store and push nothing.
func TestFakeReadsCountNothing(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	alice, bob, mallory := e.connect("alice"), e.connect("bob"), e.connect("mallory")
	ids := sentIDs(t, e.uplink(alice, msgFrame(1, "a1", "bob"), msgFrame(2, "a2", "bob")))
	e.waitPushes()
	e.uplink(bob, ackFrame(2))
	e.waitPushes()
	before := len(e.inbox(alice.UserID)) // the DELIVERED receipt

	fake := []*cimpb.Frame{
		// mallory names a message of alice's she never received, at bob's seq.
		{Type: cimpb.Type_READ, Read: &cimpb.Read{Peer: alice.UserID, MsgIds: []string{ids[0]}, Seqs: []uint64{1}}},
		// made-up ids in volume, with and without seqs.
		{Type: cimpb.Type_READ, Read: &cimpb.Read{Peer: alice.UserID, MsgIds: []string{strings.Repeat("f", 32), strings.Repeat("x", 64)}, Seqs: []uint64{1, 2}}},
		{Type: cimpb.Type_READ, Read: &cimpb.Read{Peer: alice.UserID, MsgIds: []string{ids[0]}}},
	}
	e.uplink(mallory, fake...)
	// bob with the right id but the wrong seq; and naming the wrong peer
	// for alice's second message.
	e.uplink(bob, &cimpb.Frame{Type: cimpb.Type_READ, Read: &cimpb.Read{Peer: alice.UserID, MsgIds: []string{ids[0]}, Seqs: []uint64{2}}},
		e.readOf(bob, mallory.UserID, ids[1]))
	e.waitPushes()
	if in := e.inbox(alice.UserID); len(in) != before {
		t.Fatalf("alice's inbox grew from %d to %d entries on fake READs: %v", before, len(in), in)
	}
	if in := e.inbox(mallory.UserID); len(in) != 0 {
		t.Fatalf("mallory's inbox holds %v: a READ counted for a message she never sent", in)
	}
	// The real READ counts once, however often it is sent.
	e.uplink(bob, e.readOf(bob, alice.UserID, ids[0]))
	e.uplink(bob, e.readOf(bob, alice.UserID, ids[0]), e.readOf(bob, alice.UserID, ids[0]))
	e.waitPushes()
	var reads int
	for _, f := range e.inbox(alice.UserID) {
		if f.Receipt.GetStatus() == cimpb.ReceiptStatus_RECEIPT_READ {
			reads++
			if f.Receipt.By != bob.UserID || f.Receipt.MsgId != ids[0] {
				t.Fatalf("READ receipt %v", f.Receipt)
			}
		}
	}
	if reads != 1 {
		t.Fatalf("%d READ receipts stored, want 1", reads)
	}
}

// TestReceiptItemsFitTheFrame: a smaller --max-frame makes receipt entries
// carry fewer items, so every one fits.
func TestReceiptItemsFitTheFrame(t *testing.T) {
	for _, limit := range []int{1024, 8192, 65536} {
		n := receiptItems(limit)
		rc := &cimpb.Receipt{Status: cimpb.ReceiptStatus_RECEIPT_DELIVERED, By: strings.Repeat("9", 20), TimestampMs: 1 << 62,
			Seq: 1 << 63, Group: strings.Repeat("g", 64), Count: 1 << 31}
		for range n {
			rc.Items = append(rc.Items, &cimpb.ReceiptItem{MsgId: strings.Repeat("m", maxMsgID), ClientMsgId: strings.Repeat("c", maxClientMsgID)})
		}
		if size := proto.Size(&cimpb.Frame{Type: cimpb.Type_RECEIPT, Receipt: rc}); n < 1 || size > limit {
			t.Errorf("--max-frame %d: %d items make a %d-byte receipt", limit, n, size)
		}
	}
}
