package memstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/internal/contract"
)

// route is one user's route with its expiry (zero: none; pending routes
// expire).
type route struct {
	model.Route
	exp time.Time
}

// clearedTTL is how long a route cleared with its gateway can be reclaimed
// (as store).
const clearedTTL = 10 * time.Minute

// slotKey is the key of uid's route and cleared marker in the device slot
// of session sid (see contract.SlotOf); the single slot's key is uid.
func slotKey(uid, sid string) string { return inSlot(uid, contract.SlotOf(sid)) }

func inSlot(uid, slot string) string {
	if slot == "" {
		return uid
	}
	return uid + "\x00" + slot
}

// allSlots are the device slots a user's route is read from (the memory
// store always reads them all).
var allSlots = append([]string{""}, contract.Slots...)

// sessionOf returns the route in the slot of session sid, or false (an
// expired one is deleted).
func (s *Store) sessionOf(uid, sid string) (model.Route, bool) {
	return s.slotRoute(slotKey(uid, sid))
}

func (s *Store) slotRoute(key string) (model.Route, bool) {
	r, ok := s.routes[key]
	if !ok {
		return model.Route{}, false
	}
	if !s.alive(r.exp) {
		delete(s.routes, key)
		return model.Route{}, false
	}
	return r.Route, true
}

// routeOf returns uid's route over all its slots (model.Combine), or false.
func (s *Store) routeOf(uid string) (model.Route, bool) {
	var sessions []model.Route
	for _, slot := range allSlots {
		if r, ok := s.slotRoute(inSlot(uid, slot)); ok {
			sessions = append(sessions, r)
		}
	}
	return model.Combine(sessions)
}

func (s *Store) addTo(m map[string]map[string]bool, k, v string) {
	if m[k] == nil {
		m[k] = map[string]bool{}
	}
	m[k][v] = true
}

// repair re-adds users whose route is online to login-status and their
// gateway's set (as store does after removals).
func (s *Store) repair(uids []string) {
	for _, uid := range uids {
		r, _ := s.routeOf(uid)
		for _, x := range r.Sessions() {
			if x.Online() {
				s.online[uid] = true
				s.addTo(s.gwUsers, x.Gateway, uid)
			}
		}
	}
}

// ClaimRoute replaces uid's route by c's pending session and returns the one
// it replaced; with c.RejectOnline and another session online it changes
// nothing and returns that route with errs.ErrRepeatLogin.
func (s *Store) ClaimRoute(ctx context.Context, uid string, c model.Claim) (model.Route, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, _ := s.sessionOf(uid, c.Session)
	if c.RejectOnline && old.State == model.StateOnline && old.Session != c.Evict {
		return old, fmt.Errorf("%w: user %s is online on %s", errs.ErrRepeatLogin, uid, old.Gateway)
	}
	ttl := max(c.TTL, time.Millisecond)
	s.routes[slotKey(uid, c.Session)] = route{Route: model.Route{Gateway: c.Gateway, Session: c.Session, State: model.StatePending, Platform: c.Platform}, exp: s.after(ttl)}
	if old.Online() && old.Gateway != c.Gateway {
		delete(s.gwUsers[old.Gateway], uid)
		s.repair([]string{uid})
	}
	return old, nil
}

// Online confirms session sid of uid on gw; errs.ErrStaleSession if sid is
// not the route's session.
func (s *Store) Online(ctx context.Context, uid, sid, gw string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.sessionOf(uid, sid); !ok || r.Session != sid {
		return fmt.Errorf("%w: user %s session %s", errs.ErrStaleSession, uid, sid)
	}
	s.confirmed(uid, sid, gw)
	return nil
}

// confirmed makes sid uid's online route on gw and adds it to the sets.
func (s *Store) confirmed(uid, sid, gw string) {
	var pf string
	if r, ok := s.sessionOf(uid, sid); ok && r.Session == sid {
		pf = r.Platform
	}
	s.routes[slotKey(uid, sid)] = route{Route: model.Route{Gateway: gw, Session: sid, State: model.StateOnline, Since: s.now().UnixMilli(), Platform: pf}}
	s.online[uid] = true
	s.addTo(s.gwUsers, gw, uid)
	s.servers[gw] = true
}

// Reassert is Online for a gateway that re-registered: an absent route is
// re-created; errs.ErrStaleSession only if another session holds it.
func (s *Store) Reassert(ctx context.Context, uid, sid, gw string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.sessionOf(uid, sid); ok && r.Session != sid {
		return fmt.Errorf("%w: user %s session %s", errs.ErrStaleSession, uid, sid)
	}
	s.confirmed(uid, sid, gw)
	delete(s.cleared, slotKey(uid, sid))
	return nil
}

// Reclaim takes back, for gw, the routes ClearGateway removed from sessions
// in refs that nobody took since; it reports which hold their route on gw.
func (s *Store) Reclaim(ctx context.Context, gw string, refs []model.SessionRef) ([]bool, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := make([]bool, len(refs))
	for i, ref := range refs {
		key := slotKey(ref.UserID, ref.Session)
		if r, exists := s.slotRoute(key); exists {
			ok[i] = r.Session == ref.Session && r.Gateway == gw && r.Online()
		} else if m, _ := s.get(s.cleared, key); m != "" && m == gw+"|"+ref.Session {
			s.routes[key] = route{Route: model.Route{Gateway: gw, Session: ref.Session, State: model.StateOnline, Since: s.now().UnixMilli()}}
			delete(s.cleared, key)
			ok[i] = true
		}
		if ok[i] {
			s.online[ref.UserID] = true
			s.addTo(s.gwUsers, gw, ref.UserID)
			s.servers[gw] = true
		}
	}
	return ok, nil
}

// DropSession deletes uid's route if sid is still its session and returns it.
func (s *Store) DropSession(ctx context.Context, uid, sid string) (model.Route, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.drop([]model.SessionRef{{UserID: uid, Session: sid}})
	if len(d) == 0 {
		return model.Route{}, false, nil
	}
	return d[0], true, nil
}

// DropSessions deletes the routes still held by the sessions; it returns
// those sessions.
func (s *Store) DropSessions(ctx context.Context, refs []model.SessionRef) ([]model.SessionRef, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []model.SessionRef
	for _, ref := range refs {
		if r, ok := s.sessionOf(ref.UserID, ref.Session); ok && r.Session == ref.Session {
			out = append(out, ref)
		}
	}
	s.drop(refs)
	return out, nil
}

func (s *Store) drop(refs []model.SessionRef) []model.Route {
	var dropped []model.Route
	var uids []string
	for _, ref := range refs {
		key := slotKey(ref.UserID, ref.Session)
		if m, ok := s.get(s.cleared, key); ok && strings.HasSuffix(m, "|"+ref.Session) {
			delete(s.cleared, key)
		}
		r, ok := s.slotRoute(key)
		if !ok || r.Session != ref.Session {
			continue
		}
		delete(s.routes, key)
		dropped = append(dropped, model.Route{Gateway: r.Gateway, Session: ref.Session, State: r.State, Platform: r.Platform})
		uids = append(uids, ref.UserID)
		delete(s.online, ref.UserID)
		if r.Gateway != "" {
			delete(s.gwUsers[r.Gateway], ref.UserID)
		}
	}
	s.repair(uids)
	return dropped
}

// Routes returns the routes of uids (absent: no route).
func (s *Store) Routes(ctx context.Context, uids []string) (map[string]model.Route, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.routesOf(uids), nil
}

func (s *Store) routesOf(uids []string) map[string]model.Route {
	out := make(map[string]model.Route, len(uids))
	for _, uid := range uids {
		if r, ok := s.routeOf(uid); ok {
			out[uid] = r
		}
	}
	return out
}

// OnlineIDs returns the members of login-status (stale ones included).
func (s *Store) OnlineIDs(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.online))
	for uid := range s.online {
		out = append(out, uid)
	}
	return out, nil
}

// ForgetOnline removes stale members from login-status; online ones stay.
func (s *Store) ForgetOnline(ctx context.Context, uids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, uid := range uids {
		delete(s.online, uid)
	}
	s.repair(uids)
	return nil
}

// Gateways returns the gateways that ever held users and were not cleared.
func (s *Store) Gateways(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.servers))
	for gw := range s.servers {
		out = append(out, gw)
	}
	return out, nil
}

// ClearGateway forgets a dead gateway: routes in its set still pointing at
// it go (leaving a cleared marker for Reclaim), then the set and the
// gateway. It returns the users whose routes were deleted.
func (s *Store) ClearGateway(ctx context.Context, gw string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var gone []string
	for uid := range s.gwUsers[gw] {
		cleared := false
		for _, slot := range allSlots {
			key := inSlot(uid, slot)
			r, ok := s.slotRoute(key)
			if !ok || r.Gateway != gw {
				continue
			}
			delete(s.routes, key)
			s.cleared[key] = expiring{v: gw + "|" + r.Session, exp: s.after(clearedTTL)}
			cleared = true
		}
		if cleared {
			gone = append(gone, uid)
			delete(s.online, uid)
		}
	}
	s.repair(gone)
	delete(s.gwUsers, gw)
	delete(s.servers, gw)
	return gone, nil
}
