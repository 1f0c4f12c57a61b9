// Package testenv starts the real services gocim's tests run against —
// ZooKeeper and Redis — as child processes on free loopback ports with
// throwaway data directories, and stops them when the test ends.
//
// When a service is not installed the test is skipped with a message saying
// how to install it, except under CI=true, where it fails instead.
package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// InstallHint tells a developer how to get the services.
const InstallHint = "install them with scripts/deps.sh (apt-get install -y zookeeper redis-server)"

// TB is the part of testing.TB the helpers need; *testing.T, *testing.B and
// *testing.F satisfy it.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

var _ TB = (testing.TB)(nil)

// Missing fails (CI=true) or skips the test because a service is missing.
func Missing(t TB, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not available and CI=true: %s", what, InstallHint)
	}
	t.Skipf("skipping: %s is not available; %s", what, InstallHint)
}

// FreePort returns a loopback TCP port that was free a moment ago, for a
// server a test is about to start.
//
// The port comes from below the kernel's ephemeral range when there is room
// there: a port the kernel hands out for "listen on :0" is one it may hand
// out next as the source port of some outgoing connection, and the server
// then fails to bind it (seen when tests and benchmarks run side by side).
// Within one test binary no port is handed out twice.
func FreePort(t TB) int {
	t.Helper()
	if low := ephemeralLow(); low-portFloor >= 1000 {
		for range 200 {
			p := portFloor + rand.IntN(low-portFloor)
			if claimPort(p) {
				return p
			}
		}
	}
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if markGiven(p) {
			return p
		}
	}
	t.Fatalf("free port: none found")
	return 0
}

// markGiven marks p handed out, reporting false if it already was.
func markGiven(p int) bool {
	portsMu.Lock()
	defer portsMu.Unlock()
	if portsGiven[p] {
		return false
	}
	portsGiven[p] = true
	return true
}

// portFloor is the lowest port FreePort picks from (below the ranges
// servers commonly use by default are left alone).
const portFloor = 10000

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// claimPort reports whether p is free on 127.0.0.1 and not yet handed out,
// and marks it handed out if so.
func claimPort(p int) bool {
	portsMu.Lock()
	defer portsMu.Unlock()
	if portsGiven[p] {
		return false
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	l.Close()
	portsGiven[p] = true
	return true
}

// ephemeralLow returns the first port of the kernel's ephemeral range, 0 if
// it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	low, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return low
}

// Process is a child process started for a test.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	Log  string // path of the combined stdout/stderr log

	mu   sync.Mutex
	done chan struct{}
	err  error
}

// Start runs name with args, logging to a file in dir. The process is killed
// when the test ends if it is still running.
func Start(t TB, dir, name string, env []string, args ...string) *Process {
	t.Helper()
	logPath := filepath.Join(dir, filepath.Base(name)+"-"+strconv.FormatInt(time.Now().UnixNano(), 36)+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("log file: %v", err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Process{Name: filepath.Base(name), Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		lf.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() { p.Kill() })
	return p
}

// exitErr is how the process ended (nil while it runs or after a clean exit).
func (p *Process) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Kill sends SIGKILL to the process group and waits for the exit.
func (p *Process) Kill() {
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// Signal sends sig to the process group.
func (p *Process) Signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		_ = syscall.Kill(-p.Cmd.Process.Pid, sig)
	}
}

// Stop sends SIGTERM and waits up to timeout before killing.
func (p *Process) Stop(timeout time.Duration) error {
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Kill()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Tail returns the last n lines of the process log, for failure messages.
func (p *Process) Tail(n int) string {
	b, _ := os.ReadFile(p.Log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitTCP waits until addr accepts TCP connections, the process exits, or
// ctx ends.
func WaitTCP(ctx context.Context, p *Process, addr string) error {
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %s not reachable: %w", p.Name, addr, ctx.Err())
		case <-p.done:
			return fmt.Errorf("%s exited before listening on %s:\n%s", p.Name, addr, p.Tail(20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Redis is a redis-server started for a test.
type Redis struct {
	*Process
	Addr string
	Dir  string
	args []string
	t    TB
}

// StartRedis starts redis-server on a free port with a throwaway data
// directory (AOF on, so a restart keeps data) and waits until it answers.
func StartRedis(t TB) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		Missing(t, "redis-server")
	}
	dir := t.TempDir()
	for attempt := 1; ; attempt++ { // a new port if the picked one was taken meanwhile
		port := FreePort(t)
		r := &Redis{Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: dir, t: t}
		r.args = []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no"}
		r.Process = Start(t, dir, bin, nil, r.args...)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := waitRedis(ctx, r.Process, r.Addr)
		cancel()
		if err == nil {
			return r
		}
		if !errors.Is(err, errExitedEarly) || attempt == 3 {
			t.Fatalf("%v", err)
		}
		t.Logf("%v; trying another port", err)
	}
}

func (r *Redis) wait() {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := waitRedis(ctx, r.Process, r.Addr); err != nil {
		r.t.Fatalf("%v", err)
	}
}

// Restart starts the server again on the same port and data directory; stop
// it first with Kill or Stop.
func (r *Redis) Restart() {
	r.t.Helper()
	r.Process = Start(r.t, r.Dir, r.Cmd.Path, nil, r.args...)
	r.wait()
}

// waitRedis waits for a PING answered with PONG, speaking RESP directly so
// this package needs no client library.
func waitRedis(ctx context.Context, p *Process, addr string) error {
	for {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			fmt.Fprint(c, "PING\r\n")
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis on %s not ready: %w\n%s", addr, ctx.Err(), p.Tail(20))
		case <-p.done:
			return fmt.Errorf("redis on %s %w (%v):\n%s", addr, errExitedEarly, p.exitErr(), p.Tail(20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ZooKeeper is a standalone ZooKeeper server started for a test.
type ZooKeeper struct {
	*Process
	Addr string
	Dir  string
	port int
	t    TB
}

// ZooKeeperClasspath returns the Java classpath of the system's ZooKeeper
// (CIM_ZK_CLASSPATH overrides it), or "" when none is installed.
func ZooKeeperClasspath() string {
	if cp := os.Getenv("CIM_ZK_CLASSPATH"); cp != "" {
		return cp
	}
	for _, jar := range []string{"/usr/share/java/zookeeper.jar", "/usr/share/zookeeper/zookeeper.jar"} {
		if _, err := os.Stat(jar); err == nil {
			cp := jar
			if _, err := os.Stat("/etc/zookeeper/conf"); err == nil {
				cp = "/etc/zookeeper/conf:" + cp
			}
			return cp
		}
	}
	return ""
}

// StartZooKeeper starts a standalone ZooKeeper (the system package's jar run
// by java) on a free port with a throwaway data directory and waits until it
// serves requests.
func StartZooKeeper(t TB) *ZooKeeper {
	t.Helper()
	cp := ZooKeeperClasspath()
	if cp == "" {
		Missing(t, "ZooKeeper")
	}
	if _, err := exec.LookPath("java"); err != nil {
		Missing(t, "java (for ZooKeeper)")
	}
	z := &ZooKeeper{Dir: t.TempDir(), t: t}
	// The port is free when picked but may be taken before java binds it
	// (say, as the ephemeral port of a connection another test opens):
	// ZooKeeper then exits at once, and a new port is tried.
	for attempt := 1; ; attempt++ {
		z.port = FreePort(t)
		z.Addr = "127.0.0.1:" + strconv.Itoa(z.port)
		err := z.tryStart()
		if err == nil {
			return z
		}
		if !errors.Is(err, errExitedEarly) || attempt == 3 {
			t.Fatalf("%v", err)
		}
		t.Logf("%v; trying another port", err)
	}
}

// errExitedEarly: a server process ended before it served.
var errExitedEarly = errors.New("exited early")

func (z *ZooKeeper) start() {
	z.t.Helper()
	if err := z.tryStart(); err != nil {
		z.t.Fatalf("%v", err)
	}
}

func (z *ZooKeeper) tryStart() error {
	z.t.Helper()
	java, _ := exec.LookPath("java")
	// A config file, not the port/dir arguments, so that ZooKeeper listens
	// on 127.0.0.1 only: on the wildcard address the port may be in use on
	// another loopback address (the bench's load generators hold thousands
	// of ephemeral ports on 127.0.0.2-3), and ZooKeeper then exits at start.
	cfg := filepath.Join(z.Dir, "zoo.cfg")
	conf := fmt.Sprintf("tickTime=500\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"+
		"admin.enableServer=false\n4lw.commands.whitelist=srvr,ruok\n", filepath.Join(z.Dir, "data"), z.port)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return err
	}
	z.Process = Start(z.t, z.Dir, java, nil,
		"-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-cp", ZooKeeperClasspath(),
		"org.apache.zookeeper.server.ZooKeeperServerMain", cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return waitZooKeeper(ctx, z.Process, z.Addr)
}

// Restart starts ZooKeeper again on the same port and data directory; stop it
// first with Kill or Stop.
func (z *ZooKeeper) Restart() { z.t.Helper(); z.start() }

// waitZooKeeper waits until the server answers the "srvr" command as serving.
func waitZooKeeper(ctx context.Context, p *Process, addr string) error {
	for {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			fmt.Fprint(c, "srvr")
			b := make([]byte, 4096)
			n, _ := bufio.NewReader(c).Read(b)
			c.Close()
			if strings.Contains(string(b[:n]), "Mode:") {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("zookeeper on %s not ready: %w\n%s", addr, ctx.Err(), p.Tail(20))
		case <-p.done:
			return fmt.Errorf("zookeeper on %s %w (%v):\n%s", addr, errExitedEarly, p.exitErr(), p.Tail(20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitLog waits until the process log has a line containing text and returns
// that line, or fails when the process exits or ctx ends first.
func WaitLog(ctx context.Context, p *Process, text string) (string, error) {
	for {
		if b, err := os.ReadFile(p.Log); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, text) {
					return line, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%s: no %q in its log: %w\n%s", p.Name, text, ctx.Err(), p.Tail(20))
		case <-p.done:
			return "", fmt.Errorf("%s exited before logging %q:\n%s", p.Name, text, p.Tail(20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}
