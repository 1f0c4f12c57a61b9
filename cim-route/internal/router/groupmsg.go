package router

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/cim-route/internal/ratelimit"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// groupSend is the fan-out of one group message (docs/ARCHITECTURE.md,
// "Group message flow").
type groupSend struct {
	recipients []string // every member but the sender
	// claimed: this attempt holds the sender's gdedup key ("pending") and
	// marks it "done" once every entry is stored.
	claimed bool
	// again: an earlier attempt claimed it and died before it was done:
	// its copies are stored only where that one's are not (model.Append.Once).
	again bool
	// sent: an earlier attempt (or an earlier copy in this batch) stored it
	// everywhere; the sender only gets its RECEIPT_SENT again.
	sent   bool
	stored []member // the entries appended, with their seqs
	// echo: the sender gets the message too: in a group without a
	// timeline, a copy in its inbox (whatever the login policy: the group's
	// history is read from the member's inbox, so without it what one sent
	// would be missing from one's history); in one with a timeline, which
	// history reads, the live push to its other devices (--login-policy
	// platform).
	echo bool
	// timeline: the group is large enough to store the message once, in
	// its timeline (timeline.go), at gseq.
	timeline bool
	gseq     uint64
}

// member is one stored copy of a group message.
type member struct {
	uid string
	seq uint64
}

// prepareGroup checks the shape of a group message: it names a group and
// nobody else.
func (j *job) prepareGroup(it *outgoing) {
	switch m := it.msg; {
	case m.To != "" || m.Broadcast:
		it.fail(codes.BadArgument, "a group message has no to and no broadcast")
	case !isID(m.Group):
		it.fail(j.noGroup(it))
	default:
		it.group = &groupSend{}
		j.groups = append(j.groups, it)
	}
}

// noGroup is the failure for a group that does not exist: for a user it is
// the same as not being a member (contract step 1); an application learns
// the group is unknown.
func (j *job) noGroup(it *outgoing) (codes.Code, string) {
	if it.anyone {
		return codes.NoGroup, "unknown group " + strconv.Quote(it.msg.Group)
	}
	return codes.Forbidden, "not a member of group " + strconv.Quote(it.msg.Group)
}

// loadGroups reads, in one round trip, the members of every group a
// message of the batch goes to, and whether each group READ's reader is a
// member. A sender who is not a member fails with 4030.
func (j *job) loadGroups(ctx context.Context) error {
	var gids []string
	for _, it := range j.groups {
		if it.code == 0 && !slices.Contains(gids, it.msg.Group) {
			gids = append(gids, it.msg.Group)
		}
	}
	var checks []model.MemberRef
	var checked []*readReq
	for _, rd := range j.reads {
		if rd.group != "" && rd.peerID != "" && isID(rd.group) {
			checks = append(checks, model.MemberRef{Group: rd.group, User: rd.uid})
			checked = append(checked, rd)
		}
	}
	if len(gids)+len(checks) == 0 {
		return nil
	}
	members, isMember, err := j.r.st.GroupMembers(ctx, gids, checks)
	if err != nil {
		return err
	}
	for i, rd := range checked {
		rd.member = isMember[i]
	}
	for _, it := range j.groups {
		if it.code != 0 {
			continue
		}
		ms := members[it.msg.Group]
		in := slices.Contains(ms, it.from)
		switch {
		case len(ms) == 0: // the owner is always a member: no group
			it.fail(j.noGroup(it))
		case !in && !it.anyone:
			it.fail(codes.Forbidden, "not a member of group "+strconv.Quote(it.msg.Group))
		default:
			rcpt := make([]string, 0, len(ms))
			for _, m := range ms {
				if m != it.from {
					rcpt = append(rcpt, m)
				}
			}
			it.group.recipients = rcpt
			it.keepMembers(ms)
			it.group.timeline = j.r.usesTimeline(len(ms))
			it.group.echo = in && !it.system && (j.r.devices() || !it.group.timeline)
		}
	}
	return j.chargeGroups(ctx)
}

// chargeGroups takes each message to a group from its sender's budgets, one
// unit per recipient: a group without a timeline stores the message once
// per member (Limits.GroupCopiesPerSecond), so one user at --msg-rate could
// otherwise store thousands of entries a second; a group with one stores it
// once but delivers it to every member (Limits.GroupPushesPerSecond), so
// one member of a 5,000-member group at --msg-rate could otherwise make
// 100,000 deliveries a second, a large part of what the cluster delivers.
// Applications' and the system's messages are not charged.
func (j *job) chargeGroups(ctx context.Context) error {
	if err := j.charge(ctx, j.r.copies, false, "too many group messages for now: each is stored for every member; send fewer"); err != nil {
		return err
	}
	return j.charge(ctx, j.r.pushes, true, "too many messages to large groups for now: each goes to every member; send fewer")
}

// charge takes the batch's messages to groups with (timeline) or without a
// timeline from their senders' budgets in lim, one unit per recipient. A
// sender's messages of the batch are charged at once (one Redis call), one
// by one only when together they are over. A message over the budget fails
// for good with text (4293; a retry later could overtake the sender's next
// messages to the group).
func (j *job) charge(ctx context.Context, lim *ratelimit.Limiter, timeline bool, text string) error {
	if lim == nil {
		return nil
	}
	var senders []string
	bySender := map[string][]*outgoing{}
	for _, it := range j.groups {
		if it.code != 0 || it.group.timeline != timeline || it.anyone || it.system || len(it.group.recipients) == 0 {
			continue
		}
		if bySender[it.from] == nil {
			senders = append(senders, it.from)
		}
		bySender[it.from] = append(bySender[it.from], it)
	}
	take := func(n int, uid string) (bool, error) {
		wait, err := lim.AllowN(ctx, n, uid)
		if err != nil {
			return false, fmt.Errorf("%w: %v", errs.ErrUnavailable, err)
		}
		return wait == 0, nil
	}
	for _, uid := range senders {
		its, total := bySender[uid], 0
		for _, it := range its {
			total += len(it.group.recipients)
		}
		ok, err := take(total, uid)
		if err != nil {
			return err
		}
		if ok {
			continue
		}
		// Over as a whole: one by one, in order (a single one is just over).
		for _, it := range its {
			if len(its) > 1 {
				if ok, err = take(len(it.group.recipients), uid); err != nil {
					return err
				}
			}
			if !ok {
				it.fail(codes.QuotaExceeded, text)
			}
		}
	}
	return nil
}

// claimGroupMessages claims the senders' gdedup keys (one round trip). A key
// found "done" makes the message a resend: SENT again with the first msgId,
// nothing stored. One found "pending" (an attempt that died mid-fan-out)
// fans out again with the first msgId: a member whose inbox holds that id
// among its newest entries gets no second copy (model.Append.Once), only
// the push again, and a timeline's entry carries a dedup key anyway;
// members' clients drop the msgId they already showed. The same (sender,
// clientMsgId) twice in one batch is stored once.
func (j *job) claimGroupMessages(ctx context.Context) error {
	type key struct{ from, cmid string }
	var ds []model.GroupDedup
	var claiming []*outgoing
	first := map[key]*outgoing{}
	var copies []*outgoing
	for _, it := range j.groups {
		cm := it.msg.ClientMsgId
		if it.code != 0 || cm == "" {
			continue
		}
		k := key{it.from, cm}
		if first[k] != nil {
			copies = append(copies, it)
			continue
		}
		first[k] = it
		ds = append(ds, model.GroupDedup{Sender: it.from, ClientMsgID: cm, MsgID: it.msgID})
		claiming = append(claiming, it)
	}
	if len(ds) == 0 {
		return nil
	}
	claims, err := j.r.st.ClaimGroupMessages(ctx, ds)
	if err != nil {
		return err
	}
	for i, it := range claiming {
		c := claims[i]
		switch {
		case c.Claimed:
			it.group.claimed = true
		case c.State == model.GroupDone:
			it.msgID, it.group.sent = c.MsgID, true
		default: // pending: fan out again, under the first id
			it.msgID, it.group.claimed, it.group.again = c.MsgID, true, true
		}
	}
	for _, it := range copies {
		f := first[key{it.from, it.msg.ClientMsgId}]
		it.msgID, it.group.sent = f.msgID, true
	}
	return nil
}

// queueGroup queues a group message for every recipient: one encoding of
// the frame (no seq) shared by all the entries.
func (j *job) queueGroup(it *outgoing) {
	g := it.group
	if g.sent || len(g.recipients) == 0 {
		return
	}
	j.r.observer().GroupFanout(len(g.recipients))
	raw, err := proto.Marshal(it.downlink(""))
	if err != nil { // cannot happen for a Msg built here
		it.fail(codes.BadArgument, "message does not encode: "+err.Error())
		return
	}
	if g.timeline {
		j.entries = append(j.entries, entry{to: model.TimelineID(it.msg.Group), msg: it, raw: raw})
		return
	}
	g.stored = make([]member, 0, len(g.recipients)+1)
	for _, m := range g.recipients {
		j.entries = append(j.entries, entry{to: m, msg: it, raw: raw})
	}
	if g.echo {
		j.entries = append(j.entries, entry{to: it.from, msg: it, raw: raw})
	}
}

// finishGroupMessages marks the claimed group messages done, now that every
// copy is stored (one round trip).
func (j *job) finishGroupMessages(ctx context.Context) error {
	var ds []model.GroupDedup
	for _, it := range j.groups {
		if it.code == 0 && it.group.claimed {
			ds = append(ds, model.GroupDedup{Sender: it.from, ClientMsgID: it.msg.ClientMsgId, MsgID: it.msgID})
		}
	}
	return j.r.st.FinishGroupMessages(ctx, ds)
}

// receiptKey names one group receipt of a batch.
type receiptKey struct {
	sender, msgID string
	read          bool
}

// groupReceipt is the members of a batch that received (or read) one group
// message; the sender gets one live RECEIPT for them all, with the count.
type groupReceipt struct {
	receiptKey
	group   string
	members []string
	by      string // the last of members: the receipt names one
	count   int
}

// addGroupReceipt notes that by received or read sender's message msgID
// of group gid.
func (j *job) addGroupReceipt(sender, msgID, gid, by string, read bool) {
	if sender == by || sender == SystemUserID || msgID == "" || len(msgID) > maxMsgID {
		return
	}
	k := receiptKey{sender, msgID, read}
	rc := j.receiptOf[k]
	if rc == nil {
		if j.receiptOf == nil {
			j.receiptOf = map[receiptKey]*groupReceipt{}
		}
		rc = &groupReceipt{receiptKey: k, group: gid}
		j.receiptOf[k] = rc
		j.receipts = append(j.receipts, rc)
	}
	if !slices.Contains(rc.members, by) {
		rc.members = append(rc.members, by)
	}
	rc.by = by
}

// storeGroupReceipts adds the batch's group receipts to the grd / grr sets
// (one round trip) and queues one live RECEIPT per (msgId, status) with the
// set's size for each sender; these receipts are not stored in inboxes.
func (j *job) storeGroupReceipts(ctx context.Context) error {
	if len(j.receipts) == 0 {
		return nil
	}
	rs := make([]model.GroupReceipt, len(j.receipts))
	for i, rc := range j.receipts {
		rs[i] = model.GroupReceipt{Sender: rc.sender, MsgID: rc.msgID, Read: rc.read, Members: rc.members}
	}
	counts, err := j.r.st.AddGroupReceipts(ctx, rs)
	if err != nil {
		return err
	}
	for i, rc := range j.receipts {
		rc.count = counts[i]
		status := cimpb.ReceiptStatus_RECEIPT_DELIVERED
		if rc.read {
			status = cimpb.ReceiptStatus_RECEIPT_READ
		}
		j.live = append(j.live, live{uid: rc.sender, frame: &cimpb.Frame{Type: cimpb.Type_RECEIPT, Receipt: &cimpb.Receipt{
			Status: status, MsgId: rc.msgID, Group: rc.group, Count: uint32(max(rc.count, 0)), By: rc.by, TimestampMs: j.ts,
		}}})
	}
	return nil
}
