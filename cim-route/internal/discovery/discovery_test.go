package discovery

import (
	"bytes"
	"context"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/goleak"

	"github.com/gocim/gocim/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder keeps every published list.
type recorder struct {
	mu    sync.Mutex
	lists [][]string
}

func (r *recorder) add(l []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lists = append(r.lists, l)
}

func (r *recorder) all() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lists)
}

// lockedBuffer is a bytes.Buffer safe for the watcher's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// debugLog returns a debug-level logger (go-zookeeper's chatter included)
// whose lines the test prints only if it failed.
func debugLog(t *testing.T) *slog.Logger {
	var buf lockedBuffer
	t.Cleanup(func() {
		if t.Failed() {
			buf.mu.Lock()
			defer buf.mu.Unlock()
			t.Logf("watcher log:\n%s", buf.b.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gatewayConn is a ZooKeeper session standing in for one gateway process.
func gatewayConn(t *testing.T, addr string) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect([]string{addr}, 4*time.Second, zk.WithLogInfo(false), zk.WithLogger(zkLogger{slog.New(slog.DiscardHandler)}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// register creates p's parents (as a gateway's registry does) and p.
func register(t *testing.T, c *zk.Conn, p string) {
	t.Helper()
	registerData(t, c, p, nil)
}

// registerData is register with node data.
func registerData(t *testing.T, c *zk.Conn, p string, data []byte) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		parent := ""
		for _, part := range strings.Split(strings.Trim(path.Dir(p), "/"), "/") {
			parent += "/" + part
			_, _ = c.Create(parent, nil, 0, zk.WorldACL(zk.PermAll))
		}
		_, err := c.Create(p, data, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
		if err == nil || err == zk.ErrNodeExists {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("create %s: %v", p, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestWatcher(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	rec := &recorder{}
	var failures atomic.Int32
	w := New(Config{Servers: []string{z.Addr}, Root: "/cim-test", Logger: debugLog(t), OnChange: rec.add,
		OnError: func(error) { failures.Add(1) }})
	if w.Path() != "/cim-test/servers" {
		t.Fatalf("path = %q", w.Path())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		n := failures.Load()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if m := failures.Load(); m != n {
			t.Errorf("stopping Run reported %d ZooKeeper failures", m-n)
		}
	}()

	// The path did not exist: the watcher reports an empty list and leaves
	// creating the path (with their ACL) to the gateways.
	select {
	case <-w.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("no first listing")
	}
	if l := w.Gateways(); len(l) != 0 {
		t.Fatalf("first list = %v, want empty", l)
	}
	gw := gatewayConn(t, z.Addr)
	if ok, _, err := gw.Exists("/cim-test"); err != nil || ok {
		t.Fatalf("the watcher created /cim-test (%v): it must only read", err)
	}

	register(t, gw, "/cim-test/servers/127.0.0.1:9001:9101")
	registerData(t, gw, "/cim-test/servers/127.0.0.1:9000:9100", []byte(`{"wsUrl":"ws://127.0.0.1:9200/ws"}`))
	want := []string{"127.0.0.1:9000:9100", "127.0.0.1:9001:9101"}
	waitFor(t, "both gateways", func() bool { return slices.Equal(w.Gateways(), want) })
	// Each node's data is the gateway's info, known once it is listed.
	if info, ok := w.Info("127.0.0.1:9000:9100"); !ok || info.WSURL != "ws://127.0.0.1:9200/ws" {
		t.Fatalf("info of the gateway with a WebSocket: %+v %v", info, ok)
	}
	if info, ok := w.Info("127.0.0.1:9001:9101"); !ok || info.WSURL != "" {
		t.Fatalf("info of the gateway without: %+v %v", info, ok)
	}
	if _, ok := w.Info("127.0.0.1:1:2"); ok {
		t.Fatal("info of an unknown gateway")
	}
	if err := gw.Delete("/cim-test/servers/127.0.0.1:9001:9101", -1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "removal", func() bool { return slices.Equal(w.Gateways(), want[:1]) })
	if _, ok := w.Info("127.0.0.1:9001:9101"); ok {
		t.Fatal("info of a gateway that left")
	}
	if last := rec.all()[len(rec.all())-1]; !slices.Equal(last, want[:1]) {
		t.Fatalf("last published list = %v", last)
	}

	// ZooKeeper goes away: the list stays, nothing empty is published.
	published := len(rec.all())
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d ZooKeeper failures reported before any", n)
	}
	z.Kill()
	waitFor(t, "the watcher to notice the outage", func() bool { return !w.Connected() })
	waitFor(t, "the lost connection reported", func() bool { return failures.Load() > 0 })
	if l := w.Gateways(); !slices.Equal(l, want[:1]) {
		t.Fatalf("list during outage = %v, want the last known %v", l, want[:1])
	}
	if n := len(rec.all()); n != published {
		t.Fatalf("published %v during the outage", rec.all()[published:])
	}

	// ZooKeeper returns: changes made after it came back are seen again.
	z.Restart()
	waitFor(t, "reconnect", w.Connected)
	gw2 := gatewayConn(t, z.Addr)
	register(t, gw2, "/cim-test/servers/127.0.0.1:9002:9102")
	waitFor(t, "resync after restart", func() bool {
		return slices.Contains(w.Gateways(), "127.0.0.1:9002:9102")
	})
	// Only the very first listing (before any gateway registered) is empty.
	for i, l := range rec.all()[1:] {
		if len(l) == 0 {
			t.Fatalf("published an empty list at #%d: %v", i+1, rec.all())
		}
	}
}

func TestRunStopsWithZooKeeperDown(t *testing.T) {
	// No server at all: Run must still return promptly on cancel.
	w := New(Config{Servers: []string{"127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))}, Root: "/cim", Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	time.AfterFunc(200*time.Millisecond, cancel)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	select {
	case <-w.Ready():
		t.Fatal("Ready closed without any listing")
	default:
	}
}

func TestDiff(t *testing.T) {
	added, removed := diff([]string{"a", "b", "c"}, []string{"b", "c", "d"})
	if !slices.Equal(added, []string{"d"}) || !slices.Equal(removed, []string{"a"}) {
		t.Fatalf("diff = %v %v", added, removed)
	}
}
