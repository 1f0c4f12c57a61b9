package router

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/proto/cimpb"
)

const (
	// ackPage is how many acknowledged entries are read per round trip.
	ackPage = 1000
	// maxReadIDs bounds the msg ids of one READ frame counted; more are
	// ignored (the SDK sends at most this many per READ).
	maxReadIDs = 100
	// maxMsgID bounds a msgId taken from a client (route ids are 32 hex
	// digits).
	maxMsgID = 64
)

// syncReq is a SYNC uplink and, once read, its answer.
type syncReq struct {
	uid, sid string
	reqID    uint64
	req      *cimpb.Sync
	limit    int
	res      model.Range

	// A group SYNC (timeline.go): the group, whether uid is a member, and
	// its place there. A login SYNC: the timeline groups to list.
	group  string
	member bool
	pos    model.TimelinePos
	groups []*cimpb.GroupSeq
}

// ackReq is the highest ACK of one user in a batch.
type ackReq struct {
	uid    string
	seq    uint64
	target uint64 // seq, at most the inbox head: what ack:{uid} is raised to
	acked  uint64 // ack:{uid} before
}

// readReq is a READ uplink.
type readReq struct {
	uid    string
	peer   string // id or name, as sent
	peerID string
	ids    []string
	seqs   []uint64 // the reader's inbox seqs of ids, aligned with them
	group  string   // the messages came through this group
	member bool     // uid is a member of group (checked by loadGroups)
}

// ackedEntries reads the entries each ACK covers, (ack:{uid}, seq], and
// queues a RECEIPT_DELIVERED to the sender of every private message among
// them, and a group receipt for every group message. Receipts (and
// broadcasts, never stored) produce none, and so do messages from the
// system user.
func (j *job) ackedEntries(ctx context.Context) error {
	if len(j.acks) == 0 {
		return nil
	}
	cur := j.acks
	qs := make([]model.RangeQuery, len(cur))
	for i, a := range cur {
		qs[i] = model.RangeQuery{UserID: a.uid, FromAcked: true, Upto: a.seq, Limit: ackPage}
	}
	first := true
	for len(qs) > 0 {
		res, err := j.r.st.Ranges(ctx, qs)
		if err != nil {
			return err
		}
		var next []*ackReq
		var nextQ []model.RangeQuery
		for i, rg := range res {
			a := cur[i]
			if first {
				a.acked, a.target = rg.Acked, min(a.seq, rg.Head)
			}
			for _, e := range rg.Entries {
				j.deliveredReceipt(a.uid, e)
			}
			// A range stops at ackPage entries or at its byte bound.
			if n := len(rg.Entries); n > 0 && rg.Entries[n-1].Seq < a.target {
				next = append(next, a)
				nextQ = append(nextQ, model.RangeQuery{UserID: a.uid, After: rg.Entries[n-1].Seq, Upto: a.target, Limit: ackPage})
			}
		}
		cur, qs, first = next, nextQ, false
	}
	return nil
}

func (j *job) deliveredReceipt(by string, e model.Entry) {
	m, ok := peekMsg(e.Frame)
	if !ok {
		return // a receipt entry, or nothing decodable
	}
	if m.from == "" || m.from == SystemUserID || m.broadcast || m.msgID == "" {
		return // the system user has no inbox: it gets no receipts
	}
	if m.from == by {
		return // the user's copy of its own message (another device sent it)
	}
	if m.group != "" {
		j.addGroupReceipt(m.from, m.msgID, m.group, by, false)
		return
	}
	j.addReceipt(m.from, by, cimpb.ReceiptStatus_RECEIPT_DELIVERED, m.msgID, m.clientMsgID)
}

// privateReceipt names the one receipt entry a batch stores for a sender:
// all the messages one user acknowledged (or read) of that sender.
type privateReceipt struct {
	to, by string
	status cimpb.ReceiptStatus
	// peer, group: what a reader's own READ receipt is about (addSelfRead).
	peer, group string
}

// maxReceiptItems bounds the messages one receipt entry covers: 200 items
// of a 32-byte msgId and a clientMsgId of at most 128 bytes stay far below
// a client's 64 KiB frame. A smaller --max-frame lowers it (receiptItems).
const maxReceiptItems = 200

// receiptItemRoom is the most one item adds to a receipt: a msgId of
// maxMsgID bytes and a clientMsgId of maxClientMsgID, with their tags and
// lengths; receiptRoom is the rest of a receipt frame (status, by, ts,
// seq, group, count).
const (
	receiptItemRoom = maxMsgID + maxClientMsgID + 8
	receiptRoom     = 512
)

// receiptItems is how many items one receipt entry may carry so that it
// fits a frame of maxFrame bytes.
func receiptItems(maxFrame int) int {
	return min(maxReceiptItems, max(1, (maxFrame-receiptRoom)/receiptItemRoom))
}

// addReceipt queues a DELIVERED or READ receipt for message msgID of user
// to, by user by. The receipts a batch produces for one sender from one
// user go into one inbox entry (Receipt.items), so acknowledging ten
// messages of one sender stores and pushes one receipt, not ten.
func (j *job) addReceipt(to, by string, status cimpb.ReceiptStatus, msgID, clientMsgID string) {
	j.queueReceipt(privateReceipt{to: to, by: by, status: status}, msgID, clientMsgID)
}

// addSelfRead queues, for the reader's other devices (--login-policy
// platform), a RECEIPT_READ by the reader itself naming the message of peer
// (or of group) that it read: they clear their unread state. One entry per
// conversation of a batch, as addReceipt.
func (j *job) addSelfRead(reader, peer, group, msgID string) {
	k := privateReceipt{to: reader, by: reader, status: cimpb.ReceiptStatus_RECEIPT_READ, peer: peer, group: group}
	if group != "" {
		k.peer = ""
	}
	j.queueReceipt(k, msgID, "")
}

func (j *job) queueReceipt(k privateReceipt, msgID, clientMsgID string) {
	to, by, status := k.to, k.by, k.status
	if rc := j.receiptFor[k]; rc != nil && len(rc.Items) < receiptItems(j.r.cfg.MaxFrame) {
		if len(rc.Items) == 0 { // the second message: both become items
			rc.Items = append(rc.Items, &cimpb.ReceiptItem{MsgId: rc.MsgId, ClientMsgId: rc.ClientMsgId})
			rc.MsgId, rc.ClientMsgId = "", ""
		}
		rc.Items = append(rc.Items, &cimpb.ReceiptItem{MsgId: msgID, ClientMsgId: clientMsgID})
		return
	}
	rc := &cimpb.Receipt{Status: status, MsgId: msgID, ClientMsgId: clientMsgID, By: by, TimestampMs: j.ts, Peer: k.peer, Group: k.group}
	if j.receiptFor == nil {
		j.receiptFor = map[privateReceipt]*cimpb.Receipt{}
	}
	j.receiptFor[k] = rc
	j.entries = append(j.entries, entry{to: to, frame: &cimpb.Frame{Type: cimpb.Type_RECEIPT, Receipt: rc}})
}

// readReceipts queues a RECEIPT_READ for each message a READ names that
// the reader really received from its peer (one entry per peer and reader,
// see addReceipt) or, for a READ of group messages, a group receipt. Each
// msgId must come with the reader's inbox seq of it: the entry there must be
// a MSG with that msgId from that peer (through that group), and each entry
// counts once, so a READ can neither invent receipts for messages never
// received nor repeat them. A READ naming no existing user is dropped, and
// so is a group READ by a non-member.
func (j *job) readReceipts(ctx context.Context) error {
	var qs []model.ReadQuery
	var rds []*readReq
	for _, rd := range j.reads {
		if rd.peerID == "" || rd.peerID == SystemUserID {
			j.r.log.Debug("READ for an unknown peer dropped", "user", rd.uid, "peer", rd.peer)
			continue
		}
		if rd.group != "" && !rd.member {
			j.r.log.Debug("group READ by a non-member dropped", "user", rd.uid, "group", rd.group)
			continue
		}
		q := model.ReadQuery{UserID: rd.uid}
		for i, id := range rd.ids {
			if len(q.MsgIDs) == maxReadIDs || i >= len(rd.seqs) {
				break
			}
			if !isMsgID(id) || rd.seqs[i] == 0 || containsBefore(rd.ids, i) {
				continue
			}
			q.MsgIDs = append(q.MsgIDs, id)
			q.Seqs = append(q.Seqs, rd.seqs[i])
		}
		if len(q.MsgIDs) == 0 {
			j.r.log.Debug("READ naming no inbox entry dropped", "user", rd.uid, "peer", rd.peer)
			continue
		}
		qs, rds = append(qs, q), append(rds, rd)
	}
	if len(qs) == 0 {
		return nil
	}
	// Each entry is claimed once, before it is checked (see
	// store.ClaimReads): only entries that are what the READ says count.
	claimed, err := j.r.st.ClaimReads(ctx, qs)
	if err != nil {
		return err
	}
	for i, rd := range rds {
		for k, e := range claimed[i] {
			id := qs[i].MsgIDs[k]
			if e.Seq == 0 {
				continue // not there, not that message, or read before
			}
			h, ok := peekMsg(e.Frame)
			if !ok || h.msgID != id || h.from != rd.peerID || h.group != rd.group || h.broadcast {
				continue
			}
			if j.r.devices() {
				j.addSelfRead(rd.uid, rd.peerID, rd.group, id)
			}
			if rd.group != "" {
				j.addGroupReceipt(rd.peerID, id, rd.group, rd.uid, true)
				continue
			}
			j.addReceipt(rd.peerID, rd.uid, cimpb.ReceiptStatus_RECEIPT_READ, id, "")
		}
	}
	return nil
}

// containsBefore reports whether ids[i] occurs in ids[:i]. READ frames carry
// a handful of ids; a quadratic scan beats a map for those, and long ones are
// rare (bounded by maxReadIDs).
func containsBefore(ids []string, i int) bool {
	for _, id := range ids[:i] {
		if id == ids[i] {
			return true
		}
	}
	return false
}

// acksToRaise are the acks of the batch that move ack:{uid} up.
func (j *job) acksToRaise() []model.Ack {
	var raise []model.Ack
	for _, a := range j.acks {
		if a.target > a.acked {
			raise = append(raise, model.Ack{UserID: a.uid, Seq: a.target})
		}
	}
	return raise
}

// raiseAcks raises ack:{uid} of every ACK once its receipts are stored,
// unless that happened with the appends.
func (j *job) raiseAcks(ctx context.Context) error {
	if j.acksRaised {
		return nil
	}
	return j.r.st.RaiseAcks(ctx, j.acksToRaise())
}

// readSyncs reads the ranges the SYNCs ask for (after this batch's appends).
func (j *job) readSyncs(ctx context.Context) error {
	if len(j.syncs) == 0 {
		return nil
	}
	if err := j.timelineSyncs(ctx); err != nil {
		return err
	}
	qs := make([]model.RangeQuery, 0, len(j.syncs))
	var read []*syncReq
	for _, s := range j.syncs {
		s.limit = j.r.cfg.SyncLimit
		if l := int(s.req.GetLimit()); l > 0 && l < s.limit {
			s.limit = l
		}
		switch {
		case s.group == "":
			qs = append(qs, model.RangeQuery{UserID: s.uid, After: s.req.GetAfterSeq(), FromAcked: s.req.GetFromAcked(), Limit: s.limit, AfterTS: true})
		case s.member:
			qs = append(qs, s.timelineQuery())
		default:
			continue // a non-member's group SYNC reads nothing
		}
		read = append(read, s)
	}
	if len(qs) == 0 {
		return nil
	}
	res, err := j.r.st.Ranges(ctx, qs)
	if err != nil {
		return err
	}
	for i, s := range read {
		s.res = res[i]
	}
	return nil
}

// answer appends the SYNC's answer for its session: the entries as MSG or
// RECEIPT frames with seq, then one SYNC frame saying what was covered.
func (s *syncReq) answer(out []*cimpb.Delivery, maxFrame int) []*cimpb.Delivery {
	if s.group != "" {
		return s.timelineAnswer(out, maxFrame)
	}
	var last uint64
	for _, e := range s.res.Entries {
		// last covers entries left out too (undecodable, or stored before
		// sizes were checked and too large for a client): the client moves
		// past them instead of asking for them again.
		last = e.Seq
		if f := decodeEntry(e); f != nil && proto.Size(f) <= maxFrame {
			out = append(out, &cimpb.Delivery{UserId: s.uid, SessionId: s.sid, Frame: f})
		}
	}
	return append(out, &cimpb.Delivery{UserId: s.uid, SessionId: s.sid, Frame: &cimpb.Frame{
		Type: cimpb.Type_SYNC, ReqId: s.reqID, Sync: &cimpb.Sync{
			AfterSeq: s.res.After, Limit: uint32(s.limit), HeadSeq: s.res.Head, FirstSeq: s.res.First, LastSeq: last,
			AfterTsMs: s.res.AfterTS, Groups: s.groups,
		},
	}})
}

// decodeEntry returns a stored entry's frame with its seq set, nil if it
// does not decode.
func decodeEntry(e model.Entry) *cimpb.Frame {
	f := &cimpb.Frame{}
	if proto.Unmarshal(e.Frame, f) != nil {
		return nil
	}
	if !setSeq(f, e.Seq) {
		return nil
	}
	return f
}

// setSeq sets the inbox seq of a MSG or RECEIPT frame; false for anything
// else.
func setSeq(f *cimpb.Frame, seq uint64) bool {
	switch {
	case f.Type == cimpb.Type_MSG && f.Msg != nil:
		f.Msg.Seq = seq
	case f.Type == cimpb.Type_RECEIPT && f.Receipt != nil:
		f.Receipt.Seq = seq
	default:
		return false
	}
	return true
}
