package router

import (
	"testing"
	"time"

	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// stale checks that ans is exactly one ERROR StaleSession for s, with no
// client_msg_id (the client keeps its messages and replays them).
func stale(t *testing.T, ans []*cimpb.Delivery, s Session) {
	t.Helper()
	if len(ans) != 1 {
		t.Fatalf("%d answers %v, want one ERROR StaleSession", len(ans), ans)
	}
	f := ans[0].Frame
	if f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.StaleSession || f.Error.ClientMsgId != "" ||
		ans[0].UserId != s.UserID || ans[0].SessionId != s.SessionID {
		t.Fatalf("answer %v for %s/%s, want ERROR StaleSession without client_msg_id for %s/%s",
			f, ans[0].UserId, ans[0].SessionId, s.UserID, s.SessionID)
	}
}

// TestStaleSessionFenced: what a gateway forwards for a session that is no
// longer the user's current one (the user logged in again), or for a
// session the user holds on another gateway, is refused with one ERROR
// StaleSession per session and batch: no message is stored, no SYNC or ACK
// handled. The current session on its gateway goes through.
func TestStaleSessionFenced(t *testing.T) {
	e := newEnv(t, PolicyKick, 2)
	bob := e.connect("bob")
	old := e.connect("alice")
	sentIDs(t, e.uplink(old, msgFrame(0, "first", "bob"))) // the fence now knows old as current
	cur := e.connect("alice")                              // logged in again: old is stale
	if old.SessionID == cur.SessionID {
		t.Fatal("setup: the second login has the same session")
	}

	stale(t, e.uplink(old, msgFrame(1, "late1", "bob"), msgFrame(2, "late2", "bob"), syncFrame(3, 0, 0, true), ackFrame(1)), old)
	if n := len(e.inbox(bob.UserID)); n != 1 {
		t.Fatalf("bob's inbox holds %d entries after a stale session's messages, want 1 (first)", n)
	}

	// The current session, but forwarded by another gateway than the one
	// it logged in on.
	other := e.gws[0].ID
	if other == cur.Gateway.ID {
		other = e.gws[1].ID
	}
	moved := cur
	moved.Gateway.ID = other
	stale(t, e.uplink(moved, msgFrame(4, "elsewhere", "bob")), moved)

	// The current session on its gateway: stored and answered.
	sentIDs(t, e.uplink(cur, msgFrame(5, "now", "bob")))
	if in := e.inbox(bob.UserID); len(in) != 2 || in[1].GetMsg().GetClientMsgId() != "now" {
		t.Fatalf("bob's inbox %v, want first and now", in)
	}

	// Logged off: no route at all.
	if err := e.r.SessionOffline(e.ctx, contract.Session{UserID: cur.UserID, SessionID: cur.SessionID}); err != nil {
		t.Fatal(err)
	}
	stale(t, e.uplink(cur, msgFrame(6, "gone", "bob")), cur)
}

// TestClearedSessionReclaimed: a gateway frozen past its ZooKeeper session
// has its routes cleared; when it runs again, what it forwards for a
// session cleared with it is taken back (the route is restored and the
// frames handled) instead of being refused, so that its users need not log
// in again. A session that ended meanwhile, or one the user replaced, is not.
func TestClearedSessionReclaimed(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	bob := e.connect("bob")
	alice := e.connect("alice")
	carol := e.connect("carol")
	dave := e.connect("dave")
	gw := alice.Gateway.ID
	if gone, err := e.st.ClearGateway(e.ctx, gw); err != nil || len(gone) != 4 {
		t.Fatalf("cleared %v routes, %v; want 4", gone, err)
	}
	if err := e.r.SessionOffline(e.ctx, contract.Session{UserID: carol.UserID, SessionID: carol.SessionID}); err != nil { // ended
		t.Fatal(err)
	}
	if _, err := e.r.Login(e.ctx, LoginRequest{UserName: "dave", Password: "password1"}); err != nil { // replaced
		t.Fatal(err)
	}

	sentIDs(t, e.uplink(alice, msgFrame(1, "back", "bob")))
	routes, err := e.st.Routes(e.ctx, []string{alice.UserID})
	if rt := routes[alice.UserID]; err != nil || rt.Session != alice.SessionID || rt.Gateway != gw || !rt.Online() {
		t.Fatalf("alice's route after the reclaim: %+v, %v", rt, err)
	}
	stale(t, e.uplink(carol, msgFrame(2, "ended", "bob")), carol)
	stale(t, e.uplink(dave, msgFrame(3, "replaced", "bob")), dave)
	if in := e.inbox(bob.UserID); len(in) != 1 || in[0].GetMsg().GetClientMsgId() != "back" {
		t.Fatalf("bob's inbox %v, want only \"back\"", in)
	}
}

// TestFenceSweepDropsOldEntries: the sweep keeps what the fence read within
// fenceTTL and drops the rest, so a replica's fence holds entries only for
// users who sent something lately.
func TestFenceSweepDropsOldEntries(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	bob := e.connect("bob")
	alice := e.connect("alice")
	sentIDs(t, e.uplink(alice, msgFrame(0, "hi", "bob")))
	if _, ok := e.r.current.Peek(alice.UserID); !ok {
		t.Fatal("setup: the fence did not keep alice's session")
	}
	base := time.Now()
	e.r.now = func() time.Time { return base }
	e.r.current.Add(bob.UserID, currentSession{at: base.Add(-fenceTTL / 2)})
	e.r.current.Add(alice.UserID, currentSession{at: base.Add(-fenceTTL)})
	e.r.sweepFence()
	if _, ok := e.r.current.Peek(alice.UserID); ok {
		t.Error("an entry fenceTTL old survived the sweep")
	}
	if _, ok := e.r.current.Peek(bob.UserID); !ok {
		t.Error("an entry younger than fenceTTL was swept")
	}
}
