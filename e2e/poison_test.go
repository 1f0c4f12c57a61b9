package e2e

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// syncAnswerBound is the route's bound on one SYNC answer's entries
// (store.DefaultRangeBytes), plus one entry of slack: the first entry goes
// however large.
const syncAnswerBound = 256<<10 + 64<<10

// TestSyncAnswersBoundedInBytes (issue 11, point 1): a user who fills its
// inbox with large entries and asks for all of them at once gets answers
// of at most about 256 KiB each, not megabytes, and continuing from each
// answer's last_seq still reaches every entry once.
func TestSyncAnswersBoundedInBytes(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1})
	conn, r, me := rawLogin(t, c, "hoarder")
	const n, size = 30, 60_000
	for i := range n {
		writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: uint64(i + 1), Msg: &cimpb.Msg{
			ClientMsgId: fmt.Sprint("big-", i), To: me.UserID, Kind: cimpb.Kind_KIND_FILE,
			Body: bytes.Repeat([]byte{'z'}, size), File: &cimpb.FileInfo{Name: "z.bin", Size: size}}})
	}
	// Every message answered and pushed back before the SYNCs.
	sent, pushed := 0, 0
	for sent < n || pushed < n {
		switch f := readFrame(t, conn, r); {
		case f.Type == cimpb.Type_RECEIPT && f.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_SENT:
			sent++
		case f.Type == cimpb.Type_MSG:
			pushed++
		case f.Type == cimpb.Type_ERROR:
			t.Fatalf("sending: %v", f.Error)
		}
	}
	seen := map[uint64]bool{}
	after := uint64(0)
	for syncs := 1; ; syncs++ {
		writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_SYNC, ReqId: uint64(1000 + syncs), Sync: &cimpb.Sync{AfterSeq: after}})
		bytes := 0
		var s *cimpb.Sync
		for s == nil {
			f := readFrame(t, conn, r)
			switch {
			case f.Type == cimpb.Type_MSG:
				bytes += proto.Size(f)
				if seen[f.Msg.Seq] {
					t.Fatalf("seq %d answered twice", f.Msg.Seq)
				}
				seen[f.Msg.Seq] = true
			case f.Type == cimpb.Type_SYNC && f.ReqId == uint64(1000+syncs):
				s = f.Sync
			}
		}
		if bytes > syncAnswerBound {
			t.Fatalf("SYNC %d after %d answered %d bytes of entries, want at most %d", syncs, after, bytes, syncAnswerBound)
		}
		if s.LastSeq >= s.HeadSeq {
			break
		}
		if s.LastSeq <= after {
			t.Fatalf("SYNC %d after %d made no progress: %v", syncs, after, s)
		}
		after = s.LastSeq
	}
	if len(seen) != n {
		t.Fatalf("%d entries reached by SYNC, want %d", len(seen), n)
	}
}

// TestFakeReadReceipts (issue 11, point 3): READs naming a victim as peer,
// with made-up msgIds and seqs (including 992 ids of 64 bytes, which used
// to become one 67 KB receipt), store nothing in the victim's inbox and
// show her no receipt; a real READ, sent twice, shows once.
func TestFakeReadReceipts(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1})
	ctx := ctxT(t)
	alice := c.Connect(t, "alice")
	bob := c.Connect(t, "bob")
	conn, r, _ := rawLogin(t, c, "mallory")
	rdb := redis.NewClient(&redis.Options{Addr: c.Redis.Addr})
	t.Cleanup(func() { rdb.Close() })

	var long []string
	var seqs []uint64
	for i := range 992 {
		long = append(long, fmt.Sprintf("%064d", i))
		seqs = append(seqs, uint64(i+1))
	}
	writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_READ, Read: &cimpb.Read{Peer: alice.ID, MsgIds: long}})
	writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_READ, Read: &cimpb.Read{Peer: alice.ID, MsgIds: long[:900], Seqs: seqs[:900]}})
	for i := range 100 {
		id := fmt.Sprintf("%032x", i)
		writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_READ, Read: &cimpb.Read{Peer: "alice", MsgIds: []string{id}, Seqs: []uint64{uint64(i%3 + 1)}}})
	}
	// mallory's frames reach the route in order: once her message is
	// answered, every READ before it was handled.
	writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 7, Msg: &cimpb.Msg{ClientMsgId: "marker", To: alice.ID, Body: []byte("marker")}})
	for f := readFrame(t, conn, r); f.Type != cimpb.Type_RECEIPT || f.Receipt.ClientMsgId != "marker"; f = readFrame(t, conn, r) {
	}
	alice.WaitFor(t, 0, wait, "mallory's marker", harness.IsMessage("marker"))
	if n := rdb.LLen(ctx, "cim:inbox:{"+alice.ID+"}").Val(); n != 1 {
		t.Fatalf("alice's inbox holds %d entries after fake READs, want 1 (the marker)", n)
	}
	for _, e := range alice.Seen() {
		if e.Kind == client.EventReceipt {
			t.Fatalf("alice, who sent nothing, was shown a receipt: %v", e.Receipt)
		}
	}

	// The real thing: bob reads alice's message, twice.
	_, err := alice.Send(ctx, "bob", "read me")
	if err != nil {
		t.Fatal(err)
	}
	i := bob.WaitFor(t, 0, wait, "alice's message", harness.IsMessage("read me"))
	id := bob.Seen()[i].Msg.MsgId
	for range 2 {
		if err := bob.MarkRead(ctx, alice.ID, id); err != nil {
			t.Fatal(err)
		}
	}
	isRead := func(e client.Event) bool {
		return e.Kind == client.EventReceipt && e.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_READ && e.Receipt.MsgId == id
	}
	alice.WaitFor(t, 0, wait, "bob's READ", isRead)
	// A later message from bob arrives after anything the second READ made.
	if _, err := bob.Send(ctx, "alice", "after the reads"); err != nil {
		t.Fatal(err)
	}
	alice.WaitFor(t, 0, wait, "bob's later message", harness.IsMessage("after the reads"))
	reads := 0
	for _, m := range rdb.LRange(ctx, "cim:inbox:{"+alice.ID+"}", 0, -1).Val() {
		f := &cimpb.Frame{}
		if parts := strings.SplitN(m, "|", 3); len(parts) == 3 && proto.Unmarshal([]byte(parts[2]), f) == nil {
			if rc := f.GetReceipt(); rc.GetStatus() == cimpb.ReceiptStatus_RECEIPT_READ && rc.GetBy() == bob.ID {
				reads++
			}
		}
	}
	if reads != 1 {
		t.Fatalf("%d READ receipts stored for alice, want 1", reads)
	}
}

// TestReceiptsNeverEvictMessages (issue 11, point 3): receipts going to a
// full inbox are not stored (they are pushed live only), so the messages
// waiting there for an offline user stay.
func TestReceiptsNeverEvictMessages(t *testing.T) {
	const max = 20
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{"--inbox-max", fmt.Sprint(max)}})
	ctx := ctxT(t)
	alice, bob, carol := c.Connect(t, "alice"), c.Connect(t, "bob"), c.Connect(t, "carol")
	rdb := redis.NewClient(&redis.Options{Addr: c.Redis.Addr})
	t.Cleanup(func() { rdb.Close() })

	var ids []string
	for i := range 5 {
		cmid, err := alice.Send(ctx, "bob", fmt.Sprint("to bob ", i))
		if err != nil {
			t.Fatal(err)
		}
		k := bob.WaitFor(t, 0, wait, "alice's message", harness.IsMessage(fmt.Sprint("to bob ", i)))
		ids = append(ids, bob.Seen()[k].Msg.MsgId)
		// Its DELIVERED receipt is in before alice leaves.
		alice.WaitFor(t, 0, wait, "bob's DELIVERED", func(e client.Event) bool {
			return e.Kind == client.EventReceipt && e.Receipt.ClientMsgId == cmid && e.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_DELIVERED
		})
	}
	if err := alice.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// alice's inbox fills up with carol's messages while she is away.
	for i := range max {
		if _, err := carol.Send(ctx, "alice", fmt.Sprintf("waiting %02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// carol's frames are handled in order: once her last one is stored,
	// all are.
	harness.Eventually(t, wait, func() error {
		if n := rdb.LLen(ctx, "cim:inbox:{"+alice.ID+"}").Val(); n < max {
			return fmt.Errorf("alice's inbox holds %d entries", n)
		}
		last := rdb.LIndex(ctx, "cim:inbox:{"+alice.ID+"}", -1).Val()
		if !strings.Contains(last, fmt.Sprintf("waiting %02d", max-1)) {
			return fmt.Errorf("carol's last message not stored yet")
		}
		return nil
	})
	// bob reads alice's five messages: five receipts for a full inbox.
	if err := bob.MarkRead(ctx, alice.ID, ids...); err != nil {
		t.Fatal(err)
	}
	// bob's frames are handled in order: his next message is answered only
	// after the READ's receipts went wherever they go.
	if _, err := bob.Send(ctx, "carol", "read done"); err != nil {
		t.Fatal(err)
	}
	carol.WaitFor(t, 0, wait, "bob's note", harness.IsMessage("read done"))
	entries := rdb.LRange(ctx, "cim:inbox:{"+alice.ID+"}", 0, -1).Val()
	for i, m := range entries {
		if !strings.Contains(m, fmt.Sprintf("waiting %02d", i)) {
			t.Fatalf("alice's inbox entry %d is not carol's message %d: a receipt pushed a message out (%d entries)", i, i, len(entries))
		}
	}
}

// TestOneSenderCannotFloodAnInbox: one user writing to an offline user
// without end is refused (ERROR 4293, final in the SDK) once it holds its
// share of the unread messages, instead of pushing the messages of others
// out of the inbox; the others still get through, and bob finds everybody's
// messages when he comes back.
func TestOneSenderCannotFloodAnInbox(t *testing.T) {
	const share, max = 3, 8
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{
		"--inbox-per-sender", fmt.Sprint(share), "--inbox-max", fmt.Sprint(max)}})
	ctx := ctxT(t)
	c.Register(t, "bob")
	carol := c.Connect(t, "carol")
	if _, err := carol.Send(ctx, "bob", "from carol"); err != nil {
		t.Fatal(err)
	}
	mallory := c.Connect(t, "mallory")
	// carol's message is one unread: mallory's first share-1 make the
	// mark of share unread (not counted), her next share are counted, the
	// rest are refused. Stored, they would have pushed carol's message out
	// of bob's inbox of max entries.
	const flood = max + 2
	var last string
	for i := range flood {
		cmid, err := mallory.Send(ctx, "bob", fmt.Sprint("flood ", i))
		if err != nil {
			t.Fatal(err)
		}
		last = cmid
	}
	k := mallory.WaitFor(t, 0, wait, "the refusal", func(e client.Event) bool {
		return e.Kind == client.EventError && e.Err.GetClientMsgId() == last
	})
	if code := mallory.Seen()[k].Err.GetCode(); code != int32(codes.QuotaExceeded) {
		t.Fatalf("mallory's last message answered %d, want 4293", code)
	}
	if _, err := carol.Send(ctx, "bob", "carol again"); err != nil {
		t.Fatal(err)
	}
	bob := c.Connect(t, "bob")
	bob.WaitFor(t, 0, wait, "carol's first message", harness.IsMessage("from carol"))
	for i := range 2*share - 1 {
		bob.WaitFor(t, 0, wait, "mallory's stored messages", harness.IsMessage(fmt.Sprint("flood ", i)))
	}
	// carol's later message comes after the refused one in bob's inbox.
	bob.WaitFor(t, 0, wait, "carol's second message", harness.IsMessage("carol again"))
	for _, e := range bob.Seen() {
		if e.Kind == client.EventMessage && strings.HasPrefix(string(e.Msg.Body), "flood ") {
			var i int
			fmt.Sscanf(string(e.Msg.Body), "flood %d", &i)
			if i >= 2*share-1 {
				t.Fatalf("bob got refused message %d", i)
			}
		}
	}
}

// TestGroupMemberCannotFloodAnInbox: a group below the timeline threshold
// stores a copy per member, and each copy counts against its sender's
// share of the member's inbox: mallory flooding a group with absent bob in
// it fills bob's inbox only to her share, so carol's private message is not
// pushed out of it, and mallory is answered SENT for each message (it goes
// on for the other members: router TestGroupCopiesCountAgainstTheShare).
func TestGroupMemberCannotFloodAnInbox(t *testing.T) {
	const share, max, flood = 3, 8, 10
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{
		"--inbox-per-sender", fmt.Sprint(share), "--inbox-max", fmt.Sprint(max)}})
	ctx := ctxT(t)
	mallory, carol, bob := c.Connect(t, "mallory"), c.Connect(t, "carol"), c.Connect(t, "bob")
	gid := openGroup(t, ctx, mallory, "chatter", bob)
	if err := bob.Close(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := carol.Send(ctx, "bob", "from carol")
	if err != nil {
		t.Fatal(err)
	}
	carol.WaitFor(t, 0, wait, "carol's message stored", isSent(first))
	var last string
	for i := range flood {
		cmid, err := mallory.SendGroup(ctx, gid, fmt.Sprint("flood ", i))
		if err != nil {
			t.Fatal(err)
		}
		last = cmid
	}
	mallory.WaitFor(t, 0, wait, "the last group message sent", isSent(last))
	for _, e := range mallory.Seen() {
		if e.Kind == client.EventError {
			t.Fatalf("mallory got %v: a group message goes on for the others", e.Err)
		}
	}
	bob = c.Connect(t, "bob")
	bob.WaitFor(t, 0, wait, "carol's message", harness.IsMessage("from carol"))
	if _, err := carol.Send(ctx, "bob", "carol again"); err != nil {
		t.Fatal(err)
	}
	bob.WaitFor(t, 0, wait, "carol's second message", harness.IsMessage("carol again"))
	var got []int
	for _, e := range bob.Seen() {
		if e.Kind == client.EventMessage && e.Msg.Group == gid {
			var i int
			fmt.Sscanf(string(e.Msg.Body), "flood %d", &i)
			got = append(got, i)
		}
	}
	// What bob's inbox held unread before the flood (carol's message and
	// any group notices) moves the mark; mallory's share comes after it.
	if len(got) < share || len(got) > 2*share || !slices.Equal(got, []int{0, 1, 2, 3, 4, 5}[:len(got)]) {
		t.Fatalf("bob got flood messages %v, want the first %d to %d in order", got, share, 2*share)
	}
}

// TestRepeatedReadsCostRedisOnce (issue 11, points 1 and 3): READs over
// large entries of one's own inbox make Redis send each entry back once,
// not once per READ.
func TestRepeatedReadsCostRedisOnce(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1})
	ctx := ctxT(t)
	conn, r, me := rawLogin(t, c, "reader")
	rdb := redis.NewClient(&redis.Options{Addr: c.Redis.Addr})
	t.Cleanup(func() { rdb.Close() })
	const n, size = 10, 60_000
	for i := range n {
		writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: uint64(i + 1), Msg: &cimpb.Msg{
			ClientMsgId: fmt.Sprint("big-", i), To: me.UserID, Kind: cimpb.Kind_KIND_FILE,
			Body: bytes.Repeat([]byte{'r'}, size), File: &cimpb.FileInfo{Name: "r.bin", Size: size}}})
	}
	read := &cimpb.Read{Peer: me.UserID}
	for len(read.MsgIds) < n {
		if f := readFrame(t, conn, r); f.Type == cimpb.Type_MSG {
			read.MsgIds, read.Seqs = append(read.MsgIds, f.Msg.MsgId), append(read.Seqs, f.Msg.Seq)
		}
	}
	sent := func() int64 {
		t.Helper()
		for _, line := range strings.Split(rdb.Info(ctx, "stats").Val(), "\r\n") {
			if v, ok := strings.CutPrefix(line, "total_net_output_bytes:"); ok {
				var x int64
				fmt.Sscan(v, &x)
				return x
			}
		}
		t.Fatal("no total_net_output_bytes in INFO stats")
		return 0
	}
	before := sent()
	const reads = 20
	for range reads {
		writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_READ, Read: read})
	}
	// Frames are handled in order: once this message is answered, every
	// READ before it was.
	writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 99, Msg: &cimpb.Msg{ClientMsgId: "marker", To: me.UserID, Body: []byte("marker")}})
	for f := readFrame(t, conn, r); f.GetReceipt().GetClientMsgId() != "marker" || f.GetReceipt().GetStatus() != cimpb.ReceiptStatus_RECEIPT_SENT; f = readFrame(t, conn, r) {
	}
	// Each entry once (n × size), plus small change; once per READ would
	// be reads × n × size.
	if got, bound := sent()-before, int64(2*n*size); got > bound {
		t.Fatalf("%d READs over %d entries of %d bytes made Redis send %d bytes, want at most %d", reads, n, size, got, bound)
	}
}
