package main

import (
	"io"
	"strings"
	"testing"
)

// TestMergeRounds: each row's rounds fold into one row with the medians of
// its latencies and CPU and the sums of its counts, in the first round's
// order, and the result names every round's p99 and CPU per message; the
// ratios are then taken between the medians.
func TestMergeRounds(t *testing.T) {
	gocim := func(p99, clusterCPU float64, lost int64) row {
		return row{Workload: "p2p latency", System: "gocim", Setting: "50 pairs", Offered: 5000,
			Sent: 50000, Expected: 50000, Received: 50000 - lost, Loss: lost, Seconds: 10, Delivered: 5000,
			P50ms: p99 / 2, P99ms: p99, P999ms: 2 * p99, MaxMs: 3 * p99, ClusterCPU: cores(clusterCPU), LoadgenCPU: 0.25,
			Result: "CPU per delivered message (/proc): …"}
	}
	peer := func(p99 float64) row {
		return row{Workload: "p2p latency", System: "centrifuge (Redis, history)", Setting: "50 pairs", Offered: 5000,
			Sent: 50000, Expected: 50000, Received: 50000, Seconds: 10, Delivered: 5000,
			P50ms: 0.3, P99ms: p99, P999ms: 3, MaxMs: 9, ClusterCPU: cores(0.25), LoadgenCPU: 0.75}
	}
	rounds := [][]row{
		{gocim(4, 0.70, 0), peer(1)},
		{gocim(6, 0.60, 2), peer(4)},
		{gocim(5, 0.65, 0), peer(2)},
	}
	rows := mergeRounds(rounds)
	if len(rows) != 2 || rows[0].System != "gocim" || rows[1].System != "centrifuge (Redis, history)" {
		t.Fatalf("rows %+v", rows)
	}
	g, p := rows[0], rows[1]
	if g.P99ms != 5 || g.P50ms != 2.5 || g.P999ms != 10 || g.MaxMs != 18 {
		t.Errorf("gocim latencies %v %v %v %v, want the medians 2.5 5 10 and the max 18", g.P50ms, g.P99ms, g.P999ms, g.MaxMs)
	}
	if g.ClusterCPU == nil || *g.ClusterCPU != 0.65 || g.LoadgenCPU != 0.25 {
		t.Errorf("gocim CPU %v %v, want the medians 0.65 and 0.25", g.ClusterCPU, g.LoadgenCPU)
	}
	if g.Sent != 150000 || g.Loss != 2 || g.Received != 149998 || g.Seconds != 30 {
		t.Errorf("gocim counts %+v, want the sums", g)
	}
	if !strings.HasSuffix(g.Setting, ", median of 3 rounds") {
		t.Errorf("setting %q", g.Setting)
	}
	// CPU per message: (0.70 + 0.25) cores over 5,000 messages a second.
	for _, want := range []string{"4.00 ms 190 µs", "6.00 ms 170 µs", "5.00 ms 180 µs", "round 1: CPU per delivered message"} {
		if !strings.Contains(g.Result, want) {
			t.Errorf("gocim result %q lacks %q", g.Result, want)
		}
	}
	if p.P99ms != 2 || !strings.Contains(p.Result, "1.00 ms 200 µs; 4.00 ms 200 µs; 2.00 ms 200 µs") {
		t.Errorf("peer %v %q", p.P99ms, p.Result)
	}
	compare(rows)
	if !strings.Contains(rows[1].VsGocim, "p99 ×2.5") {
		t.Errorf("ratio of the medians: %q", rows[1].VsGocim)
	}
	if one := mergeRounds(rounds[:1]); len(one) != 2 || one[0].P99ms != 4 || one[0].Setting != "50 pairs" {
		t.Errorf("one round changed: %+v", one)
	}
}

// TestMergeSaturationRounds: a system's saturation rounds fold into its
// median round by the highest step held, whatever step each held, and the
// result names every round's step; the peers' rows stay their own.
func TestMergeSaturationRounds(t *testing.T) {
	sat := func(system string, held float64, p99 float64) row {
		return row{Workload: "saturation", System: system, Setting: "50 pairs", Offered: held, P99ms: p99, Result: "steps/s: …"}
	}
	rows := mergeRounds([][]row{
		{sat("gocim", 20000, 30), sat("centrifuge (Redis, history)", 15000, 20)},
		{sat("gocim", 15000, 10), sat("centrifuge (Redis, history)", 20000, 25)},
		{sat("gocim", 30000, 40), sat("centrifuge (Redis, history)", 10000, 5)},
		{sat("gocim", 10000, 5), sat("centrifuge (Redis, history)", 20000, 24)},
	})
	if len(rows) != 2 {
		t.Fatalf("rows %+v", rows)
	}
	g, p := rows[0], rows[1]
	if g.System != "gocim" || g.Offered != 15000 || g.P99ms != 10 {
		t.Errorf("gocim %v at p99 %v, want the lower middle round: 15000 at 10", g.Offered, g.P99ms)
	}
	if !strings.HasPrefix(g.Result, "highest step held per round: 20000, 15000, 30000, 10000; the median round's steps/s") {
		t.Errorf("gocim result %q", g.Result)
	}
	if p.Offered != 15000 || p.P99ms != 20 || !strings.HasSuffix(p.Setting, ", median of 4 rounds") {
		t.Errorf("peer %v at %v, %q", p.Offered, p.P99ms, p.Setting)
	}
	compare(rows)
	if got := rows[1].VsGocim; got != "gocim rate ×1.0" {
		t.Errorf("vs gocim %q", got)
	}
}

// TestInRounds: the round runs n times, and the rounds are merged.
func TestInRounds(t *testing.T) {
	calls := 0
	var log strings.Builder
	rows := inRounds(3, "p2p latency", &log, func() []row {
		calls++
		return []row{{Workload: "p2p latency", System: "gocim", Offered: 5000, P99ms: float64(calls)}}
	})
	if calls != 3 || len(rows) != 1 || rows[0].P99ms != 2 || !strings.Contains(log.String(), "p2p latency: round 3 of 3") {
		t.Fatalf("%d calls, rows %+v, log %q", calls, rows, log.String())
	}
	if rows = inRounds(1, "p2p latency", &log, func() []row { return []row{{P99ms: 7}} }); len(rows) != 1 || rows[0].P99ms != 7 {
		t.Fatalf("one round: %+v", rows)
	}
}

func TestParseRounds(t *testing.T) {
	o, err := parse(nil, io.Discard)
	if err != nil || o.rounds != 1 {
		t.Fatalf("default rounds %d, %v", o.rounds, err)
	}
	if o, err = parse([]string{"--rounds", "3"}, io.Discard); err != nil || o.rounds != 3 {
		t.Fatalf("--rounds 3: %d, %v", o.rounds, err)
	}
	for _, bad := range []string{"0", "21", "-1"} {
		if _, err := parse([]string{"--rounds", bad}, io.Discard); err == nil {
			t.Errorf("--rounds %s accepted", bad)
		}
	}
}
