package gateway

import (
	"slices"
	"testing"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/proto/cimpb"
)

func states(uids ...string) []*cimpb.PresenceState {
	out := make([]*cimpb.PresenceState, len(uids))
	for i, u := range uids {
		out[i] = &cimpb.PresenceState{UserId: u}
	}
	return out
}

// TestWatchers: a snapshot sets a connection's watch list (replacing the
// last one), a change reaches each watching connection once, and a dropped
// connection watches nobody.
func TestWatchers(t *testing.T) {
	w := newWatchers()
	c1, c2 := &conn.Conn{}, &conn.Conn{}
	w.set(c1, states("2", "3"), nil)
	w.set(c2, states("3"), nil)
	if got := w.watching(states("3")); len(got) != 2 {
		t.Fatalf("watchers of 3: %d, want 2", len(got))
	}
	got := w.watching(states("2", "3", "9"))
	if len(got) != 2 || len(got[c1]) != 2 || len(got[c2]) != 1 || got[c2][0].UserId != "3" {
		t.Fatalf("watchers of 2, 3 and 9: %v, want c1 with 2 and 3, c2 with 3", got)
	}
	// The route unwatches 3 for c1 (3 blocked c1's user): c2 still hears.
	w.unwatch(c1, []string{"3", "8"})
	if got := w.watching(states("2", "3")); len(got) != 2 || len(got[c1]) != 1 || got[c1][0].UserId != "2" || len(got[c2]) != 1 {
		t.Fatalf("watchers of 2 and 3 after c1 unwatched 3: %v", got)
	}
	w.unwatch(c2, []string{"3"})
	if got := w.watching(states("3")); len(got) != 0 || len(w.by) != 1 {
		t.Fatalf("watchers of 3 after both unwatched it: %v (users indexed %d)", got, len(w.by))
	}
	// 3 unblocks c1's user: c1 watched 3, so it hears 3 again; it never
	// watched 8.
	if shown := w.rewatch(c1, []string{"3", "8"}); !slices.Equal(shown, []string{"3"}) {
		t.Fatalf("rewatch showed c1 %v, want 3 only", shown)
	}
	if got := w.watching(states("3", "8")); len(got) != 1 || len(got[c1]) != 1 || got[c1][0].UserId != "3" {
		t.Fatalf("watchers of 3 and 8 after c1's rewatch: %v, want c1 with 3", got)
	}
	// A snapshot naming a hidden user (5 blocked c2's user): c2 hears 5
	// only after a rewatch.
	w.set(c2, states("3", "5"), []string{"5"})
	if got := w.watching(states("5")); len(got) != 0 {
		t.Fatalf("watchers of hidden 5: %v", got)
	}
	if shown := w.rewatch(c2, []string{"5"}); !slices.Equal(shown, []string{"5"}) || len(w.watching(states("5"))[c2]) != 1 {
		t.Fatalf("rewatch of hidden 5 for c2: %v, %v", shown, w.watching(states("5")))
	}
	w.set(c2, states("3"), nil)
	if shown := w.rewatch(c2, []string{"5"}); len(shown) != 0 || len(w.watching(states("5"))) != 0 {
		t.Fatalf("rewatch of 5 after c2's new list left it out: %v", shown)
	}
	w.set(c1, states("4"), nil)
	if got := w.watching(states("2")); len(got) != 0 {
		t.Fatalf("watchers of 2 after c1 replaced its list: %d", len(got))
	}
	w.set(c1, nil, nil)
	w.drop(c2)
	if n, left := w.count(), len(w.by); n != 0 || left != 0 {
		t.Fatalf("%d connections, %d users still indexed", n, left)
	}
}

// TestWatchFrom: what of the route's PRESENCE reaches the client — never
// the unwatch and rewatch lists; a rewatched user's state only where the
// connection watched that user.
func TestWatchFrom(t *testing.T) {
	g := &Gateway{watch: newWatchers()}
	c1, c2 := &conn.Conn{}, &conn.Conn{}
	presence := func(p *cimpb.Presence) *cimpb.Frame {
		return &cimpb.Frame{Type: cimpb.Type_PRESENCE, ReqId: 7, Presence: p}
	}
	// c1 subscribed to 2 and 3; 3 had blocked its user.
	f := g.watchFrom(c1, presence(&cimpb.Presence{Snapshot: true, States: states("2", "3"), Unwatch: []string{"3"}}))
	if p := f.GetPresence(); f.GetReqId() != 7 || !p.GetSnapshot() || len(p.GetStates()) != 2 || p.GetUnwatch() != nil {
		t.Fatalf("snapshot forwarded as %v, want req 7, a snapshot of 2 and 3, no unwatch", f)
	}
	if got := g.watch.watching(states("3")); len(got) != 0 {
		t.Fatalf("hidden 3 heard by %v", got)
	}
	g.watchFrom(c2, presence(&cimpb.Presence{Snapshot: true, States: states("2")}))
	// 3 unblocks both: c1 shows it again, c2 never asked for it.
	online := &cimpb.PresenceState{UserId: "3", Online: true, AtMs: 9}
	re := presence(&cimpb.Presence{States: []*cimpb.PresenceState{online}, Rewatch: []string{"3"}})
	if f := g.watchFrom(c1, re); len(f.GetPresence().GetStates()) != 1 || !f.Presence.States[0].Online || f.Presence.Rewatch != nil {
		t.Fatalf("c1 gets %v, want 3 online and no rewatch", f)
	}
	if f := g.watchFrom(c2, re); f != nil {
		t.Fatalf("c2, which does not watch 3, gets %v", f)
	}
	if got := g.watch.watching(states("3")); len(got) != 1 || got[c1] == nil {
		t.Fatalf("watchers of 3: %v, want c1", got)
	}
	// 3 blocks them again: hidden from c1, which is shown 3 offline.
	off := &cimpb.PresenceState{UserId: "3", AtMs: 10}
	if f := g.watchFrom(c1, presence(&cimpb.Presence{States: []*cimpb.PresenceState{off}, Unwatch: []string{"3"}})); len(f.GetPresence().GetStates()) != 1 || f.Presence.Unwatch != nil {
		t.Fatalf("c1 gets %v, want 3 offline and no unwatch", f)
	}
	if got := g.watch.watching(states("3")); len(got) != 0 {
		t.Fatalf("watchers of 3 after the block: %v", got)
	}
}
