package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLatencyDump: with --latency-dump, a row's file has one line per
// message that arrived (a repeat is not a second line): its send time, its
// latency and its pair, the same latencies the row's percentiles came from.
func TestLatencyDump(t *testing.T) {
	latencyDump.path = filepath.Join(t.TempDir(), "lat")
	defer func() { latencyDump.path = "" }()
	r := newP2PRun(2, 20, time.Second) // 10 messages per pair
	sent := time.Unix(1_700_000_000, 0)
	r.arrived(r.body(0, 0, sent), sent.Add(3*time.Millisecond))
	r.arrived(r.body(1, 4, sent), sent.Add(7*time.Millisecond))
	r.arrived(r.body(1, 4, sent), sent.Add(9*time.Millisecond)) // a repeat
	out := r.result("gocim", "two pairs", 20, sent)
	if out.Duplicates != 1 {
		t.Fatalf("duplicates %d, want 1", out.Duplicates)
	}
	b, err := os.ReadFile(latencyDump.path + ".1")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	ns := strconv.FormatInt(sent.UnixNano(), 10)
	want := []string{ns + " 3000000 0", ns + " 7000000 1"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Fatalf("dump lines %q, want %q", lines, want)
	}
	if !strings.Contains(string(b), "# p2p latency | gocim | two pairs") {
		t.Errorf("no header naming the row in %q", b)
	}
}
