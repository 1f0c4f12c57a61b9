package gateway

import (
	"slices"
	"sync"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/proto/cimpb"
)

// watchers index the presence subscriptions of this gateway's connections
// (docs/ARCHITECTURE.md, "Presence and typing"): the route answers a
// connection's SUBSCRIBE with a PRESENCE snapshot listing every user it
// watches, and this gateway learns the watch list from that answer on its
// way to the connection. A change the route broadcasts (a watchers
// delivery) then reaches the connections watching its users. A watch list
// goes with its connection.
type watchers struct {
	mu sync.RWMutex
	by map[string]map[*conn.Conn]struct{} // watched user id -> connections
	of map[*conn.Conn][]string            // connection -> watched user ids
}

func newWatchers() *watchers {
	return &watchers{by: map[string]map[*conn.Conn]struct{}{}, of: map[*conn.Conn][]string{}}
}

// set replaces c's watch list with the users of a snapshot.
func (w *watchers) set(c *conn.Conn, states []*cimpb.PresenceState) {
	uids := make([]string, 0, len(states))
	for _, s := range states {
		uids = append(uids, s.GetUserId())
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dropLocked(c)
	if len(uids) == 0 {
		return
	}
	w.of[c] = uids
	for _, uid := range uids {
		m := w.by[uid]
		if m == nil {
			m = map[*conn.Conn]struct{}{}
			w.by[uid] = m
		}
		m[c] = struct{}{}
	}
	if c.Closing() {
		// Closed may have dropped c's list before this snapshot arrived:
		// a closing connection watches nobody.
		w.dropLocked(c)
	}
}

// unwatch takes uids out of c's watch list.
func (w *watchers) unwatch(c *conn.Conn, uids []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	list, ok := w.of[c]
	if !ok {
		return
	}
	for _, uid := range uids {
		if m := w.by[uid]; m != nil {
			delete(m, c)
			if len(m) == 0 {
				delete(w.by, uid)
			}
		}
	}
	list = slices.DeleteFunc(list, func(uid string) bool { return slices.Contains(uids, uid) })
	if len(list) == 0 {
		delete(w.of, c)
		return
	}
	w.of[c] = list
}

// drop forgets c's watch list.
func (w *watchers) drop(c *conn.Conn) {
	w.mu.RLock()
	_, ok := w.of[c]
	w.mu.RUnlock()
	if !ok {
		return // most connections watch nobody: no write lock for them
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dropLocked(c)
}

func (w *watchers) dropLocked(c *conn.Conn) {
	for _, uid := range w.of[c] {
		m := w.by[uid]
		delete(m, c)
		if len(m) == 0 {
			delete(w.by, uid)
		}
	}
	delete(w.of, c)
}

// watching returns, for each connection watching any of the states'
// users, the states it watches (in the order given).
func (w *watchers) watching(states []*cimpb.PresenceState) map[*conn.Conn][]*cimpb.PresenceState {
	w.mu.RLock()
	defer w.mu.RUnlock()
	var out map[*conn.Conn][]*cimpb.PresenceState
	for _, s := range states {
		for c := range w.by[s.GetUserId()] {
			if out == nil {
				out = map[*conn.Conn][]*cimpb.PresenceState{}
			}
			out[c] = append(out[c], s)
		}
	}
	return out
}

// count returns how many connections watch somebody.
func (w *watchers) count() int {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return len(w.of)
}

// deliverWatchers writes a presence change to every connection here that
// watches one of its users, each with the states it watches: a connection
// watching them all shares one encoding, the others (a login storm batches
// many users' changes) get their own.
func (g *Gateway) deliverWatchers(f *cimpb.Frame) {
	states := f.GetPresence().GetStates()
	if f.GetType() != cimpb.Type_PRESENCE || len(states) == 0 {
		return
	}
	var shared *conn.Shared
	for c, mine := range g.watch.watching(states) {
		if len(mine) == len(states) {
			if shared == nil {
				shared = conn.NewShared(f)
			}
			c.SendShared(shared)
			continue
		}
		c.Send(&cimpb.Frame{Type: cimpb.Type_PRESENCE, Presence: &cimpb.Presence{States: mine}})
	}
}
