package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gocim/gocim/bench/internal/run"
	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/internal/contract"
)

const (
	idleWarmup = 100             // connections made before the baseline RSS
	idleSettle = 2 * time.Second // wait after the connections show up in /healthz
	idleCPUWin = 5 * time.Second // window for the idle CPU reading
	idlePar    = 16              // concurrent registrations/logins in this process
)

// idleConnections: one gateway; after a warm-up of idleWarmup clients, n
// more SDK clients log in (default heartbeat) and stay idle: in this
// process when procs is 0, else spread over procs load-generator children
// (loadgen.go), each dialing from its own 127.0.0.x. Measures the login
// rate of the n, the gateway's RSS growth per connection (from /proc,
// after /healthz reports them all and a short settle) and the gateway's
// and the load generators' CPU while everything idles.
func idleConnections(t *run.T, c *harness.Cluster, n, procs int) row {
	if len(c.Gateways) != 1 {
		t.Fatalf("idle workload wants 1 gateway, cluster has %d", len(c.Gateways))
	}
	g := c.Gateways[0]
	pid := g.Cmd.Process.Pid
	setup := time.Now()
	// One shared HTTP client: a private one per SDK client would keep an
	// idle connection to the route open per user (twice the open files).
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: idlePar * 2}}
	defer hc.CloseIdleConnections()
	api := client.NewAPI(c.Route.URL, hc)
	prefix := fmt.Sprintf("idle%d-", n)
	total := idleWarmup + n
	local := total // clients this process holds
	if procs > 0 {
		local = idleWarmup
	}
	parallel(t, "register", local, func(ctx context.Context, i int) error {
		return register(ctx, api, idleName(prefix, i))
	})
	cls := make([]*client.Client, local)
	defer closeAll(cls)
	login := func(ctx context.Context, i int) error {
		cl, err := client.New(client.Config{RouteURL: c.Route.URL, UserName: idleName(prefix, i), Password: harness.Password, HTTPClient: hc})
		if err != nil {
			return err
		}
		cls[i] = cl
		go func() {
			for range cl.Events() {
			}
		}()
		return cl.Start(ctx)
	}
	rssStart, _ := rssOf(pid)
	parallel(t, "warm-up login", idleWarmup, login)
	waitConnections(t, g.HTTPAddr, idleWarmup, time.Minute)
	var lgs []*loadgen
	if procs > 0 {
		lgs = startLoadgens(t, c.Route.URL, prefix, idleWarmup, n, procs)
		defer stopLoadgens(lgs)
		awaitLoadgens(t, lgs, "registered ", 10*time.Minute)
	}
	time.Sleep(idleSettle)
	rssWarm, err := rssOf(pid)
	if err != nil {
		t.Fatalf("gateway RSS: %v", err)
	}
	setupSecs := time.Since(setup).Seconds()

	start := time.Now()
	if procs == 0 {
		parallel(t, "login", n, func(ctx context.Context, i int) error { return login(ctx, idleWarmup+i) })
	} else {
		for j, lg := range lgs {
			if _, err := fmt.Fprintln(lg.stdin, "login"); err != nil {
				t.Fatalf("loadgen %d: %v", j, err)
			}
		}
		awaitLoadgens(t, lgs, "ready ", 10*time.Minute)
	}
	connectSecs := time.Since(start).Seconds()
	waitConnections(t, g.HTTPAddr, total, time.Minute)
	time.Sleep(idleSettle)
	rssAfter, err := rssOf(pid)
	if err != nil {
		t.Fatalf("gateway RSS: %v", err)
	}
	fds, fdCap := openFiles(pid)
	cpu := startCPU([]int{pid})
	lgCPU := startCPU(pidsOf(lgs))
	time.Sleep(idleCPUWin)
	gwCPU, selfCPU := cpu.stop()
	childCPU, _ := lgCPU.stop()
	held := healthzConnections(g.HTTPAddr)
	if held != total {
		t.Errorf("idle: gateway reports %d connections after the idle window, want %d", held, total)
	}

	perConn := float64(rssAfter-rssWarm) / float64(n) / 1024
	rate := float64(n) / connectSecs
	gens := "1 load generator (in-process)"
	if procs > 0 {
		gens = fmt.Sprintf("%d load-generator processes (127.0.0.2–%d)", procs, 1+procs)
	}
	return row{
		Workload: "idle connections", System: "gocim",
		Setting:    fmt.Sprintf("%d connections on 1 gateway, heartbeat 1m, %s", n, gens),
		Seconds:    connectSecs,
		ClusterCPU: cores(gwCPU), LoadgenCPU: selfCPU + childCPU,
		SetupSeconds: setupSecs, GatewayRSSMiB: float64(rssAfter) / (1 << 20),
		Connections: n, RSSPerConnKiB: perConn, ConnectsPerSecond: rate,
		GatewayRSSStartMiB: float64(rssStart) / (1 << 20), GatewayRSSWarmMiB: float64(rssWarm) / (1 << 20),
		Result: fmt.Sprintf("%.1f KiB RSS/conn, %.0f connects/s, gateway RSS %.0f MiB (%.0f after warm-up), held %d of %d (warm-up included), gateway open files %d of %d; CPU is the gateway's over %v idle",
			perConn, rate, float64(rssAfter)/(1<<20), float64(rssWarm)/(1<<20), held, total, fds, fdCap, idleCPUWin),
	}
}

// parallel runs f(0…n-1), idlePar at a time; the first error is fatal.
func parallel(t *run.T, what string, n int, f func(ctx context.Context, i int) error) {
	if failed, err := runParallel(n, idlePar, f); err != nil {
		t.Fatalf("%s: %d of %d failed, first: %v", what, failed, n, err)
	}
}

func closeAll(cls []*client.Client) {
	var wg sync.WaitGroup
	ch := make(chan *client.Client)
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cl := range ch {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				cl.Close(ctx)
				cancel()
			}
		}()
	}
	for _, cl := range cls {
		if cl != nil {
			ch <- cl
		}
	}
	close(ch)
	wg.Wait()
}

// healthzConnections is the connection count the gateway's /healthz
// reports (-1 when it cannot be read).
func healthzConnections(addr string) int {
	resp, err := http.Get("http://" + addr + contract.PathHealth)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var h contract.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return -1
	}
	return h.Connections
}

func waitConnections(t *run.T, addr string, want int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		got := healthzConnections(addr)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway /healthz reports %d connections, want %d", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
