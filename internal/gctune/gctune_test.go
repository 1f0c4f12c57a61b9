package gctune

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
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

func TestBusy(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name      string
		prev, now uint64
		d         time.Duration
		want      bool
	}{
		{"allocates more than the floor a second", 100 * mib, 132 * mib, time.Second, true},
		{"exactly the floor", 0, 16 * mib, time.Second, true},
		{"allocates less", 100 * mib, 108 * mib, time.Second, false},
		{"the floor's rate over half a second", 0, 8 * mib, time.Second / 2, true},
		{"counter went back", 8 * mib, 0, time.Second, false},
		{"no interval", 0, 64 * mib, 0, false},
	} {
		if got := Busy(tc.prev, tc.now, tc.d, 16*mib); got != tc.want {
			t.Errorf("%s: Busy(%d, %d, %v) = %v, want %v", tc.name, tc.prev, tc.now, tc.d, got, tc.want)
		}
	}
}

// percentNow is the GC percent in force.
func percentNow() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// waitPercent calls work until the GC percent satisfies ok.
func waitPercent(t *testing.T, what string, ok func(int) bool, work func()) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok(percentNow()) {
		if time.Now().After(deadline) {
			t.Fatalf("GC percent %d: never %s", percentNow(), what)
		}
		if work != nil {
			work()
		} else {
			time.Sleep(time.Millisecond) // polling for the change, not timing it
		}
	}
}

// TestRunFollowsLoad: while the process allocates more than the floor a
// second, Run raises the percent; once it stops, the base comes back.
func TestRunFollowsLoad(t *testing.T) {
	old := debug.SetGCPercent(25)
	defer debug.SetGCPercent(old)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, 25, 1<<20, 10*time.Millisecond)
	}()
	var sink []byte
	waitPercent(t, "raised while busy", func(p int) bool { return p > 25 }, func() {
		sink = make([]byte, 64<<10)
		sink[0] = 1
	})
	waitPercent(t, "back to the base when idle", func(p int) bool { return p == 25 }, nil)
	cancel()
	<-done
	_ = sink
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
