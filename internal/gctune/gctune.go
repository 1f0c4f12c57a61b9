// Package gctune gives the Go garbage collector a floor of heap growth: a
// process whose live heap is small (a gateway busy with few connections)
// would otherwise, with a low GC percent, collect many times a second, and
// each collection costs CPU and, on a machine short of cores, adds
// milliseconds to the messages in flight. With a floor of F bytes the heap
// may grow by at least F between collections; a large heap (many idle
// connections) keeps the configured percent, and with it its memory.
package gctune

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// maxPercent bounds the percent the floor sets: a nearly empty heap does
// not collect at 100 times its size.
const maxPercent = 1000

// Percent is the GC percent for a live heap of live bytes: base, or more
// when base lets the heap grow by less than floor bytes.
func Percent(live uint64, base int, floor uint64) int {
	if base < 0 || floor == 0 {
		return base
	}
	if live == 0 {
		return maxPercent
	}
	p := floor * 100 / live
	if p <= uint64(base) {
		return base
	}
	return int(min(p, maxPercent))
}

// liveMetric is the heap the last collection found alive.
const liveMetric = "/gc/heap/live:bytes"

// Run sets the GC percent from Percent(live heap, base, floor) now and
// every interval until ctx ends, then restores base. base < 0 (GC off) or
// floor 0 leave the percent alone.
func Run(ctx context.Context, base int, floor uint64, every time.Duration) {
	if base < 0 || floor == 0 {
		return
	}
	defer debug.SetGCPercent(base)
	t := time.NewTicker(every)
	defer t.Stop()
	cur := debug.SetGCPercent(base)
	for {
		cur = tune(cur, base, floor)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tune sets the percent for the live heap now, when it differs from cur,
// and returns it.
func tune(cur, base int, floor uint64) int {
	sample := [1]metrics.Sample{{Name: liveMetric}}
	metrics.Read(sample[:])
	var live uint64
	if sample[0].Value.Kind() == metrics.KindUint64 {
		live = sample[0].Value.Uint64()
	}
	if p := Percent(live, base, floor); p != cur {
		debug.SetGCPercent(p)
		return p
	}
	return cur
}
