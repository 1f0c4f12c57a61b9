package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// row is one line of the results table: one workload at one setting on one
// system. Every workload maps its result into this shape so that gocim and
// its peers sit in one table.
type row struct {
	Workload string `json:"workload"`
	System   string `json:"system"`
	Setting  string `json:"setting"`
	// Transport is how the clients reach the system, "tcp" or "websocket"
	// ("" where it is the SDK's TCP and nothing compares by it).
	Transport string `json:"transport,omitempty"`
	// Offered is the offered rate in messages per second; 0 when the
	// workload sends as fast as it can (group fan-out).
	Offered    float64 `json:"offeredPerSecond"`
	Sent       int64   `json:"sent"`
	Expected   int64   `json:"expected"` // deliveries that should arrive
	Received   int64   `json:"received"` // distinct deliveries that arrived
	Seconds    float64 `json:"seconds"`
	Delivered  float64 `json:"deliveredPerSecond"`
	P50ms      float64 `json:"p50Ms"`
	P99ms      float64 `json:"p99Ms"`
	P999ms     float64 `json:"p999Ms"`
	MaxMs      float64 `json:"maxMs"`
	Loss       int64   `json:"loss"`
	Duplicates int64   `json:"duplicates"`
	// ClusterCPU is nil when the system runs inside the load generator
	// (embedded NATS): its CPU is then part of LoadgenCPU.
	ClusterCPU    *float64 `json:"clusterCpuCores"`
	LoadgenCPU    float64  `json:"loadgenCpuCores"`
	VsGocim       string   `json:"vsGocim,omitempty"`
	SetupSeconds  float64  `json:"setupSeconds,omitempty"`
	GatewayRSSMiB float64  `json:"gatewayRssMiB,omitempty"`
	// Idle-connection workload: connections made after the warm-up, the
	// gateway's RSS growth per connection in KiB, logins per second, and
	// the gateway's RSS before and after the warm-up.
	Connections        int     `json:"connections,omitempty"`
	RSSPerConnKiB      float64 `json:"rssPerConnKiB,omitempty"`
	ConnectsPerSecond  float64 `json:"connectsPerSecond,omitempty"`
	GatewayRSSStartMiB float64 `json:"gatewayRssStartMiB,omitempty"`
	GatewayRSSWarmMiB  float64 `json:"gatewayRssWarmMiB,omitempty"`
	// Churn workload: connections cut, and how many of those clients
	// logged in again.
	Reconnects int64 `json:"reconnects,omitempty"`
	Relogins   int64 `json:"relogins,omitempty"`
	// MQTT data up: PUBLISH → PUBACK at the device (the uplink stored).
	AckP50ms float64 `json:"ackP50Ms,omitempty"`
	AckP99ms float64 `json:"ackP99Ms,omitempty"`
	// Redis commands (INFO commandstats) per message sent (p2p part of the
	// scale workload) and per group delivery (fan-out), background traffic
	// taken out where the row says so.
	RedisOpsPerMessage  float64 `json:"redisOpsPerMessage,omitempty"`
	RedisOpsPerDelivery float64 `json:"redisOpsPerDelivery,omitempty"`
	// Scale workload: the fleet's numbers (scale.go).
	Scale *scaleStats `json:"scale,omitempty"`
	// Result is a free-text summary for workloads whose numbers do not fit
	// the message columns (shown in the table's last column).
	Result string `json:"result,omitempty"`
}

// latencies fills the percentile fields from unsorted latencies.
func (r *row) latencies(lats []time.Duration) {
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	r.P50ms = ms1(pct(lats, 0.50))
	r.P99ms = ms1(pct(lats, 0.99))
	r.P999ms = ms1(pct(lats, 0.999))
	r.MaxMs = ms1(pct(lats, 1))
}

func cores(f float64) *float64 { return &f }

// compare fills VsGocim on every row that has a gocim row of the same
// workload and offered rate to compare with: how many times the row's
// latency gocim's is. A peer reached over WebSocket (Centrifuge) is also
// compared with gocim (WebSocket), the like-for-like row, when there is
// one. A saturation row compares the highest rate that held instead, an
// idle-connections row the RSS per connection and the connect rate.
func compare(rows []row) {
	find := func(system, workload string, offered float64) *row {
		for i := range rows {
			if g := &rows[i]; g.System == system && g.Workload == workload && g.Offered == offered {
				return g
			}
		}
		return nil
	}
	for i := range rows {
		p := &rows[i]
		if p.System == "gocim" {
			continue
		}
		switch p.Workload {
		case "saturation":
			for _, g := range rows {
				if g.System == "gocim" && g.Workload == p.Workload {
					p.VsGocim = "gocim rate " + ratio(g.Offered, p.Offered)
					if g.Offered == 0 {
						p.VsGocim = "(gocim held no step)"
					}
					break
				}
			}
			continue
		case "idle connections":
			if g := find("gocim", p.Workload, p.Offered); g != nil {
				p.VsGocim = fmt.Sprintf("gocim RSS/conn %s, connects/s %s",
					ratio(g.RSSPerConnKiB, p.RSSPerConnKiB), ratio(g.ConnectsPerSecond, p.ConnectsPerSecond))
			}
			continue
		}
		var vs []string
		if g := find("gocim", p.Workload, p.Offered); g != nil {
			vs = append(vs, latencyRatios("gocim", g, p))
		}
		ws := systemName(transportWS)
		if p.Transport == "websocket" && p.System != ws {
			if g := find(ws, p.Workload, p.Offered); g != nil {
				vs = append(vs, latencyRatios(ws, g, p))
			}
		}
		p.VsGocim = strings.Join(vs, "; ")
	}
}

// latencyRatios says how many times p's latencies g's (named system) are.
func latencyRatios(system string, g, p *row) string {
	return fmt.Sprintf("%s p50 %s, p99 %s, p99.9 %s", system,
		ratio(g.P50ms, p.P50ms), ratio(g.P99ms, p.P99ms), ratio(g.P999ms, p.P999ms))
}

func ratio(ours, theirs float64) string {
	if theirs <= 0 {
		return "-"
	}
	return "×" + strconv.FormatFloat(ours/theirs, 'f', 1, 64)
}

// order puts rows of one workload together, by offered rate, gocim first,
// then gocim (WebSocket), then the rest as run (saturation rows: gocim
// first, the rest as run).
func order(rows []row) {
	first := map[string]int{}
	for i, r := range rows {
		if _, ok := first[r.Workload]; !ok {
			first[r.Workload] = i
		}
	}
	rank := func(system string) int {
		switch system {
		case "gocim":
			return 0
		case systemName(transportWS):
			return 1
		}
		return 2
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Workload != b.Workload {
			return first[a.Workload] < first[b.Workload]
		}
		if a.Workload == "saturation" { // one row per system, in the order run
			return a.System == "gocim" && b.System != "gocim"
		}
		if a.Offered != b.Offered {
			return a.Offered < b.Offered
		}
		return rank(a.System) < rank(b.System)
	})
}

func printTable(w io.Writer, rows []row, header string) {
	fmt.Fprintf(w, "\n%s\n\n", header)
	fmt.Fprintln(w, "| workload | system | setting | rate/s offered | delivered/s | p50 ms | p99 ms | p99.9 ms | loss | dup | cluster CPU | loadgen CPU | vs gocim | result |")
	fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
	for _, r := range rows {
		offered := "-"
		if r.Offered > 0 {
			offered = strconv.FormatFloat(r.Offered, 'f', 0, 64)
		}
		cluster := "-"
		if r.ClusterCPU != nil {
			cluster = fmt.Sprintf("%.2f", *r.ClusterCPU)
		}
		vs := r.VsGocim
		if vs == "" {
			vs = "-"
		}
		result := r.Result
		if result == "" {
			result = "-"
		}
		// Message columns: "-" for a workload that sends no messages.
		msgs := []string{"-", "-", "-", "-", "-", "-"}
		if r.Sent > 0 || r.Expected > 0 {
			msgs = []string{fmt.Sprintf("%.0f", r.Delivered), fmt.Sprintf("%.2f", r.P50ms), fmt.Sprintf("%.2f", r.P99ms),
				fmt.Sprintf("%.2f", r.P999ms), strconv.FormatInt(r.Loss, 10), strconv.FormatInt(r.Duplicates, 10)}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %.2f | %s | %s |\n",
			r.Workload, r.System, strings.ReplaceAll(r.Setting, "|", "/"), offered, strings.Join(msgs, " | "),
			cluster, r.LoadgenCPU, vs, strings.ReplaceAll(result, "|", "/"))
	}
}
