package registry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/goleak"

	"github.com/gocim/gocim/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	root = "/cimtest"
	id   = "127.0.0.1:9000:9100"
	node = root + "/servers/" + id
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// observer is an independent ZooKeeper client the test looks through.
func observer(t *testing.T, addr string) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogger(nopLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

// eventually polls cond until it holds or 30s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// owner returns the session owning node, or 0 when it does not exist.
func owner(obs *zk.Conn) int64 {
	ok, st, err := obs.Exists(node)
	if err != nil || !ok {
		return 0
	}
	return st.EphemeralOwner
}

// recreations counts OnRecreated calls per registry.
type recreations struct{ n atomic.Int32 }

func start(t *testing.T, addr string, timeout time.Duration) (*Registry, *recreations) {
	t.Helper()
	return startWith(t, addr, timeout, nil)
}

func startWith(t *testing.T, addr string, timeout time.Duration, data []byte) (*Registry, *recreations) {
	t.Helper()
	rc := &recreations{}
	r := New(Config{Servers: []string{addr}, Root: root, SessionTimeout: timeout, Logger: quiet, Data: data,
		OnRecreated: func() { rc.n.Add(1) }})
	if err := r.Register(id); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Deregister(context.Background()) })
	select {
	case <-r.Registered():
	case <-time.After(30 * time.Second):
		t.Fatal("not registered")
	}
	return r, rc
}

func TestRegisterDeregister(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	obs := observer(t, z.Addr)
	r, rc := start(t, z.Addr, 4*time.Second)
	if rc.n.Load() != 0 {
		t.Fatal("OnRecreated called for the first registration")
	}
	if r.Path() != node {
		t.Fatalf("path %q, want %q", r.Path(), node)
	}
	data, st, err := obs.Get(node)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 0 || st.EphemeralOwner == 0 || st.EphemeralOwner != r.conn.SessionID() {
		t.Fatalf("node data %q owner %#x, want empty and ephemeral of %#x", data, st.EphemeralOwner, r.conn.SessionID())
	}
	// The parents are persistent.
	if _, st, err := obs.Get(root + "/servers"); err != nil || st.EphemeralOwner != 0 {
		t.Fatalf("parent: %v %v", st, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	// Deleted right away, not after the session timeout.
	if ok, _, err := obs.Exists(node); err != nil || ok {
		t.Fatalf("node still there after Deregister (%v)", err)
	}
	if err := r.Deregister(ctx); err != nil {
		t.Fatalf("second Deregister: %v", err)
	}
}

func TestTakesOverStaleNode(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	obs := observer(t, z.Addr)
	// A previous run's node, owned by another (still live) session.
	for _, p := range []string{root, root + "/servers"} {
		if _, err := obs.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatal(err)
		}
	}
	if _, err := obs.Create(node, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	r, _ := start(t, z.Addr, 4*time.Second)
	if got := owner(obs); got != r.conn.SessionID() || got == obs.SessionID() {
		t.Fatalf("node owner %#x, want the registry's session %#x", got, r.conn.SessionID())
	}
}

func TestRecreatesDeletedNode(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	obs := observer(t, z.Addr)
	r, rc := start(t, z.Addr, 4*time.Second)
	if err := obs.Delete(node, -1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node recreated", func() bool { return owner(obs) == r.conn.SessionID() })
	eventually(t, "OnRecreated", func() bool { return rc.n.Load() >= 1 })
}

// The node carries the gateway's info (its WebSocket URL) for the route,
// also when it had to be created again.
func TestNodeData(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	obs := observer(t, z.Addr)
	want := []byte(`{"wsUrl":"ws://127.0.0.1:9200/ws"}`)
	r, _ := startWith(t, z.Addr, 4*time.Second, want)
	if data, _, err := obs.Get(node); err != nil || string(data) != string(want) {
		t.Fatalf("node data %q (%v), want %q", data, err, want)
	}
	if err := obs.Delete(node, -1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node recreated", func() bool { return owner(obs) == r.conn.SessionID() })
	if data, _, err := obs.Get(node); err != nil || string(data) != string(want) {
		t.Fatalf("recreated node data %q (%v), want %q", data, err, want)
	}
}

func TestReregistersAfterZooKeeperRestart(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	r, _ := start(t, z.Addr, 2*time.Second)
	z.Kill()
	// Down for longer than the session timeout.
	eventually(t, "client to notice", func() bool { return r.conn.State() != zk.StateHasSession })
	time.Sleep(3 * time.Second) // not synchronisation: keeps ZooKeeper down past the session timeout
	z.Restart()
	obs := observer(t, z.Addr)
	eventually(t, "node back, owned by the live session", func() bool {
		return r.conn.State() == zk.StateHasSession && owner(obs) == r.conn.SessionID()
	})
}

func TestReregistersAfterSessionExpiry(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	p := newProxy(t, z.Addr)
	obs := observer(t, z.Addr)
	r, rc := start(t, p.addr(), 2*time.Second)
	first := owner(obs)
	if first == 0 {
		t.Fatal("not registered")
	}
	// Cut the gateway off while ZooKeeper keeps running: ZooKeeper expires
	// the session and removes the node.
	p.block()
	eventually(t, "session expiry to remove the node", func() bool { return owner(obs) == 0 })
	p.unblock()
	// The client learns its session expired, opens a new one, and the
	// registry creates the node again under it.
	eventually(t, "node re-created by a new session", func() bool {
		o := owner(obs)
		return o != 0 && o != first && o == r.conn.SessionID()
	})
	eventually(t, "OnRecreated", func() bool { return rc.n.Load() >= 1 })
}

func TestDeregisterWhileZooKeeperDown(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	r, _ := start(t, z.Addr, 2*time.Second)
	z.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Deregister(ctx) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Deregister reported success with ZooKeeper down")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Deregister hung with ZooKeeper down")
	}
}

// proxy forwards TCP to ZooKeeper and can cut every connection through it.
type proxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	blocked bool
	conns   []net.Conn
	wg      sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.block()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.blocked {
			p.mu.Unlock()
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(s, c); s.Close() }()
		go func() { defer p.wg.Done(); io.Copy(c, s); c.Close() }()
	}
}

func (p *proxy) block() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) unblock() {
	p.mu.Lock()
	p.blocked = false
	p.mu.Unlock()
}

func TestSplitAuth(t *testing.T) {
	for in, want := range map[string][2]string{
		"cim:secret":     {"cim", "secret"},
		"cim:pa:ss:word": {"cim", "pa:ss:word"},
		"cim:":           {},
		":secret":        {},
		"cim":            {},
		"":               {},
		"cim:sec\nret":   {},
		"cim:secret\r\n": {},
	} {
		u, p, err := SplitAuth(in)
		if want == ([2]string{}) {
			if !errors.Is(err, ErrBadAuth) {
				t.Errorf("SplitAuth(%q) = %q %q %v, want ErrBadAuth", in, u, p, err)
			}
			continue
		}
		if err != nil || u != want[0] || p != want[1] {
			t.Errorf("SplitAuth(%q) = %q %q %v, want %v", in, u, p, err, want)
		}
	}
	r := New(Config{Servers: []string{"127.0.0.1:1"}, Root: root, Auth: "no-colon", Logger: quiet})
	if err := r.Register(id); !errors.Is(err, ErrBadAuth) {
		t.Fatalf("Register with bad auth = %v", err)
	}
}

// TestAuthLocksDown: with digest credentials the registry takes over
// world-writable parents (as the route or an older version left them) and
// creates its node so that everybody can read the tree but nobody without
// the credentials can add, change or delete a gateway node; after a
// ZooKeeper restart it still can (the credentials are sent again).
func TestAuthLocksDown(t *testing.T) {
	const auth = "cim:registry-test-password"
	z := testenv.StartZooKeeper(t)
	obs := observer(t, z.Addr) // no credentials
	for _, p := range []string{root, root + "/servers"} {
		if _, err := obs.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	r := New(Config{Servers: []string{z.Addr}, Root: root, SessionTimeout: 4 * time.Second, Auth: auth, Logger: quiet})
	if err := r.Register(id); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Deregister(context.Background()) })
	select {
	case <-r.Registered():
	case <-time.After(30 * time.Second):
		t.Fatal("not registered")
	}
	// ZooKeeper shows the digest only to clients with ADMIN rights.
	admin := observer(t, z.Addr)
	if err := admin.AddAuth("digest", []byte(auth)); err != nil {
		t.Fatal(err)
	}
	want, _ := ACL(auth)
	for _, p := range []string{root, root + "/servers", node} {
		got, _, err := admin.GetACL(p)
		if err != nil || !sameACL(got, want) {
			t.Fatalf("ACL of %s = %v (%v), want %v", p, got, err, want)
		}
	}
	// Reading stays open: the route lists the gateways without credentials.
	if kids, _, err := obs.Children(root + "/servers"); err != nil || len(kids) != 1 || kids[0] != id {
		t.Fatalf("children = %v, %v", kids, err)
	}
	wrong := observer(t, z.Addr)
	if err := wrong.AddAuth("digest", []byte("cim:not-the-password")); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*zk.Conn{"anonymous": obs, "wrong password": wrong} {
		if _, err := c.Create(root+"/servers/10.0.0.66:9000:9100", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("%s: create a gateway node: %v, want ErrNoAuth", name, err)
		}
		if err := c.Delete(node, -1); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("%s: delete the gateway node: %v, want ErrNoAuth", name, err)
		}
		if _, err := c.SetACL(root+"/servers", zk.WorldACL(zk.PermAll), -1); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("%s: open the folder again: %v, want ErrNoAuth", name, err)
		}
		if _, err := c.Set(node, []byte("x"), -1); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("%s: write the gateway node: %v, want ErrNoAuth", name, err)
		}
	}
	// ZooKeeper restarts; then an operator with the credentials deletes the
	// node: the registry creates it again, so its credentials were re-sent.
	z.Kill()
	z.Restart()
	eventually(t, "the registry's session back", func() bool { return owner(admin) == r.conn.SessionID() && r.Connected() })
	if err := admin.Delete(node, -1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the node recreated", func() bool { return owner(admin) == r.conn.SessionID() })
}

// TestLiveWhileTheLossIsNews: the client library is disconnected before it
// hands the event over that notes when (lostAt): the node lives on for the
// session timeout from that moment, so a registry that was live is live
// then too, and notes the moment itself; only after the session timeout is
// it not.
func TestLiveWhileTheLossIsNews(t *testing.T) {
	r := &Registry{cfg: Config{SessionTimeout: time.Minute}, stop: make(chan struct{})}
	r.live.Store(true) // confirmed; r.conn nil: not connected, no event yet
	if !r.Live() {
		t.Fatal("not live the moment the connection was lost")
	}
	if r.lostAt.Load() == 0 {
		t.Fatal("the loss was not noted")
	}
	r.lostAt.Store(time.Now().Add(-2 * time.Minute).UnixNano())
	if r.Live() {
		t.Fatal("live after the session timeout")
	}
}
