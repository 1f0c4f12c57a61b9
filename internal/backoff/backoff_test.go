package backoff

import (
	"math"
	"testing"
	"time"
)

func TestNoJitter(t *testing.T) {
	b := New(5*time.Millisecond, time.Second, None)
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("wait %d = %v, want %v", i, got, w*time.Millisecond)
		}
	}
	b.Reset()
	if got := b.Next(); got != 5*time.Millisecond {
		t.Fatalf("after Reset: %v, want Min", got)
	}
}

func TestEqualJitter(t *testing.T) {
	b := New(50*time.Millisecond, 2*time.Second, Equal)
	var asked []int64
	b.Rand = func(n int64) int64 { asked = append(asked, n); return n - 1 }
	steps := []time.Duration{50, 100, 200, 400, 800, 1600, 2000, 2000}
	for i, s := range steps {
		s *= time.Millisecond
		got := b.Next()
		if got != s || asked[i] != int64(s/2)+1 {
			t.Fatalf("wait %d = %v (window %d), want %v from [%v, %v]", i, got, asked[i], s, s/2, s)
		}
	}
	b.Reset()
	b.Rand = func(int64) int64 { return 0 }
	if got := b.Next(); got != 25*time.Millisecond {
		t.Fatalf("smallest wait after Reset = %v, want half of Min", got)
	}
}

func TestFullJitter(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, time.Second
	b := New(lo, hi, Full)
	var asked []int64
	b.Rand = func(n int64) int64 { asked = append(asked, n); return n - 1 }
	var got []time.Duration
	for range 6 {
		got = append(got, b.Next())
	}
	// Windows above Min: 100, 300, 700, then capped at 900 ms.
	want := []int64{100, 300, 700, 900, 900, 900}
	for i, n := range asked {
		if time.Duration(n) != time.Duration(want[i])*time.Millisecond {
			t.Fatalf("window %d = %v, want %v (all %v)", i, time.Duration(n), time.Duration(want[i])*time.Millisecond, asked)
		}
		if got[i] < lo || got[i] >= hi {
			t.Fatalf("wait %d = %v outside [%v, %v)", i, got[i], lo, hi)
		}
	}
	b.Reset()
	b.Rand = func(int64) int64 { return 0 }
	if d := b.Next(); d != lo {
		t.Fatalf("after Reset: %v, want %v", d, lo)
	}
}

func TestDegenerate(t *testing.T) {
	// Min above Max: every wait is Max (None) or Min (Full), as before.
	if d := New(2*time.Second, time.Second, None).Next(); d != time.Second {
		t.Errorf("None with Min > Max: %v", d)
	}
	if d := New(2*time.Second, time.Second, Full).Next(); d != 2*time.Second {
		t.Errorf("Full with Min > Max: %v", d)
	}
	var zero Backoff
	if d := zero.Next(); d != 0 {
		t.Errorf("zero Backoff: %v", d)
	}
	// Doubling near the largest duration does not overflow.
	b := New(time.Duration(math.MaxInt64/2+1), time.Duration(math.MaxInt64), None)
	for range 3 {
		if d := b.Next(); d <= 0 {
			t.Fatalf("overflowed: %v", d)
		}
	}
	// The real source stays in the window.
	f := New(time.Millisecond, 8*time.Millisecond, Full)
	for range 100 {
		if d := f.Next(); d < time.Millisecond || d >= 8*time.Millisecond {
			t.Fatalf("wait %v outside [1ms, 8ms)", d)
		}
	}
}
