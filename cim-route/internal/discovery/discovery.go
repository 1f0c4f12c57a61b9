// Package discovery watches ZooKeeper for the live gateways: the children of
// <root>/servers, one ephemeral node per gateway named by its id. It keeps the
// last list it read and publishes every change.
//
// The watch is re-armed after every event and after every error (with
// backoff); an error or a ZooKeeper outage never empties the list — the
// gateways keep serving while ZooKeeper is away, so the last known list is
// the best one. A lost session is resynced by the next successful listing.
//
// The watcher only reads: while the watched path does not exist it
// publishes an empty list and waits for the path to appear. Gateways create
// it (with their ZooKeeper credentials and ACL, see cim-server's registry);
// a route that created it would leave it world-writable.
//
// Each node's data is the gateway's contract.GatewayInfo (its WebSocket
// URL), read with every listing; Info returns it.
// Gateways, Ready and Connected are safe to call concurrently with Run.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/gocim/gocim/internal/backoff"
	"github.com/gocim/gocim/internal/contract"
)

// Config configures a Watcher.
type Config struct {
	Servers        []string      // ZooKeeper addresses
	Root           string        // e.g. "/cim"; the watched path is Root + "/servers"
	SessionTimeout time.Duration // default 10s
	Logger         *slog.Logger
	// OnChange gets every new list (sorted) from Run's goroutine, the first
	// successful listing included. It must not block for long.
	OnChange func(gateways []string)
	// OnError is told about every ZooKeeper failure: a listing or node
	// read that failed, a lost connection, an expired session (not the
	// closing at the end of Run). It is called from Run's goroutine and
	// from the ZooKeeper client's, and must not block; nil: nobody.
	OnError func(err error)
}

// Watcher follows <root>/servers.
type Watcher struct {
	cfg  Config
	path string
	log  *slog.Logger

	ready     chan struct{}
	readyOnce sync.Once

	mu        sync.Mutex
	list      []string
	info      map[string]contract.GatewayInfo // of the gateways in list
	conn      *zk.Conn
	published bool
}

// New returns a Watcher; Run starts it.
func New(cfg Config) *Watcher {
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Watcher{
		cfg:   cfg,
		path:  path.Join(cfg.Root, "servers"),
		log:   cfg.Logger.With("component", "discovery"),
		ready: make(chan struct{}),
	}
}

// Path is the watched ZooKeeper path.
func (w *Watcher) Path() string { return w.path }

// Ready is closed after the first successful listing.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Gateways returns the last known list, sorted.
func (w *Watcher) Gateways() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.list)
}

// Connected reports whether the ZooKeeper session is up right now.
func (w *Watcher) Connected() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.conn != nil && w.conn.State() == zk.StateHasSession
}

// Run watches until ctx ends. It returns nil then, or an error if it could
// not even create a ZooKeeper client.
func (w *Watcher) Run(ctx context.Context) error {
	conn, _, err := zk.Connect(w.cfg.Servers, w.cfg.SessionTimeout,
		zk.WithLogger(zkLogger{w.log}), zk.WithLogInfo(false), zk.WithEventCallback(func(ev zk.Event) {
			if ev.Type != zk.EventSession || ctx.Err() != nil {
				return
			}
			switch ev.State {
			case zk.StateDisconnected:
				w.failed(fmt.Errorf("discovery: zookeeper connection lost (%s)", ev.Server))
			case zk.StateExpired:
				w.failed(zk.ErrSessionExpired)
			}
		}))
	if err != nil {
		return fmt.Errorf("discovery: zookeeper %v: %w", w.cfg.Servers, err)
	}
	w.mu.Lock()
	w.conn = conn
	w.mu.Unlock()
	// Requests to a disconnected zk.Conn wait for the reconnect with no
	// timeout of their own; closing the connection is what unblocks them.
	stop := context.AfterFunc(ctx, conn.Close)
	defer func() {
		stop()
		conn.Close()
	}()

	bo := backoff.New(100*time.Millisecond, 5*time.Second, backoff.None)
	for ctx.Err() == nil {
		children, _, events, err := conn.ChildrenW(w.path)
		if errors.Is(err, zk.ErrNoNode) {
			// No gateway registered yet: wait for the path to appear.
			var exists bool
			exists, _, events, err = conn.ExistsW(w.path)
			if err == nil && exists {
				continue // created meanwhile: list it
			}
			children = nil
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			w.failed(err)
			d := bo.Next()
			w.log.Warn("zookeeper listing failed; keeping the last gateway list", "path", w.path, "err", err, "retry_in", d)
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
			continue
		}
		bo.Reset()
		w.setInfo(w.readInfo(conn, children))
		w.publish(children)
		select {
		case <-ctx.Done():
		case ev := <-events:
			if ev.Err != nil {
				w.log.Info("zookeeper watch lost; re-arming", "event", ev.Type.String(), "err", ev.Err)
			}
		}
	}
	return nil
}

// Info returns what gateway id published in its node (its WebSocket URL);
// false for a gateway not in the last listing.
func (w *Watcher) Info(id string) (contract.GatewayInfo, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	info, ok := w.info[id]
	return info, ok
}

// readInfo reads each gateway's node data. A node that is gone, or whose
// data cannot be read, counts as publishing nothing (the gateway is still
// a gateway: its id says where its TCP port is).
func (w *Watcher) readInfo(conn *zk.Conn, children []string) map[string]contract.GatewayInfo {
	infos := make(map[string]contract.GatewayInfo, len(children))
	for _, id := range children {
		data, _, err := conn.Get(path.Join(w.path, id))
		if err != nil {
			if !errors.Is(err, zk.ErrNoNode) {
				w.failed(err)
				w.log.Warn("reading a gateway's node failed", "gateway", id, "err", err)
			}
			infos[id] = contract.GatewayInfo{}
			continue
		}
		info, err := contract.ParseGatewayInfo(data)
		if err != nil {
			w.log.Warn("ignoring a gateway node's data", "gateway", id, "err", err)
		}
		infos[id] = info
	}
	return infos
}

// failed tells OnError about err, unless it only says the client is
// closing (the end of Run).
func (w *Watcher) failed(err error) {
	if w.cfg.OnError != nil && !errors.Is(err, zk.ErrClosing) {
		w.cfg.OnError(err)
	}
}

func (w *Watcher) setInfo(infos map[string]contract.GatewayInfo) {
	w.mu.Lock()
	w.info = infos
	w.mu.Unlock()
}

func (w *Watcher) publish(children []string) {
	list := slices.Clone(children)
	slices.Sort(list)
	w.mu.Lock()
	changed := !w.published || !slices.Equal(list, w.list)
	old := w.list
	w.list, w.published = list, true
	w.mu.Unlock()
	if changed {
		added, removed := diff(old, list)
		w.log.Info("gateways changed", "count", len(list), "added", added, "removed", removed)
		if w.cfg.OnChange != nil {
			w.cfg.OnChange(slices.Clone(list))
		}
	}
	w.readyOnce.Do(func() { close(w.ready) })
}

// diff returns what is in b but not a, and in a but not b (both sorted).
func diff(a, b []string) (added, removed []string) {
	for _, x := range b {
		if _, ok := slices.BinarySearch(a, x); !ok {
			added = append(added, x)
		}
	}
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			removed = append(removed, x)
		}
	}
	return added, removed
}

// zkLogger routes go-zookeeper's log lines (reconnect chatter) to slog at
// debug level; outages that matter are logged by Run.
type zkLogger struct{ l *slog.Logger }

func (z zkLogger) Printf(format string, args ...any) {
	z.l.Debug(fmt.Sprintf(format, args...), "source", "zk")
}
