package main

// The scale workload (issue 17): many idle connections over several
// gateways while private messages flow, and what each costs in the
// gateways, the route and Redis — the numbers docs/CAPACITY.md builds on.
//
//  1. Fleet: a cluster of --scale-gateways gateways; scaleWarmup SDK
//     clients log in from this process, then --scale-conns more from
//     --scale-procs load-generator children (loadgen.go, each on its own
//     127.0.0.x from 127.0.0.100 on, at most childMaxConns each: open files
//     are capped at 20,000 per process here, and ephemeral ports are per
//     source address). Registration and login rates, each gateway's RSS
//     growth per connection, the route's, Redis's used_memory per account
//     and per logged-in session, Redis commands per login and per idle
//     connection, and every process's CPU while idle.
//  2. Messages: the p2p workload's pairs (p2pGocim) at --scale-rate for
//     --scale-duration on the same cluster while the fleet is held:
//     latency, loss, duplicates, Redis commands and used_memory per message
//     (the fleet's background commands taken out), CPU per process.
//  3. Group: a fan-out to --scale-group members (groupFanout) on the same
//     cluster: Redis commands per group delivery.
//
// Afterwards the gateways must still hold every fleet connection.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gocim/gocim/bench/internal/run"
	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
)

const (
	scaleWarmup     = 100   // clients this process logs in before the baseline
	scaleSourceBase = 100   // first child's source address: 127.0.0.100
	scaleMaxProcs   = 100   // children: 127.0.0.100 … 127.0.0.199
	scalePerChild   = 12500 // default connections per child
	// scaleMaxPerGateway keeps a gateway under its default connection cap
	// (the 20,000 open-file limit minus 256) with room for the pairs and
	// the group members.
	scaleMaxPerGateway = 19000
)

// scaleStats are the scale workload's fleet numbers in the JSON.
type scaleStats struct {
	Gateways               int       `json:"gateways"`
	Held                   int       `json:"held"`
	Want                   int       `json:"want"`
	RegistrationsPerSecond float64   `json:"registrationsPerSecond"`
	LoginsPerSecond        float64   `json:"loginsPerSecond"`
	GatewayConnections     []int     `json:"gatewayConnections"`
	GatewayRSSPerConnKiB   []float64 `json:"gatewayRssPerConnKiB"`
	GatewayRSSMiB          []float64 `json:"gatewayRssMiB"`
	GatewayOpenFiles       []int     `json:"gatewayOpenFiles"`
	RouteRSSPerConnKiB     float64   `json:"routeRssPerConnKiB"`
	RouteRSSMiB            float64   `json:"routeRssMiB"`
	RedisUsedMemoryMiB     float64   `json:"redisUsedMemoryMiB"`
	RedisBytesPerAccount   float64   `json:"redisBytesPerAccount"`
	RedisBytesPerSession   float64   `json:"redisBytesPerSession"`
	RedisOpsPerLogin       float64   `json:"redisOpsPerLogin"`
	RedisIdleOpsPerSecond  float64   `json:"redisIdleOpsPerSecond"`
	// IdleCPU is cores per process over the idle window: gateway-1…,
	// route, redis, loadgen (this process and the children).
	IdleCPU map[string]float64 `json:"idleCpuCores"`
	// MessageCPU is cores per process over the p2p part.
	MessageCPU map[string]float64 `json:"messageCpuCores,omitempty"`
	// RedisBytesPerMessage is used_memory's growth per message sent in the
	// p2p part (the inbox entry, the sender's receipt, their keys).
	RedisBytesPerMessage float64 `json:"redisBytesPerMessage,omitempty"`
	LoadAverage          string  `json:"loadAverage"`
}

// scaleOptions fills in and checks the scale workload's options.
func scaleOptions(o *options, rate int) error {
	if o.scaleConns == 0 {
		o.scaleConns = 100000
		if o.quick {
			o.scaleConns = 2000
		}
	}
	if o.scaleGateways == 0 {
		o.scaleGateways = 6
		if o.quick {
			o.scaleGateways = 2
		}
	}
	if o.scaleGateways < 2 || o.scaleGateways > 32 {
		return fmt.Errorf("--scale-gateways %d: want between 2 and 32", o.scaleGateways)
	}
	if o.scaleProcs <= 0 {
		o.scaleProcs = max(1, (o.scaleConns+scalePerChild-1)/scalePerChild)
	}
	if o.scaleProcs > scaleMaxProcs {
		return fmt.Errorf("--scale-procs %d: want between 1 and %d", o.scaleProcs, scaleMaxProcs)
	}
	if o.scaleConns < 1 || o.scaleConns > o.scaleProcs*childMaxConns {
		return fmt.Errorf("--scale-conns %d: want between 1 and %d with --scale-procs %d (%d per process)",
			o.scaleConns, o.scaleProcs*childMaxConns, o.scaleProcs, childMaxConns)
	}
	if per := (o.scaleConns + scaleWarmup + o.scaleGateways - 1) / o.scaleGateways; per > scaleMaxPerGateway {
		return fmt.Errorf("--scale-conns %d over --scale-gateways %d is %d per gateway: want at most %d (the 20,000 open-file cap)",
			o.scaleConns, o.scaleGateways, per, scaleMaxPerGateway)
	}
	if rate == 0 {
		rate = 1000
		if o.quick {
			rate = 500
		}
	}
	if rate < 1 || rate > 50000 {
		return fmt.Errorf("--scale-rate %d: want between 1 and 50000 msg/s", rate)
	}
	o.scaleRate = float64(rate)
	if o.scaleDuration == 0 {
		o.scaleDuration = 20 * time.Second
		if o.quick {
			o.scaleDuration = 2 * time.Second
		}
	}
	if o.scaleDuration < 100*time.Millisecond || o.scaleDuration > 10*time.Minute {
		return fmt.Errorf("--scale-duration %v: want between 100ms and 10m", o.scaleDuration)
	}
	if o.scaleRate*o.scaleDuration.Seconds() < float64(o.pairs) {
		return fmt.Errorf("--scale-rate %d over --scale-duration %v gives the %d pairs less than one message each", rate, o.scaleDuration, o.pairs)
	}
	if o.scaleGroup == 0 {
		o.scaleGroup = 500
		if o.quick {
			o.scaleGroup = 50
		}
	}
	if o.scaleGroup < 2 || o.scaleGroup > 5000 {
		return fmt.Errorf("--scale-group %d: want between 2 and 5000 members", o.scaleGroup)
	}
	return nil
}

// scaleWorkload runs the three parts on a cluster of its own and returns
// their rows.
func scaleWorkload(t *run.T, o options, routeArgs, gatewayArgs []string) []row {
	c := harness.Start(t, harness.Options{Gateways: o.scaleGateways, RouteArgs: routeArgs, GatewayArgs: gatewayArgs, RouteReplica: o.routeReplica})
	defer stopCluster(c)
	settle, cpuWin := 3*time.Second, 10*time.Second
	if o.quick {
		settle, cpuWin = 500*time.Millisecond, time.Second
	}
	n, procs, gws := o.scaleConns, o.scaleProcs, c.Gateways
	total := scaleWarmup + n
	prefix := fmt.Sprintf("scale%d-", n)
	setup := time.Now()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: idlePar * 2}}
	defer hc.CloseIdleConnections()
	api := client.NewAPI(c.Route.URL, hc)
	routePID, redisPID := c.Route.Cmd.Process.Pid, c.Redis.Cmd.Process.Pid
	names := make([]string, 0, len(gws)+3)
	for i := range gws {
		names = append(names, fmt.Sprintf("gateway-%d", i+1))
	}
	names = append(names, "route", "redis")

	// Warm-up: this process's clients, spread over the gateways by the
	// route's round robin.
	parallel(t, "register", scaleWarmup, func(ctx context.Context, i int) error {
		return register(ctx, api, idleName(prefix, i))
	})
	closers := make([]func(), scaleWarmup)
	defer closeAll(closers)
	idle := idleLogin(transportTCP, c.Route.URL, hc, api, nil, 0)
	parallel(t, "warm-up login", scaleWarmup, func(ctx context.Context, i int) error {
		var err error
		closers[i], err = idle(ctx, idleName(prefix, i))
		return err
	})
	waitTotal(t, gws, scaleWarmup, time.Minute)

	memWarm := redisUsedMemory(c.RedisAddr)
	regStart := time.Now()
	lgs := startLoadgens(t, c.Route.URL, prefix, transportTCP, scaleSourceBase, scaleWarmup, n, procs)
	defer stopLoadgens(lgs)
	awaitLoadgens(t, lgs, "registered ", 30*time.Minute)
	regSecs := time.Since(regStart).Seconds()
	memReg := redisUsedMemory(c.RedisAddr)
	ops0, err := redisCommandCalls(c.RedisAddr)
	if err != nil {
		t.Fatalf("redis INFO: %v", err)
	}
	var idleOps commandCalls
	var idleFrom time.Time
	var idleSecs float64
	var opsLogin commandCalls
	fr := measureFleet(t, fleet{gateways: gws, warm: scaleWarmup, n: n, lgs: lgs, cmd: "login",
		others: []int{routePID, redisPID}, settle: settle, cpuWin: cpuWin, timeout: 30 * time.Minute,
		window: func(end bool) {
			cur, err := redisCommandCalls(c.RedisAddr)
			if err != nil {
				t.Fatalf("redis INFO: %v", err)
			}
			if !end {
				opsLogin, idleOps, idleFrom = cur.minus(ops0), cur, time.Now()
				return
			}
			idleOps, idleSecs = cur.minus(idleOps), time.Since(idleFrom).Seconds()
		}})
	memLogin := redisUsedMemory(c.RedisAddr)
	idleRate := float64(idleOps.total()) / idleSecs
	held := fr.total()
	if held != total {
		t.Errorf("scale: the gateways hold %d connections after the idle window, want %d", held, total)
	}

	st := &scaleStats{
		Gateways: len(gws), Held: held, Want: total,
		RegistrationsPerSecond: float64(n) / regSecs, LoginsPerSecond: float64(n) / fr.secs,
		GatewayConnections: fr.held, GatewayOpenFiles: fr.fds,
		RedisUsedMemoryMiB:   float64(memLogin) / (1 << 20),
		RedisBytesPerAccount: float64(memReg-memWarm) / float64(n),
		RedisBytesPerSession: float64(memLogin-memReg) / float64(n),
		// The login ramp's commands include the idle traffic of the
		// clients already logged in: an upper bound.
		RedisOpsPerLogin:      float64(opsLogin.total()) / float64(n),
		RedisIdleOpsPerSecond: idleRate,
		IdleCPU:               map[string]float64{"loadgen": fr.selfCPU + fr.childCPU},
		LoadAverage:           loadAverage(),
	}
	var gwGrowth int64
	var perGW []string
	for i := range gws {
		conns := fr.held[i] // this gateway's share of the fleet, warm-up left out below
		grew := fr.rssAfter[i] - fr.rssWarm[i]
		gwGrowth += grew
		fleetHere := max(1, conns-scaleWarmup/len(gws))
		kib := float64(grew) / float64(fleetHere) / 1024
		st.GatewayRSSPerConnKiB = append(st.GatewayRSSPerConnKiB, kib)
		st.GatewayRSSMiB = append(st.GatewayRSSMiB, float64(fr.rssAfter[i])/(1<<20))
		perGW = append(perGW, fmt.Sprintf("%.1f", kib))
	}
	for i, name := range names {
		st.IdleCPU[name] = fr.cpu[i]
	}
	ri := len(gws)
	st.RouteRSSPerConnKiB = float64(fr.rssAfter[ri]-fr.rssWarm[ri]) / float64(n) / 1024
	st.RouteRSSMiB = float64(fr.rssAfter[ri]) / (1 << 20)
	perConn := float64(gwGrowth) / float64(n) / 1024
	maxFDs, fdCap := 0, 0
	for i := range fr.fds {
		maxFDs, fdCap = max(maxFDs, fr.fds[i]), max(fdCap, fr.fdCap[i])
	}
	idleGW := 0.0
	for i := range gws {
		idleGW += fr.cpu[i]
	}
	fleetRow := row{
		Workload: "scale", System: "gocim", Transport: "tcp",
		Setting: fmt.Sprintf("%d connections (SDK over TCP, heartbeat 1m) over %d gateways, %s, after %d warm-up; load average %s",
			n, len(gws), loadgensDesc(procs, scaleSourceBase), scaleWarmup, st.LoadAverage),
		Seconds: fr.secs, ClusterCPU: cores(idleGW + fr.cpu[ri] + fr.cpu[ri+1]), LoadgenCPU: fr.selfCPU + fr.childCPU,
		SetupSeconds: fr.warmAt.Sub(setup).Seconds(), GatewayRSSMiB: gatewayRSS(c) / (1 << 20),
		Connections: n, RSSPerConnKiB: perConn, ConnectsPerSecond: st.LoginsPerSecond,
		Scale: st,
		Result: fmt.Sprintf("held %d of %d; %.0f logins/s (%.0f registrations/s); gateway RSS/conn %.1f KiB (per gateway %s; open files at most %d of %d); "+
			"route +%.2f KiB/conn (RSS %.0f MiB); Redis used_memory %.0f B/account, %.0f B/session (%.0f MiB in all), %.1f commands/login (%s), %.0f commands/s idle (%s); "+
			"idle CPU cores: gateways %.2f, route %.2f, redis %.2f, loadgen %.2f",
			held, total, st.LoginsPerSecond, st.RegistrationsPerSecond, perConn, strings.Join(perGW, " / "), maxFDs, fdCap,
			st.RouteRSSPerConnKiB, st.RouteRSSMiB, st.RedisBytesPerAccount, st.RedisBytesPerSession, st.RedisUsedMemoryMiB,
			st.RedisOpsPerLogin, opsLogin.per(float64(n), 8), idleRate, idleOps.per(idleSecs, 4), idleGW, fr.cpu[ri], fr.cpu[ri+1], fr.selfCPU+fr.childCPU),
	}
	rows := []row{fleetRow}

	// Messages while the fleet is held: enough pairs connected that the
	// first two gateways get o.pairs each. Readings over the send window
	// and its stragglers only (p2pGocimAround), not the pairs' logins.
	pids := append(pidsOfGateways(gws), routePID, redisPID)
	var meters []*cpuMeter
	var lgMeter *cpuMeter
	var memBefore int64
	var opsBefore commandCalls
	var began time.Time
	pr := p2pGocimAround(t, c, "scalep2p", o.pairs*len(gws)/2, []float64{o.scaleRate}, o.scaleDuration, o.wait, false, transportTCP, func(r *row) {
		if r == nil {
			memBefore = redisUsedMemory(c.RedisAddr)
			if opsBefore, err = redisCommandCalls(c.RedisAddr); err != nil {
				t.Fatalf("redis INFO: %v", err)
			}
			meters = make([]*cpuMeter, len(pids))
			for i, p := range pids {
				meters[i] = startCPU([]int{p})
			}
			lgMeter = startCPU(pidsOf(lgs))
			began = time.Now()
			return
		}
		// The recipients' acknowledgements trail the last arrival.
		ops, err := settledCommandCalls(c.RedisAddr, opsBefore, 0)
		if err != nil {
			t.Fatalf("redis INFO: %v", err)
		}
		secs := time.Since(began).Seconds()
		st.MessageCPU = map[string]float64{}
		for i, m := range meters {
			st.MessageCPU[names[i]], _ = m.stop()
		}
		childCPU, selfCPU := lgMeter.stop()
		st.MessageCPU["loadgen"] = childCPU + selfCPU
		memAfter := redisUsedMemory(c.RedisAddr)
		if r.Sent == 0 {
			return
		}
		background := idleRate * secs // the fleet's own commands over the same time
		r.RedisOpsPerMessage = (float64(ops.total()) - background) / float64(r.Sent)
		st.RedisBytesPerMessage = float64(memAfter-memBefore) / float64(r.Sent)
		r.Result = fmt.Sprintf("Redis per message: %.2f commands (INFO commandstats over the %.1f s of sending and acknowledging, %.0f background commands taken out; %s), used_memory +%.0f B; CPU cores then: %s",
			r.RedisOpsPerMessage, secs, background, ops.per(float64(r.Sent), 8), st.RedisBytesPerMessage, cpuDesc(names, st.MessageCPU))
	})
	for _, r := range pr {
		r.Workload = "scale: p2p"
		r.Setting = fmt.Sprintf("while %d connections are held over %d gateways; %s", total, len(gws), r.Setting)
		rows = append(rows, r)
	}

	// Group delivery cost on the same cluster.
	fan := groupFanout(t, c, o.scaleGroup, 10)
	fan.Workload = "scale: group fan-out"
	fan.Setting = fmt.Sprintf("while %d connections are held; %s", total, fan.Setting)
	rows = append(rows, fan)

	// The fleet must still be there (the pairs and members logged out).
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := 0
		for _, g := range gws {
			got += healthzConnections(g.HTTPAddr)
		}
		if got == total {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("scale: the gateways hold %d connections after the messages, want the fleet's %d", got, total)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return rows
}

func pidsOfGateways(gws []*harness.Gateway) []int {
	pids := make([]int, len(gws))
	for i, g := range gws {
		pids[i] = g.Cmd.Process.Pid
	}
	return pids
}

// cpuDesc lists cores per process in names' order, then the load generator.
func cpuDesc(names []string, m map[string]float64) string {
	var parts []string
	for _, n := range slices.Concat(names, []string{"loadgen"}) {
		parts = append(parts, fmt.Sprintf("%s %.2f", n, m[n]))
	}
	return strings.Join(parts, ", ")
}

// loadAverage is /proc/loadavg's first three fields ("" when unreadable):
// the machine is shared, and a reader should know how busy it was.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
