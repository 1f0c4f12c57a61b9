package ratelimit

import (
	"context"
	"testing"
	"time"
)

// allow is l.Allow for a limiter that cannot fail (in memory).
func allow(t *testing.T, l *Limiter, keys ...string) time.Duration {
	t.Helper()
	return allowN(t, l, 1, keys...)
}

func allowN(t *testing.T, l *Limiter, n int, keys ...string) time.Duration {
	t.Helper()
	d, err := l.AllowN(context.Background(), n, keys...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// fakeClock makes a memory limiter's clock now's.
func fakeClock(l *Limiter, now *time.Time) {
	l.buckets.(*memory).now = func() time.Time { return *now }
}

func TestAllow(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := New(Config{Rate: 1, Burst: 3, Dimensions: 2})
	fakeClock(l, &now)
	for i := range 3 {
		if d := allow(t, l, "ip1", "alice"); d != 0 {
			t.Fatalf("attempt %d refused (%v) within the burst", i+1, d)
		}
	}
	d := allow(t, l, "ip1", "alice")
	if d <= 0 || d > time.Second {
		t.Fatalf("4th attempt: wait %v, want (0, 1s]", d)
	}
	// Another name from the same IP: the IP has no token left.
	if d := allow(t, l, "ip1", "bob"); d == 0 {
		t.Fatal("IP limit not applied")
	}
	// The same name from another IP: the name has no token left.
	if d := allow(t, l, "ip2", "alice"); d == 0 {
		t.Fatal("name limit not applied")
	}
	// Refusals took nothing: ip2 and bob still have their full bursts.
	for i := range 3 {
		if d := allow(t, l, "ip2", "bob"); d != 0 {
			t.Fatalf("ip2/bob attempt %d refused (%v): a refusal consumed tokens", i+1, d)
		}
	}
	now = now.Add(time.Second)
	if d := allow(t, l, "ip1", "alice"); d != 0 {
		t.Fatalf("after a second: refused (%v)", d)
	}
	// An empty key skips its dimension.
	if d := allow(t, l, "ip3", ""); d != 0 {
		t.Fatalf("empty name: %v", d)
	}
}

func TestOff(t *testing.T) {
	l := New(Config{Rate: 0, Burst: 1})
	for range 100 {
		if d := allow(t, l, "ip", "name"); d != 0 {
			t.Fatal("a disabled limiter refused")
		}
	}
}

func TestEviction(t *testing.T) {
	l := New(Config{Rate: 0.001, Burst: 1, Dimensions: 1, Size: 2})
	if allow(t, l, "a") != 0 || allow(t, l, "a") == 0 {
		t.Fatal("burst of 1 not applied")
	}
	allow(t, l, "b")
	allow(t, l, "c") // evicts a, the least recently used
	if allow(t, l, "a") != 0 {
		t.Fatal("evicted bucket not renewed")
	}
}

// TestAllowN: n tokens at once, all or none; more than the burst never.
func TestAllowN(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := New(Config{Rate: 1, Burst: 10, Dimensions: 1})
	fakeClock(l, &now)
	if d := allowN(t, l, 7, "alice"); d != 0 {
		t.Fatalf("7 of 10: %v", d)
	}
	if d := allowN(t, l, 4, "alice"); d <= 0 || d == Never {
		t.Fatalf("4 with 3 left: %v, want a wait", d)
	}
	if d := allowN(t, l, 3, "alice"); d != 0 {
		t.Fatalf("the 3 left after a refusal: %v", d)
	}
	if d := allowN(t, l, 11, "bob"); d != Never {
		t.Fatalf("more than the burst: %v, want Never", d)
	}
	if d := allowN(t, l, 10, "bob"); d != 0 {
		t.Fatalf("bob's full burst after a refusal: %v", d)
	}
}
