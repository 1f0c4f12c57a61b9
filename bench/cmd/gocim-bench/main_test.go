package main

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	o, err := parse([]string{"--quick"}, io.Discard)
	if err != nil || len(o.groups) != 1 || o.groups[0] != 200 || o.messages != 5 {
		t.Fatalf("quick: %+v %v", o, err)
	}
	o, err = parse(nil, io.Discard)
	if err != nil || len(o.groups) != 2 || o.groups[1] != 5000 || o.messages != 100 {
		t.Fatalf("default: %+v %v", o, err)
	}
	for _, bad := range []string{"1", "x", "20000"} {
		if _, err := parse([]string{"--groups", bad}, io.Discard); err == nil {
			t.Errorf("--groups %s accepted", bad)
		}
	}
}

func TestParseWorkloads(t *testing.T) {
	o, err := parse([]string{"--quick"}, io.Discard)
	if err != nil || !o.workloads["fanout"] || !o.workloads["p2p"] || len(o.rates) != 1 || o.rates[0] != 1000 ||
		o.duration != 3*time.Second || o.pairs != 50 || !o.peers {
		t.Fatalf("quick: %+v %v", o, err)
	}
	o, err = parse(nil, io.Discard)
	if err != nil || len(o.rates) != 3 || o.rates[2] != 20000 || o.duration != 10*time.Second || o.p2pGateways != 2 {
		t.Fatalf("default: %+v %v", o, err)
	}
	if o, err = parse([]string{"--p2p-gateways", "1"}, io.Discard); err != nil || o.p2pGateways != 1 {
		t.Fatalf("--p2p-gateways 1: %+v %v", o, err)
	}
	o, err = parse([]string{"--workloads", "p2p", "--rates", "500, 2000", "--pairs", "10", "--duration", "2s", "--peers=false"}, io.Discard)
	if err != nil || o.workloads["fanout"] || !o.workloads["p2p"] || len(o.rates) != 2 || o.rates[1] != 2000 ||
		o.pairs != 10 || o.duration != 2*time.Second || o.peers {
		t.Fatalf("p2p only: %+v %v", o, err)
	}
	for _, bad := range [][]string{
		{"--workloads", "bogus"}, {"--workloads", ""}, {"--rates", "0"}, {"--rates", "x"},
		{"--pairs", "0"}, {"--duration", "1ms"}, {"--p2p-gateways", "0"}, {"--p2p-gateways", "3"}, {"--rates", "10", "--duration", "1s"}, // 10 msgs for 50 pairs
	} {
		if _, err := parse(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestParseTransports(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "tcp,ws"},
		{[]string{"--quick"}, "tcp,ws"},
		{[]string{"--transports", "ws"}, "ws"},
		{[]string{"--transports", "ws, tcp,ws"}, "ws,tcp"},
	} {
		o, err := parse(c.args, io.Discard)
		if err != nil || strings.Join(o.transports, ",") != c.want {
			t.Errorf("%q: transports %q, %v; want %s", c.args, o.transports, err, c.want)
		}
	}
	for _, bad := range []string{"", "udp", "tcp,"} {
		if _, err := parse([]string{"--transports", bad}, io.Discard); err == nil {
			t.Errorf("--transports %q accepted", bad)
		}
	}
}

func TestParseIdle(t *testing.T) {
	o, err := parse(nil, io.Discard)
	if err != nil || o.idle != 19000 || !o.workloads["idle"] {
		t.Fatalf("default: %+v %v", o, err)
	}
	o, err = parse([]string{"--quick"}, io.Discard)
	if err != nil || o.idle != 1000 || !o.workloads["idle"] {
		t.Fatalf("quick: %+v %v", o, err)
	}
	o, err = parse([]string{"--workloads", "idle", "--idle", "15000"}, io.Discard)
	if err != nil || o.idle != 15000 || !o.workloads["idle"] || o.workloads["fanout"] || o.workloads["p2p"] {
		t.Fatalf("idle only: %+v %v", o, err)
	}
	for _, bad := range []string{"-1", "30001", "x"} {
		if _, err := parse([]string{"--idle", bad}, io.Discard); err == nil {
			t.Errorf("--idle %s accepted", bad)
		}
	}
}

func TestCompare(t *testing.T) {
	rows := []row{
		{Workload: "group fan-out", System: "gocim"},
		{Workload: "p2p latency", System: "nats (embedded, no storage)", Offered: 1000, P50ms: 0.5, P99ms: 1, P999ms: 2},
		{Workload: "p2p latency", System: "gocim", Offered: 1000, P50ms: 2, P99ms: 5, P999ms: 0},
	}
	order(rows)
	compare(rows)
	if rows[0].Workload != "group fan-out" || rows[1].System != "gocim" || rows[2].VsGocim != "gocim p50 ×4.0, p99 ×5.0, p99.9 ×0.0" {
		t.Fatalf("%+v", rows)
	}
	var b strings.Builder
	printTable(&b, rows, "hdr")
	if !strings.Contains(b.String(), "| p2p latency | nats (embedded, no storage) |") || !strings.Contains(b.String(), "| - |") {
		t.Fatalf("table:\n%s", b.String())
	}
}

// TestCompareWebSocket: gocim (WebSocket) sits right after gocim and is
// compared with it; a peer over WebSocket is compared with both, one over
// TCP with gocim only; the idle rows compare memory and connect rate.
func TestCompareWebSocket(t *testing.T) {
	rows := []row{
		{Workload: "p2p latency", System: "gocim", Transport: "tcp", Offered: 1000, P50ms: 2, P99ms: 6, P999ms: 9},
		{Workload: "p2p latency", System: "nats (embedded, no storage)", Transport: "tcp", Offered: 1000, P50ms: 0.1, P99ms: 0.3, P999ms: 1},
		{Workload: "p2p latency", System: "centrifuge (in-memory)", Transport: "websocket", Offered: 1000, P50ms: 0.1, P99ms: 0.3, P999ms: 1},
		{Workload: "p2p latency", System: "gocim (WebSocket)", Transport: "websocket", Offered: 1000, P50ms: 4, P99ms: 6, P999ms: 12},
		{Workload: "idle connections", System: "gocim", Transport: "tcp", RSSPerConnKiB: 8, ConnectsPerSecond: 600},
		{Workload: "idle connections", System: "gocim (WebSocket)", Transport: "websocket", RSSPerConnKiB: 16, ConnectsPerSecond: 400},
	}
	order(rows)
	compare(rows)
	var systems []string
	for _, r := range rows {
		systems = append(systems, r.System)
	}
	if got := strings.Join(systems, ","); got != "gocim,gocim (WebSocket),nats (embedded, no storage),centrifuge (in-memory),gocim,gocim (WebSocket)" {
		t.Fatalf("order: %s", got)
	}
	for i, want := range []string{
		"",
		"gocim p50 ×0.5, p99 ×1.0, p99.9 ×0.8",
		"gocim p50 ×20.0, p99 ×20.0, p99.9 ×9.0",
		"gocim p50 ×20.0, p99 ×20.0, p99.9 ×9.0; gocim (WebSocket) p50 ×40.0, p99 ×20.0, p99.9 ×12.0",
		"",
		"gocim RSS/conn ×0.5, connects/s ×1.5",
	} {
		if rows[i].VsGocim != want {
			t.Errorf("%s %s: vs gocim %q, want %q", rows[i].Workload, rows[i].System, rows[i].VsGocim, want)
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

func TestParseSaturation(t *testing.T) {
	o, err := parse(nil, io.Discard)
	if err != nil || !o.workloads["saturation"] || len(o.steps) != 8 || o.steps[2] != 7500 || o.steps[7] != 40000 || o.stepDuration != 5*time.Second {
		t.Fatalf("default: %+v %v", o, err)
	}
	o, err = parse([]string{"--quick"}, io.Discard)
	if err != nil || !o.workloads["saturation"] || len(o.steps) != 2 || o.steps[0] != 2000 || o.steps[1] != 5000 ||
		o.stepDuration != 2*time.Second {
		t.Fatalf("quick: %+v %v", o, err)
	}
	o, err = parse([]string{"--workloads", "p2p,saturation", "--steps", "1000, 3000", "--step-duration", "1s"}, io.Discard)
	if err != nil || !o.workloads["saturation"] || !o.workloads["p2p"] || o.workloads["fanout"] || o.workloads["idle"] ||
		len(o.steps) != 2 || o.steps[1] != 3000 || o.stepDuration != time.Second {
		t.Fatalf("p2p,saturation: %+v %v", o, err)
	}
	for _, bad := range [][]string{
		{"--steps", "x"}, {"--steps", "0"}, {"--steps", "5000,2000"}, {"--steps", "2000,2000"},
		{"--step-duration", "1ms"}, {"--steps", "10", "--step-duration", "1s"}, // 10 msgs for 50 pairs
	} {
		if _, err := parse(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestSaturationRow(t *testing.T) {
	ok := func(rate float64) row {
		return row{Workload: "p2p latency", Offered: rate, Delivered: rate * 0.99, P99ms: 10, Sent: 10, Expected: 10}
	}
	slow := ok(10000)
	slow.P99ms = 80
	lossy := ok(10000)
	lossy.Loss = 1
	short := ok(10000)
	short.Delivered = 9000
	for _, bad := range []row{slow, lossy, short} {
		if holds(bad) {
			t.Errorf("holds(%+v)", bad)
		}
	}
	g := saturationRow("gocim", []row{ok(2000), ok(5000), slow})
	if g.Workload != "saturation" || g.Offered != 5000 || !strings.Contains(g.Result, "2000 ok, 5000 ok, 10000 failed") {
		t.Fatalf("gocim: %+v", g)
	}
	all := saturationRow("nats (embedded, no storage)", []row{ok(2000), ok(10000)})
	if all.Offered != 10000 || !strings.Contains(all.Result, "every step held") {
		t.Fatalf("nats: %+v", all)
	}
	none := saturationRow("centrifuge (Redis engine)", []row{lossy})
	if none.Offered != 0 || !strings.Contains(none.Result, "no step held") {
		t.Fatalf("none: %+v", none)
	}
	rows := []row{
		{Workload: "p2p latency", System: "gocim", Offered: 1000, P50ms: 2},
		all, g, none,
	}
	order(rows)
	compare(rows)
	if rows[1].System != "gocim" || rows[2].VsGocim != "gocim rate ×0.5" || rows[3].VsGocim != "gocim rate -" {
		t.Fatalf("%+v", rows)
	}
	rows = []row{saturationRow("gocim", []row{lossy}), all}
	compare(rows)
	if rows[1].VsGocim != "(gocim held no step)" {
		t.Fatalf("%+v", rows)
	}
}

func TestParseChurn(t *testing.T) {
	o, err := parse(nil, io.Discard)
	if err != nil || !o.workloads["churn"] || o.churnIdle != 500 || o.churnRate != 2000 || o.churnDuration != time.Minute {
		t.Fatalf("default: %+v %v", o, err)
	}
	o, err = parse([]string{"--quick"}, io.Discard)
	if err != nil || !o.workloads["churn"] || o.churnIdle != 150 || o.churnDuration != 10*time.Second {
		t.Fatalf("quick: %+v %v", o, err)
	}
	o, err = parse([]string{"--workloads", "churn", "--churn-idle", "0", "--churn-rate", "500", "--churn-duration", "30s"}, io.Discard)
	if err != nil || !o.workloads["churn"] || o.workloads["p2p"] || o.workloads["fanout"] || o.churnIdle != 0 ||
		o.churnRate != 500 || o.churnDuration != 30*time.Second {
		t.Fatalf("churn only: %+v %v", o, err)
	}
	for _, bad := range [][]string{
		{"--churn-idle", "20001"}, {"--churn-rate", "0"}, {"--churn-duration", "500ms"},
		{"--churn-rate", "10", "--churn-duration", "2s"}, // 20 msgs for 50 pairs
	} {
		if _, err := parse(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestParseMQTT(t *testing.T) {
	o, err := parse(nil, io.Discard)
	if err != nil || !o.workloads["mqtt"] || o.mqttDevices != 15000 || o.mqttProcs != 2 || o.mqttActive != 100 ||
		o.mqttRate != 1000 || o.mqttDuration != 10*time.Second {
		t.Fatalf("default: %+v %v", o, err)
	}
	o, err = parse([]string{"--quick"}, io.Discard)
	if err != nil || !o.workloads["mqtt"] || o.mqttDevices != 500 || o.mqttProcs != 0 || o.mqttActive != 20 ||
		o.mqttRate != 100 || o.mqttDuration != 2*time.Second {
		t.Fatalf("quick: %+v %v", o, err)
	}
	o, err = parse([]string{"--workloads", "mqtt", "--mqtt-devices", "25000", "--mqtt-rate", "500", "--mqtt-active", "50"}, io.Discard)
	if err != nil || !o.workloads["mqtt"] || o.workloads["idle"] || o.mqttDevices != 25000 || o.mqttProcs != 3 ||
		o.mqttRate != 500 || o.mqttActive != 50 {
		t.Fatalf("mqtt only: %+v %v", o, err)
	}
	for _, bad := range [][]string{
		{"--mqtt-devices", "30001"}, {"--mqtt-devices", "15001", "--mqtt-procs", "0"}, {"--mqtt-procs", "9"},
		{"--mqtt-active", "1001"}, {"--mqtt-rate", "50001"}, {"--mqtt-duration", "10ms"},
		{"--mqtt-rate", "10", "--mqtt-duration", "1s"}, // 10 msgs for 100 devices
	} {
		if _, err := parse(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
