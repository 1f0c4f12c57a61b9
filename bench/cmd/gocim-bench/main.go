// Command gocim-bench runs gocim's benchmark workloads against a real
// cluster (ZooKeeper, Redis, route, gateways: built without the race
// detector and started through e2e/harness), prints one markdown table and
// writes the rows as JSON.
//
//	go run ./bench/cmd/gocim-bench            # the full set (make bench)
//	go run ./bench/cmd/gocim-bench --quick    # small sizes, under two minutes
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gocim/gocim/bench/internal/run"
	"github.com/gocim/gocim/e2e/harness"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "loadgen" { // idle workload's child (loadgen.go)
		os.Exit(loadgenMain(os.Args[2:], os.Stdin, os.Stdout))
	}
	if len(os.Args) > 1 && os.Args[1] == "mqttgen" { // mqtt workload's child (mqtt.go)
		os.Exit(mqttgenMain(os.Args[2:], os.Stdin, os.Stdout))
	}
	if len(os.Args) > 1 && os.Args[1] == "cfnode" { // a Centrifuge peer's own process (centrifuge.go)
		os.Exit(cfnodeMain(os.Args[2:], os.Stdin, os.Stdout))
	}
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	quick                  bool
	pprof                  bool
	routeReplica           bool     // a route replica inside every gateway
	routeArgs, gatewayArgs []string // extra flags for the gocim processes
	cpuProf                string
	memProf                string
	workloads              map[string]bool
	groups                 []int
	messages               int
	gateways               int
	p2pGateways            int
	rates                  []float64
	pairs                  int
	duration               time.Duration
	wait                   time.Duration
	rounds                 int // p2p and saturation: times each runs, gocim and peers in turn (rounds.go)
	peers                  bool
	idle                   int
	idleProcs              int
	jsonPath               string
	bin                    string // prebuilt cim-server, cim-route, cim-client ("": build them)
	// transports of the gocim rows of the p2p and idle workloads, in order.
	transports []string

	// Saturation workload: offered-rate steps and the window per step.
	steps        []float64
	stepDuration time.Duration

	// Churn workload: extra idle clients, offered rate and window.
	churnIdle int
	// failover workload: clients over its two gateways
	failoverClients int
	churnRate       float64
	churnDuration   time.Duration

	// MQTT workload: idle devices and their load-generator processes,
	// measured devices, the offered rate (down and up) and its window.
	mqttDevices  int
	mqttProcs    int
	mqttActive   int
	mqttRate     float64
	mqttDuration time.Duration

	// Scale workload (scale.go): the fleet, its gateways and children,
	// the private-message rate and window while it is held, and the
	// members of the group fan-out after.
	scaleConns    int
	scaleGateways int
	scaleProcs    int
	scaleRate     float64
	scaleDuration time.Duration
	scaleGroup    int
}

var allWorkloads = []string{"fanout", "p2p", "idle", "saturation", "churn", "failover", "mqtt", "scale"}

// The transports a gocim row can be measured over.
const (
	transportTCP = "tcp" // the Go SDK on the gateway's TCP port
	transportWS  = "ws"  // the bench's WebSocket client (wsclient.go), binary subprotocol
)

var allTransports = []string{transportTCP, transportWS}

// systemName is the system column of a gocim row over transport.
func systemName(transport string) string {
	if transport == transportWS {
		return "gocim (WebSocket)"
	}
	return "gocim"
}

// transportName is a row's Transport over transport.
func transportName(transport string) string {
	if transport == transportWS {
		return "websocket"
	}
	return "tcp"
}

func parse(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("gocim-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := options{}
	fs.BoolVar(&o.quick, "quick", false, "small sizes: the whole run in under two minutes (CI smoke)")
	groups := fs.String("groups", "", "group sizes for the fan-out workload, comma-separated (default 1000,5000; quick: 200)")
	fs.IntVar(&o.messages, "messages", 0, "group messages per fan-out run, sent at once by one member (default 100, the gateway's --msg-burst: more are paced by its --msg-rate; quick: 5)")
	fs.IntVar(&o.gateways, "gateways", 3, "gateways in the cluster")
	workloads := fs.String("workloads", strings.Join(allWorkloads, ","), "workloads to run, comma-separated: fanout, p2p, idle, saturation, churn, failover, mqtt, scale")
	transports := fs.String("transports", strings.Join(allTransports, ","), "transports of gocim's p2p and idle rows, comma-separated: tcp (the SDK), ws (WebSocket, binary subprotocol "+wsSubprotocol+"); each gets a cluster of its own")
	rates := fs.String("rates", "", "offered rates (msg/s) for the p2p workload, comma-separated (default 1000,5000,20000; quick: 1000)")
	steps := fs.String("steps", "", "offered-rate steps (msg/s) for the saturation workload, comma-separated, rising (default 2000,5000,7500,10000,15000,20000,30000,40000; quick: 2000,5000)")
	fs.DurationVar(&o.stepDuration, "step-duration", 0, "send window per saturation step (default 5s; quick: 2s)")
	fs.IntVar(&o.pairs, "pairs", 50, "sender/recipient pairs in the p2p workload")
	fs.IntVar(&o.p2pGateways, "p2p-gateways", 2, "gateways of the p2p workload's cluster: 2 (each sender on one, its recipient on the other) or 1 (both on one: no hop between gateways, for comparison)")
	fs.DurationVar(&o.duration, "duration", 0, "send window per p2p rate (default 10s; quick: 3s)")
	fs.DurationVar(&o.wait, "wait", 10*time.Second, "how long after a p2p send window to wait for stragglers before counting loss")
	fs.IntVar(&o.rounds, "rounds", 1, "times the p2p and saturation workloads run, gocim and the peers in turn each time; with more than one, each row is the median of its rounds and says every round's p99 and CPU (p2p) or highest step held (saturation): one run's tail swings with the machine")
	fs.BoolVar(&o.peers, "peers", true, "also run the peers (embedded NATS and Centrifuge for p2p and saturation)")
	fs.IntVar(&o.idle, "idle", 0, "idle connections on one gateway for the idle workload, at most 30000 with --idle-procs, 15000 without (default 19000; quick: 1000)")
	fs.IntVar(&o.idleProcs, "idle-procs", -1, "load-generator processes for the idle workload, at most 10000 connections each; 0: in-process (default max(2, idle/10000); quick: 0)")
	fs.IntVar(&o.churnIdle, "churn-idle", -1, "idle clients besides the pairs in the churn workload (default 500; quick: 150)")
	fs.IntVar(&o.failoverClients, "failover-clients", 0, "clients over the two gateways of the failover workload, about half of them on the one killed (default 300; quick: 40)")
	churnRate := fs.Int("churn-rate", 2000, "offered rate (msg/s) of the churn workload's pairs")
	fs.DurationVar(&o.churnDuration, "churn-duration", 0, "send window of the churn workload (default 60s; quick: 10s)")
	fs.IntVar(&o.mqttDevices, "mqtt-devices", 0, "idle MQTT devices on one gateway for the mqtt workload, at most 30000 with --mqtt-procs, 15000 without (default 15000; quick: 500)")
	fs.IntVar(&o.mqttProcs, "mqtt-procs", -1, "load-generator processes for the mqtt workload's idle devices, at most 10000 each; 0: in-process (default max(2, devices/10000); quick: 0)")
	fs.IntVar(&o.mqttActive, "mqtt-active", 0, "devices of the mqtt workload that take commands and send data, besides the idle ones (default 100; quick: 20)")
	mqttRate := fs.Int("mqtt-rate", 0, "offered rate (msg/s) of the mqtt workload's commands down, then of its data up (default 1000; quick: 100)")
	fs.DurationVar(&o.mqttDuration, "mqtt-duration", 0, "send window of the mqtt workload, each direction (default 10s; quick: 2s)")
	fs.IntVar(&o.scaleConns, "scale-conns", 0, "idle connections of the scale workload, over --scale-gateways (default 100000; quick: 2000)")
	fs.IntVar(&o.scaleGateways, "scale-gateways", 0, "gateways of the scale workload's cluster (default 6; quick: 2)")
	fs.IntVar(&o.scaleProcs, "scale-procs", 0, fmt.Sprintf("load-generator processes of the scale workload, at most %d connections each, on 127.0.0.%d… (default ⌈conns/%d⌉)", childMaxConns, scaleSourceBase, scalePerChild))
	scaleRate := fs.Int("scale-rate", 0, "private messages/s of the scale workload while the connections are held (default 1000; quick: 500)")
	fs.DurationVar(&o.scaleDuration, "scale-duration", 0, "send window of the scale workload's messages (default 20s; quick: 2s)")
	fs.IntVar(&o.scaleGroup, "scale-group", 0, "members of the scale workload's group fan-out (10 messages; default 500; quick: 50)")
	fs.StringVar(&o.memProf, "memprofile", "", "write the load generator's allocations (runtime/pprof allocs) at the start and end of each measured phase to FILE.start and FILE (the second phase to FILE.2.start and FILE.2); compare them with go tool pprof -diff_base")
	fs.StringVar(&o.cpuProf, "cpuprofile", "", "write the load generator's own CPU profile (runtime/pprof) of each measured phase, without the set-up, to this file (the second phase to FILE.2, …)")
	fs.StringVar(&latencyDump.path, "latency-dump", "", "write every message of each latency row (p2p, churn, mqtt, saturation steps) to FILE.1, FILE.2, …: its send time and latency, to see when the tail happens")
	routeArgs := fs.String("route-args", "", "extra flags for cim-route, space-separated (tuning experiments), e.g. \"--inbox-max 500\"")
	gatewayArgs := fs.String("gateway-args", "", "extra flags for every cim-server, space-separated, e.g. \"--write-queue 4096\"")
	fs.BoolVar(&o.routeReplica, "route-replica", true, "run a route replica inside every gateway (cim-server --route-replica): uplinks are handled in the gateway's process; false: every uplink crosses to the standalone route")
	fs.BoolVar(&o.pprof, "pprof", false, "start route and gateways with --pprof (profiles on their internal addresses; see docs/BENCHMARKS.md)")
	fs.StringVar(&o.bin, "bin", "", "directory with prebuilt cim-server, cim-route and cim-client (built without -race) to run instead of building them from this tree")
	fs.StringVar(&o.jsonPath, "json", "bench/results/latest.json", "where to write the rows as JSON (empty: nowhere)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.routeArgs, o.gatewayArgs = strings.Fields(*routeArgs), strings.Fields(*gatewayArgs)
	if *groups == "" {
		*groups = "1000,5000"
		if o.quick {
			*groups = "200"
		}
	}
	for _, s := range strings.Split(*groups, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 || n > 15000 {
			return o, fmt.Errorf("--groups: %q is not a size between 2 and 15000", s)
		}
		o.groups = append(o.groups, n)
	}
	if o.messages == 0 {
		// The gateway takes a burst of --msg-burst (100) MSGs from one
		// connection at once and paces the rest at --msg-rate (20/s): a
		// longer burst would measure the flood limit, not the fan-out.
		o.messages = 100
		if o.quick {
			o.messages = 5
		}
	}
	o.workloads = map[string]bool{}
	for _, s := range strings.Split(*workloads, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(allWorkloads, s) {
			return o, fmt.Errorf("--workloads: %q is not one of %s", s, strings.Join(allWorkloads, ", "))
		}
		o.workloads[s] = true
	}
	o.transports = nil
	for _, s := range strings.Split(*transports, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(allTransports, s) {
			return o, fmt.Errorf("--transports: %q is not one of %s", s, strings.Join(allTransports, ", "))
		}
		if !slices.Contains(o.transports, s) {
			o.transports = append(o.transports, s)
		}
	}
	if *rates == "" {
		*rates = "1000,5000,20000"
		if o.quick {
			*rates = "1000"
		}
	}
	for _, s := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 200000 {
			return o, fmt.Errorf("--rates: %q is not a rate between 1 and 200000 msg/s", s)
		}
		o.rates = append(o.rates, float64(n))
	}
	if err := stepOptions(&o, *steps); err != nil {
		return o, err
	}
	if o.p2pGateways != 1 && o.p2pGateways != 2 {
		return o, fmt.Errorf("--p2p-gateways %d: want 1 or 2", o.p2pGateways)
	}
	if o.pairs < 1 || o.pairs > 5000 {
		return o, fmt.Errorf("--pairs %d: want between 1 and 5000", o.pairs)
	}
	if o.duration == 0 {
		o.duration = 10 * time.Second
		if o.quick {
			o.duration = 3 * time.Second
		}
	}
	if o.duration < 100*time.Millisecond || o.duration > 10*time.Minute {
		return o, fmt.Errorf("--duration %v: want between 100ms and 10m", o.duration)
	}
	for _, r := range o.rates {
		if r*o.duration.Seconds() < float64(o.pairs) {
			return o, fmt.Errorf("--rates %.0f over --duration %v gives the %d pairs less than one message each", r, o.duration, o.pairs)
		}
	}
	if o.rounds < 1 || o.rounds > 20 {
		return o, fmt.Errorf("--rounds %d: want between 1 and 20", o.rounds)
	}
	if o.wait < 0 || o.wait > 5*time.Minute {
		return o, fmt.Errorf("--wait %v: want between 0 and 5m", o.wait)
	}
	if err := idleOptions(&o); err != nil { // loadgen.go
		return o, err
	}
	if err := churnOptions(&o, *churnRate); err != nil {
		return o, err
	}
	if err := mqttOptions(&o, *mqttRate); err != nil { // mqtt.go
		return o, err
	}
	if err := scaleOptions(&o, *scaleRate); err != nil { // scale.go
		return o, err
	}
	return o, nil
}

func realMain(args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	slog.SetDefault(log)
	phaseProfile.path = o.cpuProf
	phaseProfile.mem = o.memProf
	var rows []row
	began := time.Now()
	code := run.Main(log, func(t *run.T) {
		bin := o.bin
		if bin == "" {
			bin = buildBinaries(t)
		}
		os.Setenv("CIM_BIN_DIR", bin)
		quiet := []string{"--log-level", "warn"}
		if o.pprof {
			quiet = append(quiet, "--pprof")
		}
		routeArgs := append(slices.Clip(quiet), o.routeArgs...)
		gatewayArgs := append(slices.Clip(quiet), o.gatewayArgs...)
		if o.workloads["fanout"] {
			for _, n := range o.groups {
				fmt.Fprintf(stderr, "group fan-out: %d members over %d gateways, %d messages…\n", n, o.gateways, o.messages)
				c := harness.Start(t, harness.Options{Gateways: o.gateways, RouteArgs: routeArgs, GatewayArgs: gatewayArgs, RouteReplica: o.routeReplica})
				rows = append(rows, groupFanout(t, c, n, o.messages))
				stopCluster(c)
			}
		}
		if o.workloads["p2p"] {
			rows = append(rows, inRounds(o.rounds, "p2p latency", stderr, func() []row { // rounds.go
				var round []row
				for _, tr := range o.transports {
					fmt.Fprintf(stderr, "p2p latency (%s): %d pairs over %d gateways, %v per rate, rates %v…\n", tr, o.pairs, o.p2pGateways, o.duration, o.rates)
					c := harness.Start(t, harness.Options{Gateways: o.p2pGateways, RouteArgs: routeArgs, GatewayArgs: gatewayArgs, RouteReplica: o.routeReplica})
					round = append(round, p2pGocim(t, c, "p2p"+tr, o.pairs, o.rates, o.duration, o.wait, false, tr)...)
					stopCluster(c)
				}
				if o.peers {
					round = append(round, p2pPeers(t, o, stderr)...) // peers.go
				}
				return round
			})...)
		}
		if o.workloads["saturation"] {
			rows = append(rows, inRounds(o.rounds, "saturation", stderr, func() []row {
				// A cluster of its own: the p2p one may still be draining a backlog.
				fmt.Fprintf(stderr, "saturation: %d pairs over 2 gateways, %v per step, steps %v…\n", o.pairs, o.stepDuration, o.steps)
				c := harness.Start(t, harness.Options{Gateways: 2, RouteArgs: routeArgs, GatewayArgs: gatewayArgs, RouteReplica: o.routeReplica})
				round := []row{saturationRow("gocim", p2pGocim(t, c, "sat", o.pairs, o.steps, o.stepDuration, o.wait, true, transportTCP))}
				stopCluster(c)
				if o.peers {
					round = append(round, saturationPeers(t, o, stderr)...) // peers.go
				}
				return round
			})...)
		}
		if o.workloads["churn"] {
			fmt.Fprintf(stderr, "churn: %d pairs + %d idle clients over 2 gateways, %.0f msg/s for %v, %.0f%% of clients reconnecting per minute…\n",
				o.pairs, o.churnIdle, o.churnRate, o.churnDuration, 100*churnShare)
			c := harness.Start(t, harness.Options{Gateways: 2, RouteArgs: routeArgs, GatewayArgs: gatewayArgs, RouteReplica: o.routeReplica})
			rows = append(rows, churnGocim(t, c, o.pairs, o.churnIdle, o.churnRate, o.churnDuration, o.wait))
			stopCluster(c)
		}
		if o.workloads["failover"] {
			for _, s := range []struct{ ttl, setting string }{
				{"0", "no resume tokens (--resume-ttl 0): every client logs in again with its password"},
				{"168h", "resume tokens (--resume-ttl 168h, the default): the clients log in again with them"},
			} {
				fmt.Fprintf(stderr, "failover: %d clients over 2 gateways, the first killed; --bcrypt-cost %s, --resume-ttl %s…\n", o.failoverClients, failoverBcryptCost, s.ttl)
				args := append(slices.Clip(routeArgs), "--bcrypt-cost", failoverBcryptCost, "--resume-ttl", s.ttl)
				c := harness.Start(t, harness.Options{Gateways: 2, RouteArgs: args, GatewayArgs: gatewayArgs, RouteReplica: o.routeReplica})
				rows = append(rows, failoverGocim(t, c, o.failoverClients, s.setting))
				stopCluster(c)
			}
		}
		if o.workloads["idle"] {
			for _, tr := range o.transports {
				fmt.Fprintf(stderr, "idle connections (%s): %d (after %d warm-up) on 1 gateway, %d load-generator processes…\n", tr, o.idle, idleWarmup, o.idleProcs)
				c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: routeArgs, GatewayArgs: gatewayArgs, RouteReplica: o.routeReplica})
				rows = append(rows, idleConnections(t, c, o.idle, o.idleProcs, tr))
				stopCluster(c)
			}
		}
		if o.workloads["mqtt"] {
			fmt.Fprintf(stderr, "mqtt devices: %d idle (after %d measured) on 1 gateway's MQTT listener, %d load-generator processes; commands down, then data up, at %.0f/s for %v each…\n",
				o.mqttDevices, o.mqttActive, o.mqttProcs, o.mqttRate, o.mqttDuration)
			rows = append(rows, mqttWorkload(t, o, routeArgs, gatewayArgs)...) // mqtt.go
		}
		if o.workloads["scale"] {
			fmt.Fprintf(stderr, "scale: %d connections (after %d warm-up) over %d gateways from %d load-generator processes, then %.0f private msg/s for %v and a fan-out to %d members…\n",
				o.scaleConns, scaleWarmup, o.scaleGateways, o.scaleProcs, o.scaleRate, o.scaleDuration, o.scaleGroup)
			rows = append(rows, scaleWorkload(t, o, routeArgs, gatewayArgs)...) // scale.go
		}
	})
	order(rows)
	compare(rows)
	printTable(stdout, rows, fmt.Sprintf("%s, %d CPUs, %s (run took %.0f s)", runtime.Version(), runtime.NumCPU(),
		time.Now().UTC().Format("2006-01-02"), time.Since(began).Seconds()))
	if o.jsonPath != "" && len(rows) > 0 {
		if err := writeJSON(o.jsonPath, rows); err != nil {
			fmt.Fprintf(stderr, "write %s: %v\n", o.jsonPath, err)
			return 1
		}
	}
	return code
}

// stopCluster kills a workload's cluster so the next one starts clean.
func stopCluster(c *harness.Cluster) {
	for _, g := range c.Gateways {
		g.Kill()
	}
	c.Route.Kill()
	c.Redis.Kill()
	c.ZK.Kill()
}

// buildBinaries builds the cluster without the race detector (the harness
// default is a race build, right for tests, wrong for speed).
func buildBinaries(t *run.T) string {
	dir := t.TempDir()
	root := harness.RepoRoot()
	args := []string{"build", "-o", dir + "/"}
	for _, b := range []string{"cim-server", "cim-route", "cim-client"} {
		args = append(args, "./"+b+"/cmd/"+b)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

func writeJSON(path string, rows []row) error {
	if !filepath.IsAbs(path) {
		path = filepath.Join(harness.RepoRoot(), path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(map[string]any{
		"go": runtime.Version(), "cpus": runtime.NumCPU(), "date": time.Now().UTC().Format(time.RFC3339), "rows": rows,
	}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// churnOptions fills in and checks the churn workload's options (and the
// failover workload's client count).
func churnOptions(o *options, rate int) error {
	if o.failoverClients == 0 {
		o.failoverClients = 300
		if o.quick {
			o.failoverClients = 40
		}
	}
	if o.failoverClients < 2 || o.failoverClients > 5000 {
		return fmt.Errorf("--failover-clients %d: want between 2 and 5000", o.failoverClients)
	}
	if o.churnIdle < 0 {
		o.churnIdle = 500
		if o.quick {
			o.churnIdle = 150
		}
	}
	if o.churnIdle > 20000 {
		return fmt.Errorf("--churn-idle %d: want between 0 and 20000", o.churnIdle)
	}
	if rate < 1 || rate > 200000 {
		return fmt.Errorf("--churn-rate %d: want between 1 and 200000 msg/s", rate)
	}
	o.churnRate = float64(rate)
	if o.churnDuration == 0 {
		o.churnDuration = time.Minute
		if o.quick {
			o.churnDuration = 10 * time.Second
		}
	}
	if o.churnDuration < time.Second || o.churnDuration > 10*time.Minute {
		return fmt.Errorf("--churn-duration %v: want between 1s and 10m", o.churnDuration)
	}
	if o.churnRate*o.churnDuration.Seconds() < float64(o.pairs) {
		return fmt.Errorf("--churn-rate %d over --churn-duration %v gives the %d pairs less than one message each", rate, o.churnDuration, o.pairs)
	}
	return nil
}
