package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// One run of the p2p workload says little about a tail: on this machine the
// p99 of the same build swings by two or three times from run to run, and
// a peer's with it, so a ratio taken from one run can flip a verdict; the
// highest saturation step held moves by a step. --rounds N runs the p2p and
// saturation workloads N times each, gocim and the peers in turn every
// round, and mergeRounds folds each row's rounds into one: for p2p the
// medians of its latencies and CPU, the totals of its counts, and every
// round's p99 and CPU per message in its result, so the spread stays
// visible; for saturation the median round, with every round's step.

// inRounds runs one round of a workload (gocim and its peers) n times and
// folds the rounds with mergeRounds.
func inRounds(n int, workload string, stderr io.Writer, round func() []row) []row {
	rounds := make([][]row, 0, n)
	for i := range n {
		if n > 1 {
			fmt.Fprintf(stderr, "%s: round %d of %d…\n", workload, i+1, n)
		}
		rounds = append(rounds, round())
	}
	return mergeRounds(rounds)
}

// rowKey names what one row measured, the same in every round. A
// saturation row's rate is its result (the highest step held), not part of
// what it measured.
func rowKey(r row) string {
	offered := r.Offered
	if r.Workload == "saturation" {
		offered = 0
	}
	return fmt.Sprintf("%s|%s|%s|%s|%g", r.Workload, r.System, r.Setting, r.Transport, offered)
}

// mergeRounds folds the rows of several rounds of a workload into one row
// each, in the order of the first round. A single round is returned as is.
func mergeRounds(rounds [][]row) []row {
	if len(rounds) == 1 {
		return rounds[0]
	}
	var keys []string
	of := map[string][]row{}
	for _, round := range rounds {
		for _, r := range round {
			k := rowKey(r)
			if _, ok := of[k]; !ok {
				keys = append(keys, k)
			}
			of[k] = append(of[k], r)
		}
	}
	out := make([]row, 0, len(keys))
	for _, k := range keys {
		out = append(out, mergeRow(of[k]))
	}
	return out
}

// mergeRow folds one row's rounds: latencies and CPU are the medians of the
// rounds, the counts their sums, the rate delivered over all their seconds,
// the max the largest.
func mergeRow(rs []row) row {
	if rs[0].Workload == "saturation" {
		return mergeSaturation(rs)
	}
	m := rs[0]
	m.Sent, m.Expected, m.Received, m.Seconds, m.Loss, m.Duplicates = 0, 0, 0, 0, 0, 0
	var p50, p99, p999, loadgen, cluster []float64
	var each []string
	for _, r := range rs {
		m.Sent += r.Sent
		m.Expected += r.Expected
		m.Received += r.Received
		m.Seconds += r.Seconds
		m.Loss += r.Loss
		m.Duplicates += r.Duplicates
		m.MaxMs = max(m.MaxMs, r.MaxMs)
		p50, p99, p999 = append(p50, r.P50ms), append(p99, r.P99ms), append(p999, r.P999ms)
		loadgen = append(loadgen, r.LoadgenCPU)
		if r.ClusterCPU != nil {
			cluster = append(cluster, *r.ClusterCPU)
		}
		each = append(each, fmt.Sprintf("%.2f ms %.0f µs", r.P99ms, cpuPerMessage(r)))
	}
	if m.Seconds > 0 {
		m.Delivered = float64(m.Received) / m.Seconds
	}
	m.P50ms, m.P99ms, m.P999ms = median(p50), median(p99), median(p999)
	m.LoadgenCPU = median(loadgen)
	if len(cluster) == len(rs) {
		m.ClusterCPU = cores(median(cluster))
	}
	m.Setting += fmt.Sprintf(", median of %d rounds", len(rs))
	res := fmt.Sprintf("rounds (p99, CPU per delivered message): %s", strings.Join(each, "; "))
	if m.Result != "" {
		res += "; round 1: " + m.Result
	}
	m.Result = res
	return m
}

// mergeSaturation folds one system's saturation rounds: the row of the
// median round by the highest step held (the lower of the two middle ones
// for an even count), with every round's step in its result.
func mergeSaturation(rs []row) row {
	byHeld := slices.Clone(rs)
	slices.SortStableFunc(byHeld, func(a, b row) int { return cmp.Compare(a.Offered, b.Offered) })
	m := byHeld[(len(byHeld)-1)/2]
	var each []string
	for _, r := range rs {
		each = append(each, fmt.Sprintf("%.0f", r.Offered))
	}
	m.Setting += fmt.Sprintf(", median of %d rounds", len(rs))
	m.Result = fmt.Sprintf("highest step held per round: %s; the median round's %s", strings.Join(each, ", "), m.Result)
	return m
}

// cpuPerMessage is the CPU, in µs, the cluster and the load generator spent
// per message delivered (0 when none was).
func cpuPerMessage(r row) float64 {
	if r.Delivered <= 0 {
		return 0
	}
	c := r.LoadgenCPU
	if r.ClusterCPU != nil {
		c += *r.ClusterCPU
	}
	return c / r.Delivered * 1e6
}

// median is the middle value of vs (the mean of the two middle ones for an
// even count); 0 for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(vs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
