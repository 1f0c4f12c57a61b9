// Package gctune gives the Go garbage collector a floor of heap growth: a
// process whose live heap is small (a gateway busy with few connections)
// would otherwise, with a low GC percent, collect many times a second, and
// each collection costs CPU and, on a machine short of cores, adds
// milliseconds to the messages in flight. With a floor of F bytes the heap
// may grow by at least F between collections, while the process allocates
// at least F a second (it is busy); a large heap (many idle connections)
// and a process that allocates little (however many connections it holds)
// keep the configured percent, and with it their memory.
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

// Busy reports whether a process that allocated from prev to now bytes
// (cumulative) over d allocates at least floor bytes a second: only then
// does the floor apply. An idle gateway allocates little however many
// connections it holds, so it keeps the base percent and its memory; the
// allocation rate does not depend on the percent, so the floor does not
// switch itself off.
func Busy(prev, now uint64, d time.Duration, floor uint64) bool {
	if now < prev || d <= 0 {
		return false
	}
	return float64(now-prev) >= float64(floor)*d.Seconds()
}

const (
	// liveMetric is the heap the last collection found alive.
	liveMetric = "/gc/heap/live:bytes"
	// allocsMetric is the bytes allocated since the process started.
	allocsMetric = "/gc/heap/allocs:bytes"
)

// Run sets the GC percent every interval until ctx ends, then restores
// base: Percent(live heap, base, floor) while the process is Busy over the
// last interval, base otherwise. base < 0 (GC off) or floor 0 leave the
// percent alone.
func Run(ctx context.Context, base int, floor uint64, every time.Duration) {
	if base < 0 || floor == 0 {
		return
	}
	defer debug.SetGCPercent(base)
	t := time.NewTicker(every)
	defer t.Stop()
	cur := debug.SetGCPercent(base)
	_, prev := read()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		live, allocs := read()
		f := floor
		if !Busy(prev, allocs, every, floor) {
			f = 0
		}
		prev = allocs
		cur = set(cur, Percent(live, base, f))
	}
}

// read returns the live heap and the bytes allocated so far.
func read() (live, allocs uint64) {
	s := [2]metrics.Sample{{Name: liveMetric}, {Name: allocsMetric}}
	metrics.Read(s[:])
	if s[0].Value.Kind() == metrics.KindUint64 {
		live = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		allocs = s[1].Value.Uint64()
	}
	return live, allocs
}

// set sets the GC percent to p when it differs from cur, and returns p.
func set(cur, p int) int {
	if p != cur {
		debug.SetGCPercent(p)
	}
	return p
}
