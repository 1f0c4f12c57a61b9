package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/gocim/gocim/bench/internal/run"
)

// p2pPeers runs the p2p latency workload on the peers: embedded NATS, then
// Centrifuge in-memory and (not in quick mode) with its Redis engine, without
// and with history (the like-for-like of gocim's stored messages), the last
// also with its node in a process of its own, as gocim's gateways are.
func p2pPeers(t *run.T, o options, stderr io.Writer) []row {
	fmt.Fprintf(stderr, "p2p latency: embedded NATS…\n")
	rows := p2pNATS(t, o.pairs, o.rates, o.duration, o.wait, false)
	fmt.Fprintf(stderr, "p2p latency: centrifuge (in-memory)…\n")
	rows = append(rows, p2pCentrifuge(t, cfPeer{mode: cfMemory}, o.pairs, o.rates, o.duration, o.wait, false)...)
	if !o.quick {
		fmt.Fprintf(stderr, "p2p latency: centrifuge (Redis engine)…\n")
		rows = append(rows, p2pCentrifuge(t, cfPeer{mode: cfRedis}, o.pairs, o.rates, o.duration, o.wait, false)...)
		fmt.Fprintf(stderr, "p2p latency: centrifuge (Redis engine, history)…\n")
		rows = append(rows, p2pCentrifuge(t, cfPeer{mode: cfRedisHistory}, o.pairs, o.rates, o.duration, o.wait, false)...)
		fmt.Fprintf(stderr, "p2p latency: centrifuge (Redis engine, history), its node in a process of its own…\n")
		rows = append(rows, p2pCentrifuge(t, cfPeer{mode: cfRedisHistory, own: true}, o.pairs, o.rates, o.duration, o.wait, false)...)
	}
	return rows
}

// saturationPeers runs the saturation steps on the same peers, one row each.
func saturationPeers(t *run.T, o options, stderr io.Writer) []row {
	fmt.Fprintf(stderr, "saturation: embedded NATS…\n")
	rows := []row{saturationRow("nats (embedded, no storage)", p2pNATS(t, o.pairs, o.steps, o.stepDuration, o.wait, true))}
	fmt.Fprintf(stderr, "saturation: centrifuge (in-memory)…\n")
	rows = append(rows, saturationRow("centrifuge (in-memory)", p2pCentrifuge(t, cfPeer{mode: cfMemory}, o.pairs, o.steps, o.stepDuration, o.wait, true)))
	if !o.quick {
		fmt.Fprintf(stderr, "saturation: centrifuge (Redis engine)…\n")
		rows = append(rows, saturationRow("centrifuge (Redis engine)", p2pCentrifuge(t, cfPeer{mode: cfRedis}, o.pairs, o.steps, o.stepDuration, o.wait, true)))
		fmt.Fprintf(stderr, "saturation: centrifuge (Redis engine, history)…\n")
		rows = append(rows, saturationRow("centrifuge (Redis, history)", p2pCentrifuge(t, cfPeer{mode: cfRedisHistory}, o.pairs, o.steps, o.stepDuration, o.wait, true)))
		fmt.Fprintf(stderr, "saturation: centrifuge (Redis engine, history), its node in a process of its own…\n")
		rows = append(rows, saturationRow("centrifuge (Redis, history, own process)", p2pCentrifuge(t, cfPeer{mode: cfRedisHistory, own: true}, o.pairs, o.steps, o.stepDuration, o.wait, true)))
	}
	return rows
}

// stepOptions parses --steps and fills the saturation defaults.
func stepOptions(o *options, steps string) error {
	if steps == "" {
		steps = "2000,5000,7500,10000,15000,20000,30000,40000"
		if o.quick {
			steps = "2000,5000"
		}
	}
	o.steps = nil
	for _, s := range strings.Split(steps, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 200000 {
			return fmt.Errorf("--steps: %q is not a rate between 1 and 200000 msg/s", s)
		}
		if len(o.steps) > 0 && float64(n) <= o.steps[len(o.steps)-1] {
			return fmt.Errorf("--steps: %d is not above the step before it", n)
		}
		o.steps = append(o.steps, float64(n))
	}
	if o.stepDuration == 0 {
		o.stepDuration = 5 * time.Second
		if o.quick {
			o.stepDuration = 2 * time.Second
		}
	}
	if o.stepDuration < 100*time.Millisecond || o.stepDuration > 10*time.Minute {
		return fmt.Errorf("--step-duration %v: want between 100ms and 10m", o.stepDuration)
	}
	if o.steps[0]*o.stepDuration.Seconds() < float64(o.pairs) {
		return fmt.Errorf("--steps %.0f over --step-duration %v gives the %d pairs less than one message each", o.steps[0], o.stepDuration, o.pairs)
	}
	return nil
}
