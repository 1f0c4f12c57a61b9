package clienttest

import (
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/proto/cimpb"
)

// DefaultPage is the fake's SYNC page size, the route's default.
const DefaultPage = 200

// Inbox is a fake of one user's inbox at the route: entries numbered by a
// seq that only grows, an acknowledged seq, trimming of the oldest entries
// and SYNC answers, as docs/ARCHITECTURE.md describes them. Tests append
// entries and decide themselves whether to push them live (Conn.Send);
// Gateway.SetInbox makes a gateway answer SYNCs and take ACKs from it.
type Inbox struct {
	mu      sync.Mutex
	entries []*cimpb.Frame // seq order, oldest first
	head    uint64
	acked   uint64
	page    int
	syncs   []*cimpb.Sync
	stamped int64 // entries appended ever, for their timestamps
}

// NewInbox returns an empty inbox answering SYNCs with pages of
// DefaultPage entries.
func NewInbox() *Inbox { return &Inbox{page: DefaultPage} }

// LoseTail drops every entry above seq and sets the head back to it, as
// Redis does when it loses the tail of what it acknowledged: the next
// Append reuses seq+1.
func (in *Inbox) LoseTail(seq uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for len(in.entries) > 0 && in.entries[len(in.entries)-1].GetMsg().GetSeq() > seq {
		in.entries = in.entries[:len(in.entries)-1]
	}
	in.head = min(in.head, seq)
}

// SetPage changes the SYNC page size.
func (in *Inbox) SetPage(n int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.page = n
}

// Append stores a copy of a MSG or RECEIPT frame with the next seq and
// returns the stored copy (seq set), ready to push. A frame without a
// timestamp gets one unique to this inbox, as the route stamps entries.
func (in *Inbox) Append(f *cimpb.Frame) *cimpb.Frame {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.head++
	in.stamped++
	c := proto.Clone(f).(*cimpb.Frame)
	switch {
	case c.Msg != nil:
		c.Msg.Seq = in.head
		if c.Msg.TimestampMs == 0 {
			c.Msg.TimestampMs = stampBase + in.stamped
		}
	case c.Receipt != nil:
		c.Receipt.Seq = in.head
		if c.Receipt.TimestampMs == 0 {
			c.Receipt.TimestampMs = stampBase + in.stamped
		}
	}
	in.entries = append(in.entries, c)
	return c
}

// Trim drops the n oldest entries, as the route's length and age limits do.
func (in *Inbox) Trim(n int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.entries = in.entries[min(n, len(in.entries)):]
}

// Ack raises the acknowledged seq, as an ACK uplink does.
func (in *Inbox) Ack(seq uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.acked = max(in.acked, seq)
}

// Acked is the acknowledged seq.
func (in *Inbox) Acked() uint64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.acked
}

// Head is the newest seq.
func (in *Inbox) Head() uint64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.head
}

// Syncs returns the SYNC requests answered so far.
func (in *Inbox) Syncs() []*cimpb.Sync {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]*cimpb.Sync(nil), in.syncs...)
}

// Answer is the route's answer to a SYNC request: the entries with seq in
// (after, after+page] (after raised to the acknowledged seq with
// from_acked), then one SYNC frame saying what the answer covered.
func (in *Inbox) Answer(req *cimpb.Sync) []*cimpb.Frame {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.syncs = append(in.syncs, proto.Clone(req).(*cimpb.Sync))
	after := req.GetAfterSeq()
	if req.GetFromAcked() {
		after = max(after, in.acked)
	}
	limit := uint64(in.page)
	if l := uint64(req.GetLimit()); l > 0 && l < limit {
		limit = l
	}
	ans := &cimpb.Sync{AfterSeq: after, HeadSeq: in.head, FirstSeq: in.head + 1}
	for _, f := range in.entries {
		if seqOf(f) == after {
			ans.AfterTsMs = f.GetMsg().GetTimestampMs() + f.GetReceipt().GetTimestampMs()
		}
	}
	if len(in.entries) > 0 {
		ans.FirstSeq = seqOf(in.entries[0])
	}
	var out []*cimpb.Frame
	for _, f := range in.entries {
		if s := seqOf(f); s > after && s <= after+limit {
			out = append(out, proto.Clone(f).(*cimpb.Frame))
			ans.LastSeq = s
		}
	}
	return append(out, &cimpb.Frame{Type: cimpb.Type_SYNC, Sync: ans})
}

// stampBase is where the timestamps Append gives start (unix ms, 2026).
const stampBase = 1_780_000_000_000

func seqOf(f *cimpb.Frame) uint64 {
	if f.Msg != nil {
		return f.Msg.Seq
	}
	return f.Receipt.GetSeq()
}

// TextMsg is an inbox MSG frame from a peer, for Append.
func TextMsg(msgID, from, fromName, text string) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{
		MsgId: msgID, From: from, FromName: fromName, Body: []byte(text), Kind: cimpb.Kind_KIND_TEXT,
	}}
}

// ReceiptFrame is a RECEIPT frame, for Append (DELIVERED, READ) or to
// answer a MSG directly (SENT).
func ReceiptFrame(st cimpb.ReceiptStatus, msgID, clientMsgID, by string) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_RECEIPT, Receipt: &cimpb.Receipt{
		Status: st, MsgId: msgID, ClientMsgId: clientMsgID, By: by,
	}}
}
