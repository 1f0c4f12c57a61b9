package router

import (
	"context"
	"fmt"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/proto/cimpb"
)

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
	start := time.Now()
	defer func() { r.observer().Uplinked(len(b.GetUplinks()), time.Since(start)) }()
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
	var subs []*subReq
	var typings []typingReq
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
			j.addGroupAcks(uid, f.GetAck().GetGroups())
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
		case cimpb.Type_SUBSCRIBE:
			order = append(order, slot{f.Type, len(subs)})
			subs = append(subs, &subReq{uid: uid, sid: up.SessionId, reqID: f.ReqId, req: f.GetSubscribe()})
		case cimpb.Type_TYPING:
			if t := f.GetTyping(); t != nil {
				typings = append(typings, typingReq{uid: uid, t: t})
			}
		case cimpb.Type_READ:
			if rd := f.GetRead(); rd != nil && rd.Peer != "" && len(rd.MsgIds) > 0 {
				j.reads = append(j.reads, &readReq{uid: uid, peer: rd.Peer, ids: rd.MsgIds, seqs: rd.Seqs, group: rd.Group})
			}
		}
	}
	if err := j.persist(ctx); err != nil {
		return nil, err
	}
	if err := r.subscribe(ctx, subs); err != nil {
		return nil, err
	}
	out := &cimpb.PushBatch{Deliveries: make([]*cimpb.Delivery, 0, len(stale)+len(order))}
	out.Deliveries = append(out.Deliveries, stale...)
	for _, s := range order {
		switch s.typ {
		case cimpb.Type_MSG:
			out.Deliveries = append(out.Deliveries, j.msgs[s.i].reply())
		case cimpb.Type_SUBSCRIBE:
			out.Deliveries = append(out.Deliveries, subs[s.i].answer)
		default:
			n := len(out.Deliveries)
			out.Deliveries = j.syncs[s.i].answer(out.Deliveries, r.cfg.MaxFrame)
			r.observer().Synced(len(out.Deliveries) - n - 1) // the entries, not the SYNC frame closing them
		}
	}
	// The answers are built first: the background push must not share the
	// batch with this goroutine.
	r.deliverLater(ctx, j)
	r.typing(ctx, typings)
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
// run does the storage steps (persist), then the deliveries; uplinks deliver
// after answering the gateway instead (deliverLater). Every storage step comes before
// any push or answer: an error leaves nothing half-announced.
func (j *job) run(ctx context.Context) error {
	if err := j.persist(ctx); err != nil {
		return err
	}
	j.takeTurn()
	return j.deliver(ctx)
}

// persist does every storage step of run.
func (j *job) persist(ctx context.Context) error {
	if len(j.msgs)+len(j.syncs)+len(j.acks)+len(j.reads)+len(j.gacks) == 0 {
		return nil
	}
	j.prepare()
	if err := j.resolve(ctx); err != nil {
		return err
	}
	j.checkSizes()
	if err := j.refuseRecalled(ctx); err != nil {
		return err
	}
	if err := j.loadGroups(ctx); err != nil {
		return err
	}
	if err := j.refuseCrowdedReactions(ctx); err != nil {
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
	if err := j.appendEntries(ctx); err != nil {
		return err
	}
	if err := j.storeRevisions(ctx); err != nil {
		return err
	}
	if err := j.storeReactions(ctx); err != nil {
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
	if err := j.raiseTimelines(ctx); err != nil {
		return err
	}
	// Last: a batch that failed before queued nothing for the app (the
	// gateway retries it whole), and a queue that fails fails only these.
	j.sendToApp(ctx)
	return j.readSyncs(ctx)
}
