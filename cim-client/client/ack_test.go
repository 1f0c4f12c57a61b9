package client

import (
	"testing"
	"time"
)

// TestAckWaitsSpread: a batch's delay and interval are scaled by the
// factor spread draws for it, so clients whose messages came in the same
// millisecond acknowledge at different times.
func TestAckWaitsSpread(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	factors := []float64{0.5, 1.5, 1.0}
	a := &acks{delay: 100 * time.Millisecond, interval: 500 * time.Millisecond, every: 100,
		spread: func() float64 { f := factors[0]; factors = factors[1:]; return f }}

	a.show(1, 1, ms(0)) // a batch at 0, factor 0.5: due at 50
	if _, ok, next := a.due(ms(10)); ok || !next.Equal(ms(50)) {
		t.Fatalf("first batch due at %v (ok %v), want 50ms", next, ok)
	}
	if seq, ok, _ := a.due(ms(50)); !ok || seq != 1 {
		t.Fatalf("due(50ms) = %d, %v; want 1", seq, ok)
	}
	a.sent(1, ms(50))
	a.show(2, 1, ms(60)) // factor 1.5: no sooner than 50 + 750
	if _, ok, next := a.due(ms(300)); ok || !next.Equal(ms(800)) {
		t.Fatalf("second batch due at %v (ok %v), want 800ms", next, ok)
	}
	a.sent(2, ms(800))
	a.show(3, 1, ms(900)) // factor 1: 800 + 500
	if _, ok, next := a.due(ms(900)); ok || !next.Equal(ms(1300)) {
		t.Fatalf("third batch due at %v (ok %v), want 1300ms", next, ok)
	}
}

// TestClientAckSpread: a Client's acks, inbox and group timelines alike,
// draw their factors between 0.5 and 1.5, and not all the same.
func TestClientAckSpread(t *testing.T) {
	c, err := New(Config{RouteURL: "http://127.0.0.1:1", UserName: "alice", Password: "x"})
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]*acks{"inbox": c.acks, "group": c.tl.get("g").acks} {
		if a.spread == nil {
			t.Fatalf("%s acks have no spread", name)
		}
		seen := map[float64]bool{}
		for range 100 {
			f := a.spread()
			if f < 0.5 || f >= 1.5 {
				t.Fatalf("%s spread %v, want [0.5, 1.5)", name, f)
			}
			seen[f] = true
		}
		if len(seen) < 50 {
			t.Fatalf("%s spread drew %d distinct factors of 100", name, len(seen))
		}
	}
}
