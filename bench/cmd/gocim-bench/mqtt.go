package main

// The mqtt workload (issue 16): devices on a gateway's MQTT listener
// (mqttdevice.go is the device). One gateway, started with --mqtt-listen:
//
//  1. Idle fleet: after mqttActive devices (the warm-up, and later the
//     measured ones) connect from this process, N more connect (from
//     children, like the idle workload's, each on its own 127.0.0.x):
//     the connect rate of the N and the gateway's RSS growth per device.
//  2. Command down: the app back-end pushes (POST /api/push, one device
//     per call) to the measured devices at a fixed rate while the fleet
//     idles: push call → PUBLISH at the device, each exactly once.
//  3. Data up: the measured devices PUBLISH at QoS 1 on
//     gocim/<id>/up/<user> to a few SDK users at a fixed rate: PUBLISH →
//     EventMessage at the user, and PUBLISH → PUBACK at the device.
//
// The children run as
//
//	gocim-bench mqttgen --route URL --mqtt host:port --prefix mqtt15000- --from 100 --count 7500 --source 127.0.0.2
//
// and speak loadgen.go's line protocol, with "connect" for "login" and
// one more exchange after "ready":
//
//	parent → child  stats
//	child → parent  stats dropped=0 busy=12   connections ended by the gateway, CONNECTs told "busy"

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocim/gocim/bench/internal/run"
	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/internal/testenv"
)

const (
	systemMQTT    = "gocim (MQTT)"
	transportMQTT = "mqtt"
	mqttUsers     = 10 // SDK users the data-up devices publish to (device i → user i mod mqttUsers)
)

// mqttOptions fills in and checks the mqtt workload's options.
func mqttOptions(o *options, rate int) error {
	if o.mqttDevices == 0 {
		o.mqttDevices = 15000
		if o.quick {
			o.mqttDevices = 500
		}
	}
	if o.mqttProcs < 0 {
		o.mqttProcs = 0
		if !o.quick {
			o.mqttProcs = max(2, (o.mqttDevices+loadgenMaxConns-1)/loadgenMaxConns)
		}
	}
	if o.mqttProcs > loadgenMaxProcs {
		return fmt.Errorf("--mqtt-procs %d: want between 0 and %d", o.mqttProcs, loadgenMaxProcs)
	}
	maxDevices := 15000 // as --idle: open files are capped at 20,000 per process
	if o.mqttProcs > 0 {
		maxDevices = min(30000, o.mqttProcs*loadgenMaxConns)
	}
	if o.mqttDevices < 1 || o.mqttDevices > maxDevices {
		return fmt.Errorf("--mqtt-devices %d: want between 1 and %d with --mqtt-procs %d", o.mqttDevices, maxDevices, o.mqttProcs)
	}
	if o.mqttActive == 0 {
		o.mqttActive = 100
		if o.quick {
			o.mqttActive = 20
		}
	}
	if o.mqttActive < 1 || o.mqttActive > 1000 {
		return fmt.Errorf("--mqtt-active %d: want between 1 and 1000", o.mqttActive)
	}
	if rate == 0 {
		rate = 1000
		if o.quick {
			rate = 100
		}
	}
	if rate < 1 || rate > 50000 {
		return fmt.Errorf("--mqtt-rate %d: want between 1 and 50000 msg/s", rate)
	}
	o.mqttRate = float64(rate)
	if o.mqttDuration == 0 {
		o.mqttDuration = 10 * time.Second
		if o.quick {
			o.mqttDuration = 2 * time.Second
		}
	}
	if o.mqttDuration < 100*time.Millisecond || o.mqttDuration > 10*time.Minute {
		return fmt.Errorf("--mqtt-duration %v: want between 100ms and 10m", o.mqttDuration)
	}
	if o.mqttRate*o.mqttDuration.Seconds() < float64(o.mqttActive) {
		return fmt.Errorf("--mqtt-rate %d over --mqtt-duration %v gives the %d active devices less than one message each", rate, o.mqttDuration, o.mqttActive)
	}
	return nil
}

// mqttWorkload runs the three parts on a cluster of its own and returns
// their rows.
func mqttWorkload(t *run.T, o options, routeArgs, gatewayArgs []string) []row {
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: routeArgs, RouteReplica: o.routeReplica,
		GatewayArgs: append(slices.Clip(gatewayArgs), "--mqtt-listen", addr)})
	defer stopCluster(c)
	g := c.Gateways[0]
	pid := g.Cmd.Process.Pid
	settle, cpuWin := idleSettle, idleCPUWin
	if o.quick {
		settle, cpuWin = 500*time.Millisecond, time.Second
	}
	setup := time.Now()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: max(2*o.mqttActive, 2*loadgenPar)}}
	defer hc.CloseIdleConnections()

	// Devices 0…active-1 are the measured ones (and the warm-up), in this
	// process; active…active+n-1 the fleet, here or in the children.
	n, active, procs := o.mqttDevices, o.mqttActive, o.mqttProcs
	total := active + n
	prefix := fmt.Sprintf("mqtt%d-", n)
	local := total
	if procs > 0 {
		local = active
	}
	accts := make([]mqttAccount, local)
	parallel(t, "create devices", local, func(ctx context.Context, i int) error {
		var err error
		accts[i], err = createDevice(ctx, hc, c.Route.URL, idleName(prefix, i))
		return err
	})

	var down, up atomic.Pointer[p2pRun]
	var ackMu sync.Mutex
	var acks []time.Duration // PUBLISH → PUBACK of the data-up run
	var acking atomic.Bool
	measured := mqttHandlers{
		onPublish: func(payload []byte, now time.Time) {
			if r := down.Load(); r != nil {
				r.arrived(string(payload), now)
			}
		},
		onPuback: func(sent time.Time, reason byte, now time.Time) {
			if acking.Load() && reason < 0x80 {
				ackMu.Lock()
				acks = append(acks, now.Sub(sent))
				ackMu.Unlock()
			}
		},
	}
	stats := &mqttStats{}
	dialer := &net.Dialer{Timeout: mqttDialTimeout}
	devs := make([]*mqttDevice, local)
	defer func() {
		closers := make([]func(), len(devs))
		for i, d := range devs {
			if d != nil {
				closers[i] = d.close
			}
		}
		closeAll(closers)
	}()
	connect := func(ctx context.Context, i int) error {
		h := mqttHandlers{}
		if i < active {
			h = measured
		}
		var err error
		devs[i], err = mqttConnect(ctx, dialer, addr, accts[i], h, stats)
		return err
	}

	rssStart, _ := rssOf(pid)
	parallel(t, "connect measured devices (warm-up)", active, connect)
	waitConnections(t, g.HTTPAddr, active, time.Minute)
	var lgs []*loadgen
	if procs > 0 {
		lgs = startMQTTGens(t, c.Route.URL, addr, prefix, active, n, procs)
		defer stopLoadgens(lgs)
		awaitLoadgens(t, lgs, "registered ", 10*time.Minute)
	}
	busy0 := stats.busy.Load()
	fr := measureFleet(t, fleet{gateways: c.Gateways, warm: active, n: n,
		connect: func(ctx context.Context, i int) error { return connect(ctx, active+i) },
		lgs:     lgs, cmd: "connect", settle: settle, cpuWin: cpuWin})
	setupSecs := fr.warmAt.Sub(setup).Seconds()
	held := fr.total()
	busy, dropped := stats.busy.Load()-busy0, stats.dropped.Load()
	for _, line := range mqttgenStats(t, lgs) {
		busy += mqttStat(line, "busy")
		dropped += mqttStat(line, "dropped")
	}
	if held != total || dropped > 0 {
		t.Errorf("mqtt: gateway reports %d connections after the idle window, want %d; %d device connections ended (last: %v)", held, total, dropped, stats.lastEnd.Load())
	}
	perConn := fr.perConnKiB(0, n)
	rate := float64(n) / fr.secs
	rssWarm, rssAfter := fr.rssWarm[0], fr.rssAfter[0]
	gens := loadgensDesc(procs, idleSourceBase)
	rows := []row{{
		Workload: "idle connections", System: systemMQTT, Transport: transportMQTT,
		Setting: fmt.Sprintf("%d devices on 1 gateway's MQTT listener (MQTT 5 CONNECT + SUBSCRIBE QoS 1, the bench's device on paho.golang/packets), keep-alive %v, %s",
			n, mqttKeepAlive, gens),
		Seconds:    fr.secs,
		ClusterCPU: cores(fr.cpu[0]), LoadgenCPU: fr.selfCPU + fr.childCPU,
		SetupSeconds: setupSecs, GatewayRSSMiB: float64(rssAfter) / (1 << 20),
		Connections: n, RSSPerConnKiB: perConn, ConnectsPerSecond: rate,
		GatewayRSSStartMiB: float64(rssStart) / (1 << 20), GatewayRSSWarmMiB: float64(rssWarm) / (1 << 20),
		Result: fmt.Sprintf("%.1f KiB RSS/conn, %.0f connects/s (CONNECT → SUBACK, device login at the route included; %d CONNECTs told busy and retried), gateway RSS %.0f MiB (%.0f after %d warm-up devices), held %d of %d, gateway open files %d of %d; CPU is the gateway's over %v idle",
			perConn, rate, busy, float64(rssAfter)/(1<<20), float64(rssWarm)/(1<<20), active, held, total, fr.fds[0], fr.fdCap[0], cpuWin),
	}}

	// The SDK users of the data-up part, on the same (only) gateway.
	users := connectAll(t, c, prefix+"user", min(mqttUsers, active), loadgenPar, func(_ *member, e client.Event) {
		if e.Kind != client.EventMessage || e.Msg == nil || e.Msg.Group != "" {
			return
		}
		if r := up.Load(); r != nil {
			r.arrived(string(e.Msg.Body), time.Now())
		}
	})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, u := range users {
			u.cl.Close(ctx)
		}
	}()
	where := fmt.Sprintf("%d devices (MQTT 5, QoS 1) among %d connected on 1 gateway, %v window", active, total, o.mqttDuration)

	// Command down.
	r := newP2PRun(active, o.mqttRate, o.mqttDuration)
	down.Store(r)
	var firstErr atomic.Value
	ctx, cancel := context.WithTimeout(context.Background(), o.mqttDuration+time.Minute)
	meter := startCPU(clusterPIDs(c))
	startDown, errs := r.drive(func(i int, body string) error {
		err := pushCommand(ctx, hc, c.Route.URL, accts[i].Name, body)
		if err != nil {
			firstErr.CompareAndSwap(nil, err)
		}
		return err
	})
	r.settle(o.wait)
	clusterCPU, loadCPU := meter.stop()
	cancel()
	down.Store(nil)
	out := r.result(systemMQTT, where+"; POST /api/push to one device (by name) per call, the device PUBACKs at once; latency push call → PUBLISH at the device", o.mqttRate, startDown)
	out.Workload, out.Transport = "mqtt command down", transportMQTT
	out.ClusterCPU, out.LoadgenCPU, out.SetupSeconds, out.GatewayRSSMiB = cores(clusterCPU), loadCPU, setupSecs, gatewayRSS(c)/(1<<20)
	if errs > 0 {
		out.Setting += fmt.Sprintf("; %d push errors (first: %v)", errs, firstErr.Load())
	}
	if out.Loss != 0 || out.Duplicates != 0 || errs > 0 {
		t.Errorf("mqtt command down at %.0f/s: %d lost (%d of %d sent), %d duplicates, %d push errors (first: %v)",
			o.mqttRate, out.Loss, out.Sent-out.Received, out.Sent, out.Duplicates, errs, firstErr.Load())
	}
	rows = append(rows, out)

	// Data up.
	r = newP2PRun(active, o.mqttRate, o.mqttDuration)
	up.Store(r)
	acking.Store(true)
	nacks0 := stats.nacks.Load()
	firstErr = atomic.Value{}
	meter = startCPU(clusterPIDs(c))
	startUp, errs := r.drive(func(i int, body string) error {
		err := devs[i].publish(accts[i].upTopic(users[i%len(users)].name), []byte(body))
		if err != nil {
			firstErr.CompareAndSwap(nil, err)
		}
		return err
	})
	r.settle(o.wait)
	unacked := func() (k int) {
		for _, d := range devs[:active] {
			k += d.unacked()
		}
		return k
	}
	for deadline := time.Now().Add(o.wait); unacked() > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	clusterCPU, loadCPU = meter.stop()
	up.Store(nil)
	acking.Store(false)
	ackMu.Lock()
	ackLats := acks
	ackMu.Unlock()
	sort.Slice(ackLats, func(i, j int) bool { return ackLats[i] < ackLats[j] })
	nacks, missing := stats.nacks.Load()-nacks0, unacked()
	out = r.result(systemMQTT, where+fmt.Sprintf("; each device PUBLISHes QoS 1 on gocim/<id>/up/<user> to %d SDK users on the same gateway; latency PUBLISH → EventMessage at the user", len(users)), o.mqttRate, startUp)
	out.Workload, out.Transport = "mqtt data up", transportMQTT
	out.ClusterCPU, out.LoadgenCPU, out.SetupSeconds, out.GatewayRSSMiB = cores(clusterCPU), loadCPU, setupSecs, gatewayRSS(c)/(1<<20)
	out.AckP50ms, out.AckP99ms = ms1(pct(ackLats, 0.50)), ms1(pct(ackLats, 0.99))
	out.Result = fmt.Sprintf("PUBACK (stored) p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms; %d PUBACKed, %d refused, %d without PUBACK at the end",
		out.AckP50ms, out.AckP99ms, ms1(pct(ackLats, 0.999)), ms1(pct(ackLats, 1)), len(ackLats), nacks, missing)
	if errs > 0 {
		out.Setting += fmt.Sprintf("; %d publish errors (first: %v)", errs, firstErr.Load())
	}
	if out.Loss != 0 || out.Duplicates != 0 || errs > 0 || nacks > 0 || missing > 0 {
		t.Errorf("mqtt data up at %.0f/s: %d lost (%d of %d sent), %d duplicates, %d publish errors (first: %v), %d refused, %d without PUBACK",
			o.mqttRate, out.Loss, out.Sent-out.Received, out.Sent, out.Duplicates, errs, firstErr.Load(), nacks, missing)
	}
	if d := stats.dropped.Load(); d > dropped {
		t.Errorf("mqtt: %d measured device connections ended during the latency runs (last: %v)", d-dropped, stats.lastEnd.Load())
	}
	return append(rows, out)
}

// startMQTTGens starts k mqttgen children holding devices from…from+n-1
// between them, child j dialing from childSource(idleSourceBase, j).
func startMQTTGens(t *run.T, routeURL, mqttAddr, prefix string, from, n, k int) []*loadgen {
	return startChildren(t, "mqttgen", idleSourceBase, from, n, k, func(source string, from, count int) []string {
		return []string{"--route", routeURL, "--mqtt", mqttAddr, "--prefix", prefix, "--from", fmt.Sprint(from),
			"--count", fmt.Sprint(count), "--source", source}
	})
}

// mqttgenStats asks every child for its "stats" line.
func mqttgenStats(t *run.T, lgs []*loadgen) []string {
	for j, lg := range lgs {
		if _, err := fmt.Fprintln(lg.stdin, "stats"); err != nil {
			t.Fatalf("mqttgen %d: %v", j, err)
		}
	}
	return awaitLoadgens(t, lgs, "stats ", time.Minute)
}

// mqttStat is the number after key= in a child's line (0 when absent).
func mqttStat(line, key string) int64 {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// mqttgenMain is the child: see the top of this file.
func mqttgenMain(args []string, stdin io.Reader, stdout io.Writer) int {
	fs := flag.NewFlagSet("gocim-bench mqttgen", flag.ContinueOnError)
	route := fs.String("route", "", "route base URL (devices are created there)")
	mqttAddr := fs.String("mqtt", "", "the gateway's MQTT listener, host:port")
	prefix := fs.String("prefix", "mqtt-", "device name prefix")
	from := fs.Int("from", 0, "first device index")
	count := fs.Int("count", 0, "devices to hold")
	source := fs.String("source", "127.0.0.1", "local source address for every connection")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cio := newChildIO(stdin, stdout)
	say := cio.say
	ip := net.ParseIP(*source)
	if *route == "" || *mqttAddr == "" || *count < 1 || *count > childMaxConns || ip == nil {
		say("failed bad arguments %q", args)
		return 2
	}

	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: mqttDialTimeout}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConnsPerHost: loadgenPar * 2,
	}}
	accts := make([]mqttAccount, *count)
	began := time.Now()
	if failed, err := runParallel(*count, loadgenPar, func(ctx context.Context, i int) error {
		var err error
		accts[i], err = createDevice(ctx, hc, *route, idleName(*prefix, *from+i))
		return err
	}); err != nil {
		say("failed create devices: %d of %d failed, first: %v", failed, *count, err)
		return 1
	}
	hc.CloseIdleConnections()
	say("registered n=%d secs=%.3f", *count, time.Since(began).Seconds())

	if ok, code := cio.await("connect"); !ok {
		return code
	}
	stats := &mqttStats{}
	devs := make([]*mqttDevice, *count) // held: the devices stay referenced
	began = time.Now()
	failed, err := runParallel(*count, loadgenPar, func(ctx context.Context, i int) error {
		var err error
		devs[i], err = mqttConnect(ctx, dialer, *mqttAddr, accts[i], mqttHandlers{}, stats)
		return err
	})
	if err != nil {
		say("failed connect: %d of %d failed, first: %v", failed, *count, err)
		return 1
	}
	say("ready n=%d secs=%.3f busy=%d", *count, time.Since(began).Seconds(), stats.busy.Load())
	for {
		select {
		case cmd := <-cio.cmds:
			if cmd != "stats" {
				say("failed unexpected command %q", cmd)
				return 1
			}
			say("stats dropped=%d busy=%d last=%q", stats.dropped.Load(), stats.busy.Load(), fmt.Sprint(stats.lastEnd.Load()))
		case <-cio.stop:
			runtime.KeepAlive(devs)
			return 0
		}
	}
}
