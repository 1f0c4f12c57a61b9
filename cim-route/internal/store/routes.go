package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// Route is model.Route (package model holds the shared types).
type Route = model.Route

// Claim is model.Claim (package model holds the shared types).
type Claim = model.Claim

// SessionRef is model.SessionRef (package model holds the shared types).
type SessionRef = model.SessionRef

// ClaimRoute replaces the route of uid by c's pending session and returns the
// route it replaced (zero if none). With c.RejectOnline and another session
// online it changes nothing and returns that route with errs.ErrRepeatLogin.
func (s *Store) ClaimRoute(ctx context.Context, uid string, c Claim) (Route, error) {
	reject := "0"
	if c.RejectOnline {
		reject = "1"
	}
	ttl := c.TTL.Milliseconds()
	if ttl < 1 {
		ttl = 1
	}
	v, err := claimScript.Run(ctx, s.rdb, s.k.sessionKeys(uid, c.Session)[:1], c.Gateway, c.Session, ttl, reject, c.Evict, c.Platform).Slice()
	if err != nil {
		return Route{}, unavailable(err)
	}
	if len(v) != 6 {
		return Route{}, unavailable(fmt.Errorf("claim script answered %v", v))
	}
	old := Route{Gateway: str(v[1]), Session: str(v[2]), State: str(v[3]), Platform: str(v[5])}
	old.Since, _ = strconv.ParseInt(str(v[4]), 10, 64)
	if n, _ := v[0].(int64); n != 1 {
		return old, fmt.Errorf("%w: user %s is online on %s", errs.ErrRepeatLogin, uid, old.Gateway)
	}
	if old.Online() && old.Gateway != c.Gateway {
		// The user no longer belongs to the old gateway's set.
		s.leaveGateway(ctx, old.Gateway, uid)
	}
	return old, nil
}

// Online confirms session sid of uid on gateway gw (state online, no expiry)
// and adds the user to the online and gateway sets. errs.ErrStaleSession if
// sid is not the route's session (any more).
func (s *Store) Online(ctx context.Context, uid, sid, gw string) error {
	return s.confirm(ctx, onlineScript, uid, sid, gw)
}

// Reassert is Online for a gateway that re-registered after losing its
// ZooKeeper session: the route is re-created if it was cleared meanwhile,
// and errs.ErrStaleSession only if another session holds it now.
func (s *Store) Reassert(ctx context.Context, uid, sid, gw string) error {
	return s.confirm(ctx, reassertScript, uid, sid, gw)
}

func (s *Store) confirm(ctx context.Context, script *redis.Script, uid, sid, gw string) error {
	n, err := script.Run(ctx, s.rdb, s.k.sessionKeys(uid, sid), sid, gw, s.now().UnixMilli()).Int()
	if err != nil {
		return unavailable(err)
	}
	if n != 1 {
		return fmt.Errorf("%w: user %s session %s", errs.ErrStaleSession, uid, sid)
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, s.k.online(), uid)
		p.SAdd(ctx, s.k.gwUsers(gw), uid)
		p.SAdd(ctx, s.k.servers(), gw)
		return nil
	})
	return pipeErr(err, cmds)
}

// clearedTTL is how long a route cleared with its gateway can be reclaimed
// by that gateway (Reclaim): well past any ZooKeeper session timeout.
const clearedTTL = 10 * time.Minute

// Reclaim takes back, for gateway gw, the routes of sessions in refs that
// ClearGateway removed when gw looked dead (the gateway was frozen, not
// gone) and nobody took since; it reports, aligned with refs, which of
// them hold their route on gw now. One round trip, plus one to restore the
// online and gateway sets of those reclaimed.
func (s *Store) Reclaim(ctx context.Context, gw string, refs []SessionRef) ([]bool, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	now := s.now().UnixMilli()
	res := make([]*redis.Cmd, len(refs))
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range refs {
			res[i] = reclaimScript.Eval(ctx, p, s.k.sessionKeys(r.UserID, r.Session), r.Session, gw, now)
		}
		return nil
	})
	if err := pipeErr(err, cmds); err != nil {
		return nil, err
	}
	ok := make([]bool, len(refs))
	var back []any
	for i, c := range res {
		if n, _ := c.Int(); n == 1 {
			ok[i] = true
			back = append(back, refs[i].UserID)
		}
	}
	if len(back) == 0 {
		return ok, nil
	}
	cmds, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, s.k.online(), back...)
		p.SAdd(ctx, s.k.gwUsers(gw), back...)
		p.SAdd(ctx, s.k.servers(), gw)
		return nil
	})
	return ok, pipeErr(err, cmds)
}

// DropSession deletes uid's route if sid is still its session and returns the
// deleted route; a late disconnect of an old session changes nothing.
func (s *Store) DropSession(ctx context.Context, uid, sid string) (Route, bool, error) {
	dropped, err := s.dropSessions(ctx, []SessionRef{{UserID: uid, Session: sid}})
	if err != nil || len(dropped) == 0 {
		return Route{}, false, err
	}
	return dropped[0].Route, true, nil
}

// DropSessions deletes, in one round trip, the routes still held by the given
// sessions. It returns the sessions whose routes were deleted.
func (s *Store) DropSessions(ctx context.Context, refs []SessionRef) ([]SessionRef, error) {
	dropped, err := s.dropSessions(ctx, refs)
	out := make([]SessionRef, 0, len(dropped))
	for _, d := range dropped {
		out = append(out, d.ref)
	}
	return out, err
}

// droppedRoute is a route dropSessions deleted, and whose it was.
type droppedRoute struct {
	Route
	ref SessionRef
}

func (s *Store) dropSessions(ctx context.Context, refs []SessionRef) ([]droppedRoute, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	res := make([]*redis.Cmd, len(refs))
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range refs {
			res[i] = dropScript.Eval(ctx, p, s.k.sessionKeys(r.UserID, r.Session), r.Session)
		}
		return nil
	})
	if err := pipeErr(err, cmds); err != nil {
		return nil, err
	}
	var dropped []droppedRoute
	var uids []string
	byGateway := map[string][]any{}
	for i, c := range res {
		v, _ := c.Slice()
		if len(v) != 3 {
			continue
		}
		r := Route{Gateway: str(v[0]), Session: refs[i].Session, State: str(v[1]), Platform: str(v[2])}
		dropped = append(dropped, droppedRoute{r, refs[i]})
		uids = append(uids, refs[i].UserID)
		if r.Gateway != "" {
			byGateway[r.Gateway] = append(byGateway[r.Gateway], refs[i].UserID)
		}
	}
	if len(uids) == 0 {
		return nil, nil
	}
	cmds, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SRem(ctx, s.k.online(), anys(uids)...)
		for gw, ids := range byGateway {
			p.SRem(ctx, s.k.gwUsers(gw), ids...)
		}
		return nil
	})
	if err := pipeErr(err, cmds); err != nil {
		return dropped, err
	}
	return dropped, s.repair(ctx, uids)
}

// Routes returns the routes of uids (absent: no route), one round trip per
// maxPipeline users.
func (s *Store) Routes(ctx context.Context, uids []string) (map[string]Route, error) {
	w, err := s.Write(ctx, Write{Routes: uids})
	if w.Routes == nil && err == nil {
		w.Routes = map[string]Route{}
	}
	return w.Routes, err
}

// routeFields are the fields appendRouteOps reads (shared, never modified).
var routeFields = []string{"gw", "sid", "state", "at", "pf"}

// appendRouteOps appends the reads of one user's route to ops: one read
// per device slot.
func (s *Store) appendRouteOps(ops []op, uid string) []op {
	for _, slot := range s.slots {
		ops = append(ops, op{keys: []string{s.k.routeIn(uid, slot)}, fields: routeFields})
	}
	return ops
}

// routesOf reads the answers of appendRouteOps (aligned with uids, n per user):
// users without a route are left out.
func routesOf(uids []string, n int, res []redis.Cmder) map[string]Route {
	out := make(map[string]Route, len(uids))
	var sessions []Route
	for i, uid := range uids {
		sessions = sessions[:0]
		for _, c := range res[i*n : (i+1)*n] {
			v := c.(*redis.SliceCmd).Val()
			if len(v) != 5 || str(v[1]) == "" {
				continue
			}
			r := Route{Gateway: str(v[0]), Session: str(v[1]), State: str(v[2]), Platform: str(v[4])}
			r.Since, _ = strconv.ParseInt(str(v[3]), 10, 64)
			sessions = append(sessions, r)
		}
		if r, ok := model.Combine(sessions); ok {
			out[uid] = r
		}
	}
	return out
}

// OnlineIDs returns the members of login-status (which may include stale
// ones: filter through Routes).
func (s *Store) OnlineIDs(ctx context.Context) ([]string, error) {
	ids, err := s.rdb.SMembers(ctx, s.k.online()).Result()
	return ids, unavailable(err)
}

// ForgetOnline removes stale members from login-status; one that went online
// meanwhile is put back.
func (s *Store) ForgetOnline(ctx context.Context, uids []string) error {
	if len(uids) == 0 {
		return nil
	}
	if err := s.rdb.SRem(ctx, s.k.online(), anys(uids)...).Err(); err != nil {
		return unavailable(err)
	}
	return s.repair(ctx, uids)
}

// Gateways returns the gateways that ever held users and were not cleared.
func (s *Store) Gateways(ctx context.Context) ([]string, error) {
	gws, err := s.rdb.SMembers(ctx, s.k.servers()).Result()
	return gws, unavailable(err)
}

// ClearGateway forgets a dead gateway: every user in its set whose route
// still points at it loses the route and its login-status membership; then
// the set and the gateway's servers entry go. It returns the users whose
// routes were deleted. Safe to repeat and to run from several route replicas
// at once.
func (s *Store) ClearGateway(ctx context.Context, gw string) ([]string, error) {
	setKey := s.k.gwUsers(gw)
	var cleared []string
	var cursor uint64
	for {
		members, next, err := s.rdb.SScan(ctx, setKey, cursor, "", 512).Result()
		if err != nil {
			return cleared, unavailable(err)
		}
		gone, err := s.clearRoutes(ctx, gw, members)
		cleared = append(cleared, gone...)
		if err != nil {
			return cleared, err
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, setKey)
		p.SRem(ctx, s.k.servers(), gw)
		return nil
	})
	return cleared, pipeErr(err, cmds)
}

func (s *Store) clearRoutes(ctx context.Context, gw string, uids []string) ([]string, error) {
	if len(uids) == 0 {
		return nil, nil
	}
	n := len(s.slots)
	res := make([]*redis.Cmd, len(uids)*n)
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, uid := range uids {
			for j, slot := range s.slots {
				res[i*n+j] = clearGatewayScript.Eval(ctx, p, []string{s.k.routeIn(uid, slot), s.k.clearedIn(uid, slot)}, gw, clearedTTL.Milliseconds())
			}
		}
		return nil
	})
	if err := pipeErr(err, cmds); err != nil {
		return nil, err
	}
	var gone []string
	for i, uid := range uids {
		for _, c := range res[i*n : (i+1)*n] {
			if v, _ := c.Int(); v == 1 {
				gone = append(gone, uid)
				break
			}
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	if err := s.rdb.SRem(ctx, s.k.online(), anys(gone)...).Err(); err != nil {
		return gone, unavailable(err)
	}
	return gone, s.repair(ctx, gone)
}

// leaveGateway removes uid from gw's set after its route moved elsewhere. Best
// effort: a stale member is harmless (cleanup compares the route's gateway).
func (s *Store) leaveGateway(ctx context.Context, gw, uid string) {
	if err := s.rdb.SRem(ctx, s.k.gwUsers(gw), uid).Err(); err == nil {
		_ = s.repair(ctx, []string{uid})
	}
}

// repair re-adds users with an online session to login-status and to the
// sets of the gateways holding their sessions. It runs after removals from
// those sets: a session confirmed concurrently either is seen online here or
// adds itself after our removal.
func (s *Store) repair(ctx context.Context, uids []string) error {
	routes, err := s.Routes(ctx, uids)
	if err != nil {
		return err
	}
	var online []any
	for _, uid := range uids {
		if r, ok := routes[uid]; ok && r.Online() {
			online = append(online, uid)
		}
	}
	if len(online) == 0 {
		return nil
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, s.k.online(), online...)
		for _, uid := range online {
			for _, r := range routes[uid.(string)].Sessions() {
				if r.Online() {
					p.SAdd(ctx, s.k.gwUsers(r.Gateway), uid)
				}
			}
		}
		return nil
	})
	return pipeErr(err, cmds)
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return ""
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
