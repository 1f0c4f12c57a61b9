package router

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/memstore"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/cim-route/internal/store"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// uplink sends frames from a session as one gateway batch and returns the
// answers.
// waitPushes waits for the pushes uplinks left running in the background.
func (e *env) waitPushes() {
	e.t.Helper()
	if err := e.r.WaitDeliveries(e.ctx); err != nil {
		e.t.Fatalf("pushes still running: %v", err)
	}
}

func (e *env) uplink(s Session, frames ...*cimpb.Frame) []*cimpb.Delivery {
	e.t.Helper()
	b := &cimpb.UplinkBatch{GatewayId: s.Gateway.ID}
	for _, f := range frames {
		b.Uplinks = append(b.Uplinks, &cimpb.Uplink{UserId: s.UserID, SessionId: s.SessionID, Frame: f})
	}
	out, err := e.r.Uplink(e.ctx, b)
	if err != nil {
		e.t.Fatalf("uplink: %v", err)
	}
	e.waitPushes()
	for _, d := range out.Deliveries {
		if d.UserId != s.UserID || d.SessionId != s.SessionID {
			e.t.Fatalf("answer for %s/%s in a batch of %s/%s", d.UserId, d.SessionId, s.UserID, s.SessionID)
		}
	}
	return out.Deliveries
}

// frames returns what the user's gateway received for the user.
func (e *env) frames(s Session) []*cimpb.Frame {
	return e.gateway(s.Gateway.ID).Frames(contract.DeviceKey(s.UserID, s.SessionID))
}

// sentIDs checks that every answer is a RECEIPT_SENT and returns the msg ids.
func sentIDs(t *testing.T, ds []*cimpb.Delivery) []string {
	t.Helper()
	var ids []string
	for _, d := range ds {
		r := d.Frame.GetReceipt()
		if d.Frame.Type != cimpb.Type_RECEIPT || r.Status != cimpb.ReceiptStatus_RECEIPT_SENT || r.Seq != 0 {
			t.Fatalf("answer %v, want RECEIPT_SENT without seq", d.Frame)
		}
		ids = append(ids, r.MsgId)
	}
	return ids
}

func syncFrame(reqID, after uint64, limit uint32, fromAcked bool) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_SYNC, ReqId: reqID, Sync: &cimpb.Sync{AfterSeq: after, Limit: limit, FromAcked: fromAcked}}
}

func ackFrame(seq uint64) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: seq}}
}

func readFrame(peer string, ids ...string) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_READ, Read: &cimpb.Read{Peer: peer, MsgIds: ids}}
}

// readOf is the READ reader's client sends for ids of peer: each with the
// seq of the reader's inbox entry holding it (0 when there is none).
func (e *env) readOf(reader Session, peer string, ids ...string) *cimpb.Frame {
	f := readFrame(peer, ids...)
	f.Read.Seqs = e.seqsOf(reader, ids)
	return f
}

// seqsOf finds ids in reader's inbox.
func (e *env) seqsOf(reader Session, ids []string) []uint64 {
	e.t.Helper()
	at := map[string]uint64{}
	for _, f := range e.inbox(reader.UserID) {
		if f.Msg != nil {
			at[f.Msg.MsgId] = f.Msg.Seq
		}
	}
	seqs := make([]uint64, len(ids))
	for i, id := range ids {
		seqs[i] = at[id]
	}
	return seqs
}

// seqOf is the inbox seq of a MSG or RECEIPT frame.
func seqOf(f *cimpb.Frame) uint64 {
	if f.Msg != nil {
		return f.Msg.Seq
	}
	return f.GetReceipt().GetSeq()
}

// TestSentOnlyAfterStore: with Redis gone the batch fails as a whole (the
// gateway retries it): no RECEIPT_SENT, nothing pushed.
func TestSentOnlyAfterStore(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	alice, bob := e.connect("alice"), e.connect("bob")
	e.uplink(alice, msgFrame(1, "warm", "bob")) // names cached: the append is the first Redis call
	pushed := len(e.frames(bob))
	e.redis.Kill()
	out, err := e.r.Uplink(e.ctx, &cimpb.UplinkBatch{Uplinks: []*cimpb.Uplink{
		{UserId: alice.UserID, SessionId: alice.SessionID, Frame: msgFrame(2, "c2", "bob")},
		{UserId: alice.UserID, SessionId: alice.SessionID, Frame: msgFrame(3, "c3", bob.UserID)},
	}})
	if !errors.Is(err, errs.ErrUnavailable) || out != nil {
		t.Fatalf("uplink with Redis down: %v, %v; want ErrUnavailable and no answers", out, err)
	}
	if _, err := e.r.P2P(e.ctx, alice.UserID, bob.UserID, "x"); !errors.Is(err, errs.ErrUnavailable) {
		t.Fatalf("p2p with Redis down: %v", err)
	}
	if n := len(e.frames(bob)); n != pushed {
		t.Fatalf("bob got %d frames while Redis was down", n-pushed)
	}
}

// TestOfflineRecipientSyncs: a message to a user who is not connected is
// stored and answered SENT; SYNC returns it with its seq, paged.
func TestOfflineRecipientSyncs(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	alice := e.connect("alice")
	if _, err := e.r.Register(e.ctx, "bob", "password1"); err != nil {
		t.Fatal(err)
	}
	ids := sentIDs(t, e.uplink(alice, msgFrame(1, "m1", "bob"), msgFrame(2, "m2", "bob"), msgFrame(3, "m3", "bob")))
	bob := e.connect("bob")
	if f := e.frames(bob); len(f) != 0 {
		t.Fatalf("bob got %v before syncing", f)
	}

	type want struct {
		seqs                     []uint64
		after, head, first, last uint64
		limit                    uint32
	}
	tests := []struct {
		name string
		req  *cimpb.Frame
		ack  uint64 // raise bob's ack first
		want want
	}{
		{"login sync", syncFrame(7, 0, 0, true), 0, want{[]uint64{1, 2, 3}, 0, 3, 1, 3, 200}},
		{"first page", syncFrame(8, 0, 2, false), 0, want{[]uint64{1, 2}, 0, 3, 1, 2, 2}},
		{"next page", syncFrame(9, 2, 2, false), 0, want{[]uint64{3}, 2, 3, 1, 3, 2}},
		{"nothing new", syncFrame(10, 3, 0, false), 0, want{nil, 3, 3, 1, 0, 200}},
		{"limit above the cap", syncFrame(11, 0, 5000, false), 0, want{[]uint64{1, 2, 3}, 0, 3, 1, 3, 200}},
		{"from the ack", syncFrame(12, 0, 0, true), 2, want{[]uint64{3}, 2, 3, 1, 3, 200}},
		{"after beyond the ack", syncFrame(13, 3, 0, true), 0, want{nil, 3, 3, 1, 0, 200}},
		{"ack ignored without from_acked", syncFrame(14, 1, 0, false), 0, want{[]uint64{2, 3}, 1, 3, 1, 3, 200}},
	}
	for _, tt := range tests {
		if tt.ack != 0 {
			e.uplink(bob, ackFrame(tt.ack))
		}
		ans := e.uplink(bob, tt.req)
		if len(ans) != len(tt.want.seqs)+1 {
			t.Fatalf("%s: %d frames, want %d entries and the SYNC answer", tt.name, len(ans), len(tt.want.seqs))
		}
		for i, s := range tt.want.seqs {
			m := ans[i].Frame.GetMsg()
			if ans[i].Frame.Type != cimpb.Type_MSG || m.Seq != s || m.MsgId != ids[s-1] || string(m.Body) != fmt.Sprint("body m", s) ||
				m.From != alice.UserID || m.FromName != "alice" || m.To != bob.UserID {
				t.Fatalf("%s: entry %d = %v", tt.name, i, ans[i].Frame)
			}
		}
		f := ans[len(ans)-1].Frame
		sy := f.GetSync()
		got := want{tt.want.seqs, sy.GetAfterSeq(), sy.GetHeadSeq(), sy.GetFirstSeq(), sy.GetLastSeq(), sy.GetLimit()}
		if f.Type != cimpb.Type_SYNC || f.ReqId != tt.req.ReqId || fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: answer %v, want %+v", tt.name, f, tt.want)
		}
	}
}

func TestSyncAfterTrimming(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	e.st.Store = store.New(e.rdb, "cim:", store.WithInbox(model.InboxLimits{MaxLen: 3}))
	alice, bob := e.connect("alice"), e.connect("bob")
	for i := range 5 {
		e.uplink(alice, msgFrame(uint64(i), fmt.Sprint(i), "bob"))
	}
	ans := e.uplink(bob, syncFrame(1, 0, 0, false))
	sy := ans[len(ans)-1].Frame.GetSync()
	if len(ans) != 4 || seqOf(ans[0].Frame) != 3 || sy.FirstSeq != 3 || sy.HeadSeq != 5 || sy.LastSeq != 5 {
		t.Fatalf("sync after trimming: %v", ans)
	}
}

// TestReceipts: ACK sends DELIVERED and READ sends READ receipts to the
// senders' inboxes, with seq, pushed live; receipts produce no receipts.
func TestReceipts(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	alice, bob := e.connect("alice"), e.connect("bob")
	ids := sentIDs(t, e.uplink(alice, msgFrame(1, "a1", "bob"), msgFrame(2, "a2", "bob")))
	if f := e.frames(bob); len(f) != 2 || f[0].Msg.Seq != 1 || f[1].Msg.Seq != 2 || f[0].Msg.MsgId != ids[0] {
		t.Fatalf("bob got %v", f)
	}
	receipt := func(f *cimpb.Frame, status cimpb.ReceiptStatus, msgID, cmid string, seq uint64) {
		t.Helper()
		r := f.GetReceipt()
		if f.Type != cimpb.Type_RECEIPT || r.Status != status || r.MsgId != msgID || r.ClientMsgId != cmid || r.By != bob.UserID || r.Seq != seq || r.TimestampMs == 0 {
			t.Fatalf("receipt %v, want %v for %s (%q) with seq %d", f, status, msgID, cmid, seq)
		}
	}
	ack := func(s Session) string { return e.rdb.Get(e.ctx, "cim:ack:{"+s.UserID+"}").Val() }

	if ans := e.uplink(bob, ackFrame(1)); len(ans) != 0 {
		t.Fatalf("ACK answered %v", ans)
	}
	f := e.frames(alice)
	if len(f) != 1 {
		t.Fatalf("alice got %v", f)
	}
	receipt(f[0], cimpb.ReceiptStatus_RECEIPT_DELIVERED, ids[0], "a1", 1)
	if ack(bob) != "1" {
		t.Fatalf("ack:{bob} = %q", ack(bob))
	}
	// The same ack again: nothing. Two acks in one batch: the highest counts.
	e.uplink(bob, ackFrame(1))
	e.uplink(bob, ackFrame(2), ackFrame(1))
	if f = e.frames(alice); len(f) != 2 {
		t.Fatalf("alice got %v", f)
	}
	receipt(f[1], cimpb.ReceiptStatus_RECEIPT_DELIVERED, ids[1], "a2", 2)
	// Beyond the head: raised to the head only, so later messages are not
	// skipped by a SYNC from the ack.
	e.uplink(bob, ackFrame(50))
	if ack(bob) != "2" {
		t.Fatalf("ack:{bob} after acking beyond the head = %q", ack(bob))
	}

	// READ: one receipt entry for the peer (by name or id), an item per
	// distinct msg id.
	if ans := e.uplink(bob, e.readOf(bob, "alice", ids[0], ids[1], ids[0], "")); len(ans) != 0 {
		t.Fatalf("READ answered %v", ans)
	}
	e.uplink(bob, e.readOf(bob, "nobody", ids[0]), e.readOf(bob, "9999", ids[0]), e.readOf(bob, "", ids[0])) // dropped
	if f = e.frames(alice); len(f) != 3 {
		t.Fatalf("alice got %d frames, want 3: %v", len(f), f)
	}
	receipt(f[2], cimpb.ReceiptStatus_RECEIPT_READ, "", "", 3)
	if it := f[2].Receipt.Items; len(it) != 2 || it[0].MsgId != ids[0] || it[1].MsgId != ids[1] {
		t.Fatalf("READ receipt items %v, want %s and %s", it, ids[0], ids[1])
	}

	// Alice acknowledges her receipts: receipts produce no receipts.
	e.uplink(alice, ackFrame(3))
	if n := e.rdb.LLen(e.ctx, "cim:inbox:{"+bob.UserID+"}").Val(); n != 2 || len(e.frames(bob)) != 2 {
		t.Fatalf("bob's inbox holds %d entries, he got %d frames; want 2 and 2", n, len(e.frames(bob)))
	}

	// An offline sender finds its receipts by SYNC.
	ids = append(ids, sentIDs(t, e.uplink(alice, msgFrame(3, "a3", "bob")))...)
	e.gateway(alice.Gateway.ID).Disconnect(alice.UserID)
	if err := e.r.SessionOffline(e.ctx, contract.Session{UserID: alice.UserID, SessionID: alice.SessionID}); err != nil {
		t.Fatal(err)
	}
	e.uplink(bob, ackFrame(3), e.readOf(bob, alice.UserID, ids[2]))
	alice = e.connect("alice")
	ans := e.uplink(alice, syncFrame(1, 3, 0, false))
	if len(ans) != 3 {
		t.Fatalf("alice's sync: %v", ans)
	}
	receipt(ans[0].Frame, cimpb.ReceiptStatus_RECEIPT_DELIVERED, ids[2], "a3", 4)
	receipt(ans[1].Frame, cimpb.ReceiptStatus_RECEIPT_READ, ids[2], "", 5)
}

// TestAckManyEntries: one ACK covering more than a page of entries sends a
// receipt for every one of them, as items of a few receipt entries (up to
// maxReceiptItems each), in order.
func TestAckManyEntries(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	if _, err := e.r.Register(e.ctx, "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	bob := e.connect("bob")
	alice := e.connect("alice")
	const n = ackPage + 5
	var frames []*cimpb.Frame
	for i := range n {
		frames = append(frames, msgFrame(uint64(i), fmt.Sprint(i), "bob"))
	}
	sentIDs(t, e.uplink(alice, frames...))
	e.st.ranges.Store(0)
	e.uplink(bob, ackFrame(n))
	if r := e.st.ranges.Load(); r != 2 {
		t.Fatalf("%d range reads, want 2 pages", r)
	}
	in := e.inbox("1")
	if want := (n + maxReceiptItems - 1) / maxReceiptItems; len(in) != want || len(in[0].Receipt.GetItems()) != maxReceiptItems {
		t.Fatalf("alice's inbox holds %d receipt entries, want %d (of %d items but the last)", len(in), want, maxReceiptItems)
	}
	var cmids []string
	for _, f := range in {
		if f.Receipt.Status != cimpb.ReceiptStatus_RECEIPT_DELIVERED || f.Receipt.By != bob.UserID || f.Receipt.MsgId != "" {
			t.Fatalf("receipt entry %v", f)
		}
		for _, it := range f.Receipt.Items {
			cmids = append(cmids, it.ClientMsgId)
		}
	}
	if len(cmids) != n || cmids[0] != "0" || cmids[n-1] != fmt.Sprint(n-1) {
		t.Fatalf("receipts for %d messages (first %q, last %q), want %d in order", len(cmids), cmids[0], cmids[len(cmids)-1], n)
	}
	if got := e.rdb.Get(e.ctx, "cim:ack:{"+bob.UserID+"}").Val(); got != fmt.Sprint(n) {
		t.Fatalf("ack = %s", got)
	}
}

// TestResendDedup: a resend (same sender and clientMsgId) answers the first
// msg id and stores nothing new, across batches and within one.
func TestResendDedup(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	alice, bob, carol := e.connect("alice"), e.connect("bob"), e.connect("carol")
	first := sentIDs(t, e.uplink(alice, msgFrame(1, "same", "bob")))
	again := e.uplink(alice, msgFrame(2, "same", "bob"), msgFrame(3, "same", bob.UserID))
	ids := sentIDs(t, again)
	if ids[0] != first[0] || ids[1] != first[0] || again[0].Frame.ReqId != 2 || again[1].Frame.ReqId != 3 {
		t.Fatalf("resends answered %v, want msg id %s", again, first[0])
	}
	other := sentIDs(t, e.uplink(carol, msgFrame(1, "same", "bob")))
	if other[0] == first[0] {
		t.Fatal("another sender's message with the same clientMsgId was taken for a resend")
	}
	if n := e.rdb.LLen(e.ctx, "cim:inbox:{"+bob.UserID+"}").Val(); n != 2 {
		t.Fatalf("bob's inbox holds %d entries, want 2", n)
	}
	// Pushes may repeat (the first may have been lost); always the same seq.
	for _, f := range e.frames(bob) {
		if f.Msg.From == alice.UserID && (f.Msg.Seq != 1 || f.Msg.MsgId != first[0]) {
			t.Fatalf("bob got %v", f)
		}
	}
	// HTTP sends carry no clientMsgId: never deduplicated.
	a, _ := e.r.P2P(e.ctx, alice.UserID, "bob", "x")
	b, _ := e.r.P2P(e.ctx, alice.UserID, "bob", "x")
	if a == b {
		t.Fatal("two HTTP sends got one id")
	}
	long := msgFrame(9, strings.Repeat("x", maxClientMsgID+1), "bob")
	if f := e.uplink(alice, long)[0].Frame; f.Type != cimpb.Type_ERROR {
		t.Fatalf("oversized clientMsgId answered %v", f)
	}
}

// TestConcurrentSendersOneRecipient: seqs stay unique and gap-free when many
// batches append to one inbox at once.
func TestConcurrentSendersOneRecipient(t *testing.T) {
	e := newEnv(t, PolicyKick, 2)
	bob := e.connect("bob")
	var senders []Session
	for i := range 8 {
		senders = append(senders, e.connect(fmt.Sprint("s", i)))
	}
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Go(func() {
			for i := range 10 {
				b := &cimpb.UplinkBatch{GatewayId: s.Gateway.ID, Uplinks: []*cimpb.Uplink{{UserId: s.UserID, SessionId: s.SessionID, Frame: msgFrame(uint64(i), fmt.Sprint(i), "bob")}}}
				if _, err := e.r.Uplink(e.ctx, b); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	e.waitPushes()
	var seqs []uint64
	for _, f := range e.frames(bob) {
		seqs = append(seqs, f.Msg.Seq)
	}
	slices.Sort(seqs)
	if len(seqs) != 80 || seqs[0] != 1 || seqs[79] != 80 || len(slices.Compact(seqs)) != 80 {
		t.Fatalf("bob's seqs %v", seqs)
	}
}

func TestHistory(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	clock := time.Now()
	var mu sync.Mutex
	e.r.now = func() time.Time { // one millisecond per send: a known order
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Millisecond)
		return clock
	}
	alice, bob, carol := e.connect("alice"), e.connect("bob"), e.connect("carol")
	send := func(from Session, to, text string) string {
		t.Helper()
		id, err := e.r.P2P(e.ctx, from.UserID, to, text)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	t1 := send(bob, "alice", "hello alice")
	t2 := send(alice, "bob", "hi bob")
	t3 := send(carol, "alice", "carol here")
	t4 := send(bob, "alice", "How are you")
	t5 := send(alice, "bob", "fine, thanks")
	send(alice, "carol", "hey carol")
	file := &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "f", To: "bob", Kind: cimpb.Kind_KIND_FILE,
		File: &cimpb.FileInfo{Name: "Report.pdf", Size: 3, ContentType: "application/pdf"}, Body: []byte("pdf")}}
	t7 := sentIDs(t, e.uplink(alice, file))[0]

	ids := func(p HistoryPage) []string {
		var out []string
		for _, m := range p.Messages {
			out = append(out, m.MsgID)
		}
		return out
	}
	q := func(user Session, peer, keyword, before string, limit int) HistoryQuery {
		return HistoryQuery{UserID: user.UserID, SessionID: user.SessionID, Peer: peer, Keyword: keyword, Before: before, Limit: limit}
	}
	tests := []struct {
		name string
		q    HistoryQuery
		want []string
		next string
	}{
		{"conversation, first page", q(alice, "bob", "", "", 2), []string{t7, t5}, t5},
		{"conversation, second page", q(alice, "bob", "", t5, 2), []string{t4, t2}, t2},
		{"conversation, last page", q(alice, bob.UserID, "", t2, 2), []string{t1}, ""},
		{"the peer's view is the same", q(bob, "alice", "", "", 10), []string{t7, t5, t4, t2, t1}, ""},
		{"keyword, any case", q(alice, "bob", "HOW", "", 0), []string{t4}, ""},
		{"keyword in a file name", q(bob, "alice", "report", "", 0), []string{t7}, ""},
		{"keyword matching nothing", q(alice, "bob", "zebra", "", 0), nil, ""},
		{"without a peer: what I received", q(alice, "", "", "", 0), []string{t4, t3, t1}, ""},
	}
	for _, tt := range tests {
		p, err := e.r.History(e.ctx, tt.q)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		// Next is a cursor (history_test.go follows it); here only
		// whether there is one matters.
		if !slices.Equal(ids(p), tt.want) || (p.Next == "") != (tt.next == "") {
			t.Errorf("%s: %v next %q; want %v next %q", tt.name, ids(p), p.Next, tt.want, tt.next)
		}
	}
	p, _ := e.r.History(e.ctx, q(alice, "bob", "", "", 1))
	m := p.Messages[0]
	if m.From != alice.UserID || m.FromName != "alice" || m.To != bob.UserID || m.Kind != cimpb.Kind_KIND_FILE ||
		m.File.GetName() != "Report.pdf" || string(m.Body) != "pdf" || m.Seq == 0 || m.TimestampMs == 0 {
		t.Fatalf("history message %+v", m)
	}

	bad := []struct {
		name string
		q    HistoryQuery
		want error
	}{
		{"wrong session", HistoryQuery{UserID: alice.UserID, SessionID: "stale"}, errs.ErrUnauthorized},
		{"no session", HistoryQuery{UserID: alice.UserID}, errs.ErrBadArgument},
		{"bad user id", HistoryQuery{UserID: "x", SessionID: alice.SessionID}, errs.ErrBadArgument},
		{"limit too big", q(alice, "", "", "", MaxHistoryLimit+1), errs.ErrBadArgument},
		{"negative limit", q(alice, "", "", "", -1), errs.ErrBadArgument},
		{"bad cursor", q(alice, "", "", "zz", 0), errs.ErrBadArgument},
		{"upper-case cursor", q(alice, "", "", strings.ToUpper(t1), 0), errs.ErrBadArgument},
		{"long keyword", q(alice, "", strings.Repeat("k", maxKeyword+1), "", 0), errs.ErrBadArgument},
		{"unknown peer", q(alice, "nobody", "", "", 0), errs.ErrBadAccount},
		{"unknown peer id", q(alice, "9999", "", "", 0), errs.ErrBadAccount},
		{"malformed peer", q(alice, "no body!", "", "", 0), errs.ErrBadAccount},
	}
	for _, b := range bad {
		if _, err := e.r.History(e.ctx, b.q); !errors.Is(err, b.want) {
			t.Errorf("%s: %v, want %v", b.name, err, b.want)
		}
	}
}

func TestUpload(t *testing.T) {
	e := newEnv(t, PolicyKick, 1) // uploads up to 1 KiB
	alice := e.connect("alice")
	info, err := e.r.Upload(e.ctx, alice.UserID, alice.SessionID, "notes.txt", "", 0, strings.NewReader("hello"))
	if err != nil || info.Size != 5 || info.ContentType != "application/octet-stream" || info.Name != "notes.txt" || len(info.Ref) != 32 {
		t.Fatalf("upload: %+v %v", info, err)
	}
	f, got, _, err := e.r.OpenFile(info.Ref)
	if err != nil || got != info {
		t.Fatalf("open: %+v %v", got, err)
	}
	f.Close()
	if _, _, _, err := e.r.OpenFile("0123456789abcdef0123456789abcdef"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("unknown ref: %v", err)
	}
	bad := []struct {
		name, uid, sid, file, ctype string
		size                        int
		want                        error
	}{
		{"too large", alice.UserID, alice.SessionID, "big.bin", "", 1025, errs.ErrTooLarge},
		{"wrong session", alice.UserID, "stale", "a.txt", "", 1, errs.ErrUnauthorized},
		{"no name", alice.UserID, alice.SessionID, "", "", 1, errs.ErrBadArgument},
		{"a path", alice.UserID, alice.SessionID, "../etc/passwd", "", 1, errs.ErrBadArgument},
		{"control characters", alice.UserID, alice.SessionID, "a\nb", "", 1, errs.ErrBadArgument},
		{"long name", alice.UserID, alice.SessionID, strings.Repeat("n", 256), "", 1, errs.ErrBadArgument},
		{"bad content type", alice.UserID, alice.SessionID, "a.txt", "not a type", 1, errs.ErrBadArgument},
		{"no session", alice.UserID, "", "a.txt", "", 1, errs.ErrBadArgument},
	}
	for _, b := range bad {
		if _, err := e.r.Upload(e.ctx, b.uid, b.sid, b.file, b.ctype, 0, strings.NewReader(strings.Repeat("x", b.size))); !errors.Is(err, b.want) {
			t.Errorf("%s: %v, want %v", b.name, err, b.want)
		}
	}
}

// newShareEnv is newEnv with one gateway and a sender's share of per
// unread entries per inbox.
func newShareEnv(t *testing.T, policy string, per int) *env {
	e := newEnv(t, policy, 1)
	lim := model.InboxLimits{PerSender: per}
	if e.rdb != nil {
		opts := []store.Option{store.WithInbox(lim)}
		if policy == PolicyPlatform {
			opts = append(opts, store.WithDeviceSlots())
		}
		e.st.Store = store.New(e.rdb, "cim:", opts...)
	} else {
		e.st.Store = memstore.New(memstore.WithInbox(lim))
	}
	return e
}

// TestSenderShare: once bob's inbox holds PerSender unread messages, alice
// may add PerSender more and is then answered ERROR 4293 for each (nothing
// stored, nothing pushed); carol, an application's push and alice's delayed
// message (accepted when scheduled) still reach bob; /p2pRoute gets errs.ErrQuotaExceeded; once bob reads on she may
// write again.
func TestSenderShare(t *testing.T) {
	e := newShareEnv(t, PolicyKick, 2)
	alice, carol := e.connect("alice"), e.connect("carol")
	bob := e.account("bob")
	sentIDs(t, e.uplink(alice, msgFrame(1, "a1", "bob"), msgFrame(2, "a2", "bob"), msgFrame(3, "a3", "bob"), msgFrame(4, "a4", "bob")))
	refused := func(ds []*cimpb.Delivery, cmid string) {
		t.Helper()
		if len(ds) != 1 || ds[0].Frame.GetError().GetCode() != int32(codes.QuotaExceeded) || ds[0].Frame.GetError().GetClientMsgId() != cmid {
			t.Fatalf("answer %v, want ERROR 4293 for %s", ds, cmid)
		}
	}
	refused(e.uplink(alice, msgFrame(5, "a5", "bob")), "a5")
	if _, err := e.r.P2P(e.ctx, alice.UserID, "bob", "over http"); !errors.Is(err, errs.ErrQuotaExceeded) {
		t.Fatalf("/p2pRoute over the share: %v, want ErrQuotaExceeded", err)
	}
	sentIDs(t, e.uplink(carol, msgFrame(1, "c1", "bob")))
	if _, err := e.r.Push(e.ctx, PushRequest{From: "alice", To: []string{"bob"}, Text: "from the app"}); err != nil {
		t.Fatalf("an application's push as alice: %v", err)
	}
	// A delayed message was accepted when scheduled: it goes when due.
	if err := e.r.sendDelayed(e.ctx, model.DelayedMsg{ID: "d1", From: alice.UserID, To: bob.UserID, Text: "delayed"}); err != nil {
		t.Fatalf("alice's delayed message: %v", err)
	}
	bob = e.connect("bob")
	sy := e.uplink(bob, syncFrame(1, 0, 0, false))
	var bodies []string
	for _, d := range sy[:len(sy)-1] {
		bodies = append(bodies, string(d.Frame.GetMsg().GetBody()))
	}
	if want := "[body a1 body a2 body a3 body a4 body c1 from the app delayed]"; fmt.Sprint(bodies) != want {
		t.Fatalf("bob's inbox %v, want %s", bodies, want)
	}
	// bob reads on: alice may write again.
	e.uplink(bob, ackFrame(3))
	sentIDs(t, e.uplink(alice, msgFrame(7, "a5", "bob")))
	if f := e.frames(bob); len(f) == 0 || string(f[len(f)-1].GetMsg().GetBody()) != "body a5" {
		t.Fatalf("bob's last frame %v, want alice's a5", f[len(f)-1])
	}
}

// TestGroupCopiesCountAgainstTheShare: a member's copy of a group message
// counts against the sender's share of the member's inbox, as a private
// message does: once away carol's inbox holds PerSender unread, alice's
// next copies for her are refused (not stored, not pushed) while the
// message still reaches bob, who reads, and alice is answered SENT; dave still reaches
// carol; once carol reads on, alice's copies are stored again.
func TestGroupCopiesCountAgainstTheShare(t *testing.T) {
	e := newShareEnv(t, PolicyKick, 2)
	alice, bob, dave := e.connect("alice"), e.connect("bob"), e.connect("dave")
	carol := e.account("carol")
	gid := e.newGroup(alice, "team", bob, carol, dave)
	for i := range 6 {
		cmid := fmt.Sprint("g", i+1)
		groupSent(t, e.uplink(alice, groupFrame(uint64(i+1), cmid, gid))[0], cmid, gid, 3)
		e.uplink(bob, ackFrame(uint64(i+1))) // bob reads: never held back
	}
	bodies := func(uid string) []string {
		var out []string
		for _, f := range e.inbox(uid) {
			if f.GetMsg().GetGroup() == gid { // not the invitation
				out = append(out, string(f.GetMsg().GetBody()))
			}
		}
		return out
	}
	// carol: her invitation and g1 below the mark, then alice's share of
	// two.
	if got, want := fmt.Sprint(bodies(carol.UserID)), "[body g1 body g2 body g3]"; got != want {
		t.Fatalf("carol's inbox %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(bodies(bob.UserID)), "[body g1 body g2 body g3 body g4 body g5 body g6]"; got != want {
		t.Fatalf("bob's inbox %s, want every message: %s", got, want)
	}
	groupSent(t, e.uplink(dave, groupFrame(1, "d1", gid))[0], "d1", gid, 3)
	// carol reads on: alice's copies are stored for her again.
	carol = e.connect("carol")
	e.uplink(carol, ackFrame(5)) // the invitation, g1–g3 and d1
	groupSent(t, e.uplink(alice, groupFrame(7, "g7", gid))[0], "g7", gid, 3)
	if got, want := fmt.Sprint(bodies(carol.UserID)), "[body g1 body g2 body g3 body d1 body g7]"; got != want {
		t.Fatalf("carol's inbox after she read on %s, want %s", got, want)
	}
}
