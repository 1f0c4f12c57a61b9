package router

// Delivery: the frames a job stored go to the gateways holding their users'
// connections, one /push call per gateway (package fanout). In this package
// "deliver" is that step; "push" is only the gateways' /push endpoint and an
// application's message (Router.Push, POST /api/push).

import (
	"context"
	"maps"
	"time"

	"github.com/gocim/gocim/cim-route/internal/fanout"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
)

// deliverLater delivers j's stored frames in the background, so the gateway gets its
// answer (the senders their RECEIPT_SENT) as soon as everything is stored
// and its next uplink batch need not wait for the deliveries; those of many
// batches then merge per gateway (package fanout). With every background
// slot taken it delivers before returning instead: back-pressure on the
// gateways. The delivery outlives the request; WaitDeliveries waits for it.
func (r *Router) deliverLater(ctx context.Context, j *job) {
	if len(j.msgs)+len(j.live) == 0 {
		return // only SYNCs or ACKs without receipts: nothing to deliver
	}
	j.takeTurn()
	ctx = context.WithoutCancel(ctx)
	select {
	case r.deliverSlots <- struct{}{}:
	default:
		r.deliverNow(ctx, j)
		return
	}
	go func() {
		defer func() { <-r.deliverSlots }()
		r.deliverNow(ctx, j)
	}()
}

// takeTurn takes j's place in the order of its timeline groups' deliveries
// (order.go), once its messages are stored.
func (j *job) takeTurn() {
	var groups []string
	for _, it := range j.msgs {
		if it.code == 0 && it.group != nil && it.group.timeline && it.group.gseq != 0 {
			groups = append(groups, it.msg.GetGroup())
		}
	}
	j.turn = j.r.order.take(groups)
}

// deliverNow delivers j's frames. Its stored frames are not lost when a /push
// fails: their users get them by SYNC.
func (r *Router) deliverNow(ctx context.Context, j *job) {
	ctx, cancel := context.WithTimeout(ctx, backgroundDeliverTimeout)
	defer cancel()
	if err := j.deliver(ctx); err != nil {
		r.log.Warn("delivery failed after storing; recipients will sync", "err", err)
	}
}

// backgroundDeliverTimeout bounds a background delivery's storage reads (the
// routes of a broadcast's recipients); the gateway calls have their own
// timeout (package fanout).
const backgroundDeliverTimeout = 10 * time.Second

// WaitDeliveries waits until no delivery runs in the background, or ctx ends. The
// route's shutdown calls it after its listeners drained.
func (r *Router) WaitDeliveries(ctx context.Context) error {
	n := 0
	defer func() {
		for range n {
			<-r.deliverSlots
		}
	}()
	for range cap(r.deliverSlots) {
		select {
		case r.deliverSlots <- struct{}{}:
			n++
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// deliveryTargets are the users the batch's stored frames go to: every inbox
// entry's owner and every group receipt's sender (broadcast recipients are
// read in deliver).
func (j *job) deliveryTargets() []string {
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
		if g := e.msg.groupOf(); g != nil && g.timeline {
			for _, m := range g.recipients {
				add(m)
			}
			if g.echo {
				add(e.msg.from)
			}
			continue
		}
		add(e.to)
	}
	for _, rc := range j.receipts {
		add(rc.sender)
	}
	return out
}

// deliver takes the routes read with the appends (for a broadcast it reads the
// online set and the routes missing; pipelined, a round trip per thousand
// users) and sends one /push per gateway, all gateways in parallel. From
// here on the batch never
// fails: the entries are stored, so a user not reachable now gets them by
// SYNC.
func (j *job) deliver(ctx context.Context) error {
	defer j.turn.finish()
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
		case it.group != nil && it.group.timeline:
			if it.group.gseq != 0 {
				n += len(it.group.recipients)
			}
		case it.group != nil:
			n += len(it.group.stored)
		}
	}
	// Webhooks: messages to app users now, recipients not reached once
	// the pushes answered (or when a step fails: what is known by then).
	var hooks *msgHooks
	if len(j.msgs) > 0 {
		hooks = j.hooks(ctx)
		hooks.emitApps()
		defer hooks.emitOffline(ctx)
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
	// reachable returns uid's sessions that are online on a live
	// gateway: one, or with --login-policy platform one per device.
	var buf []model.Route
	reachable := func(uid string) []model.Route {
		buf = buf[:0]
		rt, ok := routes[uid]
		if !ok {
			return nil
		}
		if len(rt.Others) == 0 {
			if rt.Online() && j.r.gw.Live(rt.Gateway) {
				buf = append(buf, rt)
			}
			return buf
		}
		for _, s := range rt.Sessions() {
			if s.Online() && j.r.gw.Live(s.Gateway) {
				buf = append(buf, s)
			}
		}
		return buf
	}
	send := func(rt model.Route, uid string, f *cimpb.Frame, item int) {
		batches[rt.Gateway] = append(batches[rt.Gateway], &cimpb.Delivery{UserId: uid, SessionId: rt.Session, Frame: f})
		targets[rt.Gateway] = append(targets[rt.Gateway], target{item: item, uid: uid, sid: rt.Session})
	}
	// The targets of a timeline group's messages, worked out once per
	// group and sender for all its messages in this batch: a burst of 100
	// messages to 5,000 members took the route 430 ms when every message
	// walked every member's route.
	type sharedKey struct {
		group, from string
		echo        bool
	}
	shared := map[sharedKey]*timelineTargets{}
	deliver := func(uid string, f *cimpb.Frame, item int) bool {
		rts := reachable(uid)
		for _, rt := range rts {
			send(rt, uid, f, item)
		}
		return len(rts) > 0
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
			if !deliver(it.toID, it.stored, i) {
				hooks.missed(i, it.toID, it.stored.GetMsg().GetSeq())
			}
		case it.group != nil && it.group.timeline:
			// One frame for every member: stored once, and sent to each
			// gateway once, as one delivery with many targets.
			if it.group.gseq == 0 {
				break // sent before (a resend): nothing new to push
			}
			f := it.downlink("")
			f.Msg.GroupSeq = it.group.gseq
			key := sharedKey{it.msg.Group, it.from, it.group.echo}
			gt := shared[key]
			if gt == nil {
				rcpt := it.group.recipients
				if it.group.echo {
					rcpt = append(rcpt[:len(rcpt):len(rcpt)], it.from)
				}
				gt = newTimelineTargets(rcpt, reachable)
				shared[key] = gt
			}
			for _, uid := range gt.unreached {
				if uid != it.from {
					hooks.missed(i, uid, 0)
				}
			}
			for gw, packed := range gt.packed {
				batches[gw] = append(batches[gw], &cimpb.Delivery{Frame: f, PackedTargets: packed})
				targets[gw] = append(targets[gw], target{item: i, many: gt.list[gw]})
			}
		case it.group != nil:
			// Each member's copy carries its own seq: built only for
			// those online.
			for _, m := range it.group.stored {
				rts := reachable(m.uid)
				if len(rts) == 0 {
					if m.uid != it.from { // the sender's own copy is no miss
						hooks.missed(i, m.uid, m.seq)
					}
					continue
				}
				f := it.downlink("")
				f.Msg.Seq = m.seq
				for _, rt := range rts {
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

	var missing, dead []model.SessionRef
	var results map[string]fanout.Result
	if j.turn == nil {
		results = j.r.push.Push(ctx, batches) // on this goroutine for one gateway
	} else {
		// In turn (order.go): queued behind the deliveries of the jobs
		// that stored messages of the same groups before this one.
		j.turn.wait(ctx)
		wait := j.r.push.Enqueue(ctx, batches)
		j.turn.finish()
		results = wait()
	}
	for gw, res := range results {
		ts := targets[gw]
		if res.Err != nil {
			j.r.gw.MarkDown(gw)
			// A refused connection or an error status means the gateway
			// is gone; a timeout may be a slow one whose users are still
			// connected, so their routes stay (the gateway's ZooKeeper
			// node decides).
			if !fanout.Timeout(res.Err) {
				for _, t := range ts {
					for k := range t.size() {
						uid, sid := t.at(k)
						dead = append(dead, model.SessionRef{UserID: uid, Session: sid})
						hooks.missed(t.item, uid, 0)
					}
				}
			}
			continue
		}
		n := 0
		for _, t := range ts {
			n += t.size()
		}
		gone := make([]bool, n)
		for _, idx := range res.Missing { // in range (fanout checks)
			gone[idx] = true
		}
		at := 0
		for _, t := range ts {
			for k := range t.size() {
				uid, sid := t.at(k)
				switch {
				case gone[at+k]:
					missing = append(missing, model.SessionRef{UserID: uid, Session: sid})
					hooks.missed(t.item, uid, 0)
				case t.item >= 0 && uid != j.msgs[t.item].from:
					// The sender's own copy (its other devices) is not
					// a delivery.
					j.msgs[t.item].delivered++
					hooks.reach(t.item, uid)
				}
			}
			at += t.size()
		}
	}
	if len(missing)+len(dead) > 0 {
		j.r.dropSessions(ctx, append(dead, missing...))
	}
	return nil
}

// readRoutes returns the routes of everybody the batch delivers to: those
// read with the appends (every stored frame's user, see deliveryTargets) and
// those of a broadcast's recipients not among them, read now.
func (j *job) readRoutes(ctx context.Context, members []string) (map[string]model.Route, error) {
	routes := j.routes
	if routes == nil {
		routes = map[string]model.Route{}
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
func (r *Router) dropSessions(ctx context.Context, refs []model.SessionRef) {
	if len(refs) == 0 {
		return
	}
	for _, ref := range refs {
		r.forgetCurrent(ref.UserID)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	dropped, err := r.st.DropSessions(ctx, refs)
	if err != nil {
		r.log.Warn("could not drop unreachable sessions", "count", len(refs), "err", err)
		return
	}
	if n := len(dropped); n > 0 {
		r.sessionsUnreachable(ctx, dropped)
		r.log.Info("dropped unreachable sessions", "dropped", n, "reported", len(refs))
	}
}

// timelineTargets are the members a timeline group's message goes to, per
// gateway: packed for the push (contract.AppendTarget) and listed to read
// the push's answer with; unreached are those with no live session.
type timelineTargets struct {
	packed    map[string][]byte
	list      map[string][]target
	unreached []string
}

// newTimelineTargets works out the targets of rcpt. Two passes: size each
// gateway's targets, then fill them (growing them by appending was a
// quarter of the route's CPU in a 5,000-member fan-out).
func newTimelineTargets(rcpt []string, reachable func(uid string) []model.Route) *timelineTargets {
	type size struct{ n, bytes int }
	per := map[string]size{}
	for _, uid := range rcpt {
		for _, rt := range reachable(uid) {
			z := per[rt.Gateway]
			per[rt.Gateway] = size{z.n + 1, z.bytes + contract.TargetSize(uid, rt.Session)}
		}
	}
	gt := &timelineTargets{packed: make(map[string][]byte, len(per)), list: make(map[string][]target, len(per))}
	for gw, z := range per {
		gt.packed[gw] = make([]byte, 0, z.bytes)
		gt.list[gw] = make([]target, 0, z.n)
	}
	for _, uid := range rcpt {
		rts := reachable(uid)
		if len(rts) == 0 {
			gt.unreached = append(gt.unreached, uid)
			continue
		}
		for _, rt := range rts {
			gt.packed[rt.Gateway] = contract.AppendTarget(gt.packed[rt.Gateway], uid, rt.Session)
			gt.list[rt.Gateway] = append(gt.list[rt.Gateway], target{uid: uid, sid: rt.Session})
		}
	}
	for gw, p := range gt.packed {
		if len(p) == 0 { // its gateway went down between the passes
			delete(gt.packed, gw)
			delete(gt.list, gw)
		}
	}
	return gt
}
