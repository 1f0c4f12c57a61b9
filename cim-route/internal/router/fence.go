package router

import (
	"context"
	"time"

	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// fenceTTL is how long the fence trusts a session it found current
// without reading the route again.
const fenceTTL = 500 * time.Millisecond

// currentSession is the route the fence read for a user, at at: its online
// sessions are current (one, or one per device with --login-policy
// platform).
type currentSession struct {
	route model.Route
	at    time.Time
}

// holds reports whether route has session sid online on gw.
func holds(route model.Route, gw, sid string) bool {
	s, ok := route.Find(sid)
	return ok && s.Online() && s.Gateway == gw
}

// forgetCurrent drops what the fence knows of uid's session: its route is
// changing.
func (r *Router) forgetCurrent(uid string) { r.current.Remove(uid) }

// fence keeps the uplinks of sessions that are where their user is now:
// the user's route names this session on the gateway that forwarded them.
// Any other session is stale: a gateway that was frozen (SIGSTOP, a long
// pause) forwards what a client wrote to it before moving on, or a client
// logged in again while its old connection still had frames on the way.
// Storing those now would put them after what the client sent since, on
// its new link, and break the sender's order; so they are refused, and
// each stale session gets one ERROR StaleSession that makes its gateway
// close the connection. A client still on it logs in again and writes
// everything unanswered on the new link, in order.
//
// One round trip reads the routes of the batch's users (one more, rarely,
// takes back routes cleared while the gateway only looked dead: reclaim),
// except those the fence found current within fenceTTL: a user's route
// changes through this process's Login, SessionOnline, SessionOffline,
// Logoff and deliveries that find a session gone, which forget it at once;
// only a change made through another route replica goes unseen here, for
// at most fenceTTL.
func (r *Router) fence(ctx context.Context, b *cimpb.UplinkBatch) (keep []*cimpb.Uplink, stale []*cimpb.Delivery, err error) {
	ups := b.GetUplinks()
	if len(ups) == 0 {
		return nil, nil, nil
	}
	gw := b.GetGatewayId()
	uids := make([]string, 0, len(ups))
	seen := make(map[string]bool, len(ups))
	routes := make(map[string]model.Route, len(ups))
	for _, up := range ups {
		uid := up.GetUserId()
		if uid == "" || seen[uid] {
			continue
		}
		// A user is read again unless every session of its uplinks here is
		// in the route found lately (a user on several devices may have
		// come online on one since).
		if cur, ok := r.current.Get(uid); ok && holds(cur.route, gw, up.GetSessionId()) && r.now().Sub(cur.at) < fenceTTL {
			if _, read := routes[uid]; !read {
				routes[uid] = cur.route
			}
			continue
		}
		seen[uid] = true
		delete(routes, uid)
		uids = append(uids, uid)
	}
	if len(uids) > 0 {
		read, err := r.st.Routes(ctx, uids)
		if err != nil {
			return nil, nil, err
		}
		for uid, rt := range read {
			routes[uid] = rt
			if rt.Online() {
				r.current.Add(uid, currentSession{route: rt, at: r.now()})
			}
		}
	}
	if err := r.reclaim(ctx, gw, ups, routes); err != nil {
		return nil, nil, err
	}
	keep = ups[:0:0]
	var told map[string]bool // stale sessions answered, by uid+"/"+sid
	for _, up := range ups {
		rt := routes[up.GetUserId()]
		if up.GetUserId() == "" || holds(rt, gw, up.GetSessionId()) {
			keep = append(keep, up)
			continue
		}
		key := up.GetUserId() + "/" + up.GetSessionId()
		if told[key] {
			continue
		}
		if told == nil {
			told = map[string]bool{}
		}
		told[key] = true
		r.log.Debug("uplink from a stale session refused", "user", up.GetUserId(), "session", up.GetSessionId(),
			"gateway", gw, "current_session", rt.Session, "current_gateway", rt.Gateway)
		stale = append(stale, &cimpb.Delivery{UserId: up.GetUserId(), SessionId: up.GetSessionId(),
			Frame: &cimpb.Frame{Type: cimpb.Type_ERROR, Error: &cimpb.Error{
				Code: int32(codes.StaleSession), Text: codes.StaleSession.Text()}}})
	}
	return keep, stale, nil
}

// reclaim handles sessions without a route: their route may have been
// cleared with gw while gw only looked dead (frozen past its ZooKeeper
// session; it re-asserts its connections in a moment). Such a session, and
// only the one cleared with gw, gets its route back now, into routes, so
// that what it sends meanwhile is not refused. A session that ended (logged
// off, closed) or was replaced has no claim to it.
func (r *Router) reclaim(ctx context.Context, gw string, ups []*cimpb.Uplink, routes map[string]model.Route) error {
	var refs []model.SessionRef
	seen := map[model.SessionRef]bool{}
	for _, up := range ups {
		ref := model.SessionRef{UserID: up.GetUserId(), Session: up.GetSessionId()}
		if _, ok := routes[ref.UserID].Find(ref.Session); ok || ref.UserID == "" || seen[ref] {
			continue
		}
		seen[ref] = true
		refs = append(refs, ref)
	}
	if len(refs) == 0 || gw == "" {
		return nil
	}
	back, err := r.st.Reclaim(ctx, gw, refs)
	if err != nil {
		return err
	}
	for i, ok := range back {
		if ok {
			back := model.Route{Gateway: gw, Session: refs[i].Session, State: model.StateOnline}
			if cur, exists := routes[refs[i].UserID]; exists {
				cur.Others = append(cur.Others[:len(cur.Others):len(cur.Others)], back)
				back = cur
			}
			routes[refs[i].UserID] = back
			r.log.Info("session cleared with its gateway taken back: the gateway is alive", "user", refs[i].UserID,
				"session", refs[i].Session, "gateway", gw)
		}
	}
	return nil
}

// fenceSweepEvery is how often RunFenceSweep drops what the fence may no
// longer trust.
const fenceSweepEvery = 2 * time.Second

// RunFenceSweep drops, every fenceSweepEvery until ctx ends, the sessions
// the fence read more than fenceTTL ago: it would read them again anyway,
// and a route replica inside a gateway would otherwise keep one entry
// (≈ 0.3 KiB) per user that ever sent an uplink there, idle connections
// included.
func (r *Router) RunFenceSweep(ctx context.Context) {
	t := time.NewTicker(fenceSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.sweepFence()
	}
}

// sweepFence drops the fence's entries older than fenceTTL. An entry
// refreshed between the check and the removal costs one more route read.
func (r *Router) sweepFence() {
	now := r.now()
	for _, uid := range r.current.Keys() {
		if cur, ok := r.current.Peek(uid); ok && now.Sub(cur.at) >= fenceTTL {
			r.current.Remove(uid)
		}
	}
}
