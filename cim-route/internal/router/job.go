package router

import (
	"fmt"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// maxClientMsgID bounds a client_msg_id: it becomes part of a Redis key.
const maxClientMsgID = 128

// outgoing is one message to route, from an uplink MSG or an HTTP call, and
// what became of it.
type outgoing struct {
	from    string // sender user id
	system  bool   // from is SystemUserID: no account, no receipts
	fromSID string // sender session (uplinks): where its receipt goes
	reqID   uint64
	msg     *cimpb.Msg // as sent; never modified
	// anyone: an application's message (POST /api/push), whose sender need
	// not be a member of the group it goes to.
	anyone bool
	// unshared: not counted against the sender's share of the recipient's
	// inbox (InboxLimits.PerSender): an application's push (POST /api/push),
	// or a delayed message (bounded by Config.DelayPending, and accepted
	// before it falls due).
	unshared bool
	group    *groupSend // set for a group message (msg.Group)

	fromName  string
	toID      string
	mentions  []string // the ids of the members a group message mentions (mentions.go)
	msgID     string
	ts        int64
	stored    *cimpb.Frame // the MSG as stored, with its seq: pushed to toID
	resent    bool         // stored by an earlier attempt (dedup): stored is that copy
	code      codes.Code   // 0 while nothing went wrong
	text      string
	delivered int
}

// fail records the first problem of a message.
func (o *outgoing) fail(c codes.Code, text string) {
	if o.code == 0 {
		o.code, o.text = c, text
	}
}

// err maps a failed message to a sentinel error for the HTTP callers.
func (o *outgoing) err() error {
	switch o.code {
	case 0:
		return nil
	case codes.BadAccount:
		return fmt.Errorf("%w: %s", errs.ErrBadAccount, o.text)
	case codes.NoGroup:
		return fmt.Errorf("%w: %s", errs.ErrNoGroup, o.text)
	case codes.Forbidden:
		return fmt.Errorf("%w: %s", errs.ErrForbidden, o.text)
	case codes.QuotaExceeded:
		return fmt.Errorf("%w: %s", errs.ErrQuotaExceeded, o.text)
	}
	return fmt.Errorf("%w: %s", errs.ErrBadArgument, o.text)
}

// reply is the sender's answer: RECEIPT_SENT (never carrying a seq: it is not
// an inbox entry) or ERROR.
func (o *outgoing) reply() *cimpb.Delivery {
	d := &cimpb.Delivery{UserId: o.from, SessionId: o.fromSID}
	cm := o.msg.GetClientMsgId()
	if o.code != 0 {
		d.Frame = &cimpb.Frame{Type: cimpb.Type_ERROR, ReqId: o.reqID,
			Error: &cimpb.Error{Code: int32(o.code), Text: o.text, ClientMsgId: cm}}
		return d
	}
	d.Frame = &cimpb.Frame{Type: cimpb.Type_RECEIPT, ReqId: o.reqID,
		Receipt: &cimpb.Receipt{Status: cimpb.ReceiptStatus_RECEIPT_SENT, MsgId: o.msgID, ClientMsgId: cm, TimestampMs: o.ts}}
	if g := o.group; g != nil {
		d.Frame.Receipt.Group = o.msg.Group
		d.Frame.Receipt.Count = uint32(len(g.recipients))
	}
	return d
}

// dedupKey is the key a resend of o is recognised by in an inbox,
// "<sender>:<clientMsgId>"; empty without a client message id.
func (o *outgoing) dedupKey() string {
	if cm := o.msg.GetClientMsgId(); cm != "" {
		return o.from + ":" + cm
	}
	return ""
}

// groupOf is o's group send, nil for nil o or a message to no group.
func (o *outgoing) groupOf() *groupSend {
	if o == nil {
		return nil
	}
	return o.group
}

// downlink is the MSG a recipient gets; to is empty for a broadcast, whose
// one frame is shared by all its deliveries.
func (o *outgoing) downlink(to string) *cimpb.Frame {
	m := o.msg
	return &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{
		ClientMsgId: m.ClientMsgId, MsgId: o.msgID, From: o.from, FromName: o.fromName,
		To: to, Group: m.Group, Body: m.Body, Kind: m.Kind, TimestampMs: o.ts,
		Broadcast: m.Broadcast, File: m.File, Op: m.Op, RefMsgId: m.RefMsgId, ReplyTo: m.ReplyTo,
		Mentions: o.mentions,
	}}
}

// entry is one frame to append to an inbox: a private message (msg set,
// frame), a group message (msg set, raw: the one encoding every member's
// entry shares) or a receipt (frame). Once stored, frame carries its seq and
// is pushed live.
type entry struct {
	to    string
	msg   *outgoing
	frame *cimpb.Frame
	raw   []byte
	// copy: the sender's own copy of a private message (msg), for its
	// other devices (--login-policy platform); stored after the message,
	// and only if it is (appendCopies).
	copy bool
}

// live is a stored receipt to push to a user if online.
type live struct {
	uid   string
	frame *cimpb.Frame
}

// target says which user and session a delivery belongs to; a gateway's
// targets are aligned with its deliveries.
type target struct {
	item     int
	uid, sid string
	// many: this entry stands for these targets (a timeline message's
	// members on that gateway, one packed delivery); uid and sid unused.
	many []target
}

// size is how many of the gateway's targets t stands for.
func (t target) size() int {
	if t.many != nil {
		return len(t.many)
	}
	return 1
}

// at returns the user and session of t's k-th target.
func (t target) at(k int) (uid, sid string) {
	if t.many != nil {
		return t.many[k].uid, t.many[k].sid
	}
	return t.uid, t.sid
}

// job is the work of one uplink batch or HTTP send, done in phases so every
// phase is one Redis round trip for the whole batch (per thousand keys):
// resolve names, read group members, claim group messages, read the
// acknowledged ranges, append everything to the inboxes, mark group messages
// done, count group receipts, raise the acks, read the synced ranges, read
// the routes, then one /push per gateway.
type job struct {
	r   *Router
	now time.Time
	ts  int64

	msgs   []*outgoing
	groups []*outgoing // the group messages among msgs
	turn   *turn       // its place in its timeline groups' delivery order (order.go)
	syncs  []*syncReq
	acks   []*ackReq
	reads  []*readReq
	// gacks: the batch's group timeline acknowledgements, one per (group,
	// member), at gackAt.
	gacks  []model.GroupPos
	gackAt map[model.MemberRef]int

	idName, nameID     map[string]string
	needIDs, needNames []string

	entries []entry
	live    []live
	// receipts are the group receipts of the batch, one per (sender,
	// msgId, status), in the order first seen.
	receipts  []*groupReceipt
	receiptOf map[receiptKey]*groupReceipt
	// receiptFor: the private receipts of the batch, one per (sender,
	// reader, status); see addReceipt.
	receiptFor map[privateReceipt]*cimpb.Receipt

	// acksRaised: the acks went with the appends.
	acksRaised bool
	// routes were read with the appends, for the users in routed (a user
	// without a route is absent from routes but present in routed).
	routes map[string]model.Route
	routed []string
}

func (r *Router) newJob() *job {
	now := r.now()
	return &job{r: r, now: now, ts: now.UnixMilli()}
}
