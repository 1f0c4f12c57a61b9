package main

import (
	"io"
	"os"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	o, err := parse([]string{"--quick"}, io.Discard)
	if err != nil || len(o.groups) != 1 || o.groups[0] != 200 || o.messages != 5 {
		t.Fatalf("quick: %+v %v", o, err)
	}
	o, err = parse(nil, io.Discard)
	if err != nil || len(o.groups) != 2 || o.groups[1] != 5000 || o.messages != 20 {
		t.Fatalf("default: %+v %v", o, err)
	}
	for _, bad := range []string{"1", "x", "20000"} {
		if _, err := parse([]string{"--groups", bad}, io.Discard); err == nil {
			t.Errorf("--groups %s accepted", bad)
		}
	}
}

// TestProcStat reads this process's own CPU time and RSS from /proc.
func TestProcStat(t *testing.T) {
	// Burn a little CPU so the counters move.
	deadline := time.Now().Add(50 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	cpu, err := cpuOf(os.Getpid())
	if err != nil || cpu <= 0 {
		t.Fatalf("cpuOf = %v, %v", cpu, err)
	}
	rss, err := rssOf(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Fatalf("rssOf = %d, %v", rss, err)
	}
}
