package gctune

import (
	"context"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name  string
		live  uint64
		base  int
		floor uint64
		want  int
	}{
		{"small heap grows by the floor", 4 * mib, 25, 16 * mib, 400},
		{"large heap keeps the base", 200 * mib, 25, 16 * mib, 25},
		{"exactly the floor keeps the base", 64 * mib, 25, 16 * mib, 25},
		{"empty heap is capped", 0, 25, 16 * mib, maxPercent},
		{"tiny heap is capped", 1024, 25, 16 * mib, maxPercent},
		{"no floor", 4 * mib, 25, 0, 25},
		{"GC off stays off", 4 * mib, -1, 16 * mib, -1},
	} {
		if got := Percent(tc.live, tc.base, tc.floor); got != tc.want {
			t.Errorf("%s: Percent(%d, %d, %d) = %d, want %d", tc.name, tc.live, tc.base, tc.floor, got, tc.want)
		}
	}
}

// TestTuneRaises: with a floor far above this test's live heap the percent
// goes up to the cap, and back to the base without the floor.
func TestTuneRaises(t *testing.T) {
	old := debug.SetGCPercent(25)
	defer debug.SetGCPercent(old)
	if p := tune(25, 25, 1<<40); p != maxPercent {
		t.Fatalf("tune returned %d, want %d", p, maxPercent)
	}
	if p := debug.SetGCPercent(25); p != maxPercent {
		t.Fatalf("GC percent %d after tune, want %d", p, maxPercent)
	}
}

// TestRunRestoresBase: Run puts the base back when it stops.
func TestRunRestoresBase(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // one turn, then stop
	Run(ctx, 25, 1<<40, time.Hour)
	if p := debug.SetGCPercent(100); p != 25 {
		t.Fatalf("GC percent %d after Run stopped, want the base 25", p)
	}
}
