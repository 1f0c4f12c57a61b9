package gateway

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// checkSchedule checks offsets of a drain of n closes over d: each within
// its slot, below d, rising.
func checkSchedule(t *testing.T, at []time.Duration, n int, d time.Duration) {
	t.Helper()
	if len(at) != n {
		t.Fatalf("%d offsets for %d closes", len(at), n)
	}
	slot := float64(d) / float64(n)
	for i, a := range at {
		if a < 0 || a >= d {
			t.Fatalf("close %d at %v: outside [0, %v)", i, a, d)
		}
		if lo, hi := time.Duration(slot*float64(i)), time.Duration(slot*float64(i+1)); a < lo-1 || a > hi {
			t.Fatalf("close %d at %v: outside its slot [%v, %v)", i, a, lo, hi)
		}
		if i > 0 && a < at[i-1] {
			t.Fatalf("close %d at %v before close %d at %v", i, a, i-1, at[i-1])
		}
	}
}

func TestDrainSchedule(t *testing.T) {
	const d = 3 * time.Second
	seq := func(js ...float64) func() float64 {
		i := 0
		return func() float64 { j := js[i%len(js)]; i++; return j }
	}
	if at := drainSchedule(0, d, rand.Float64); len(at) != 0 {
		t.Fatalf("no connections: %v", at)
	}
	for _, at := range drainSchedule(5, 0, rand.Float64) {
		if at != 0 {
			t.Fatalf("no drain time: close at %v, want at once", at)
		}
	}
	// Zero jitter is the old even grid; the last slot's end is never reached.
	if at := drainSchedule(4, d, seq(0)); fmt.Sprint(at) != "[0s 750ms 1.5s 2.25s]" {
		t.Fatalf("zero jitter: %v", at)
	}
	if at := drainSchedule(4, d, seq(0.5, 0.1, 0.9, 0.25)); fmt.Sprint(at) != "[375ms 825ms 2.175s 2.4375s]" {
		t.Fatalf("jitter 0.5 0.1 0.9 0.25: %v", at)
	}
	// A source out of range stays within the slots.
	checkSchedule(t, drainSchedule(4, d, seq(1, 7, -1, math.NaN())), 4, d)
	checkSchedule(t, drainSchedule(3, d, seq(math.Nextafter(1, 0))), 3, d)
	// More closes than nanoseconds.
	checkSchedule(t, drainSchedule(1000, 100*time.Nanosecond, rand.Float64), 1000, 100*time.Nanosecond)
	// The default source: within the slots, and not the grid.
	at := drainSchedule(1000, d, rand.Float64)
	checkSchedule(t, at, 1000, d)
	onGrid := 0
	for i, a := range at {
		if a == d*time.Duration(i)/1000 {
			onGrid++
		}
	}
	if onGrid > 10 {
		t.Fatalf("%d of 1000 closes on the even grid", onGrid)
	}
}

// TestDrainIsJittered: shutdown closes every connection with ERROR
// GoingAway within --drain, one at a time at the offsets of the jittered
// schedule (from an injected source), not on the even grid.
func TestDrainIsJittered(t *testing.T) {
	const n = 5
	drainFor := 10 * time.Second // never waited for: the wait is injected
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, func(c *Config) { c.Drain = drainFor })
	var clients []*client
	for i := range n {
		clients = append(clients, login(t, g, fmt.Sprint(i), fmt.Sprint("s", i)))
	}

	// Every connection, also once it is gone from g.conns.
	var all []*conn.Conn
	g.connMu.Lock()
	for c := range g.conns {
		all = append(all, c)
	}
	g.connMu.Unlock()
	if len(all) != n {
		t.Fatalf("%d connections tracked, want %d", len(all), n)
	}

	jitters := []float64{0.3, 0.8, 0.05, 0.5, 0.95}
	next := 0
	g.drainJitter = func() float64 { j := jitters[next]; next++; return j }
	var (
		mu       sync.Mutex
		waited   []time.Duration
		closedAt []int // connections closing when each wait began
	)
	g.drainWait = func(ctx context.Context, start time.Time, at time.Duration) error {
		closing := 0
		for _, c := range all {
			if c.Closing() {
				closing++
			}
		}
		mu.Lock()
		waited = append(waited, at)
		closedAt = append(closedAt, closing)
		mu.Unlock()
		return ctx.Err()
	}

	done := make(chan error, 1)
	go func() { done <- g.Shutdown(context.Background()) }()
	for _, c := range clients {
		if f := c.recv(); f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.GoingAway {
			t.Fatalf("got %v, want ERROR GoingAway", f)
		}
		c.expectEOF()
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	checkSchedule(t, waited, n, drainFor)
	for i, at := range waited {
		slot := drainFor / n
		if want := slot*time.Duration(i) + time.Duration(jitters[i]*float64(slot)); at < want-1 || at > want+1 { // ±1ns: rounding
			t.Fatalf("close %d at %v, want %v (jitter %v of its slot)", i, at, want, jitters[i])
		}
		if grid := slot * time.Duration(i); at == grid {
			t.Fatalf("close %d at %v: on the even grid", i, at)
		}
		// Each close waits for its time: the ones before it are done,
		// the ones after it not begun.
		if closedAt[i] != i {
			t.Fatalf("%d connections closing when close %d waited, want %d", closedAt[i], i, i)
		}
	}
}

// TestWriteQueueBytesReachesConnections: --write-queue-bytes is the
// connections' byte bound.
func TestWriteQueueBytesReachesConnections(t *testing.T) {
	g := startGateway(t, newFakeRoute(t).srv.URL, func(c *Config) { c.WriteQueueBytes = 12345 })
	if got := g.connCfg.WriteQueueBytes; got != 12345 {
		t.Fatalf("connections' byte bound %d, want 12345", got)
	}
	if d := DefaultConfig().WriteQueueBytes; d != 8<<20 {
		t.Fatalf("default --write-queue-bytes %d, want 8 MiB", d)
	}
}
