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

// TestArrivedTakesOnlyItsRunsBodies: a recipient counts the bodies its own
// run sent, once, and ignores other runs' and malformed ones.
func TestArrivedTakesOnlyItsRunsBodies(t *testing.T) {
	r := newP2PRun(2, 20, time.Second)
	sent := time.Unix(1_700_000_000, 0)
	at := sent.Add(time.Millisecond)
	good := r.body(1, 3, sent)
	if want := "p2p:" + strconv.FormatInt(r.id, 10) + ":1:3:" + strconv.FormatInt(sent.UnixNano(), 10); good != want {
		t.Fatalf("body %q, want %q", good, want)
	}
	other := newP2PRun(2, 20, time.Second)
	for _, b := range []string{
		other.body(1, 3, sent),                        // another run's
		"p2p:" + strconv.FormatInt(r.id, 10) + ":1:3", // too few fields
		good + ":7", // too many
		"p2p:" + strconv.FormatInt(r.id, 10) + ":2:3:1",  // no such pair
		"p2p:" + strconv.FormatInt(r.id, 10) + ":1:10:1", // past the run's messages
		"p2p:" + strconv.FormatInt(r.id, 10) + ":1:x:1",  // not a number
		"hello", "",
	} {
		r.arrived(b, at)
	}
	if n := r.received.Load(); n != 0 {
		t.Fatalf("%d foreign or malformed bodies counted", n)
	}
	r.arrived(good, at)
	if n := r.received.Load(); n != 1 || r.recv[1].lats[0] != time.Millisecond {
		t.Fatalf("received %d, latencies %v", n, r.recv[1].lats)
	}
}
