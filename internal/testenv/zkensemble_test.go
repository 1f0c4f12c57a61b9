package testenv

import (
	"strings"
	"testing"
	"time"
)

// TestZooKeeperEnsemble: three members form one quorum with one leader;
// with a follower killed the other two still serve; the follower rejoins on
// Restart; with the leader killed the other two elect a new one; with two
// of three gone the last one stops serving (no quorum), which is what
// makes the first two checks mean something.
func TestZooKeeperEnsemble(t *testing.T) {
	e := StartZooKeeperEnsemble(t, 3)
	if got := strings.Split(e.Addrs, ","); len(got) != 3 || got[0] != e.Servers[0].Addr || got[2] != e.Servers[2].Addr {
		t.Fatalf("Addrs %q, want the three client addresses", e.Addrs)
	}
	leader := e.Leader()
	if leader < 0 {
		t.Fatal("no leader after start")
	}
	follower := (leader + 1) % 3
	if st, err := Srvr(e.Servers[follower].Addr); err != nil || st.Mode != "follower" {
		t.Fatalf("member %d: %+v %v, want a follower", follower, st, err)
	}

	e.Kill(follower)
	e.WaitQuorum(30 * time.Second)
	if got := e.Leader(); got != leader {
		t.Fatalf("leader %d after a follower died, want %d still", got, leader)
	}

	e.Restart(follower)
	if st, err := Srvr(e.Servers[follower].Addr); err != nil || st.Mode != "follower" {
		t.Fatalf("restarted member %d: %+v %v, want a follower", follower, st, err)
	}

	e.Kill(leader)
	e.WaitQuorum(60 * time.Second)
	next := e.Leader()
	if next < 0 || next == leader {
		t.Fatalf("leader %d after the leader %d died", next, leader)
	}

	e.Kill(next)
	last := 3 - leader - next
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := Srvr(e.Servers[last].Addr)
		if err == nil && st.Mode == "" {
			break // alone: not serving
		}
		if time.Now().After(deadline) {
			t.Fatalf("member %d alone still says %+v (%v), want not serving", last, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
