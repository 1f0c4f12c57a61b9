package router

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/internal/contract"
)

// SessionOnline confirms a session for the gateway holding its connection.
// errs.ErrStaleSession when it is no longer the user's current session.
//
// With reassert the gateway re-registered after its ZooKeeper session
// expired and confirms a connection it still holds: a route cleared in the
// meantime is re-created; one taken by a newer session is not.
func (r *Router) SessionOnline(ctx context.Context, s contract.Session) error {
	uid, sid, gw := s.UserID, s.SessionID, s.GatewayID
	if err := checkSession(uid, sid); err != nil {
		return err
	}
	if gw == "" {
		return fmt.Errorf("%w: gatewayId is required", errs.ErrBadArgument)
	}
	if err := checkPlatform(s.Platform); err != nil {
		return err
	}
	// A banned user's sessions were ended; a token it still holds (or one
	// handed out just before the ban) confirms nothing.
	if err := r.checkBan(ctx, uid); errors.Is(err, ErrBanned) {
		return fmt.Errorf("%w: %v", errs.ErrStaleSession, err)
	} else if err != nil {
		return err
	}
	r.forgetCurrent(uid)
	var err error
	if s.Reassert {
		err = r.st.Reassert(ctx, uid, sid, gw)
	} else {
		err = r.st.Online(ctx, uid, sid, gw)
	}
	if err == nil {
		r.presenceChanged(ctx, []presenceChange{{uid: uid, sid: sid, gw: gw, platform: s.Platform, online: true}})
	}
	return err
}

// SessionOffline forgets a session whose connection closed, if it is still
// the current one; otherwise it does nothing (a late disconnect of an old
// session never erases a new one).
func (r *Router) SessionOffline(ctx context.Context, s contract.Session) error {
	uid, sid := s.UserID, s.SessionID
	if err := checkSession(uid, sid); err != nil {
		return err
	}
	r.forgetCurrent(uid)
	old, dropped, err := r.st.DropSession(ctx, uid, sid)
	if dropped && old.Online() {
		r.presenceChanged(ctx, []presenceChange{{uid: uid, sid: sid, gw: old.Gateway, platform: cmp.Or(s.Platform, old.Platform), reason: "disconnected"}})
	}
	return err
}

// Logoff ends a session at once (POST /offLine): the route goes and the
// connection, if any, is kicked. An unknown or old session is a no-op. An
// empty sid means the user's current sessions, whichever they are (every
// device's with --login-policy platform).
func (r *Router) Logoff(ctx context.Context, uid, sid string) error {
	if err := checkUserID("userId", uid); err != nil {
		return err
	}
	if sid == "" {
		// Every resume token too, also those of sessions already gone.
		if err := r.st.DropResumes(ctx, uid, ""); err != nil {
			return err
		}
		routes, err := r.st.Routes(ctx, []string{uid})
		if err != nil {
			return err
		}
		for _, s := range routes[uid].Sessions() {
			if err := r.logoff(ctx, uid, s.Session); err != nil {
				return err
			}
		}
		return nil
	}
	return r.logoff(ctx, uid, sid)
}

func (r *Router) logoff(ctx context.Context, uid, sid string) error {
	r.forgetCurrent(uid)
	// The session's resume token goes, though the session may be gone
	// already (its connection lost): the client logged off.
	if err := r.st.DropResumes(ctx, uid, sid); err != nil {
		return err
	}
	old, dropped, err := r.st.DropSession(ctx, uid, sid)
	if err != nil || !dropped {
		return err
	}
	// A pending session may be connecting right now: its /internal/online
	// will fail, so only a confirmed one has a connection to close.
	if old.Online() {
		r.kick(ctx, uid, sid, old.Gateway, old.Platform, "logged off")
		r.presenceChanged(ctx, []presenceChange{{uid: uid, sid: sid, gw: old.Gateway, platform: old.Platform, reason: "logged off"}})
	}
	r.log.Info("logged off", "user", uid, "session", sid)
	return nil
}

// CheckSession returns nil when sid is uid's current session (pending or
// online), errs.ErrUnauthorized when it is not (logged off, replaced by a
// newer login, expired unconfirmed), errs.ErrUnavailable when Redis cannot
// tell. A bearer token is only as good as its session.
func (r *Router) CheckSession(ctx context.Context, uid, sid string) error {
	if err := checkSession(uid, sid); err != nil {
		return fmt.Errorf("%w: %v", errs.ErrUnauthorized, err)
	}
	return r.checkCurrent(ctx, uid, sid)
}

// PageLimit is the most users one page of a listing (OnlineUsers,
// GroupMembers) holds, and the default.
const PageLimit = 1000

// Page names a page of a listing of users: those with an id above After
// (numerically; "" or "0": from the first), at most Limit of them (0 or
// more than PageLimit: PageLimit).
type Page struct {
	After string
	Limit int
}

// bounds parses p: the id to start after and the page's size.
func (p Page) bounds() (after uint64, limit int, err error) {
	after, err = parseAfter(p.After)
	limit = p.Limit
	if limit <= 0 || limit > PageLimit {
		limit = PageLimit
	}
	return after, limit, err
}

// OnlineUsers lists a page of the users whose route is online on a live
// gateway, ordered by id; a full page means there may be more (ask again
// After its last id). Members of login-status without a route are removed.
//
// The list is worked out from the whole of login-status and every one of
// its routes, so it is kept for Config.OnlineCacheTTL (longer for a list
// larger than Config.OnlineReadRate allows: see onlineTTL) and shared by
// all callers: however often users ask, a route process reads it at most
// once per TTL, and each request costs one page of names. Sessions that came or
// went through this process since show at once: only their users' routes
// are read again (see onlineCache).
func (r *Router) OnlineUsers(ctx context.Context, page Page) ([]User, error) {
	after, limit, err := page.bounds()
	if err != nil {
		return nil, err
	}
	ids, err := r.onlineIDs(ctx)
	if err != nil {
		return nil, err
	}
	from, _ := slices.BinarySearch(ids, after+1)
	pageIDs := ids[from:min(len(ids), from+limit)]
	strs := make([]string, len(pageIDs))
	for i, id := range pageIDs {
		strs[i] = strconv.FormatUint(id, 10)
	}
	names, err := r.namesOf(ctx, strs)
	if err != nil {
		return nil, err
	}
	out := make([]User, 0, len(strs))
	for _, id := range strs {
		if n, ok := names[id]; ok {
			out = append(out, User{ID: id, Name: n})
		}
	}
	return out, nil
}

func parseAfter(after string) (uint64, error) {
	if after == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(after, 10, 64)
	if err != nil || n == math.MaxUint64 {
		return 0, fmt.Errorf("%w: after must be a user id", errs.ErrBadArgument)
	}
	return n, nil
}

// maxOnlineChanged bounds the users onlineCache notes between two readings:
// past it the next call works the whole list out again.
const maxOnlineChanged = 1 << 14

// onlineCache is the last online list (see OnlineUsers). The users whose
// sessions came or went through this process are noted (changed), and the
// next call reads only their routes again and updates the list: this
// process lists its own users' changes as they happen, at the cost of the
// changes, not of the whole list (a login storm through this process used
// to make every call read every online user's route); another process's
// show within the TTL. Clearing a dead gateway makes the whole list stale.
type onlineCache struct {
	mu  sync.Mutex   // held while the list is worked out: callers wait for it
	ids []uint64     // sorted; never changed in place (callers keep reading it)
	at  atomic.Int64 // unix ns of the last reading of the whole list; 0: none
	// read is how many routes that reading read (see Router.onlineTTL).
	read atomic.Int64

	stale atomic.Bool // read the whole list on the next call

	cmu     sync.Mutex
	changed map[string]struct{} // users whose sessions came or went since
}

// note records that uids' sessions came or went. Nothing is noted while
// the list is due to be read whole anyway (none, or older than ttl), so
// the set stays small however long nobody asks.
func (c *onlineCache) note(uids []string, now time.Time, ttl time.Duration) {
	at := c.at.Load()
	if at == 0 || ttl <= 0 || now.Sub(time.Unix(0, at)) >= ttl || c.stale.Load() {
		return
	}
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if c.changed == nil {
		c.changed = map[string]struct{}{}
	}
	for _, uid := range uids {
		c.changed[uid] = struct{}{}
	}
	if len(c.changed) > maxOnlineChanged {
		c.changed = nil
		c.stale.Store(true)
	}
}

// takeChanged returns the users noted since the last call and forgets them.
func (c *onlineCache) takeChanged() map[string]struct{} {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	ch := c.changed
	c.changed = nil
	return ch
}

// onlineIDs returns the ids of the users online, sorted: the cached list
// while it is younger than onlineTTL, with the changes noted
// since (their routes read again).
func (r *Router) onlineIDs(ctx context.Context) ([]uint64, error) {
	c := &r.online
	c.mu.Lock()
	defer c.mu.Unlock()
	now := r.now()
	at := c.at.Load()
	stale := c.stale.Swap(false)
	if ttl := r.onlineTTL(); stale || ttl <= 0 || at == 0 || now.Sub(time.Unix(0, at)) >= ttl {
		// Stamped first, so that a change made while the list is read
		// (which the reading may miss) is noted for the next call; what
		// was noted before is in the reading.
		c.at.Store(now.UnixNano())
		c.takeChanged()
		ids, read, err := r.readOnline(ctx)
		if err != nil {
			c.at.Store(0)
			return nil, err
		}
		c.read.Store(int64(read))
		c.ids = ids
		return ids, nil
	}
	changed := c.takeChanged()
	if len(changed) == 0 {
		return c.ids, nil
	}
	uids := slices.Collect(maps.Keys(changed))
	routes, err := r.st.Routes(ctx, uids)
	if err != nil {
		c.stale.Store(true) // these changes are lost: read the whole list next time
		return nil, err
	}
	var on []uint64
	off := map[uint64]bool{}
	for _, uid := range uids {
		id, err := strconv.ParseUint(uid, 10, 64)
		if err != nil {
			continue
		}
		if rt, ok := routes[uid]; ok && r.isLive(rt) {
			on = append(on, id)
		} else {
			off[id] = true
		}
	}
	slices.Sort(on)
	c.ids = mergeOnline(c.ids, on, off)
	return c.ids, nil
}

// mergeOnline returns a new sorted list: ids (sorted) without off, with on
// (sorted), each id once. One pass, however many changed.
func mergeOnline(ids, on []uint64, off map[uint64]bool) []uint64 {
	out := make([]uint64, 0, len(ids)+len(on))
	add := func(id uint64) {
		if !off[id] && (len(out) == 0 || out[len(out)-1] != id) {
			out = append(out, id)
		}
	}
	i, j := 0, 0
	for i < len(ids) || j < len(on) {
		if j == len(on) || (i < len(ids) && ids[i] <= on[j]) {
			add(ids[i])
			i++
		} else {
			add(on[j])
			j++
		}
	}
	return out
}

// onlineTTL is how long the online list is kept: Config.OnlineCacheTTL,
// or longer when its last reading read more routes than
// Config.OnlineReadRate allows in that time.
func (r *Router) onlineTTL() time.Duration {
	ttl := r.cfg.OnlineCacheTTL
	if rate := r.cfg.OnlineReadRate; rate > 0 && ttl > 0 {
		ttl = max(ttl, time.Duration(r.online.read.Load())*time.Second/time.Duration(rate))
	}
	return ttl
}

// readOnline works the online list out whole: login-status and every one of
// its routes (read: how many); members without a route are removed from
// login-status.
func (r *Router) readOnline(ctx context.Context) (online []uint64, read int, err error) {
	ids, err := r.st.OnlineIDs(ctx)
	if err != nil {
		return nil, 0, err
	}
	routes, err := r.st.Routes(ctx, ids)
	if err != nil {
		return nil, 0, err
	}
	var stale []string
	for _, id := range ids {
		rt, ok := routes[id]
		switch {
		case !ok:
			stale = append(stale, id)
		case r.isLive(rt):
			if n, err := strconv.ParseUint(id, 10, 64); err == nil {
				online = append(online, n)
			}
		}
	}
	if len(stale) > 0 {
		if err := r.st.ForgetOnline(ctx, stale); err != nil {
			r.log.Warn("could not remove stale online members", "count", len(stale), "err", err)
		}
	}
	slices.Sort(online)
	return online, len(ids), nil
}

func (r *Router) namesOf(ctx context.Context, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	var miss []string
	for _, id := range ids {
		if n, ok := r.names.Get(id); ok {
			out[id] = n
		} else {
			miss = append(miss, id)
		}
	}
	if len(miss) == 0 {
		return out, nil
	}
	found, _, err := r.st.Lookup(ctx, miss, nil)
	if err != nil {
		return nil, err
	}
	for id, n := range found {
		out[id] = n
		r.remember(id, n)
	}
	return out, nil
}

func checkSession(uid, sid string) error {
	if err := checkUserID("userId", uid); err != nil {
		return err
	}
	if sid == "" {
		return fmt.Errorf("%w: sessionId is required", errs.ErrBadArgument)
	}
	return nil
}
