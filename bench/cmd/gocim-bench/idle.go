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
// more clients log in (default heartbeat) and stay idle: in this process
// when procs is 0, else spread over procs load-generator children
// (loadgen.go), each dialing from its own 127.0.0.x. The clients are the
// SDK's over TCP, or the bench's WebSocket client (wsclient.go) with
// transport ws, warm-up included. Measures the login rate of the n, the
// gateway's RSS growth per connection (from /proc, after /healthz reports
// them all and a short settle) and the gateway's and the load generators'
// CPU while everything idles.
func idleConnections(t *run.T, c *harness.Cluster, n, procs int, transport string) row {
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
	prefix := fmt.Sprintf("idle%s%d-", transport, n)
	total := idleWarmup + n
	local := total // clients this process holds
	if procs > 0 {
		local = idleWarmup
	}
	parallel(t, "register", local, func(ctx context.Context, i int) error {
		return register(ctx, api, idleName(prefix, i))
	})
	closers := make([]func(), local)
	defer closeAll(closers)
	idle := idleLogin(transport, c.Route.URL, hc, api, nil, 0)
	login := func(ctx context.Context, i int) error {
		var err error
		closers[i], err = idle(ctx, idleName(prefix, i))
		return err
	}
	rssStart, _ := rssOf(pid)
	parallel(t, "warm-up login", idleWarmup, login)
	waitConnections(t, g.HTTPAddr, idleWarmup, time.Minute)
	var lgs []*loadgen
	if procs > 0 {
		lgs = startLoadgens(t, c.Route.URL, prefix, transport, idleSourceBase, idleWarmup, n, procs)
		defer stopLoadgens(lgs)
		awaitLoadgens(t, lgs, "registered ", 10*time.Minute)
	}
	fr := measureFleet(t, fleet{gateways: c.Gateways, warm: idleWarmup, n: n,
		connect: func(ctx context.Context, i int) error { return login(ctx, idleWarmup+i) },
		lgs:     lgs, cmd: "login", settle: idleSettle, cpuWin: idleCPUWin})
	held := fr.total()
	if held != total {
		t.Errorf("idle (%s): gateway reports %d connections after the idle window, want %d", transport, held, total)
	}
	perConn := fr.perConnKiB(0, n)
	rate := float64(n) / fr.secs
	rssWarm, rssAfter := fr.rssWarm[0], fr.rssAfter[0]
	gens := loadgensDesc(procs, idleSourceBase)
	conns := "connections"
	if transport == transportWS {
		conns = "WebSocket connections (binary subprotocol " + wsSubprotocol + ", the bench's client)"
	}
	return row{
		Workload: "idle connections", System: systemName(transport), Transport: transportName(transport),
		Setting:    fmt.Sprintf("%d %s on 1 gateway, heartbeat 1m, %s", n, conns, gens),
		Seconds:    fr.secs,
		ClusterCPU: cores(fr.cpu[0]), LoadgenCPU: fr.selfCPU + fr.childCPU,
		SetupSeconds: fr.warmAt.Sub(setup).Seconds(), GatewayRSSMiB: float64(rssAfter) / (1 << 20),
		Connections: n, RSSPerConnKiB: perConn, ConnectsPerSecond: rate,
		GatewayRSSStartMiB: float64(rssStart) / (1 << 20), GatewayRSSWarmMiB: float64(rssWarm) / (1 << 20),
		Result: fmt.Sprintf("%.1f KiB RSS/conn, %.0f connects/s, gateway RSS %.0f MiB (%.0f after warm-up), held %d of %d (warm-up included), gateway open files %d of %d; CPU is the gateway's over %v idle",
			perConn, rate, float64(rssAfter)/(1<<20), float64(rssWarm)/(1<<20), held, total, fr.fds[0], fr.fdCap[0], idleCPUWin),
	}
}

// idleLoginFunc logs one idle user in and returns how to close its client
// (nil when there is none to close).
type idleLoginFunc func(ctx context.Context, name string) (close func(), err error)

// idleLogin returns the login of an idle client over transport: the SDK
// (with eventBuffer, 0: its default) or the bench's WebSocket client, both
// calling the route through hc and dialing through dial (nil: a plain
// dialer). Their events are drained and dropped.
func idleLogin(transport, routeURL string, hc *http.Client, api *client.API, dial dialFunc, eventBuffer int) idleLoginFunc {
	if transport == transportWS {
		d := newWSDialer(api, dial)
		return func(ctx context.Context, name string) (func(), error) {
			c, err := d.login(ctx, name, nil, nil)
			if err != nil {
				return nil, err
			}
			return c.close, nil
		}
	}
	return func(ctx context.Context, name string) (func(), error) {
		cl, err := client.New(client.Config{RouteURL: routeURL, UserName: name, Password: harness.Password,
			HTTPClient: hc, Dial: dial, EventBuffer: eventBuffer})
		if err != nil {
			return nil, err
		}
		go func() {
			for range cl.Events() {
			}
		}()
		closer := func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			cl.Close(ctx)
		}
		return closer, cl.Start(ctx)
	}
}

// parallel runs f(0…n-1), idlePar at a time; the first error is fatal.
func parallel(t *run.T, what string, n int, f func(ctx context.Context, i int) error) {
	if failed, err := runParallel(n, idlePar, f); err != nil {
		t.Fatalf("%s: %d of %d failed, first: %v", what, failed, n, err)
	}
}

// closeAll runs the closers (nil ones skipped), 64 at a time.
func closeAll(closers []func()) {
	var wg sync.WaitGroup
	ch := make(chan func())
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range ch {
				f()
			}
		}()
	}
	for _, f := range closers {
		if f != nil {
			ch <- f
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
