package router

// Presence and typing (docs/ARCHITECTURE.md, "Presence and typing"). The
// route keeps no subscriptions: a connection's SUBSCRIBE is answered with a
// snapshot, from which its gateway learns whom the connection watches; a
// change (a session confirmed or gone) goes to every live gateway as one
// watchers delivery, which each gateway hands to the connections watching
// that user. A subscription therefore lives and dies with its connection,
// and costs the route nothing between changes. Typing goes to the peer's
// (or the group's online members') connections and is never stored.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/event"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// Presence limits.
const (
	// DefaultMaxWatch bounds the users one connection watches (the users
	// and group members of its SUBSCRIBE together).
	DefaultMaxWatch = 500
	// MaxPresenceQuery bounds the users of one GET /presence.
	MaxPresenceQuery = 100
	// typingMaxGroup: typing in a larger group goes nowhere (a typing
	// indicator for thousands of members is noise that costs a push each).
	typingMaxGroup = 200
	// presenceTimeout bounds a background presence or typing push.
	presenceTimeout = 5 * time.Second
)

// PresenceState is one user's presence as GET /presence reports it.
type PresenceState struct {
	User
	Online bool
	// Since: when the session online now was confirmed (unix ms; 0 offline).
	Since int64
	// LastSeen: offline, when its last session ended (unix ms; 0 online,
	// never seen, or hidden from the viewer).
	LastSeen int64
}

// subReq is one SUBSCRIBE of a batch and its answer.
type subReq struct {
	uid, sid string
	reqID    uint64
	req      *cimpb.Subscribe
	answer   *cimpb.Delivery
}

// typingReq is one TYPING of a batch.
type typingReq struct {
	uid string
	t   *cimpb.Typing
}

// Presence reports the presence of users given by id or name (GET
// /presence); unknown users are errs.ErrBadAccount. To a viewer (a user;
// "" for an application) one who blocked the viewer is always offline.
func (r *Router) Presence(ctx context.Context, viewer string, users []string) ([]PresenceState, error) {
	if len(users) == 0 {
		return nil, fmt.Errorf("%w: users is required", errs.ErrBadArgument)
	}
	if len(users) > MaxPresenceQuery {
		return nil, fmt.Errorf("%w: %d users, the limit is %d", errs.ErrBadArgument, len(users), MaxPresenceQuery)
	}
	ids, err := r.resolveUsers(ctx, users)
	if err != nil {
		return nil, err
	}
	order := make([]string, 0, len(users))
	for _, u := range users {
		if id := ids[u]; !slices.Contains(order, id) {
			order = append(order, id)
		}
	}
	states, err := r.presenceOf(ctx, order)
	if err != nil {
		return nil, err
	}
	shown, err := r.hideBlockers(ctx, viewer, order)
	if err != nil {
		return nil, err
	}
	out := make([]PresenceState, len(states))
	for i, s := range states {
		out[i] = PresenceState{User: User{ID: s.UserId, Name: s.UserName}}
		switch {
		case !slices.Contains(shown, s.UserId):
		case s.Online:
			out[i].Online, out[i].Since = true, s.AtMs
		default:
			out[i].LastSeen = s.AtMs
		}
	}
	return out, nil
}

// presenceOf reads the state of each of uids (in that order): online when
// its route is confirmed on a live gateway; AtMs is then the confirmation's
// time, and offline when it was last seen (0: never). The last seen costs
// a round trip when somebody is offline.
func (r *Router) presenceOf(ctx context.Context, uids []string) ([]*cimpb.PresenceState, error) {
	routes, err := r.st.Routes(ctx, uids)
	if err != nil {
		return nil, err
	}
	names, err := r.namesOf(ctx, uids)
	if err != nil {
		return nil, err
	}
	out := make([]*cimpb.PresenceState, len(uids))
	var away []*cimpb.PresenceState
	for i, id := range uids {
		s := &cimpb.PresenceState{UserId: id, UserName: names[id]}
		if rt, ok := r.liveSession(routes[id]); ok {
			s.Online, s.AtMs, s.Platform = true, rt.Since, rt.Platform
		} else {
			away = append(away, s)
		}
		out[i] = s
	}
	if len(away) == 0 {
		return out, nil
	}
	ids := make([]string, len(away))
	for i, s := range away {
		ids[i] = s.UserId
	}
	seen, err := r.st.LastSeen(ctx, ids)
	if err != nil {
		return nil, err
	}
	for i, s := range away {
		s.AtMs = seen[i]
	}
	return out, nil
}

// subscribe answers each SUBSCRIBE of a batch with a PRESENCE snapshot of
// the users it names and the members of its groups, or an ERROR. Only a
// storage failure is an error: the batch is then retried.
func (r *Router) subscribe(ctx context.Context, subs []*subReq) error {
	for _, s := range subs {
		uids, hidden, code, text, err := r.watchList(ctx, s.uid, s.req)
		if err != nil {
			return err
		}
		s.answer = &cimpb.Delivery{UserId: s.uid, SessionId: s.sid}
		if code != 0 {
			s.answer.Frame = &cimpb.Frame{Type: cimpb.Type_ERROR, ReqId: s.reqID, Error: &cimpb.Error{Code: int32(code), Text: text}}
			continue
		}
		states, err := r.presenceOf(ctx, uids)
		if err != nil {
			return err
		}
		// Whoever blocked s.uid shows offline, as anyone offline does,
		// and is unheard on the gateway's watch list (unwatch) until an
		// unblock (rewatch).
		for _, st := range states {
			if slices.Contains(hidden, st.UserId) {
				st.Online, st.AtMs, st.Platform = false, 0, ""
			}
		}
		s.answer.Frame = &cimpb.Frame{Type: cimpb.Type_PRESENCE, ReqId: s.reqID,
			Presence: &cimpb.Presence{Snapshot: true, States: states, Unwatch: hidden}}
	}
	return nil
}

// watchList resolves a SUBSCRIBE into user ids, in the order named, groups'
// members after the users, and those of them hidden from uid (they blocked
// uid); a non-zero code says why it is refused.
func (r *Router) watchList(ctx context.Context, uid string, req *cimpb.Subscribe) (watched, hidden []string, _ codes.Code, _ string, _ error) {
	max := r.cfg.MaxWatch
	users, groups := req.GetUsers(), req.GetGroups()
	if len(users)+len(groups) > max {
		return nil, nil, codes.BadArgument, fmt.Sprintf("subscribe names %d users and groups, the limit is %d", len(users)+len(groups), max), nil
	}
	var out []string
	seen := map[string]bool{}
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	if len(users) > 0 {
		ids, err := r.resolveUsers(ctx, users)
		if err != nil {
			code, text, serr := refusal(err)
			return nil, nil, code, text, serr
		}
		for _, u := range users {
			add(ids[u])
		}
	}
	for _, gid := range groups {
		if err := checkGroup(uid, gid); err != nil {
			return nil, nil, codes.BadArgument, err.Error(), nil
		}
	}
	if len(groups) > 0 {
		checks := make([]model.MemberRef, len(groups))
		for i, gid := range groups {
			checks[i] = model.MemberRef{Group: gid, User: uid}
		}
		members, isMember, err := r.st.GroupMembers(ctx, groups, checks)
		if err != nil {
			return nil, nil, 0, "", err
		}
		for i, gid := range groups {
			switch {
			case len(members[gid]) == 0:
				return nil, nil, codes.NoGroup, "no such group " + gid, nil
			case !isMember[i]:
				return nil, nil, codes.Forbidden, "not a member of group " + gid, nil
			}
			ids := slices.Clone(members[gid])
			slices.Sort(ids)
			for _, id := range ids {
				if id != uid {
					add(id)
				}
			}
		}
	}
	if len(out) > max {
		return nil, nil, codes.BadArgument, fmt.Sprintf("subscribe watches %d users, the limit is %d", len(out), max), nil
	}
	_, hidden, err := r.splitBlockers(ctx, uid, out)
	if err != nil {
		return nil, nil, 0, "", err
	}
	return out, hidden, 0, "", nil
}

// refusal maps a user-caused error to an ERROR frame's code and text; any
// other error (storage) is returned as is.
func refusal(err error) (codes.Code, string, error) {
	switch {
	case errors.Is(err, errs.ErrBadAccount):
		return codes.BadAccount, err.Error(), nil
	case errors.Is(err, errs.ErrNoGroup):
		return codes.NoGroup, err.Error(), nil
	case errors.Is(err, errs.ErrForbidden):
		return codes.Forbidden, err.Error(), nil
	case errors.Is(err, errs.ErrBadArgument):
		return codes.BadArgument, err.Error(), nil
	}
	return 0, "", err
}

// typing forwards a batch's TYPING frames to their recipients' connections,
// in the background: nothing is stored, nothing answered, and a recipient
// that cannot be reached simply misses it.
func (r *Router) typing(ctx context.Context, ts []typingReq) {
	if len(ts) == 0 {
		return
	}
	r.background(ctx, func(ctx context.Context) {
		if err := r.sendTyping(ctx, ts); err != nil {
			r.log.Debug("typing not forwarded", "err", err)
		}
	})
}

func (r *Router) sendTyping(ctx context.Context, ts []typingReq) error {
	type out struct {
		to []string
		f  *cimpb.Frame
	}
	var outs []out
	var all []string
	for _, t := range ts {
		var to []string
		switch {
		case t.t.GetGroup() != "":
			gid := t.t.Group
			if checkGroup(t.uid, gid) != nil {
				continue
			}
			members, isMember, err := r.st.GroupMembers(ctx, []string{gid}, []model.MemberRef{{Group: gid, User: t.uid}})
			if err != nil {
				return err
			}
			if !isMember[0] || len(members[gid]) > typingMaxGroup {
				continue
			}
			for _, m := range members[gid] {
				if m != t.uid {
					to = append(to, m)
				}
			}
		case t.t.GetTo() != "":
			id, err := r.resolveUser(ctx, t.t.To)
			if err != nil || id == t.uid || id == SystemUserID {
				if _, _, serr := refusal(err); serr != nil {
					return serr
				}
				continue
			}
			if bl, err := r.st.BlockBetween(ctx, id, t.uid); err != nil {
				return err
			} else if bl != model.NotBlocked {
				continue // either blocked the other (blocks.go)
			}
			to = []string{id}
		}
		if len(to) == 0 {
			continue
		}
		names, err := r.namesOf(ctx, []string{t.uid})
		if err != nil {
			return err
		}
		f := &cimpb.Frame{Type: cimpb.Type_TYPING, Typing: &cimpb.Typing{
			Group: t.t.GetGroup(), From: t.uid, FromName: names[t.uid], Stopped: t.t.GetStopped()}}
		if f.Typing.Group == "" {
			f.Typing.To = to[0]
		}
		outs = append(outs, out{to, f})
		all = append(all, to...)
	}
	if len(outs) == 0 {
		return nil
	}
	routes, err := r.st.Routes(ctx, all)
	if err != nil {
		return err
	}
	batches := map[string][]*cimpb.Delivery{}
	for _, o := range outs {
		shared := map[string]*cimpb.Delivery{}
		for _, uid := range o.to {
			for _, rt := range routes[uid].Sessions() {
				if !rt.Online() || !r.gw.Live(rt.Gateway) {
					continue
				}
				d := shared[rt.Gateway]
				if d == nil {
					d = &cimpb.Delivery{Frame: o.f}
					shared[rt.Gateway] = d
					batches[rt.Gateway] = append(batches[rt.Gateway], d)
				}
				d.Targets = append(d.Targets, &cimpb.Target{UserId: uid, SessionId: rt.Session})
			}
		}
	}
	if len(batches) > 0 {
		r.push.Push(ctx, batches)
	}
	return nil
}

// presenceChange is one session that came or went.
type presenceChange struct {
	uid, sid, gw, platform, reason string
	online                         bool
}

// presenceLinger is how long a presence change waits for others to go
// with it: a login storm reaches each gateway as a few pushes, not one per
// login.
const presenceLinger = 20 * time.Millisecond

// maxPresenceBatch bounds the states of one presence push.
const maxPresenceBatch = 1024

// presenceBatch collects the changes waiting for a push.
type presenceBatch struct {
	mu      sync.Mutex
	pending []*cimpb.PresenceState
	// seen: users who may be devices whose session went (lastSeen, see
	// mayBeDevice)
	seen []string
	// gone: users a session of which went, and when (their last seen: the
	// time their offline change carries)
	gone    map[string]int64
	flusher bool // a background flush is scheduled
}

// presenceChanged reports to the webhooks that users came or went, and
// queues the changes for every live gateway's watchers (pushed after
// presenceLinger, in the background).
func (r *Router) presenceChanged(ctx context.Context, changes []presenceChange) {
	if len(changes) == 0 {
		return
	}
	at := r.now().UnixMilli()
	uids := make([]string, len(changes))
	for i, c := range changes {
		uids[i] = c.uid
	}
	r.online.note(uids, r.now(), r.onlineTTL())
	names := r.cachedNames(uids)
	b := &r.presence
	b.mu.Lock()
	for _, c := range changes {
		typ := event.UserOffline
		if c.online {
			typ = event.UserOnline
		}
		r.emit(typ, event.Presence{UserID: c.uid, UserName: names[c.uid], Platform: c.platform,
			SessionID: c.sid, Gateway: c.gw, Reason: c.reason})
		b.pending = append(b.pending, &cimpb.PresenceState{UserId: c.uid, UserName: names[c.uid], Online: c.online, Platform: c.platform, AtMs: at})
		if !c.online {
			if b.gone == nil {
				b.gone = map[string]int64{}
			}
			b.gone[c.uid] = at
			if c.mayBeDevice() {
				b.seen = append(b.seen, c.uid)
			}
		}
	}
	start := !b.flusher
	b.flusher = true
	b.mu.Unlock()
	if start {
		r.background(ctx, r.flushPresence)
	}
}

// mayBeDevice reports whether c's session may be a device's, whose
// disconnect moves the device's lastSeen (iot.go): a session with platform
// device, or in the device slot, or one whose platform nobody knows (found
// gone by a push, cleared with its gateway). The store leaves users that
// are no devices alone.
func (c presenceChange) mayBeDevice() bool {
	switch {
	case c.platform == contract.PlatformDevice, contract.SlotOf(c.sid) == contract.SlotFor(contract.PlatformDevice):
		return true
	case c.platform != "":
		return false
	}
	return c.reason == reasonUnreachable || c.reason == reasonGatewayGone
}

// Reasons of offline presence changes that know no platform.
const (
	reasonUnreachable = "unreachable"
	reasonGatewayGone = "gateway gone"
)

// cachedNames returns the names of uids the cache holds (no round trip:
// presence is not worth one; a state without a name still has its id).
func (r *Router) cachedNames(uids []string) map[string]string {
	out := make(map[string]string, len(uids))
	for _, id := range uids {
		if n, ok := r.names.Get(id); ok {
			out[id] = n
		}
	}
	return out
}

// flushPresence waits for more changes, then pushes everything pending to
// every live gateway as watchers deliveries.
func (r *Router) flushPresence(ctx context.Context) {
	t := time.NewTimer(presenceLinger)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	b := &r.presence
	b.mu.Lock()
	states, seen, gone := b.pending, b.seen, b.gone
	b.pending, b.seen, b.gone, b.flusher = nil, nil, nil, false
	b.mu.Unlock()
	if len(gone) > 0 {
		// Users' last seen: the time their offline change carries, so a
		// snapshot says what the live change said.
		if err := r.st.UsersSeen(ctx, gone); err != nil {
			r.log.Warn("users' last seen not recorded", "users", len(gone), "err", err)
		}
	}
	if len(seen) > 0 {
		// Devices' lastSeen: here, in the background, and not on the
		// message path that may have found the sessions gone.
		if err := r.st.DevicesSeen(ctx, seen, r.now().UnixMilli()); err != nil {
			r.log.Warn("devices' last seen not recorded", "users", len(seen), "err", err)
		}
	}
	// Only verified gateways: a rogue one registered in ZooKeeper must
	// never see the internal secret (see balance).
	gws := r.gw.Healthy()
	if len(states) == 0 || len(gws) == 0 {
		return
	}
	if r.devices() {
		r.stillOnline(ctx, states)
	}
	// One frame per chunk for every gateway: they only read it.
	var ds []*cimpb.Delivery
	for chunk := range slices.Chunk(states, maxPresenceBatch) {
		ds = append(ds, &cimpb.Delivery{Watchers: true, Frame: &cimpb.Frame{Type: cimpb.Type_PRESENCE, Presence: &cimpb.Presence{States: chunk}}})
	}
	batches := make(map[string][]*cimpb.Delivery, len(gws))
	for _, gw := range gws {
		batches[gw] = ds
	}
	r.push.Push(ctx, batches)
}

// stillOnline turns the offline states of users who are online on another
// device (--login-policy platform) into that device's online state: a
// user is online while any of its sessions is.
func (r *Router) stillOnline(ctx context.Context, states []*cimpb.PresenceState) {
	var uids []string
	for _, s := range states {
		if !s.Online {
			uids = append(uids, s.UserId)
		}
	}
	if len(uids) == 0 {
		return
	}
	routes, err := r.st.Routes(ctx, uids)
	if err != nil {
		r.log.Warn("presence: could not read the other devices of users gone offline", "users", len(uids), "err", err)
		return
	}
	for _, s := range states {
		// AtMs stays the change's time: clients drop states older than
		// what they hold.
		if rt, ok := r.liveSession(routes[s.UserId]); ok && !s.Online {
			s.Online, s.Platform = true, rt.Platform
		}
	}
}

// isLive reports whether a session of rt is online on a live gateway.
func (r *Router) isLive(rt model.Route) bool {
	_, ok := r.liveSession(rt)
	return ok
}

// liveSession returns the first of rt's sessions online on a live gateway.
func (r *Router) liveSession(rt model.Route) (model.Route, bool) {
	for _, s := range rt.Sessions() {
		if s.Online() && r.gw.Live(s.Gateway) {
			return s, true
		}
	}
	return model.Route{}, false
}

// background runs fn after the caller's request, bounded like the
// background deliveries (see deliverLater): with every slot taken it runs
// before returning.
func (r *Router) background(ctx context.Context, fn func(ctx context.Context)) {
	ctx = context.WithoutCancel(ctx)
	run := func() {
		ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
		defer cancel()
		fn(ctx)
	}
	select {
	case r.deliverSlots <- struct{}{}:
	default:
		run()
		return
	}
	go func() {
		defer func() { <-r.deliverSlots }()
		run()
	}()
}

// sessionsUnreachable reports sessions a push found gone as offline.
func (r *Router) sessionsUnreachable(ctx context.Context, refs []model.SessionRef) {
	changes := make([]presenceChange, len(refs))
	for i, ref := range refs {
		changes[i] = presenceChange{uid: ref.UserID, sid: ref.Session, reason: reasonUnreachable}
	}
	r.presenceChanged(ctx, changes)
}

// Platforms a login may name; any other short lowercase word is accepted
// too (an app's own kind of device).
var Platforms = []string{"terminal", "web", "mobile", "desktop", "device"}

// maxPlatform bounds a platform name.
const maxPlatform = 16

// checkPlatform: empty, or 1–16 of [a-z0-9-].
func checkPlatform(p string) error {
	if len(p) > maxPlatform {
		return fmt.Errorf("%w: platform is longer than %d bytes", errs.ErrBadArgument, maxPlatform)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%w: platform %q: want lowercase letters, digits and '-'", errs.ErrBadArgument, p)
		}
	}
	return nil
}
