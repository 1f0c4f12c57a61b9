package router

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/fanout"
	"github.com/gocim/gocim/cim-route/internal/store"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// outgoing is one message to route, from an uplink MSG or an HTTP call, and
// what became of it.
type outgoing struct {
	from    string // sender user id
	fromSID string // sender session (uplinks): where its receipt goes
	reqID   uint64
	msg     *cimpb.Msg // as sent; never modified

	fromName  string
	toID      string
	msgID     string
	ts        int64
	code      codes.Code // 0 while nothing went wrong
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
	case codes.Offline:
		return fmt.Errorf("%w: %s", errs.ErrOffline, o.text)
	case codes.BadAccount:
		return fmt.Errorf("%w: %s", errs.ErrBadAccount, o.text)
	}
	return fmt.Errorf("%w: %s", errs.ErrBadArgument, o.text)
}

// reply is the sender's answer: RECEIPT_SENT or ERROR.
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
	return d
}

// downlink is the MSG a recipient gets; to is empty for a broadcast, whose
// one frame is shared by all its deliveries.
func (o *outgoing) downlink(to string) *cimpb.Frame {
	m := o.msg
	return &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{
		ClientMsgId: m.ClientMsgId, MsgId: o.msgID, From: o.from, FromName: o.fromName,
		To: to, Group: m.Group, Body: m.Body, Kind: m.Kind, TimestampMs: o.ts,
		Broadcast: m.Broadcast, File: m.File,
	}}
}

// target says which message and session a delivery belongs to; a gateway's
// targets are aligned with its deliveries.
type target struct {
	item     int
	uid, sid string
}

// Uplink routes the frames a gateway forwarded and returns the answers for
// their senders. MSG is routed; ACK, READ and SYNC are accepted and ignored
// until inboxes exist. An error (storage unavailable) means nothing was
// delivered, so the gateway may retry the whole batch.
func (r *Router) Uplink(ctx context.Context, b *cimpb.UplinkBatch) (*cimpb.PushBatch, error) {
	items := make([]*outgoing, 0, len(b.GetUplinks()))
	for _, up := range b.GetUplinks() {
		f := up.GetFrame()
		if f == nil || up.GetUserId() == "" {
			continue // nobody to answer
		}
		if f.Type == cimpb.Type_MSG {
			items = append(items, &outgoing{from: up.UserId, fromSID: up.SessionId, reqID: f.ReqId, msg: f.Msg})
		}
	}
	if err := r.route(ctx, items); err != nil {
		return nil, err
	}
	out := &cimpb.PushBatch{Deliveries: make([]*cimpb.Delivery, len(items))}
	for i, it := range items {
		out.Deliveries[i] = it.reply()
	}
	return out, nil
}

// P2P sends a text message from one user to another (POST /p2pRoute); to is
// a user id or name. It returns the message id.
func (r *Router) P2P(ctx context.Context, from, to, text string) (string, error) {
	if err := checkUserID("userId", from); err != nil {
		return "", err
	}
	if to == "" {
		return "", fmt.Errorf("%w: receiveUserId is required", errs.ErrBadArgument)
	}
	if text == "" {
		return "", fmt.Errorf("%w: msg is required", errs.ErrBadArgument)
	}
	it := &outgoing{from: from, msg: &cimpb.Msg{To: to, Body: []byte(text), Kind: cimpb.Kind_KIND_TEXT}}
	if err := r.route(ctx, []*outgoing{it}); err != nil {
		return "", err
	}
	return it.msgID, it.err()
}

// Broadcast sends a text message to everybody online but the sender (POST
// /groupRoute). It returns the message id and how many connections got it.
func (r *Router) Broadcast(ctx context.Context, from, text string) (string, int, error) {
	if err := checkUserID("userId", from); err != nil {
		return "", 0, err
	}
	if text == "" {
		return "", 0, fmt.Errorf("%w: msg is required", errs.ErrBadArgument)
	}
	it := &outgoing{from: from, msg: &cimpb.Msg{Body: []byte(text), Kind: cimpb.Kind_KIND_TEXT, Broadcast: true}}
	if err := r.route(ctx, []*outgoing{it}); err != nil {
		return "", 0, err
	}
	return it.msgID, it.delivered, it.err()
}

// route is the hot path. Per batch: at most one round trip to resolve names
// and ids the caches lack, one for the online set when there is a broadcast,
// one for every recipient's route, then one /push per gateway, in parallel.
func (r *Router) route(ctx context.Context, items []*outgoing) error {
	if len(items) == 0 {
		return nil
	}
	now := r.now()

	// Names and ids: this batch's view, from the caches or one lookup.
	idName := make(map[string]string, len(items)*2)
	nameID := map[string]string{}
	var needIDs, needNames []string
	wantID := func(id string) {
		if _, seen := idName[id]; seen {
			return
		}
		n, _ := r.names.Get(id)
		if idName[id] = n; n == "" {
			needIDs = append(needIDs, id)
		}
	}
	wantName := func(name string) {
		if _, seen := nameID[name]; seen {
			return
		}
		id, _ := r.ids.Get(name)
		if nameID[name] = id; id == "" {
			needNames = append(needNames, name)
		}
	}
	broadcast := false
	for _, it := range items {
		it.ts = now.UnixMilli()
		if it.msg == nil {
			it.fail(codes.BadArgument, "MSG frame without a message")
			continue
		}
		it.msgID = newMsgID(now)
		wantID(it.from)
		switch to := it.msg.To; {
		case it.msg.Broadcast:
			broadcast = true
		case to == "":
			it.fail(codes.BadArgument, "message has no recipient")
		case isID(to):
			wantID(to)
		case isName(to):
			wantName(to)
		default:
			it.fail(codes.BadAccount, "unknown user "+strconv.Quote(to))
		}
	}
	if len(needIDs)+len(needNames) > 0 {
		names, ids, err := r.st.Lookup(ctx, needIDs, needNames)
		if err != nil {
			return err
		}
		for id, n := range names {
			idName[id] = n
			r.remember(id, n)
		}
		for n, id := range ids {
			nameID[n] = id
			r.remember(id, n)
		}
	}

	// Recipients and their routes.
	var members []string
	if broadcast {
		var err error
		if members, err = r.st.OnlineIDs(ctx); err != nil {
			return err
		}
	}
	want := make([]string, 0, len(items)+len(members))
	seen := make(map[string]bool, cap(want))
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			want = append(want, id)
		}
	}
	for _, it := range items {
		if it.code != 0 {
			continue
		}
		if it.fromName = idName[it.from]; it.fromName == "" {
			it.fail(codes.BadAccount, "unknown sender "+strconv.Quote(it.from))
			continue
		}
		if it.msg.Broadcast {
			continue
		}
		if to := it.msg.To; isID(to) && idName[to] != "" {
			it.toID = to
		} else if id := nameID[to]; id != "" {
			it.toID = id
		} else {
			it.fail(codes.BadAccount, "unknown user "+strconv.Quote(to))
			continue
		}
		add(it.toID)
	}
	for _, m := range members {
		add(m)
	}
	routes, err := r.st.Routes(ctx, want)
	if err != nil {
		return err
	}

	// Deliveries grouped per gateway, in message order.
	batches := map[string][]*cimpb.Delivery{}
	targets := map[string][]target{}
	reachable := func(uid string) (store.Route, bool) {
		rt, ok := routes[uid]
		return rt, ok && rt.Online() && r.gw.Live(rt.Gateway)
	}
	deliver := func(rt store.Route, uid string, f *cimpb.Frame, item int) {
		batches[rt.Gateway] = append(batches[rt.Gateway], &cimpb.Delivery{UserId: uid, SessionId: rt.Session, Frame: f})
		targets[rt.Gateway] = append(targets[rt.Gateway], target{item, uid, rt.Session})
	}
	for i, it := range items {
		if it.code != 0 {
			continue
		}
		if !it.msg.Broadcast {
			rt, ok := reachable(it.toID)
			if !ok {
				it.fail(codes.Offline, "user "+it.toID+" is offline")
				continue
			}
			deliver(rt, it.toID, it.downlink(it.toID), i)
			continue
		}
		f := it.downlink("")
		for _, uid := range members {
			if rt, ok := reachable(uid); ok && uid != it.from {
				deliver(rt, uid, f, i)
			}
		}
	}
	if len(batches) == 0 {
		return nil
	}

	// From here on messages went out: report, never fail the batch.
	var missing, dead []store.SessionRef
	// A broadcast reaches whoever it can; a private message's sender learns
	// its recipient was not there.
	lost := func(t target, why string) {
		if it := items[t.item]; !it.msg.Broadcast {
			it.fail(codes.Offline, "user "+t.uid+" is offline"+why)
		}
	}
	for gw, res := range r.push.Push(ctx, batches) {
		ts := targets[gw]
		if res.Err != nil {
			r.gw.MarkDown(gw)
			for _, t := range ts {
				lost(t, " (gateway unreachable)")
				// A refused connection or an error status means the
				// gateway is gone; a timeout may be a slow one whose
				// users are still connected, so their routes stay (the
				// gateway's ZooKeeper node decides).
				if !fanout.Timeout(res.Err) {
					dead = append(dead, store.SessionRef{UserID: t.uid, Session: t.sid})
				}
			}
			continue
		}
		gone := make([]bool, len(ts))
		for _, idx := range res.Missing {
			if gone[idx] {
				continue
			}
			gone[idx] = true
			t := ts[idx]
			lost(t, "")
			missing = append(missing, store.SessionRef{UserID: t.uid, Session: t.sid})
		}
		for i, t := range ts {
			if !gone[i] {
				items[t.item].delivered++
			}
		}
	}
	if len(missing)+len(dead) > 0 {
		r.dropSessions(ctx, dead, 0)
		r.dropSessions(ctx, missing, r.cfg.MissingGrace)
	}
	return nil
}

// dropSessions forgets sessions a push found gone, best effort and even if
// the caller's request was cancelled meanwhile.
func (r *Router) dropSessions(ctx context.Context, refs []store.SessionRef, minAge time.Duration) {
	if len(refs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	n, err := r.st.DropSessions(ctx, refs, minAge)
	if err != nil {
		r.log.Warn("could not drop unreachable sessions", "count", len(refs), "err", err)
		return
	}
	if n > 0 {
		r.log.Info("dropped unreachable sessions", "dropped", n, "reported", len(refs))
	}
}
