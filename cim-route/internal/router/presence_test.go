package router

import (
	"testing"
	"time"

	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
)

// TestLastSeen: when a user's session ends, its last seen is when: GET
// /presence reports it (lastSeen) and a SUBSCRIBE snapshot carries it as an
// offline state's at_ms; 0 for one never seen, one online (who has since),
// and one who blocked the viewer (shown offline as anyone, with nothing
// more). A later session's end moves it.
func TestLastSeen(t *testing.T) {
	for _, store := range []string{"memory", "redis"} {
		t.Run(store, func(t *testing.T) {
			if store == "redis" {
				t.Setenv("CIM_ROUTER_STORE", "redis")
			}
			clock := newTestClock()
			e := newEnv(t, PolicyKick, 1, func(c *Config) { c.Now = clock.now })
			alice, bob, carol := e.connect("alice"), e.connect("bob"), e.connect("carol")
			e.account("dave")
			offline := func(s Session) {
				t.Helper()
				if err := e.r.SessionOffline(e.ctx, contract.Session{UserID: s.UserID, SessionID: s.SessionID, GatewayID: s.Gateway.ID}); err != nil {
					t.Fatal(err)
				}
				e.waitPushes() // the presence change and the last seen
			}
			clock.advance(time.Minute)
			offline(bob)
			bobGone := clock.now().UnixMilli()
			clock.advance(time.Minute)
			offline(carol)
			carolGone := clock.now().UnixMilli()

			ps, err := e.r.Presence(e.ctx, alice.UserID, []string{"bob", "carol", "dave", "alice"})
			if err != nil {
				t.Fatal(err)
			}
			type state struct {
				online          bool
				since, lastSeen int64
			}
			var got []state
			for _, p := range ps {
				got = append(got, state{p.Online, p.Since, p.LastSeen})
			}
			want := []state{{false, 0, bobGone}, {false, 0, carolGone}, {false, 0, 0}, {true, got[3].since, 0}}
			if len(got) != 4 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] || got[3].since == 0 {
				t.Fatalf("presence = %+v, want %+v (alice online since her login)", got, want)
			}
			sub := e.uplink(alice, &cimpb.Frame{Type: cimpb.Type_SUBSCRIBE, ReqId: 1, Subscribe: &cimpb.Subscribe{Users: []string{"bob", "dave"}}})
			sts := sub[0].Frame.GetPresence().GetStates()
			if len(sts) != 2 || sts[0].Online || sts[0].AtMs != bobGone || sts[1].Online || sts[1].AtMs != 0 {
				t.Fatalf("snapshot %v, want bob offline at %d, dave never seen", sts, bobGone)
			}

			// carol blocks alice: to alice she is offline with no last
			// seen; to an application as ever.
			if _, err := e.r.Block(e.ctx, carol.UserID, "alice"); err != nil {
				t.Fatal(err)
			}
			if ps, err := e.r.Presence(e.ctx, alice.UserID, []string{"carol"}); err != nil || ps[0].Online || ps[0].LastSeen != 0 {
				t.Fatalf("carol's presence to alice, whom she blocked: %+v %v", ps, err)
			}
			sub = e.uplink(alice, &cimpb.Frame{Type: cimpb.Type_SUBSCRIBE, ReqId: 2, Subscribe: &cimpb.Subscribe{Users: []string{"carol"}}})
			if st := sub[0].Frame.GetPresence().GetStates()[0]; st.Online || st.AtMs != 0 {
				t.Fatalf("carol in alice's snapshot: %v, want offline with no time", st)
			}
			if ps, err := e.r.Presence(e.ctx, "", []string{"carol"}); err != nil || ps[0].LastSeen != carolGone {
				t.Fatalf("carol's presence to an application: %+v %v", ps, err)
			}

			// bob comes and goes again: his last seen moves.
			bob = e.connect("bob")
			clock.advance(time.Minute)
			offline(bob)
			if ps, err := e.r.Presence(e.ctx, alice.UserID, []string{"bob"}); err != nil || ps[0].LastSeen != clock.now().UnixMilli() {
				t.Fatalf("bob's presence after his second session: %+v %v, want lastSeen %d", ps, err, clock.now().UnixMilli())
			}
		})
	}
}
