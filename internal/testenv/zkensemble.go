package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ZKEnsemble is a ZooKeeper ensemble (a quorum of servers) started for a
// test: what production runs, where losing one server must not stop the
// cluster. Each member is a QuorumPeerMain process with its own data
// directory, myid and zoo.cfg, listening on 127.0.0.1 only.
type ZKEnsemble struct {
	Servers []*ZKServer
	// Addrs is every member's client address, comma-separated: what
	// --zk takes.
	Addrs string
	t     TB
}

// ZKServer is one member of a ZKEnsemble. Process is the current run
// (replaced by Restart).
type ZKServer struct {
	*Process
	ID   int    // myid, 1-based
	Addr string // client address host:port
	Dir  string
	cfg  string // path of its zoo.cfg
}

// Ensemble timing. ZooKeeper derives everything from tickTime: a session
// timeout is clamped to [2, 20] ticks (so 0.6 s to 6 s: the gateways'
// --zk-session-timeout 2s and the route's 10s, clamped to 6 s, both fit),
// a follower must connect to a new leader within initLimit ticks and
// answer it within syncLimit ticks. A killed process closes its sockets at
// once, so a dead leader is noticed without waiting for syncLimit; the
// limits are generous because the tests share two cores with race-built
// binaries.
const (
	ensembleTick      = 300 // ms
	ensembleInitLimit = 20
	ensembleSyncLimit = 10
)

// StartZooKeeperEnsemble starts n ZooKeeper servers (n odd, 3 for a quorum
// that survives one loss) forming one ensemble, on free loopback ports with
// throwaway data directories, and waits until every member serves with one
// leader. They are killed when the test ends.
func StartZooKeeperEnsemble(t TB, n int) *ZKEnsemble {
	t.Helper()
	if n < 1 {
		t.Fatalf("zookeeper ensemble of %d servers", n)
	}
	cp := ZooKeeperClasspath()
	if cp == "" {
		Missing(t, "ZooKeeper")
	}
	if _, err := exec.LookPath("java"); err != nil {
		Missing(t, "java (for ZooKeeper)")
	}
	// A port picked free may be taken before java binds it (as in
	// StartZooKeeper); a member then exits at once and the whole ensemble
	// is started again on new ports, since every member's config names
	// every port.
	for attempt := 1; ; attempt++ {
		e, err := tryEnsemble(t, n)
		if err == nil {
			return e
		}
		if !errors.Is(err, errExitedEarly) || attempt == 3 {
			t.Fatalf("%v", err)
		}
		t.Logf("%v; trying other ports", err)
	}
}

func tryEnsemble(t TB, n int) (*ZKEnsemble, error) {
	t.Helper()
	type ports struct{ client, peer, election int }
	ps := make([]ports, n)
	var servers strings.Builder
	for i := range ps {
		ps[i] = ports{FreePort(t), FreePort(t), FreePort(t)}
		// server.N=host:peerPort:electionPort;clientHost:clientPort, the
		// form the official image's ZOO_SERVERS uses; no clientPort line,
		// so each member takes its client address from its own line.
		fmt.Fprintf(&servers, "server.%d=127.0.0.1:%d:%d;127.0.0.1:%d\n", i+1, ps[i].peer, ps[i].election, ps[i].client)
	}
	e := &ZKEnsemble{t: t}
	addrs := make([]string, n)
	for i, p := range ps {
		s := &ZKServer{ID: i + 1, Addr: "127.0.0.1:" + strconv.Itoa(p.client), Dir: t.TempDir()}
		data := filepath.Join(s.Dir, "data")
		if err := os.MkdirAll(data, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(data, "myid"), []byte(strconv.Itoa(s.ID)+"\n"), 0o644); err != nil {
			return nil, err
		}
		s.cfg = filepath.Join(s.Dir, "zoo.cfg")
		conf := fmt.Sprintf("tickTime=%d\ninitLimit=%d\nsyncLimit=%d\ndataDir=%s\n"+
			"admin.enableServer=false\n4lw.commands.whitelist=srvr,ruok\n%s",
			ensembleTick, ensembleInitLimit, ensembleSyncLimit, data, servers.String())
		if err := os.WriteFile(s.cfg, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		e.Servers = append(e.Servers, s)
		addrs[i] = s.Addr
	}
	e.Addrs = strings.Join(addrs, ",")
	for _, s := range e.Servers {
		e.launch(s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := e.waitQuorum(ctx); err != nil {
		for _, s := range e.Servers {
			s.Kill()
		}
		return nil, err
	}
	return e, nil
}

// launch starts member s from its config, not waiting for it.
func (e *ZKEnsemble) launch(s *ZKServer) {
	e.t.Helper()
	java, _ := exec.LookPath("java")
	s.Process = Start(e.t, s.Dir, java, nil,
		"-Xmx192m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-cp", ZooKeeperClasspath(),
		"org.apache.zookeeper.server.quorum.QuorumPeerMain", s.cfg)
}

// Kill kills member i (0-based) with SIGKILL, as a crash would.
func (e *ZKEnsemble) Kill(i int) { e.Servers[i].Kill() }

// Restart starts member i again on its ports and data directory (kill it
// first) and waits until it serves again as part of the quorum.
func (e *ZKEnsemble) Restart(i int) {
	e.t.Helper()
	s := e.Servers[i]
	if !s.Exited() {
		e.t.Fatalf("zookeeper %d: restart while it runs", s.ID)
	}
	e.launch(s)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := e.waitQuorum(ctx); err != nil {
		e.t.Fatalf("%v", err)
	}
}

// Leader returns the index of the member that is the leader now, or -1
// when none of the running members says it is.
func (e *ZKEnsemble) Leader() int {
	for i, s := range e.Servers {
		if s.Exited() {
			continue
		}
		if st, err := Srvr(s.Addr); err == nil && st.Mode == "leader" {
			return i
		}
	}
	return -1
}

// WaitQuorum waits until every running member serves (as leader or
// follower) with exactly one leader among them, and fails the test when
// that does not happen within timeout.
func (e *ZKEnsemble) WaitQuorum(timeout time.Duration) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := e.waitQuorum(ctx); err != nil {
		e.t.Fatalf("%v", err)
	}
}

func (e *ZKEnsemble) waitQuorum(ctx context.Context) error {
	for {
		err := e.quorum()
		if err == nil {
			return nil
		}
		for _, s := range e.Servers {
			if s.Process != nil && s.Exited() && s.exitErr() != nil && !killed(s.exitErr()) {
				return fmt.Errorf("zookeeper %d on %s %w (%v):\n%s", s.ID, s.Addr, errExitedEarly, s.exitErr(), s.Tail(20))
			}
		}
		select {
		case <-ctx.Done():
			tails := ""
			for _, s := range e.Servers {
				tails += fmt.Sprintf("\n--- zookeeper %d:\n%s", s.ID, s.Tail(10))
			}
			return fmt.Errorf("zookeeper ensemble %s: no quorum: %v: %w%s", e.Addrs, err, ctx.Err(), tails)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// quorum reports why the running members do not (yet) serve as one
// quorum with a single leader, nil when they do.
func (e *ZKEnsemble) quorum() error {
	leaders, running := 0, 0
	for _, s := range e.Servers {
		if s.Exited() {
			continue
		}
		running++
		st, err := Srvr(s.Addr)
		if err != nil {
			return fmt.Errorf("zookeeper %d: %w", s.ID, err)
		}
		switch st.Mode {
		case "leader":
			leaders++
		case "follower":
		default:
			return fmt.Errorf("zookeeper %d is not serving", s.ID)
		}
	}
	if running == 0 || leaders != 1 {
		return fmt.Errorf("%d leaders among %d running members", leaders, running)
	}
	return nil
}

// killed reports whether a process ended by a signal (Kill, Stop): a
// member this package stopped, not one that failed at start.
func killed(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && !ee.Exited()
}

// ZKStatus is what a ZooKeeper server answers to the "srvr" command.
type ZKStatus struct {
	// Mode is "leader", "follower" or "standalone"; empty while the server
	// does not serve requests (no quorum, or still electing).
	Mode string
	// Connections is the number of client connections it holds, this
	// command's included.
	Connections int
}

// Srvr asks the ZooKeeper server at addr for its status with the "srvr"
// four-letter command (ZooKeeper answers it even without a quorum).
func Srvr(addr string) (ZKStatus, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return ZKStatus{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "srvr"); err != nil {
		return ZKStatus{}, err
	}
	b, err := io.ReadAll(io.LimitReader(c, 1<<16))
	if err != nil && len(b) == 0 {
		return ZKStatus{}, err
	}
	var st ZKStatus
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Mode":
			st.Mode = v
		case "Connections":
			st.Connections, _ = strconv.Atoi(v)
		}
	}
	return st, nil
}
