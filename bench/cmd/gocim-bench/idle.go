package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocim/gocim/bench/internal/run"
	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/codes"
)

const (
	idleWarmup = 100             // connections made before the baseline RSS
	idleSettle = 2 * time.Second // wait after the connections show up in /healthz
	idleCPUWin = 5 * time.Second // window for the idle CPU reading
	idlePar    = 16              // concurrent registrations/logins
)

// idleConnections: one gateway; after a warm-up of idleWarmup clients, n
// more SDK clients log in (default heartbeat) and stay idle. Measures the
// login rate of the n, the gateway's RSS growth per connection (from
// /proc, after /healthz reports them all and a short settle) and the
// gateway's and the load generator's CPU while everything idles.
func idleConnections(t *run.T, c *harness.Cluster, n int) row {
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
	name := func(i int) string { return fmt.Sprintf("idle%d-%05d", n, i) }
	total := idleWarmup + n
	parallel(t, "register", total, func(ctx context.Context, i int) error {
		_, err := api.Register(ctx, name(i), harness.Password)
		var apiErr *client.APIError
		if err != nil && !(errors.As(err, &apiErr) && apiErr.Code == codes.BadAccount) {
			return err
		}
		return nil
	})
	cls := make([]*client.Client, total)
	defer closeAll(cls)
	login := func(ctx context.Context, i int) error {
		cl, err := client.New(client.Config{RouteURL: c.Route.URL, UserName: name(i), Password: harness.Password, HTTPClient: hc})
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
	waitConnections(t, g.HTTPAddr, idleWarmup)
	time.Sleep(idleSettle)
	rssWarm, err := rssOf(pid)
	if err != nil {
		t.Fatalf("gateway RSS: %v", err)
	}
	setupSecs := time.Since(setup).Seconds()

	start := time.Now()
	parallel(t, "login", n, func(ctx context.Context, i int) error { return login(ctx, idleWarmup+i) })
	connectSecs := time.Since(start).Seconds()
	waitConnections(t, g.HTTPAddr, total)
	time.Sleep(idleSettle)
	rssAfter, err := rssOf(pid)
	if err != nil {
		t.Fatalf("gateway RSS: %v", err)
	}
	cpu := startCPU([]int{pid})
	time.Sleep(idleCPUWin)
	gwCPU, loadCPU := cpu.stop()
	if got := healthzConnections(g.HTTPAddr); got != total {
		t.Errorf("idle: gateway reports %d connections after the idle window, want %d", got, total)
	}

	perConn := float64(rssAfter-rssWarm) / float64(n) / 1024
	rate := float64(n) / connectSecs
	return row{
		Workload: "idle connections", System: "gocim",
		Setting:    fmt.Sprintf("%d connections on 1 gateway, heartbeat 1m", n),
		Seconds:    connectSecs,
		ClusterCPU: cores(gwCPU), LoadgenCPU: loadCPU,
		SetupSeconds: setupSecs, GatewayRSSMiB: float64(rssAfter) / (1 << 20),
		Connections: n, RSSPerConnKiB: perConn, ConnectsPerSecond: rate,
		GatewayRSSStartMiB: float64(rssStart) / (1 << 20), GatewayRSSWarmMiB: float64(rssWarm) / (1 << 20),
		Result: fmt.Sprintf("%.1f KiB RSS/conn, %.0f connects/s, gateway RSS %.0f MiB (%.0f after warm-up); CPU is the gateway's over %v idle",
			perConn, rate, float64(rssAfter)/(1<<20), float64(rssWarm)/(1<<20), idleCPUWin),
	}
}

// parallel runs f(0…n-1), idlePar at a time; the first error is fatal.
func parallel(t *run.T, what string, n int, f func(ctx context.Context, i int) error) {
	var wg sync.WaitGroup
	var next, failed atomic.Int64
	var firstErr atomic.Value
	for w := 0; w < idlePar; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				if err := f(ctx, i); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Errorf("%d: %w", i, err))
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%s: %d of %d failed, first: %v", what, failed.Load(), n, firstErr.Load())
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
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var h struct {
		Connections int `json:"connections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return -1
	}
	return h.Connections
}

func waitConnections(t *run.T, addr string, want int) {
	deadline := time.Now().Add(time.Minute)
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
