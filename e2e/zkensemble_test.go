package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
)

// TestZooKeeperEnsembleFailover runs the cluster on a three-server
// ZooKeeper ensemble, as production does, and takes servers away under a
// steady load of new users registering, logging in and sending:
//
//  1. a follower is killed (the one holding the most client sessions): the
//     other two keep the quorum;
//  2. it comes back, then the leader is killed: the remaining two elect a
//     new leader. (Both at once would leave one of three, no quorum: that
//     outage is TestZooKeeperRestart's, against a single server.)
//
// After each step the load has gone on (rounds completed after the kill),
// a gateway started then registers and is handed out, and the gateways
// already there are still handed out. At the end nothing failed: every
// registration, login and send of the load succeeded first time, and the
// recipient got every message, from the new users and from a user that
// stayed connected throughout.
func TestZooKeeperEnsembleFailover(t *testing.T) {
	var ens *testenv.ZKEnsemble
	c := harness.Start(t, harness.Options{Gateways: 2, ZooKeeper: func(t harness.TB) string {
		ens = testenv.StartZooKeeperEnsemble(t, 3)
		return ens.Addrs
	}})
	if c.ZKAddr != ens.Addrs || strings.Count(c.ZKAddr, ",") != 2 {
		t.Fatalf("cluster given ZooKeeper %q, want the ensemble's three addresses %q", c.ZKAddr, ens.Addrs)
	}
	sink := c.Connect(t, "zksink")
	steady := c.Connect(t, "zksteady")
	load := startZKLoad(c, steady)
	t.Cleanup(func() { load.halt() })
	load.waitRounds(t, 3)

	// 1. A follower dies.
	leader := ens.Leader()
	if leader < 0 {
		t.Fatal("the ensemble has no leader")
	}
	follower := busiestFollower(ens, leader)
	t.Logf("killing follower zk%d (leader zk%d)", ens.Servers[follower].ID, ens.Servers[leader].ID)
	ens.Kill(follower)
	before := load.completed()
	ens.WaitQuorum(wait)
	load.waitRounds(t, before+5)
	c.AddGateway() // registers with one server of three gone
	wantHandedOut(t, c)

	// 2. The follower returns; the leader dies.
	ens.Restart(follower)
	leader = ens.Leader()
	if leader < 0 {
		t.Fatal("no leader after the follower returned")
	}
	t.Logf("killing leader zk%d", ens.Servers[leader].ID)
	ens.Kill(leader)
	before = load.completed()
	ens.WaitQuorum(2 * wait)
	if next := ens.Leader(); next < 0 || next == leader {
		t.Fatalf("leader after the leader died: %d", next)
	}
	load.waitRounds(t, before+5)
	// The leader's death cut every session (the followers stop serving
	// until a new leader is elected): the first two gateways saw the
	// outage and came through it.
	for _, g := range c.Gateways {
		harness.Eventually(t, wait, func() error {
			if !logHas(g.Process, "lost ZooKeeper connection") || !logHas(g.Process, "ZooKeeper connection restored") {
				return fmt.Errorf("gateway %s has not lost and regained its ZooKeeper connection", g.ID)
			}
			return nil
		})
		if logHas(g.Process, "ZooKeeper session expired") {
			t.Logf("gateway %s: its session expired in the election and it registered again", g.ID)
		}
	}
	c.AddGateway() // registers under the new leader
	wantHandedOut(t, c)
	load.waitRounds(t, load.completed()+3)

	rounds, bodies, failures := load.halt()
	if len(failures) > 0 {
		t.Fatalf("%d of %d load rounds failed:\n%s", len(failures), rounds, strings.Join(failures, "\n"))
	}
	t.Logf("%d load rounds (register, login, send) and %d steady sends, none failed", rounds, rounds)
	for _, b := range bodies {
		sink.WaitFor(t, 0, wait, b, harness.IsMessage(b))
	}
	steadyIDs := load.steadyIDs()
	harness.Eventually(t, wait, func() error {
		for _, id := range steadyIDs {
			if !slices.ContainsFunc(steady.Seen(), isSent(id)) {
				return fmt.Errorf("steady sender: no SENT receipt for %s", id)
			}
		}
		return nil
	})
	// The ensemble holds every gateway's node, the first two's included.
	z, _, err := zk.Connect(strings.Split(ens.Addrs, ","), 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(zkQuiet{}))
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	kids, _, err := z.Children("/cim/servers")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range c.Gateways {
		if !slices.Contains(kids, g.ID) {
			t.Errorf("gateway %s is not registered in ZooKeeper (nodes %v)", g.ID, kids)
		}
	}
}

// busiestFollower returns the running non-leader holding the most client
// connections: killing it moves sessions (a gateway's, the route's) to the
// other servers.
func busiestFollower(ens *testenv.ZKEnsemble, leader int) int {
	best, most := -1, -1
	for i, s := range ens.Servers {
		if i == leader || s.Exited() {
			continue
		}
		st, err := testenv.Srvr(s.Addr)
		if err == nil && st.Connections > most {
			best, most = i, st.Connections
		}
	}
	if best < 0 {
		best = (leader + 1) % len(ens.Servers)
	}
	return best
}

// wantHandedOut waits until the route hands out every gateway of c and
// the route and every gateway report ready (contract.PathReady: a
// ZooKeeper session, the gateway's node registered).
func wantHandedOut(t *testing.T, c *harness.Cluster) {
	t.Helper()
	harness.Eventually(t, wait, func() error {
		if n, err := c.LiveGateways(); err != nil || n != len(c.Gateways) {
			return fmt.Errorf("route hands out %d gateways (%v), want %d", n, err, len(c.Gateways))
		}
		urls := []string{c.Route.InternalURL}
		for _, g := range c.Gateways {
			urls = append(urls, "http://"+g.HTTPAddr)
		}
		for _, u := range urls {
			resp, err := http.Get(u + contract.PathReady)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s%s: %s", u, contract.PathReady, resp.Status)
			}
		}
		return nil
	})
}

func isSent(clientMsgID string) func(client.Event) bool {
	return func(e client.Event) bool {
		return e.Kind == client.EventReceipt && e.Receipt.GetClientMsgId() == clientMsgID &&
			e.Receipt.GetStatus() == cimpb.ReceiptStatus_RECEIPT_SENT
	}
}

// zkLoad is a steady load on a cluster: round after round, a new user
// registers, logs in through the route, sends zksink a message and waits
// for the route's SENT receipt; the steady user sends zksink one more
// message each round over its long-lived connection. Rounds run one after
// the other until halt, at most maxZKLoadRounds.
type zkLoad struct {
	c      *harness.Cluster
	steady *harness.User
	stop   chan struct{}
	done   chan struct{}

	mu       sync.Mutex
	rounds   int
	bodies   []string // messages zksink must get
	sentIDs  []string // the steady user's client message ids
	failures []string
	changed  chan struct{} // closed and replaced after each round
	halted   bool
}

const maxZKLoadRounds = 500

func startZKLoad(c *harness.Cluster, steady *harness.User) *zkLoad {
	l := &zkLoad{c: c, steady: steady, stop: make(chan struct{}), done: make(chan struct{}), changed: make(chan struct{})}
	go l.run()
	return l
}

func (l *zkLoad) run() {
	defer close(l.done)
	for i := 0; i < maxZKLoadRounds; i++ {
		select {
		case <-l.stop:
			return
		default:
		}
		body, err := l.round(i)
		steadyBody := fmt.Sprintf("zksteady-%d", i)
		var steadyID string
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			steadyID, err = l.steady.Send(ctx, "zksink", steadyBody)
			cancel()
			if err != nil {
				err = fmt.Errorf("steady send: %w", err)
			}
		}
		l.mu.Lock()
		l.rounds++
		if err != nil {
			l.failures = append(l.failures, fmt.Sprintf("round %d at %s: %v", i, time.Now().Format("15:04:05.000"), err))
		} else {
			l.bodies = append(l.bodies, body, steadyBody)
			l.sentIDs = append(l.sentIDs, steadyID)
		}
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
	}
}

// round registers user zkload<i>, logs it in, sends and waits for SENT.
func (l *zkLoad) round(i int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	name := fmt.Sprintf("zkload%d", i)
	if _, err := client.NewAPI(l.c.Route.URL, nil).Register(ctx, name, harness.Password); err != nil {
		return "", fmt.Errorf("register %s: %w", name, err)
	}
	cl, err := client.New(client.Config{RouteURL: l.c.Route.URL, UserName: name, Password: harness.Password, EventBuffer: 256})
	if err != nil {
		return "", err
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		cl.Close(cctx)
	}()
	if err := cl.Start(ctx); err != nil {
		return "", fmt.Errorf("login %s: %w", name, err)
	}
	body := fmt.Sprintf("zkload-%d", i)
	id, err := cl.Send(ctx, "zksink", body)
	if err != nil {
		return "", fmt.Errorf("%s send: %w", name, err)
	}
	sent := isSent(id)
	for {
		select {
		case e, ok := <-cl.Events():
			if !ok {
				return "", fmt.Errorf("%s: client stopped before SENT", name)
			}
			if sent(e) {
				return body, nil
			}
			if e.Kind == client.EventError {
				return "", fmt.Errorf("%s: %v", name, e.Err)
			}
		case <-ctx.Done():
			return "", fmt.Errorf("%s: no SENT receipt: %w", name, ctx.Err())
		}
	}
}

// completed is how many rounds ended (failed ones included).
func (l *zkLoad) completed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rounds
}

// waitRounds waits until n rounds ended.
func (l *zkLoad) waitRounds(t *testing.T, n int) {
	t.Helper()
	timeout := time.NewTimer(2 * wait)
	defer timeout.Stop()
	for {
		l.mu.Lock()
		got, ch := l.rounds, l.changed
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-l.done:
			t.Fatalf("the load stopped after %d rounds, want %d", l.completed(), n)
		case <-timeout.C:
			t.Fatalf("the load did %d rounds within %v, want %d", got, 2*wait, n)
		}
	}
}

// halt stops the load after the round under way and reports what it did.
func (l *zkLoad) halt() (rounds int, bodies, failures []string) {
	l.mu.Lock()
	if !l.halted {
		l.halted = true
		close(l.stop)
	}
	l.mu.Unlock()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rounds, slices.Clone(l.bodies), slices.Clone(l.failures)
}

func (l *zkLoad) steadyIDs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sentIDs)
}
