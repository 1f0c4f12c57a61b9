package router

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/fanout"
	"github.com/gocim/gocim/cim-route/internal/store"
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
	group  *groupSend // set for a group message (msg.Group)

	fromName  string
	toID      string
	msgID     string
	ts        int64
	stored    *cimpb.Frame // the MSG as stored, with its seq: pushed to toID
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

// entry is one frame to append to an inbox: a private message (msg set,
// frame), a group message (msg set, raw: the one encoding every member's
// entry shares) or a receipt (frame). Once stored, frame carries its seq and
// is pushed live.
type entry struct {
	to    string
	msg   *outgoing
	frame *cimpb.Frame
	raw   []byte
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
	syncs  []*syncReq
	acks   []*ackReq
	reads  []*readReq

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
	routes map[string]store.Route
	routed []string
}

func (r *Router) newJob() *job {
	now := r.now()
	return &job{r: r, now: now, ts: now.UnixMilli()}
}

// Uplink handles the frames a gateway forwarded and returns the frames for
// their senders' sessions, in uplink order: for a MSG its RECEIPT_SENT or
// ERROR; for a SYNC the inbox entries then the SYNC answer. ACK and READ are
// answered with nothing (their receipts go to other users). Frames of a
// session that is not its user's current one on this gateway are not
// handled: that session gets ERROR StaleSession first (see fence). An error
// (storage unavailable) means no sender was answered, so the gateway may
// retry the whole batch: resent messages are recognized (dedup), receipts
// may repeat (clients treat them as idempotent).
func (r *Router) Uplink(ctx context.Context, b *cimpb.UplinkBatch) (*cimpb.PushBatch, error) {
	ups, stale, err := r.fence(ctx, b)
	if err != nil {
		return nil, err
	}
	j := r.newJob()
	type slot struct {
		typ cimpb.Type
		i   int
	}
	order := make([]slot, 0, len(ups))
	var ackOf map[string]*ackReq
	for _, up := range ups {
		f, uid := up.GetFrame(), up.GetUserId()
		if f == nil || uid == "" || uid == SystemUserID {
			continue // nobody to answer (the system user never connects)
		}
		switch f.Type {
		case cimpb.Type_MSG:
			order = append(order, slot{f.Type, len(j.msgs)})
			j.msgs = append(j.msgs, &outgoing{from: uid, fromSID: up.SessionId, reqID: f.ReqId, msg: f.Msg})
		case cimpb.Type_SYNC:
			order = append(order, slot{f.Type, len(j.syncs)})
			j.syncs = append(j.syncs, &syncReq{uid: uid, sid: up.SessionId, reqID: f.ReqId, req: f.Sync})
		case cimpb.Type_ACK:
			seq := f.GetAck().GetSeq()
			if seq == 0 {
				continue
			}
			// Acks are cumulative: the highest of the batch covers the others.
			if a := ackOf[uid]; a != nil {
				a.seq = max(a.seq, seq)
				continue
			}
			if ackOf == nil {
				ackOf = map[string]*ackReq{}
			}
			a := &ackReq{uid: uid, seq: seq}
			ackOf[uid] = a
			j.acks = append(j.acks, a)
		case cimpb.Type_READ:
			if rd := f.GetRead(); rd != nil && rd.Peer != "" && len(rd.MsgIds) > 0 {
				j.reads = append(j.reads, &readReq{uid: uid, peer: rd.Peer, ids: rd.MsgIds, seqs: rd.Seqs, group: rd.Group})
			}
		}
	}
	if err := j.persist(ctx); err != nil {
		return nil, err
	}
	out := &cimpb.PushBatch{Deliveries: make([]*cimpb.Delivery, 0, len(stale)+len(order))}
	out.Deliveries = append(out.Deliveries, stale...)
	for _, s := range order {
		if s.typ == cimpb.Type_MSG {
			out.Deliveries = append(out.Deliveries, j.msgs[s.i].reply())
		} else {
			out.Deliveries = j.syncs[s.i].answer(out.Deliveries, r.cfg.MaxFrame)
		}
	}
	// The answers are built first: the background push must not share the
	// batch with this goroutine.
	r.pushLater(ctx, j)
	return out, nil
}

// P2P sends a text message from one user to another (POST /p2pRoute); to is
// a user id or name. The message is stored in the recipient's inbox (pushed
// at once when online). It returns the message id.
func (r *Router) P2P(ctx context.Context, from, to, text string) (string, error) {
	if err := checkUserID("userId", from); err != nil {
		return "", err
	}
	if to == "" {
		return "", fmt.Errorf("%w: receiveUserId is required", errs.ErrBadArgument)
	}
	if err := checkText(text); err != nil {
		return "", err
	}
	j := r.newJob()
	it := &outgoing{from: from, msg: &cimpb.Msg{To: to, Body: []byte(text), Kind: cimpb.Kind_KIND_TEXT}}
	j.msgs = []*outgoing{it}
	if err := j.run(ctx); err != nil {
		return "", err
	}
	return it.msgID, it.err()
}

// Broadcast sends a text message to everybody online but the sender (POST
// /groupRoute); nothing is stored. It returns the message id and how many
// connections got it.
func (r *Router) Broadcast(ctx context.Context, from, text string) (string, int, error) {
	if err := checkUserID("userId", from); err != nil {
		return "", 0, err
	}
	if err := checkText(text); err != nil {
		return "", 0, err
	}
	j := r.newJob()
	it := &outgoing{from: from, msg: &cimpb.Msg{Body: []byte(text), Kind: cimpb.Kind_KIND_TEXT, Broadcast: true}}
	j.msgs = []*outgoing{it}
	if err := j.run(ctx); err != nil {
		return "", 0, err
	}
	return it.msgID, it.delivered, it.err()
}

// run is the hot path. Per batch: at most one round trip to resolve names
// and ids the caches lack; one reading the members of the groups messages
// go to (and checking group READs' readers); one claiming the group
// messages' dedup keys; one per page of acknowledged entries (one page
// unless a client acknowledges more than ackPage entries at once); one
// pipeline appending every message (a group message once per member) and
// receipt, split into round trips of a thousand entries; one marking group
// messages done; one adding group receipts; one raising the acks; one
// reading the synced ranges; one for the online set when there is a
// broadcast; one for the routes of everybody to push to (per thousand); then
// one /push per gateway, in parallel. Each step is skipped when it has
// nothing to do.
//
// run does the storage steps (persist), then the pushes; uplinks push after
// answering the gateway instead (pushLater). Every storage step comes before
// any push or answer: an error leaves nothing half-announced.
func (j *job) run(ctx context.Context) error {
	if err := j.persist(ctx); err != nil {
		return err
	}
	return j.push(ctx)
}

// persist does every storage step of run.
func (j *job) persist(ctx context.Context) error {
	if len(j.msgs)+len(j.syncs)+len(j.acks)+len(j.reads) == 0 {
		return nil
	}
	j.prepare()
	if err := j.resolve(ctx); err != nil {
		return err
	}
	j.checkSizes()
	if err := j.loadGroups(ctx); err != nil {
		return err
	}
	if err := j.claimGroupMessages(ctx); err != nil {
		return err
	}
	j.queueMessages()
	if err := j.ackedEntries(ctx); err != nil {
		return err
	}
	if err := j.readReceipts(ctx); err != nil {
		return err
	}
	if err := j.store(ctx); err != nil {
		return err
	}
	if err := j.finishGroupMessages(ctx); err != nil {
		return err
	}
	if err := j.storeGroupReceipts(ctx); err != nil {
		return err
	}
	if err := j.raiseAcks(ctx); err != nil {
		return err
	}
	return j.readSyncs(ctx)
}

// prepare checks messages and notes which names and ids to resolve.
func (j *job) prepare() {
	j.idName = make(map[string]string, len(j.msgs)*2+len(j.reads))
	j.nameID = map[string]string{}
	for _, it := range j.msgs {
		it.ts = j.ts
		if it.msg == nil {
			it.fail(codes.BadArgument, "MSG frame without a message")
			continue
		}
		it.msgID = newMsgID(j.now)
		if !it.system {
			j.wantID(it.from)
		}
		if len(it.msg.ClientMsgId) > maxClientMsgID {
			it.fail(codes.BadArgument, "clientMsgId longer than "+strconv.Itoa(maxClientMsgID)+" bytes")
			continue
		}
		if p := kindProblem(it.msg); p != "" {
			it.fail(codes.BadArgument, p)
			continue
		}
		switch to := it.msg.To; {
		case it.msg.Group != "":
			j.prepareGroup(it)
		case it.msg.Broadcast:
		case to == "":
			it.fail(codes.BadArgument, "message has no recipient")
		default:
			if !j.want(to) {
				it.fail(codes.BadAccount, "unknown user "+strconv.Quote(to))
			}
		}
	}
	for _, rd := range j.reads {
		j.want(rd.peer)
	}
}

// want notes a user id or name to resolve; false if it is neither.
func (j *job) want(user string) bool {
	switch {
	case isID(user):
		j.wantID(user)
	case isName(user):
		j.wantName(user)
	default:
		return false
	}
	return true
}

func (j *job) wantID(id string) {
	if _, seen := j.idName[id]; seen {
		return
	}
	n, _ := j.r.names.Get(id)
	if j.idName[id] = n; n == "" {
		j.needIDs = append(j.needIDs, id)
	}
}

func (j *job) wantName(name string) {
	if _, seen := j.nameID[name]; seen {
		return
	}
	id, _ := j.r.ids.Get(name)
	if j.nameID[name] = id; id == "" {
		j.needNames = append(j.needNames, name)
	}
}

// userID returns the id of an existing user given by id or name, or "".
func (j *job) userID(user string) string {
	if isID(user) {
		if j.idName[user] != "" {
			return user
		}
		return ""
	}
	return j.nameID[user]
}

// resolve looks up the names and ids the caches lack (one round trip) and
// settles every message's sender name and private recipient id.
func (j *job) resolve(ctx context.Context) error {
	if len(j.needIDs)+len(j.needNames) > 0 {
		names, ids, err := j.r.st.Lookup(ctx, j.needIDs, j.needNames)
		if err != nil {
			return err
		}
		for id, n := range names {
			j.idName[id] = n
			j.r.remember(id, n)
		}
		for n, id := range ids {
			j.nameID[n] = id
			// n is the name as given (any case): not the display name.
			j.r.rememberName(n, id)
		}
	}
	for _, it := range j.msgs {
		if it.code != 0 {
			continue
		}
		if it.system {
			it.fromName = SystemUserName
		} else if it.fromName = j.idName[it.from]; it.fromName == "" {
			it.fail(codes.BadAccount, "unknown sender "+strconv.Quote(it.from))
			continue
		}
		if it.msg.Broadcast || it.group != nil {
			continue
		}
		if it.toID = j.userID(it.msg.To); it.toID == "" {
			it.fail(codes.BadAccount, "unknown user "+strconv.Quote(it.msg.To))
		}
	}
	for _, rd := range j.reads {
		rd.peerID = j.userID(rd.peer)
	}
	return nil
}

// queueMessages queues the inbox entries of the messages, in batch order: a
// private message's for its recipient, a group message's for each member
// but the sender.
func (j *job) queueMessages() {
	for _, it := range j.msgs {
		switch {
		case it.code != 0 || it.msg.Broadcast:
		case it.group != nil:
			j.queueGroup(it)
		default:
			j.entries = append(j.entries, entry{to: it.toID, msg: it, frame: it.downlink(it.toID)})
		}
	}
}

// store appends every entry of the batch (messages first, in order, then
// receipts), raises the acks (unless group receipts must be stored first)
// and reads the routes of everybody the stored frames go to, all in one
// pipeline (split per thousand commands); only stored frames are pushed.
func (j *job) store(ctx context.Context) error {
	w := store.Write{Routes: j.pushTargets()}
	if len(j.receipts) == 0 {
		w.Acks, j.acksRaised = j.acksToRaise(), true
	}
	if len(j.entries)+len(w.Acks)+len(w.Routes) == 0 {
		return nil
	}
	in := make([]store.Append, len(j.entries))
	for i, e := range j.entries {
		if e.raw != nil {
			// A group message: no per-member dedup (the sender's gdedup key
			// covers the message as a whole).
			in[i] = store.Append{UserID: e.to, Frame: e.raw, TS: j.ts, MsgID: e.msg.msgID}
			continue
		}
		b, err := proto.Marshal(e.frame)
		if err != nil {
			return err
		}
		// A receipt never pushes a message out of a full inbox: then it
		// is not stored (Seq 0) and goes live only.
		in[i] = store.Append{UserID: e.to, Frame: b, TS: j.ts, Droppable: e.msg == nil}
		if it := e.msg; it != nil {
			in[i].MsgID = it.msgID
			if cm := it.msg.ClientMsgId; cm != "" {
				in[i].Dedup = it.from + ":" + cm
			}
		}
	}
	w.Appends = in
	written, err := j.r.st.Write(ctx, w)
	if err != nil {
		return err
	}
	j.routes, j.routed = written.Routes, w.Routes
	for _, it := range j.msgs {
		if it.code == 0 && it.msg.GetFile().GetRef() != "" {
			j.r.FileSent(it.from, it.msg) // the upload is in use: it does not expire
		}
	}
	res := written.Appended
	for i, e := range j.entries {
		a := res[i]
		if e.raw != nil {
			g := e.msg.group
			g.stored = append(g.stored, member{e.to, a.Seq})
			continue
		}
		f := e.frame
		if it := e.msg; it != nil && a.Resend {
			// The first copy's id and entry: pushed again in case the
			// first attempt stored it but never got that far.
			it.msgID = a.MsgID
			f = nil
			if a.Stored.Seq != 0 {
				it.ts = a.Stored.TS
				if f = decodeEntry(a.Stored); f == nil {
					j.r.log.Warn("undecodable inbox entry", "user", e.to, "seq", a.Stored.Seq)
				}
			}
		} else {
			setSeq(f, a.Seq)
		}
		switch {
		case f == nil:
		case e.msg != nil:
			e.msg.stored = f
		default:
			j.live = append(j.live, live{uid: e.to, frame: f})
		}
	}
	return nil
}

// pushLater pushes j's frames in the background, so the gateway gets its
// answer (the senders their RECEIPT_SENT) as soon as everything is stored
// and its next uplink batch need not wait for the pushes; pushes of many
// batches then merge per gateway (package fanout). With every background
// slot taken it pushes before returning instead: back-pressure on the
// gateways. The push outlives the request; WaitPushes waits for it.
func (r *Router) pushLater(ctx context.Context, j *job) {
	if len(j.msgs)+len(j.live) == 0 {
		return // only SYNCs or ACKs without receipts: nothing to push
	}
	ctx = context.WithoutCancel(ctx)
	select {
	case r.pushSlots <- struct{}{}:
	default:
		r.pushNow(ctx, j)
		return
	}
	go func() {
		defer func() { <-r.pushSlots }()
		r.pushNow(ctx, j)
	}()
}

// pushNow pushes j's frames. Its stored frames are not lost when a push
// fails: their users get them by SYNC.
func (r *Router) pushNow(ctx context.Context, j *job) {
	ctx, cancel := context.WithTimeout(ctx, backgroundPushTimeout)
	defer cancel()
	if err := j.push(ctx); err != nil {
		r.log.Warn("push failed after storing; recipients will sync", "err", err)
	}
}

// backgroundPushTimeout bounds a background push's storage reads (the
// routes of a broadcast's recipients); the gateway calls have their own
// timeout (package fanout).
const backgroundPushTimeout = 10 * time.Second

// WaitPushes waits until no push runs in the background, or ctx ends. The
// route's shutdown calls it after its listeners drained.
func (r *Router) WaitPushes(ctx context.Context) error {
	n := 0
	defer func() {
		for range n {
			<-r.pushSlots
		}
	}()
	for range cap(r.pushSlots) {
		select {
		case r.pushSlots <- struct{}{}:
			n++
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// pushTargets are the users the batch's stored frames go to: every inbox
// entry's owner and every group receipt's sender (broadcast recipients are
// read in push).
func (j *job) pushTargets() []string {
	if len(j.entries)+len(j.receipts) == 0 {
		return nil
	}
	out := make([]string, 0, len(j.entries)+len(j.receipts))
	seen := make(map[string]bool, cap(out))
	add := func(uid string) {
		if !seen[uid] {
			seen[uid] = true
			out = append(out, uid)
		}
	}
	for _, e := range j.entries {
		add(e.to)
	}
	for _, rc := range j.receipts {
		add(rc.sender)
	}
	return out
}

// push takes the routes read with the appends (for a broadcast it reads the
// online set and the routes missing; pipelined, a round trip per thousand
// users) and sends one /push per gateway, all gateways in parallel. From
// here on the batch never
// fails: the entries are stored, so a user not reachable now gets them by
// SYNC.
func (j *job) push(ctx context.Context) error {
	var members []string
	n := len(j.live)
	broadcast := false
	for _, it := range j.msgs {
		switch {
		case it.code != 0:
		case it.msg.Broadcast:
			broadcast = true
		case it.stored != nil:
			n++
		case it.group != nil:
			n += len(it.group.stored)
		}
	}
	if broadcast {
		var err error
		if members, err = j.r.st.OnlineIDs(ctx); err != nil {
			return err
		}
	}
	if n+len(members) == 0 {
		return nil
	}
	routes, err := j.readRoutes(ctx, members)
	if err != nil {
		return err
	}

	// Deliveries grouped per gateway: messages in batch order, then receipts.
	batches := map[string][]*cimpb.Delivery{}
	targets := map[string][]target{}
	reachable := func(uid string) (store.Route, bool) {
		rt, ok := routes[uid]
		return rt, ok && rt.Online() && j.r.gw.Live(rt.Gateway)
	}
	send := func(rt store.Route, uid string, f *cimpb.Frame, item int) {
		batches[rt.Gateway] = append(batches[rt.Gateway], &cimpb.Delivery{UserId: uid, SessionId: rt.Session, Frame: f})
		targets[rt.Gateway] = append(targets[rt.Gateway], target{item, uid, rt.Session})
	}
	deliver := func(uid string, f *cimpb.Frame, item int) {
		if rt, ok := reachable(uid); ok {
			send(rt, uid, f, item)
		}
	}
	for i, it := range j.msgs {
		switch {
		case it.code != 0:
		case it.msg.Broadcast:
			f := it.downlink("")
			for _, uid := range members {
				if uid != it.from {
					deliver(uid, f, i)
				}
			}
		case it.stored != nil:
			deliver(it.toID, it.stored, i)
		case it.group != nil:
			// Each member's copy carries its own seq: built only for
			// those online.
			for _, m := range it.group.stored {
				if rt, ok := reachable(m.uid); ok {
					f := it.downlink("")
					f.Msg.Seq = m.seq
					send(rt, m.uid, f, i)
				}
			}
		}
	}
	for _, l := range j.live {
		deliver(l.uid, l.frame, -1)
	}
	if len(batches) == 0 {
		return nil
	}

	var missing, dead []store.SessionRef
	for gw, res := range j.r.push.Push(ctx, batches) {
		ts := targets[gw]
		if res.Err != nil {
			j.r.gw.MarkDown(gw)
			// A refused connection or an error status means the gateway
			// is gone; a timeout may be a slow one whose users are still
			// connected, so their routes stay (the gateway's ZooKeeper
			// node decides).
			if !fanout.Timeout(res.Err) {
				for _, t := range ts {
					dead = append(dead, store.SessionRef{UserID: t.uid, Session: t.sid})
				}
			}
			continue
		}
		gone := make([]bool, len(ts))
		for _, idx := range res.Missing {
			if !gone[idx] {
				gone[idx] = true
				missing = append(missing, store.SessionRef{UserID: ts[idx].uid, Session: ts[idx].sid})
			}
		}
		for i, t := range ts {
			if !gone[i] && t.item >= 0 {
				j.msgs[t.item].delivered++
			}
		}
	}
	if len(missing)+len(dead) > 0 {
		j.r.dropSessions(ctx, append(dead, missing...))
	}
	return nil
}

// readRoutes returns the routes of everybody the batch pushes to: those
// read with the appends (every stored frame's user, see pushTargets) and
// those of a broadcast's recipients not among them, read now.
func (j *job) readRoutes(ctx context.Context, members []string) (map[string]store.Route, error) {
	routes := j.routes
	if routes == nil {
		routes = map[string]store.Route{}
	}
	if len(members) == 0 {
		return routes, nil
	}
	known := make(map[string]bool, len(j.routed))
	for _, uid := range j.routed {
		known[uid] = true
	}
	var rest []string
	for _, uid := range members {
		if !known[uid] {
			rest = append(rest, uid)
		}
	}
	if len(rest) > 0 {
		more, err := j.r.st.Routes(ctx, rest)
		if err != nil {
			return nil, err
		}
		maps.Copy(routes, more)
	}
	return routes, nil
}

// dropSessions forgets sessions a push found gone, best effort and even if
// the caller's request was cancelled meanwhile.
func (r *Router) dropSessions(ctx context.Context, refs []store.SessionRef) {
	if len(refs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	n, err := r.st.DropSessions(ctx, refs)
	if err != nil {
		r.log.Warn("could not drop unreachable sessions", "count", len(refs), "err", err)
		return
	}
	if n > 0 {
		r.log.Info("dropped unreachable sessions", "dropped", n, "reported", len(refs))
	}
}
