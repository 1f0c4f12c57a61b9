package ratelimit

import (
	"testing"
	"time"
)

func TestAllow(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := New(Config{Rate: 1, Burst: 3, Dimensions: 2})
	l.now = func() time.Time { return now }
	for i := range 3 {
		if d := l.Allow("ip1", "alice"); d != 0 {
			t.Fatalf("attempt %d refused (%v) within the burst", i+1, d)
		}
	}
	d := l.Allow("ip1", "alice")
	if d <= 0 || d > time.Second {
		t.Fatalf("4th attempt: wait %v, want (0, 1s]", d)
	}
	// Another name from the same IP: the IP has no token left.
	if d := l.Allow("ip1", "bob"); d == 0 {
		t.Fatal("IP limit not applied")
	}
	// The same name from another IP: the name has no token left.
	if d := l.Allow("ip2", "alice"); d == 0 {
		t.Fatal("name limit not applied")
	}
	// Refusals took nothing: ip2 and bob still have their full bursts.
	for i := range 3 {
		if d := l.Allow("ip2", "bob"); d != 0 {
			t.Fatalf("ip2/bob attempt %d refused (%v): a refusal consumed tokens", i+1, d)
		}
	}
	now = now.Add(time.Second)
	if d := l.Allow("ip1", "alice"); d != 0 {
		t.Fatalf("after a second: refused (%v)", d)
	}
	// An empty key skips its dimension.
	if d := l.Allow("ip3", ""); d != 0 {
		t.Fatalf("empty name: %v", d)
	}
}

func TestOff(t *testing.T) {
	l := New(Config{Rate: 0, Burst: 1})
	for range 100 {
		if d := l.Allow("ip", "name"); d != 0 {
			t.Fatal("a disabled limiter refused")
		}
	}
}

func TestEviction(t *testing.T) {
	l := New(Config{Rate: 0.001, Burst: 1, Dimensions: 1, Size: 2})
	if l.Allow("a") != 0 || l.Allow("a") == 0 {
		t.Fatal("burst of 1 not applied")
	}
	l.Allow("b")
	l.Allow("c") // evicts a, the least recently used
	if l.Allow("a") != 0 {
		t.Fatal("evicted bucket not renewed")
	}
}

// TestAllowN: n tokens at once, all or none; more than the burst never.
func TestAllowN(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := New(Config{Rate: 1, Burst: 10, Dimensions: 1})
	l.now = func() time.Time { return now }
	if d := l.AllowN(7, "alice"); d != 0 {
		t.Fatalf("7 of 10: %v", d)
	}
	if d := l.AllowN(4, "alice"); d <= 0 || d == Never {
		t.Fatalf("4 with 3 left: %v, want a wait", d)
	}
	if d := l.AllowN(3, "alice"); d != 0 {
		t.Fatalf("the 3 left after a refusal: %v", d)
	}
	if d := l.AllowN(11, "bob"); d != Never {
		t.Fatalf("more than the burst: %v, want Never", d)
	}
	if d := l.AllowN(10, "bob"); d != 0 {
		t.Fatalf("bob's full burst after a refusal: %v", d)
	}
}
