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
//
// The route may hide a watched user from a connection (unwatch: that user
// blocked the connection's user) and show it again (rewatch: the unblock):
// the user stays in the connection's list, out of the index of who hears
// its changes while hidden.
type watchers struct {
	mu sync.RWMutex
	by map[string]map[*conn.Conn]struct{} // watched user id -> connections that hear it
	of map[*conn.Conn][]string            // connection -> watched user ids, hidden ones included
}

func newWatchers() *watchers {
	return &watchers{by: map[string]map[*conn.Conn]struct{}{}, of: map[*conn.Conn][]string{}}
}

// set replaces c's watch list with the users of a snapshot, those of
// hidden unheard.
func (w *watchers) set(c *conn.Conn, states []*cimpb.PresenceState, hidden []string) {
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
		if !slices.Contains(hidden, uid) {
			w.hearLocked(c, uid)
		}
	}
	if c.Closing() {
		// Closed may have dropped c's list before this snapshot arrived:
		// a closing connection watches nobody.
		w.dropLocked(c)
	}
}

func (w *watchers) hearLocked(c *conn.Conn, uid string) {
	m := w.by[uid]
	if m == nil {
		m = map[*conn.Conn]struct{}{}
		w.by[uid] = m
	}
	m[c] = struct{}{}
}

func (w *watchers) deafLocked(c *conn.Conn, uid string) {
	if m := w.by[uid]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(w.by, uid)
		}
	}
}

// unwatch hides uids from c: c hears no more of their changes.
func (w *watchers) unwatch(c *conn.Conn, uids []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, uid := range uids {
		w.deafLocked(c, uid)
	}
}

// rewatch shows c again those of uids in its watch list, and returns them.
func (w *watchers) rewatch(c *conn.Conn, uids []string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var shown []string
	for _, uid := range uids {
		if slices.Contains(w.of[c], uid) {
			w.hearLocked(c, uid)
			shown = append(shown, uid)
		}
	}
	return shown
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
		w.deafLocked(c, uid)
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
