package main

// Measuring a fleet of idle connections, shared by the idle, mqtt and
// scale workloads: the caller makes a warm-up in this process and starts
// the load-generator children (each has registered its accounts); then
// measureFleet takes the baseline readings, has the fleet connect, waits
// until the gateways report every connection, and reads memory, open files
// and CPU while everything idles. The children's side of the line protocol
// (loadgen.go) is childIO here, so that loadgen and mqttgen share it.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gocim/gocim/bench/internal/run"
	"github.com/gocim/gocim/e2e/harness"
)

// fleet is what measureFleet measures.
type fleet struct {
	gateways []*harness.Gateway
	warm     int // connections the gateways hold already (the warm-up)
	n        int // connections the fleet adds
	// connect makes fleet connection i (0…n-1) in this process; used when
	// lgs is empty.
	connect func(ctx context.Context, i int) error
	lgs     []*loadgen // children that said "registered"
	cmd     string     // what tells a child to connect: "login" or "connect"
	// others are more processes whose RSS and CPU are read like the
	// gateways' (the route, Redis).
	others         []int
	settle, cpuWin time.Duration
	timeout        time.Duration // for the children's "ready" (default 10 minutes)
	// window, when set, is called at the start (false) and the end (true)
	// of the idle CPU window: more readings over the same window.
	window func(end bool)
}

// fleetResult is one measurement. Per-process slices are in the order of
// fleet.gateways, then fleet.others.
type fleetResult struct {
	warmAt            time.Time // when the baseline was read
	secs              float64   // from the first connect to the last child's "ready"
	rssWarm, rssAfter []int64   // bytes, before and after the fleet connected
	cpu               []float64 // cores over cpuWin while idle
	selfCPU, childCPU float64   // this process's and the children's, cores
	fds, fdCap        []int     // the gateways' open files and their caps
	held              []int     // the gateways' /healthz connections after the window
}

// total is what the gateways hold together after the idle window.
func (r fleetResult) total() int {
	n := 0
	for _, h := range r.held {
		n += h
	}
	return n
}

// perConnKiB is process i's RSS growth per fleet connection in KiB, over
// conns connections.
func (r fleetResult) perConnKiB(i, conns int) float64 {
	return float64(r.rssAfter[i]-r.rssWarm[i]) / float64(conns) / 1024
}

// measureFleet: see the top of this file.
func measureFleet(t *run.T, f fleet) fleetResult {
	pids := make([]int, 0, len(f.gateways)+len(f.others))
	for _, g := range f.gateways {
		pids = append(pids, g.Cmd.Process.Pid)
	}
	pids = append(pids, f.others...)
	timeout := f.timeout
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	var r fleetResult
	time.Sleep(f.settle)
	r.rssWarm = rssAll(t, pids)
	r.warmAt = time.Now()

	start := time.Now()
	if len(f.lgs) == 0 {
		parallel(t, "connect", f.n, f.connect)
	} else {
		for j, lg := range f.lgs {
			if _, err := fmt.Fprintln(lg.stdin, f.cmd); err != nil {
				t.Fatalf("load generator %d: %v", j, err)
			}
		}
		awaitLoadgens(t, f.lgs, "ready ", timeout)
	}
	r.secs = time.Since(start).Seconds()
	waitTotal(t, f.gateways, f.warm+f.n, time.Minute)
	time.Sleep(f.settle)
	r.rssAfter = rssAll(t, pids)
	for _, g := range f.gateways {
		open, limit := openFiles(g.Cmd.Process.Pid)
		r.fds, r.fdCap = append(r.fds, open), append(r.fdCap, limit)
	}

	meters := make([]*cpuMeter, len(pids))
	for i, p := range pids {
		meters[i] = startCPU([]int{p})
	}
	lgCPU := startCPU(pidsOf(f.lgs))
	if f.window != nil {
		f.window(false)
	}
	time.Sleep(f.cpuWin)
	if f.window != nil {
		f.window(true)
	}
	r.cpu = make([]float64, len(pids))
	for i, m := range meters {
		r.cpu[i], r.selfCPU = m.stop()
	}
	r.childCPU, _ = lgCPU.stop()
	for _, g := range f.gateways {
		r.held = append(r.held, healthzConnections(g.HTTPAddr))
	}
	return r
}

func rssAll(t *run.T, pids []int) []int64 {
	out := make([]int64, len(pids))
	for i, p := range pids {
		var err error
		if out[i], err = rssOf(p); err != nil {
			t.Fatalf("RSS of pid %d: %v", p, err)
		}
	}
	return out
}

// waitTotal waits until the gateways' /healthz connections add up to want.
func waitTotal(t *run.T, gws []*harness.Gateway, want int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		got := 0
		for _, g := range gws {
			got += healthzConnections(g.HTTPAddr)
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateways' /healthz report %d connections together, want %d", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// childSource is the loopback address child j of a fleet dials from:
// 127.0.0.(base+j). Ephemeral ports are per source address (about 28,000
// here), so each child gets its own.
func childSource(base, j int) string { return fmt.Sprintf("127.0.0.%d", base+j) }

// startChildren starts k children of subcommand sub holding connections
// from…from+n-1 between them, child j dialing from childSource(base, j);
// args gives a child's flags after the subcommand.
func startChildren(t *run.T, sub string, base, from, n, k int, args func(source string, from, count int) []string) []*loadgen {
	var lgs []*loadgen
	for j := 0; j < k; j++ {
		cnt := n/k + btoi(j < n%k)
		lgs = append(lgs, startChild(t, cnt, append([]string{sub}, args(childSource(base, j), from, cnt)...)...))
		from += cnt
	}
	return lgs
}

// childIO is a child's side of the line protocol (loadgen.go): say writes
// a line to the parent, cmds carries the parent's lines, stop closes on
// SIGTERM/SIGINT or when the parent closes stdin (or dies).
type childIO struct {
	mu   sync.Mutex
	out  io.Writer
	cmds chan string
	stop chan struct{}
}

func newChildIO(stdin io.Reader, stdout io.Writer) *childIO {
	c := &childIO{out: stdout, cmds: make(chan string, 1), stop: make(chan struct{})}
	var once sync.Once
	quit := func() { once.Do(func() { close(c.stop) }) }
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; quit() }()
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			c.cmds <- strings.TrimSpace(sc.Text())
		}
		quit()
	}()
	return c
}

func (c *childIO) say(format string, a ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.out, format+"\n", a...)
}

// await waits for the command want: ok when it came; otherwise the child
// is to exit with code (0 when stopped; 1 after another command, which it
// reports).
func (c *childIO) await(want string) (ok bool, code int) {
	select {
	case cmd := <-c.cmds:
		if cmd != want {
			c.say("failed unexpected command %q", cmd)
			return false, 1
		}
		return true, 0
	case <-c.stop:
		return false, 0
	}
}

// loadgensDesc says where a fleet's connections came from.
func loadgensDesc(procs, base int) string {
	switch procs {
	case 0:
		return "1 load generator (in-process)"
	case 1:
		return "1 load-generator process (" + childSource(base, 0) + ")"
	}
	return fmt.Sprintf("%d load-generator processes (%s–%s)", procs, childSource(base, 0), childSource(base, procs-1))
}
