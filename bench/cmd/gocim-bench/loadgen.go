package main

// The load-generator child process of the idle workload. Open files are
// capped at 20,000 per process here, so the idle workload spreads its
// clients over several copies of this binary, each started as
//
//	gocim-bench loadgen --route URL --prefix idletcp19000- --from 100 --count 9500 --source 127.0.0.2 --transport tcp
//
// Its clients are the SDK's (--transport tcp) or the bench's WebSocket
// client (--transport ws, wsclient.go). Each child dials the route and the
// gateway from its own loopback source address (ephemeral ports are per
// source address) and talks to the parent over stdin/stdout, one line each:
//
//	child → parent  registered n=9500 secs=12.3   accounts exist
//	parent → child  login                          log them all in now
//	child → parent  ready n=9500 secs=25.1         every client got LOGIN_ACK
//	child → parent  failed <reason>                (instead of either; then it exits)
//
// After "ready" the clients idle (default heartbeat) until stdin closes or
// SIGTERM/SIGINT arrives; the child then exits without closing them one by
// one. The parent also sets Pdeathsig, so a child never outlives it.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gocim/gocim/bench/internal/run"
	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/codes"
)

const (
	loadgenMaxConns = 10000 // clients per load-generator process, by default
	loadgenMaxProcs = 8     // source addresses 127.0.0.2 … 127.0.0.9
	loadgenPar      = 16    // concurrent registrations/logins per child
	// childMaxConns is the most a child takes: open files are capped at
	// 20,000 per process, and a child also holds a few for HTTP and itself.
	childMaxConns = 18000
	// idleSourceBase is the first child's source address (127.0.0.2) for
	// the idle and mqtt workloads.
	idleSourceBase = 2
)

// idleName is the account name of idle client i.
func idleName(prefix string, i int) string { return fmt.Sprintf("%s%05d", prefix, i) }

// idleOptions fills in and checks the idle workload's options: --idle N
// (default 19000; quick 1000) and --idle-procs K (load-generator
// processes; default 0 = in-process for quick, else max(2, ⌈N/10000⌉)).
func idleOptions(o *options) error {
	if o.idle == 0 {
		o.idle = 19000
		if o.quick {
			o.idle = 1000
		}
	}
	if o.idleProcs < 0 {
		o.idleProcs = 0
		if !o.quick {
			o.idleProcs = max(2, (o.idle+loadgenMaxConns-1)/loadgenMaxConns)
		}
	}
	if o.idleProcs > loadgenMaxProcs {
		return fmt.Errorf("--idle-procs %d: want between 0 and %d", o.idleProcs, loadgenMaxProcs)
	}
	// Open files are capped at 20,000 per process here: in-process, this
	// process holds every idle client (plus the warm-up ones); with
	// children, each holds at most loadgenMaxConns. One gateway holds
	// about 19,900 at that cap, so more than that only tests the cap.
	maxIdle := 15000
	if o.idleProcs > 0 {
		maxIdle = min(30000, o.idleProcs*loadgenMaxConns)
	}
	if o.idle < 1 || o.idle > maxIdle {
		return fmt.Errorf("--idle %d: want between 1 and %d connections with --idle-procs %d", o.idle, maxIdle, o.idleProcs)
	}
	return nil
}

// runParallel runs f(0…n-1), par at a time, each under a one-minute
// context; it returns how many failed and the first error.
func runParallel(n, par int, f func(ctx context.Context, i int) error) (int64, error) {
	var wg sync.WaitGroup
	var next, failed atomic.Int64
	var firstErr atomic.Value
	for w := 0; w < par; w++ {
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
	if failed.Load() == 0 {
		return 0, nil
	}
	return failed.Load(), firstErr.Load().(error)
}

// register creates the account, tolerating one that already exists.
func register(ctx context.Context, api *client.API, name string) error {
	_, err := api.Register(ctx, name, harness.Password)
	var apiErr *client.APIError
	if err != nil && !(errors.As(err, &apiErr) && apiErr.Code == codes.BadAccount) {
		return err
	}
	return nil
}

// loadgenMain is the child: see the top of this file.
func loadgenMain(args []string, stdin io.Reader, stdout io.Writer) int {
	fs := flag.NewFlagSet("gocim-bench loadgen", flag.ContinueOnError)
	route := fs.String("route", "", "route base URL")
	prefix := fs.String("prefix", "idle-", "account name prefix")
	from := fs.Int("from", 0, "first account index")
	count := fs.Int("count", 0, "clients to hold")
	source := fs.String("source", "127.0.0.1", "local source address for every connection")
	transport := fs.String("transport", transportTCP, "tcp (the SDK) or ws (WebSocket, binary subprotocol)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cio := newChildIO(stdin, stdout)
	say := cio.say
	ip := net.ParseIP(*source)
	if *route == "" || *count < 1 || *count > childMaxConns || ip == nil || !slices.Contains(allTransports, *transport) {
		say("failed bad arguments %q", args)
		return 2
	}

	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConnsPerHost: loadgenPar * 2,
	}}
	api := client.NewAPI(*route, hc)

	began := time.Now()
	if failed, err := runParallel(*count, loadgenPar, func(ctx context.Context, i int) error {
		return register(ctx, api, idleName(*prefix, *from+i))
	}); err != nil {
		say("failed register: %d of %d failed, first: %v", failed, *count, err)
		return 1
	}
	say("registered n=%d secs=%.3f", *count, time.Since(began).Seconds())

	if ok, code := cio.await("login"); !ok {
		return code
	}

	closers := make([]func(), *count) // held: the clients stay referenced
	idle := idleLogin(*transport, *route, hc, api, dialer.DialContext, 16)
	began = time.Now()
	failed, err := runParallel(*count, loadgenPar, func(ctx context.Context, i int) error {
		var err error
		closers[i], err = idle(ctx, idleName(*prefix, *from+i))
		return err
	})
	if err != nil {
		say("failed login: %d of %d failed, first: %v", failed, *count, err)
		return 1
	}
	say("ready n=%d secs=%.3f", *count, time.Since(began).Seconds())
	hc.CloseIdleConnections()
	<-cio.stop
	runtime.KeepAlive(closers)
	return 0
}

// loadgen is the parent's handle on one child.
type loadgen struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // the child's stdout, closed at EOF
	count int
}

// startLoadgens starts k children holding clients from…from+n-1 between
// them over transport, child j dialing from childSource(base, j).
func startLoadgens(t *run.T, routeURL, prefix, transport string, base, from, n, k int) []*loadgen {
	return startChildren(t, "loadgen", base, from, n, k, func(source string, from, count int) []string {
		return []string{"--route", routeURL, "--prefix", prefix, "--from", fmt.Sprint(from), "--count", fmt.Sprint(count),
			"--source", source, "--transport", transport}
	})
}

// startChild starts this binary with args (a subcommand and its flags) as
// a child holding count clients, speaking the line protocol at the top of
// this file.
func startChild(t *run.T, count int, args ...string) *loadgen {
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("%s: %v", args[0], err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("%s: %v", args[0], err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("%s: %v", args[0], err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", args[0], err)
	}
	lg := &loadgen{cmd: cmd, stdin: stdin, lines: make(chan string, 16), count: count}
	go func() {
		defer close(lg.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lg.lines <- sc.Text()
		}
	}()
	return lg
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// await waits for every child's next line to start with want; "failed …",
// EOF or the timeout is fatal. It returns the lines.
func awaitLoadgens(t *run.T, lgs []*loadgen, want string, timeout time.Duration) []string {
	deadline := time.After(timeout)
	out := make([]string, len(lgs))
	for j, lg := range lgs {
		select {
		case line, ok := <-lg.lines:
			if !ok {
				t.Fatalf("loadgen %d (pid %d) exited before %q", j, lg.cmd.Process.Pid, want)
			}
			if !strings.HasPrefix(line, want) {
				t.Fatalf("loadgen %d (pid %d): %s", j, lg.cmd.Process.Pid, line)
			}
			out[j] = line
		case <-deadline:
			t.Fatalf("loadgen: no %q from all within %v", want, timeout)
		}
	}
	return out
}

// stopLoadgens closes the children's stdin and waits for them to exit,
// killing any still there after five seconds.
func stopLoadgens(lgs []*loadgen) {
	for _, lg := range lgs {
		lg.stdin.Close()
	}
	for _, lg := range lgs {
		done := make(chan struct{})
		go func() {
			for range lg.lines {
			}
			lg.cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			lg.cmd.Process.Kill()
			<-done
		}
	}
}

func pidsOf(lgs []*loadgen) []int {
	pids := make([]int, len(lgs))
	for j, lg := range lgs {
		pids[j] = lg.cmd.Process.Pid
	}
	return pids
}

// openFiles returns how many files pid has open and its soft cap (-1 each
// when unreadable).
func openFiles(pid int) (open, limit int) {
	open, limit = -1, -1
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		open = len(ents)
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
				if f := strings.Fields(rest); len(f) > 0 {
					fmt.Sscan(f[0], &limit)
				}
			}
		}
	}
	return open, limit
}
