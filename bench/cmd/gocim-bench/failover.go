package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/gocim/gocim/bench/internal/run"
	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
)

// failoverBcryptCost is the route's password hashing cost in the failover
// workload: bcrypt.DefaultCost, what a deployment runs (every other bench
// cluster runs at 4, so that logins do not dominate its setup).
const failoverBcryptCost = "10"

// failoverGocim: n SDK clients over two gateways (round-robin puts about
// half on each); the first gateway is SIGKILLed, and the workload measures
// how long its clients take to be connected again (to the survivor, on
// their own) and the route's CPU meanwhile. The route runs with
// routeArgs, to which the caller adds --bcrypt-cost and --resume-ttl.
func failoverGocim(t *run.T, c *harness.Cluster, n int, setting string) row {
	const prefix = "failover"
	victim := c.Gateways[0]
	var mu sync.Mutex
	var killedAt time.Time
	back := map[string]time.Duration{} // victims connected again: kill → connected
	victimSet := map[string]bool{}
	connects := map[string]int{} // EventConnected per member: the first is Start's
	others := 0                  // clients of the surviving gateway that reconnected
	onEvent := func(m *member, e client.Event) {
		if e.Kind != client.EventConnected {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		// Start's own EventConnected is read after Start returns, and may
		// be read only after the kill: it is never a reconnect.
		if connects[m.name]++; connects[m.name] == 1 || e.Gateway == victim.ID || killedAt.IsZero() {
			return
		}
		switch _, ok := back[m.name]; {
		case !victimSet[m.name]:
			others++
		case !ok:
			back[m.name] = time.Since(killedAt)
		}
	}
	setup := time.Now()
	ms := connectAll(t, c, prefix, n, 16, onEvent)
	victims := 0
	mu.Lock()
	for _, m := range ms {
		if m.cl.Info().Gateway == victim.ID {
			victims++
			victimSet[m.name] = true
		}
	}
	mu.Unlock()
	if victims == 0 {
		t.Fatalf("failover: no client on %s", victim.ID)
	}
	setupSecs := time.Since(setup).Seconds()
	routePID := c.Route.Cmd.Process.Pid
	routeCPU0, _ := cpuOf(routePID)
	mu.Lock()
	killedAt = time.Now()
	mu.Unlock()
	victim.Kill()

	deadline := time.Now().Add(5 * time.Minute)
	for {
		mu.Lock()
		k := len(back)
		mu.Unlock()
		if k >= victims || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling the clients' events
	}
	routeCPU1, _ := cpuOf(routePID)
	mu.Lock()
	times := make([]time.Duration, 0, len(back))
	for _, d := range back {
		times = append(times, d)
	}
	mu.Unlock()
	survivors := others
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	all := pct(times, 1)
	routeSecs := (routeCPU1 - routeCPU0).Seconds()
	out := row{Workload: "failover", System: "gocim",
		Setting:     fmt.Sprintf("%d clients over 2 gateways, the first SIGKILLed; route --bcrypt-cost %s, %s", n, failoverBcryptCost, setting),
		Connections: victims, Seconds: all.Seconds(), SetupSeconds: setupSecs, Reconnects: int64(victims), Relogins: int64(len(times))}
	out.Result = fmt.Sprintf("%d of the killed gateway's %d clients connected again: kill → connected p50 %.2f s, all %.2f s; the route spent %.2f CPU-seconds (%.1f ms a client)",
		len(times), victims, pct(times, 0.5).Seconds(), all.Seconds(), routeSecs, 1000*routeSecs/float64(max(len(times), 1)))
	if survivors > 0 {
		out.Result += fmt.Sprintf("; %d clients of the surviving gateway reconnected too", survivors)
	}
	if len(times) < victims {
		t.Errorf("failover: %d of %d clients of the killed gateway did not connect again within 5 min", victims-len(times), victims)
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range ms {
		m.cl.Close(closeCtx)
	}
	return out
}
