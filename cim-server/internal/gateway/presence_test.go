package gateway

import (
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
	w.set(c1, states("2", "3"))
	w.set(c2, states("3"))
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
	w.set(c1, states("4"))
	if got := w.watching(states("2")); len(got) != 0 {
		t.Fatalf("watchers of 2 after c1 replaced its list: %d", len(got))
	}
	w.set(c1, nil)
	w.drop(c2)
	if n, left := w.count(), len(w.by); n != 0 || left != 0 {
		t.Fatalf("%d connections, %d users still indexed", n, left)
	}
}
