// Package gateway wires cim-server together: the client listeners — TCP,
// WebSocket (package wsconn) and MQTT for devices (package mqttconn), TLS
// when configured — and their connections, the hub of logged-in users, the uplink batcher and offline
// reporter talking to the route, the internal HTTP API, and the ZooKeeper
// registration. When the ZooKeeper node had to be re-created (session
// expiry), the gateway re-asserts its connections with the route, which may
// have cleared them as belonging to a dead gateway.
//
// The accept loop holds every connection to caps (connlimit): all
// connections together stay below the open-file limit, and connections that
// have not logged in yet have a smaller share, in total and per client
// address, so that a flood of idle sockets neither exhausts the process nor
// crowds out users. A connection leaves the unauthenticated share when its
// LOGIN succeeds. One over a cap gets ERROR TooManyConnections (on plain
// TCP) and is closed at once.
//
// Lifecycle: New(cfg) → Start() (returns once both listeners are bound) →
// Shutdown(ctx) (safe to call more than once, from any goroutine). Every
// goroutine the gateway starts goes through one helper that tracks it and
// refuses once shutdown has begun.
//
// For operators the --http-listen API also serves /livez, /readyz (see
// ops.go for what readiness means), /metrics (package metrics: the
// gocim_gateway_* collectors) and POST /drain, which starts the first
// steps of Shutdown — leave ZooKeeper, stop accepting, close the clients
// over --drain — and leaves the gateway up, not ready, until it is stopped.
package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/cim-server/internal/httpapi"
	"github.com/gocim/gocim/cim-server/internal/hub"
	"github.com/gocim/gocim/cim-server/internal/metrics"
	"github.com/gocim/gocim/cim-server/internal/mqttconn"
	"github.com/gocim/gocim/cim-server/internal/offline"
	"github.com/gocim/gocim/cim-server/internal/registry"
	"github.com/gocim/gocim/cim-server/internal/routeclient"
	"github.com/gocim/gocim/cim-server/internal/routelink"
	"github.com/gocim/gocim/cim-server/internal/uplink"
	"github.com/gocim/gocim/cim-server/internal/wsconn"
	"github.com/gocim/gocim/internal/backoff"
	"github.com/gocim/gocim/internal/connlimit"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/pprofhttp"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
	"github.com/gocim/gocim/proto/codes"
)

// ErrShuttingDown is returned by Start after Shutdown began.
var ErrShuttingDown = errors.New("gateway: shutting down")

// Gateway is one cim-server instance.
type Gateway struct {
	cfg     Config
	log     *slog.Logger
	baseLog *slog.Logger // for sub-components, which add their own component

	secrets *contract.Secrets
	tlsCfg  *tls.Config // nil: the client port is plain TCP

	id      string
	ln      net.Listener
	httpLn  net.Listener
	httpSrv *http.Server
	// the WebSocket listener (nil without --ws-listen) and the URL the
	// route hands out for it
	wsLn  net.Listener
	wsSrv *http.Server
	wsUp  *wsconn.Upgrader
	wsURL string
	// the MQTT listener (nil without --mqtt-listen), its address as devices
	// dial it, the adapters' shared config and the per-address cap of its
	// connections that have not logged in yet
	mqttLn     net.Listener
	mqttAddr   string
	mqttCfg    *mqttconn.Config
	mqttUnauth *connlimit.Limiter
	// wsSlots holds the caps' slots of WebSocket sockets accepted but not
	// upgraded yet, by remote address; the upgrade hands a socket's slot
	// to its connection, a close before it gives it back.
	wsSlots sync.Map // string → func() (the unauthenticated slot's release)
	route   *routeclient.Client
	links   *routelink.Links // the route replicas' streams; uplinks go over them
	replica Uplinker         // a route replica in this process (nil: none)
	batcher *uplink.Batcher
	offline *offline.Queue
	// joining holds the connections whose login the route is confirming,
	// by user and session, so that its first pushes find them.
	joining  sync.Map // joinKey → *conn.Conn
	registry *registry.Registry
	// the connections' configs, one per transport (their metrics differ)
	connCfg, wsConnCfg, mqttConnCfg *conn.Config
	hub                             *hub.Hub[*conn.Conn]
	watch                           *watchers // presence subscriptions (presence.go)

	ctx    context.Context // cancelled when Shutdown gives up waiting
	cancel context.CancelFunc

	// goroutine tracking
	mu       sync.Mutex
	stopping bool
	wg       sync.WaitGroup

	// every accepted connection, logged in or not, for the drain, with the
	// release of its unauthenticated slot (nil once logged in)
	connMu sync.Mutex
	conns  map[*conn.Conn]func()
	connWG sync.WaitGroup

	// connection caps (set in Start)
	limits   connLimits
	open     atomic.Int64       // client connections held
	unauth   *connlimit.Limiter // connections not logged in yet
	refusals *conn.Throttle     // bounds the "refused" warnings
	// replicaFails bounds the warnings about uplinks the replica failed.
	replicaFails *conn.Throttle
	refused      atomic.Int64 // connections refused by a cap, ever
	refusedAt    atomic.Int64 // refused when the last warning was logged
	// pause waits d between failed accepts; false: stop (shutdown).
	pause func(d time.Duration) bool
	// drainJitter returns a number in [0, 1) for each close of the drain;
	// drainWait waits until at (since the drain began) has come or ctx
	// ends. Tests inject their own; nil: math/rand and a timer.
	drainJitter func() float64
	drainWait   func(ctx context.Context, start time.Time, at time.Duration) error

	// re-asserting connections after the ZooKeeper node was re-created
	reassertMu      sync.Mutex
	reassertRunning bool
	reassertAgain   bool

	metrics *metrics.Gateway
	// routeOK and routeFailed: when a call to the route last succeeded
	// and last failed (unix ns; readiness, see ops.go); routeProbed: a
	// probe ran.
	routeOK, routeFailed atomic.Int64
	routeProbed          atomic.Bool

	shuttingDown atomic.Bool
	draining     atomic.Bool // POST /drain, or shutdown, began
	registered   chan struct{}
	shutdownOnce sync.Once
	shutdownDone chan struct{}
	shutdownErr  error
}

// New checks cfg, loads the TLS certificate if one is configured, and
// returns a gateway that is not yet listening.
func New(cfg Config, logger *slog.Logger) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	secrets, err := contract.ParseSecrets(cfg.InternalSecrets())
	if err != nil { // Validate checked the same rules
		return nil, fmt.Errorf("--internal-secret: %w", err)
	}
	var tlsCfg *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if logger == nil {
		logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gateway{
		cfg:          cfg,
		secrets:      secrets,
		tlsCfg:       tlsCfg,
		log:          logger.With("component", "gateway"),
		baseLog:      logger,
		hub:          hub.New[*conn.Conn](0),
		watch:        newWatchers(),
		ctx:          ctx,
		cancel:       cancel,
		conns:        make(map[*conn.Conn]func()),
		refusals:     conn.NewThrottle(10 * time.Second),
		replicaFails: conn.NewThrottle(10 * time.Second),
		registered:   make(chan struct{}),
		shutdownDone: make(chan struct{}),
	}
	g.metrics = metrics.New(g.zkRegistered, g.draining.Load)
	return g, nil
}

// Metrics returns the gateway's collectors (served on /metrics).
func (g *Gateway) Metrics() *metrics.Gateway { return g.metrics }

// Start binds both listeners, starts the background workers and the accept
// loop, and begins registering in ZooKeeper. It returns once the gateway
// accepts clients; Registered tells when the route can see it. Call it once,
// and let it return before calling Shutdown.
func (g *Gateway) Start() error {
	g.mu.Lock()
	stopping := g.stopping
	g.mu.Unlock()
	if stopping {
		return ErrShuttingDown
	}
	if g.ln != nil {
		return errors.New("gateway: already started")
	}
	ln, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", g.cfg.Listen, err)
	}
	httpLn, err := net.Listen("tcp", g.cfg.HTTPListen)
	if err != nil {
		ln.Close()
		return fmt.Errorf("http listen %s: %w", g.cfg.HTTPListen, err)
	}
	host, _ := g.cfg.advertiseHost() // validated in New
	tcpPort := ln.Addr().(*net.TCPAddr).Port
	httpPort := httpLn.Addr().(*net.TCPAddr).Port
	g.id = contract.FormatGatewayID(host, tcpPort, httpPort)
	if g.tlsCfg != nil {
		// Accept does not handshake: each connection does, in its own
		// goroutine, within the login timeout (conn.Serve).
		ln = tls.NewListener(ln, g.tlsCfg)
	}
	g.ln, g.httpLn = ln, httpLn
	if g.cfg.WSListen != "" {
		wsLn, err := net.Listen("tcp", g.cfg.WSListen)
		if err != nil {
			ln.Close()
			httpLn.Close()
			return fmt.Errorf("ws listen %s: %w", g.cfg.WSListen, err)
		}
		g.wsURL = g.cfg.WSPublicURL
		if g.wsURL == "" {
			scheme := "ws"
			if g.tlsCfg != nil {
				scheme = "wss"
			}
			g.wsURL = scheme + "://" + net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(wsLn.Addr().(*net.TCPAddr).Port)) + wsconn.Path
		}
		g.wsLn = wsLn
	}
	if g.cfg.MQTTListen != "" {
		mqttLn, err := net.Listen("tcp", g.cfg.MQTTListen)
		if err != nil {
			ln.Close()
			httpLn.Close()
			if g.wsLn != nil {
				g.wsLn.Close()
			}
			return fmt.Errorf("mqtt listen %s: %w", g.cfg.MQTTListen, err)
		}
		g.mqttAddr = net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(mqttLn.Addr().(*net.TCPAddr).Port))
		if g.tlsCfg != nil {
			mqttLn = tls.NewListener(mqttLn, g.tlsCfg)
		}
		g.mqttLn = mqttLn
	}

	root := g.baseLog
	g.route = routeclient.New(routeclient.Config{
		URLs: g.cfg.RouteURLs(), GatewayID: g.id, Secret: g.secrets.Current(), RetryFor: g.cfg.RouteRetry, AttemptTimeout: g.cfg.RouteAttempt, Logger: root,
	})
	g.links = routelink.New(g, g.route, routelink.Config{Logger: root})
	g.batcher = uplink.New(uplink.Config{GatewayID: g.id, Shards: g.cfg.UplinkShards, Linger: g.cfg.UplinkLinger, LingerMin: g.cfg.UplinkLingerMin, Logger: root}, meteredUplink{g}, g.deliver)
	g.offline = offline.New(offlineReports{g}, 4, root)
	g.connCfg = conn.NewConfig(conn.Config{
		GatewayID:    g.id,
		Keys:         g.cfg.TokenKeys(),
		MaxFrame:     g.cfg.MaxFrame,
		LoginTimeout: g.cfg.LoginTimeout,
		ReadTimeout:  g.cfg.ReadTimeout,
		IdleBuffers:  g.cfg.IdleBuffers,
		WriteQueue:   g.cfg.WriteQueue,
		MaxText:      g.cfg.MaxText,
		MsgRate:      g.cfg.MsgRate,
		MsgBurst:     g.cfg.MsgBurst,
		SyncRate:     g.cfg.SyncRate,
		SyncBurst:    g.cfg.SyncBurst,
		Logger:       root,
		Metrics:      g.transport(metrics.TCP),

		WriteQueueBytes: g.cfg.WriteQueueBytes,
	})
	g.wsConnCfg, g.mqttConnCfg = g.connCfgFor(metrics.WS), g.connCfgFor(metrics.MQTT)
	g.setLimits(g.cfg.connLimits(uint64(connlimit.OpenFiles())))
	// The registry exists before the HTTP API serves: /drain may use it.
	servers := g.cfg.ZKServers()
	if len(servers) > 0 {
		zkAuth, err := g.cfg.ZKCredentials()
		if err != nil {
			return err
		}
		g.registry = registry.New(registry.Config{
			Servers: servers, Root: g.cfg.ZKRoot, SessionTimeout: g.cfg.ZKSessionTimeout, Auth: zkAuth, Logger: root,
			Data:        contract.GatewayInfo{WSURL: g.wsURL, MQTTAddr: g.mqttAddr, MQTTTLS: g.mqttAddr != "" && g.tlsCfg != nil}.Marshal(),
			OnRecreated: g.triggerReassert,
			Metrics:     g.metrics,
		})
	}
	g.httpSrv = &http.Server{
		Handler:           g.internalHandler(root),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(root.With("component", "http").Handler(), slog.LevelWarn),
	}
	g.batcher.Start()
	g.offline.Start()
	g.goFunc(g.acceptLoop)
	g.goFunc(g.probeLoop)
	if g.wsLn != nil {
		g.startWS(root)
	}
	if g.mqttLn != nil {
		g.startMQTT(root)
	}

	g.log.Info("gateway started", "id", g.id, "listen", ln.Addr().String(), "tls", g.tlsCfg != nil,
		"http", httpLn.Addr().String(), "ws", g.wsURL, "mqtt", g.mqttAddr, "route", g.cfg.RouteURLs(), "zk", g.cfg.ZKServers(),
		"msg_rate", g.cfg.MsgRate, "msg_burst", g.cfg.MsgBurst, "sync_rate", g.cfg.SyncRate, "sync_burst", g.cfg.SyncBurst,
		"max_conns", g.limits.total, "max_unauth", g.limits.unauth, "max_unauth_per_addr", g.limits.unauthPerAddr)

	if g.registry != nil {
		if err := g.registry.Register(g.id); err != nil {
			return err
		}
		g.goFunc(func() {
			select {
			case <-g.registry.Registered():
				close(g.registered)
			case <-g.ctx.Done():
			}
		})
	} else {
		g.log.Warn("no --zk servers: not registering in ZooKeeper; the route will not find this gateway")
		close(g.registered)
	}
	// Last: POST /drain reads, and deregisters, what the lines above set.
	g.goFunc(func() {
		if err := g.httpSrv.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("internal HTTP server stopped", "err", err)
		}
	})
	return nil
}

// ID returns the gateway id, <advertise-host>:<tcpPort>:<httpPort> (empty
// before Start).
func (g *Gateway) ID() string { return g.id }

// Addr returns the client listener's address.
func (g *Gateway) Addr() net.Addr { return g.ln.Addr() }

// WSAddr returns the WebSocket listener's address (nil without one).
func (g *Gateway) WSAddr() net.Addr {
	if g.wsLn == nil {
		return nil
	}
	return g.wsLn.Addr()
}

// WSURL returns the WebSocket URL the gateway publishes ("" without one).
func (g *Gateway) WSURL() string { return g.wsURL }

// HTTPAddr returns the internal HTTP listener's address.
func (g *Gateway) HTTPAddr() net.Addr { return g.httpLn.Addr() }

// Registered is closed once the gateway is registered in ZooKeeper (at once
// when registration is disabled).
func (g *Gateway) Registered() <-chan struct{} { return g.registered }

// Connections returns the number of logged-in connections.
func (g *Gateway) Connections() int { return g.hub.Len() }

// ShuttingDown reports whether Shutdown has begun.
func (g *Gateway) ShuttingDown() bool { return g.shuttingDown.Load() }

// connCfgFor returns the TCP connections' config with the metrics of
// another transport. A WebSocket connection waits for a message as a TCP
// one does (package wsconn); an MQTT one lets its adapter wait for the
// next packet (conn.FrameWaiter).
func (g *Gateway) connCfgFor(transport string) *conn.Config {
	c := *g.connCfg
	c.Metrics = g.transport(transport)
	return &c
}

// goFunc runs f in a tracked goroutine unless shutdown has begun.
func (g *Gateway) goFunc(f func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopping {
		return false
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f()
	}()
	return true
}

// setLimits installs the connection caps (0: none) and the accept backoff.
func (g *Gateway) setLimits(l connLimits) {
	g.limits = l
	g.unauth = connlimit.New(l.unauthPerAddr, l.unauth)
	if g.pause == nil {
		g.pause = func(d time.Duration) bool {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return true
			case <-g.ctx.Done():
				return false
			}
		}
	}
}

// Accept backoff: a failing Accept (out of file descriptors, most often)
// is retried after a pause that doubles from acceptBackoffMin up to
// acceptBackoffMax, and is reset by the next successful one.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

func (g *Gateway) acceptLoop() { g.acceptOn(g.ln, g.takeSlots, g.refuse, g.serveConn) }

// acceptOn accepts connections on ln until it closes: each takes its slots
// (take), or is refused by a cap (refuse), and is served (serve).
func (g *Gateway) acceptOn(ln net.Listener, take func(net.Addr) (func(), string),
	refuse func(net.Conn, string), serve func(net.Conn, func())) {
	bo := backoff.New(acceptBackoffMin, acceptBackoffMax, backoff.None)
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, do not spin.
			d := bo.Next()
			g.log.Warn("accept failed", "err", err, "retry_in", d)
			if !g.pause(d) {
				return
			}
			continue
		}
		bo.Reset()
		unauth, why := take(nc.RemoteAddr())
		if why != "" {
			refuse(nc, why)
			continue
		}
		serve(nc, unauth)
	}
}

// serveConn serves an accepted TCP client connection that holds its
// slots, in a tracked goroutine.
func (g *Gateway) serveConn(nc net.Conn, unauth func()) {
	g.serve(conn.New(nc, g.connCfg, g), nc, unauth)
}

// serve runs c, whose socket is nc, in a tracked goroutine.
func (g *Gateway) serve(c *conn.Conn, nc net.Conn, unauth func()) {
	if !g.trackConn(c, unauth) {
		unauth()
		g.open.Add(-1)
		_ = nc.Close()
		return
	}
	if !g.goFunc(func() {
		defer g.untrackConn(c)
		c.Serve(g.ctx)
	}) {
		g.untrackConn(c)
		_ = nc.Close()
	}
}

// takeSlots counts a new connection among all connections (until it
// closes) and among those not logged in (until the returned release), or
// says which cap refused it.
func (g *Gateway) takeSlots(addr net.Addr) (releaseUnauth func(), why string) {
	if n := g.open.Add(1); g.limits.total > 0 && n > int64(g.limits.total) {
		g.open.Add(-1)
		return nil, "connection cap"
	}
	release, refused := g.unauth.Acquire(addr)
	if refused != "" {
		g.open.Add(-1)
		return nil, "unauthenticated " + string(refused)
	}
	return release, ""
}

// tooMany is ERROR TooManyConnections, encoded once.
var tooMany = func() []byte {
	b, err := codec.Encode(conn.ErrorFrame(0, codes.TooManyConnections, "", ""))
	if err != nil {
		panic(err)
	}
	return b
}()

// refuse closes a connection over a cap at once, telling a plain-TCP
// client why (a TLS client gets no frame: that would mean a handshake here,
// in the accept loop). Refusals are counted and logged at a bounded rate.
func (g *Gateway) refuse(nc net.Conn, why string) {
	// Counted first: whoever saw the refusal sees it counted.
	n := g.refused.Add(1)
	g.transport(metrics.TCP).LoginFailed(metrics.Limit)
	if _, isTLS := nc.(*tls.Conn); !isTLS {
		// A new socket's send buffer is empty: this does not block, and
		// the deadline makes sure of it.
		_ = nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = nc.Write(tooMany)
	}
	_ = nc.Close()
	g.logRefusal(nc, why, n)
}

// logRefusal logs refusals at a bounded rate; n is the count with this one.
func (g *Gateway) logRefusal(nc net.Conn, why string, n int64) {
	if ok, _ := g.refusals.Allow(time.Now()); ok {
		since := n - g.refusedAt.Swap(n)
		g.log.Warn("connections refused", "remote", nc.RemoteAddr().String(), "reason", why,
			"refused_since_last_warning", since, "refused_total", n,
			"connections", g.open.Load(), "unauthenticated", g.unauth.Count())
	}
}

// Refused returns how many connections the caps refused so far.
func (g *Gateway) Refused() int64 { return g.refused.Load() }

func (g *Gateway) trackConn(c *conn.Conn, releaseUnauth func()) bool {
	g.connMu.Lock()
	defer g.connMu.Unlock()
	if g.shuttingDown.Load() || g.draining.Load() {
		return false
	}
	g.conns[c] = releaseUnauth
	g.connWG.Add(1)
	return true
}

func (g *Gateway) untrackConn(c *conn.Conn) {
	g.connMu.Lock()
	releaseUnauth, ok := g.conns[c]
	delete(g.conns, c)
	g.connMu.Unlock()
	if releaseUnauth != nil {
		releaseUnauth()
	}
	if ok {
		g.open.Add(-1)
	}
	g.connWG.Done()
}

// loggedIn moves c out of the unauthenticated share (dropping the release,
// so that a logged-in connection keeps nothing of it).
func (g *Gateway) loggedIn(c *conn.Conn) {
	g.connMu.Lock()
	releaseUnauth := g.conns[c]
	if releaseUnauth != nil {
		g.conns[c] = nil
	}
	g.connMu.Unlock()
	if releaseUnauth != nil {
		releaseUnauth()
	}
}

// ---- conn.Handler ----

// Online reports a verified login to the route. While the route confirms
// it, pushes to c's session already find c (see joining): the route may
// push the moment the session is confirmed, before its answer is back.
func (g *Gateway) Online(ctx context.Context, c *conn.Conn) error {
	key := joinKey(c.UserID(), c.SessionID())
	g.joining.Store(key, c)
	err := g.route.Online(ctx, c.UserID(), c.SessionID(), c.Platform())
	g.routeCalled(ctx, err)
	if err != nil {
		g.joining.CompareAndDelete(key, c)
	}
	return err
}

func joinKey(uid, sid string) string { return uid + "\x00" + sid }

// Register puts c in the hub and kicks the connection it replaces. The
// login succeeded: c no longer counts as unauthenticated.
func (g *Gateway) Register(c *conn.Conn) {
	g.loggedIn(c)
	old, replaced := g.hub.Put(c)
	g.joining.CompareAndDelete(joinKey(c.UserID(), c.SessionID()), c)
	if replaced {
		g.log.Debug("user logged in again here; kicking the older connection",
			"user", c.UserID(), "old_session", old.SessionID(), "session", c.SessionID())
		why := conn.Kicked
		if old.SessionID() == c.SessionID() {
			// Its exit must not log the session off: it lives on in c,
			// even if c is gone from the hub by the time old exits (and
			// even if old was already closing: Replaced still counts).
			why = conn.Replaced
		}
		old.CloseWith(why, kickFrame("logged in again"))
	}
}

// Uplink forwards a client frame to the route through the batcher.
func (g *Gateway) Uplink(ctx context.Context, c *conn.Conn, f *cimpb.Frame) error {
	return g.batcher.Submit(ctx, &cimpb.Uplink{UserId: c.UserID(), SessionId: c.SessionID(), Frame: f})
}

// Closed removes c from the hub and reports the session offline, unless
// the reason says the session did not end with c: it never was online, or
// a newer connection of the same session replaced it (a client
// reconnecting with the same token).
func (g *Gateway) Closed(c *conn.Conn, why conn.CloseReason) {
	if c.UserID() == "" {
		return
	}
	g.hub.Remove(c)
	g.watch.drop(c)
	if !why.EndsSession() {
		return
	}
	// The newer connection of the session is in the hub, and its Register
	// is about to mark c Replaced but had not when c ended.
	if cur, ok := g.hub.Get(c.HubKey()); ok && cur != c && cur.SessionID() == c.SessionID() {
		return
	}
	g.offline.Add(c.UserID(), c.SessionID(), c.Platform())
}

// internalHandler is the --http-listen API, plus the profiles with --pprof.
func (g *Gateway) internalHandler(log *slog.Logger) http.Handler {
	api := httpapi.New(g, g, g.links, g.secrets, log, httpapi.Ops{
		Ready: g.Ready, Metrics: g.metrics.Handler(), Drain: g.Drain,
	})
	if !g.cfg.Pprof {
		return api
	}
	profiles := pprofhttp.Handler()
	mux := http.NewServeMux()
	mux.Handle("/", api)
	mux.HandleFunc(pprofhttp.Prefix, func(w http.ResponseWriter, r *http.Request) {
		if !g.secrets.Valid(r.Header.Get(contract.Header)) {
			http.Error(w, "profiles need the "+contract.Header+" secret", http.StatusUnauthorized)
			return
		}
		profiles.ServeHTTP(w, r)
	})
	return mux
}

// endsConnection reports whether f ends the connection it goes to, and
// why: a KICK, ERROR StaleSession (the route refused the connection's
// uplinks: its session is no longer where the user is) or ERROR Reconnect
// (its messages could not be forwarded; package uplink).
func endsConnection(f *cimpb.Frame) (conn.Cause, bool) {
	switch c := codes.Code(f.GetError().GetCode()); {
	case f.Type == cimpb.Type_KICK:
		return conn.Kicked, true
	case f.Type == cimpb.Type_ERROR && c == codes.StaleSession:
		return conn.StaleSession, true
	case f.Type == cimpb.Type_ERROR && c == codes.Reconnect:
		return conn.UplinkFailed, true
	}
	return conn.Open, false
}

func kickFrame(reason string) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_KICK, Kick: &cimpb.Kick{Reason: reason}}
}

// ---- delivery ----

// Push delivers each frame of b to its user's connection here (with that
// session, when the delivery names one); a shared delivery's frame goes to
// each of its targets, encoded once. A KICK frame is written and the
// connection closed. The result lists the deliveries that found no
// connection, counting each target of a shared delivery as one.
func (g *Gateway) Push(b *cimpb.PushBatch) *cimpb.PushResult {
	start := time.Now()
	res := &cimpb.PushResult{}
	g.each(b, func(i int, ok bool) {
		if ok {
			res.Delivered++
		} else {
			res.Missing = append(res.Missing, uint32(i))
		}
	})
	g.metrics.Push(int(res.Delivered)+len(res.Missing), time.Since(start))
	return res
}

// deliver writes the route's answer to an uplink batch.
func (g *Gateway) deliver(b *cimpb.PushBatch) {
	g.each(b, func(i int, ok bool) {
		if !ok {
			g.log.Debug("reply for a user no longer connected dropped", "index", i)
		}
	})
}

// each delivers b's deliveries, reporting for each target, in order,
// whether it found its connection.
func (g *Gateway) each(b *cimpb.PushBatch, done func(i int, ok bool)) {
	// Writers start once the whole batch is queued: a connection's frames
	// of this batch go out in one write.
	var k conn.Cork
	defer k.Flush()
	i := 0
	for _, d := range b.GetDeliveries() {
		i = g.deliverEach(&k, d, i, done)
	}
}

// deliverEach delivers d, whose first target is the i-th of its batch,
// through k, reports each target to done, and returns the index after its
// last.
func (g *Gateway) deliverEach(k *conn.Cork, d *cimpb.Delivery, i int, done func(i int, ok bool)) int {
	if d.GetWatchers() {
		// Not one user's: nothing to miss.
		g.deliverWatchers(d.GetFrame())
		done(i, true)
		return i + 1
	}
	var s *conn.Shared
	if p := d.GetPackedTargets(); len(p) > 0 {
		// As many targets as contract.Targets counts: up to the first
		// malformed one, and at least one.
		f := d.GetFrame()
		if f != nil {
			s = conn.NewShared(f)
		}
		n := 0
		for {
			uid, sid, rest, ok := contract.NextTarget(p)
			if !ok {
				break
			}
			done(i, f != nil && g.deliverPacked(k, uid, sid, f, s))
			i, n, p = i+1, n+1, rest
		}
		if n == 0 {
			g.log.Warn("push with malformed packed targets", "bytes", len(d.GetPackedTargets()))
			done(i, false)
			i++
		}
		return i
	}
	if len(d.GetTargets()) == 0 {
		done(i, g.deliverOne(k, d.GetUserId(), d.GetSessionId(), d.GetFrame(), nil))
		return i + 1
	}
	if f := d.GetFrame(); f != nil {
		s = conn.NewShared(f)
	}
	for _, t := range d.Targets {
		done(i, g.deliverOne(k, t.GetUserId(), t.GetSessionId(), d.GetFrame(), s))
		i++
	}
	return i
}

// deliverPacked is deliverOne for a packed target, without a string made
// for the common case: a user's one connection (no device slot) holding
// session sid.
func (g *Gateway) deliverPacked(k *conn.Cork, uid, sid []byte, f *cimpb.Frame, s *conn.Shared) bool {
	if bytes.IndexByte(sid, '.') < 0 && len(sid) > 0 {
		if c, ok := g.hub.GetBytes(uid); ok && string(sid) == c.SessionID() {
			if _, ends := endsConnection(f); !ends && f.GetType() != cimpb.Type_PRESENCE {
				return k.SendShared(c, s)
			}
		}
	}
	return g.deliverOne(k, string(uid), string(sid), f, s)
}

// deliverOne writes f (whose shared encoding is s, when not nil) to uid's
// connection through k, when it holds session sid (any session when sid is
// empty).
func (g *Gateway) deliverOne(k *conn.Cork, uid, sid string, f *cimpb.Frame, s *conn.Shared) bool {
	if f == nil {
		return false
	}
	c, ok := g.hub.Get(contract.DeviceKey(uid, sid))
	if !ok || (sid != "" && sid != c.SessionID()) {
		// A connection the route is confirming right now (held until its
		// LOGIN_ACK is queued).
		j, joining := g.joining.Load(joinKey(uid, sid))
		if !joining || sid == "" {
			return false
		}
		c = j.(*conn.Conn)
	}
	if why, ends := endsConnection(f); ends {
		// Remove at once so pushes racing with the close already miss.
		g.hub.Remove(c)
		return c.CloseWith(why, f)
	}
	if p := f.GetPresence(); f.Type == cimpb.Type_PRESENCE && (p.GetSnapshot() || len(p.GetUnwatch()) > 0 || len(p.GetRewatch()) > 0) {
		if f = g.watchFrom(c, f); f == nil {
			return true
		}
		s = nil
	}
	if s != nil {
		return k.SendShared(c, s)
	}
	return k.Send(c, f)
}

// watchFrom applies a PRESENCE the route sent c to c's watch list and
// returns what of it goes on to c (nil: nothing). The lists are the
// route's word, never the client's: a snapshot (the answer to c's
// SUBSCRIBE) sets whom c watches, its unwatch naming those watched but
// hidden (they blocked c's user); otherwise unwatch hides users from c and
// rewatch shows them again (an unblock), and only the states of users c
// watches go on.
func (g *Gateway) watchFrom(c *conn.Conn, f *cimpb.Frame) *cimpb.Frame {
	p := f.Presence
	if p.Snapshot {
		g.watch.set(c, p.States, p.Unwatch)
		if len(p.Unwatch) == 0 {
			return f
		}
		return &cimpb.Frame{Type: f.Type, ReqId: f.ReqId, Presence: &cimpb.Presence{Snapshot: true, States: p.States}}
	}
	g.watch.unwatch(c, p.Unwatch)
	states := p.States
	if len(p.Rewatch) > 0 {
		shown := g.watch.rewatch(c, p.Rewatch)
		states = slices.DeleteFunc(slices.Clone(states), func(st *cimpb.PresenceState) bool {
			return slices.Contains(p.Rewatch, st.GetUserId()) && !slices.Contains(shown, st.GetUserId())
		})
	}
	if len(states) == 0 {
		return nil
	}
	return &cimpb.Frame{Type: f.Type, Presence: &cimpb.Presence{States: states}}
}

// ---- re-assert after the ZooKeeper node came back ----

// reassertParallel bounds the concurrent /internal/online calls of a
// re-assert run.
const reassertParallel = 16

// triggerReassert starts a re-assert run, or asks the running one to go
// again. It never blocks (the registry calls it from its goroutine).
func (g *Gateway) triggerReassert() {
	g.reassertMu.Lock()
	if g.reassertRunning {
		g.reassertAgain = true
		g.reassertMu.Unlock()
		return
	}
	g.reassertRunning = true
	g.reassertMu.Unlock()
	if !g.goFunc(g.reassertLoop) {
		g.reassertMu.Lock()
		g.reassertRunning = false
		g.reassertMu.Unlock()
	}
}

func (g *Gateway) reassertLoop() {
	for {
		g.reassertAll(g.ctx)
		g.reassertMu.Lock()
		if !g.reassertAgain {
			g.reassertRunning = false
			g.reassertMu.Unlock()
			return
		}
		g.reassertAgain = false
		g.reassertMu.Unlock()
	}
}

// reassertAll confirms every connection with the route after the gateway's
// ZooKeeper node had to be created again: while the node was gone the route
// may have taken the gateway for dead and cleared its users. A session the
// route no longer knows as current (the user logged in elsewhere meanwhile)
// is kicked.
func (g *Gateway) reassertAll(ctx context.Context) {
	var conns []*conn.Conn
	g.hub.Range(func(c *conn.Conn) bool { conns = append(conns, c); return true })
	g.log.Info("ZooKeeper node re-created; re-asserting connections with the route", "connections", len(conns))
	var (
		wg             sync.WaitGroup
		kicked, failed atomic.Int64
		sem            = make(chan struct{}, reassertParallel)
	)
	for _, c := range conns {
		if ctx.Err() != nil || g.shuttingDown.Load() {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() { // waited for below, so tracked with this run
			defer func() { <-sem; wg.Done() }()
			if c.Closing() {
				return
			}
			err := g.route.Reassert(ctx, c.UserID(), c.SessionID(), c.Platform())
			g.routeCalled(ctx, err)
			switch {
			case err == nil:
			case errors.Is(err, contract.ErrNotCurrent):
				kicked.Add(1)
				g.hub.Remove(c)
				c.CloseWith(conn.Kicked, kickFrame("session is no longer current"))
			default:
				failed.Add(1)
				g.log.Warn("re-assert failed", "user", c.UserID(), "session", c.SessionID(), "err", err)
			}
		}()
	}
	wg.Wait()
	g.log.Info("re-assert done", "connections", len(conns), "kicked", kicked.Load(), "failed", failed.Load())
}

// ---- shutdown ----

// Shutdown stops the gateway in order: deregister from ZooKeeper, stop
// accepting, report 503 on /healthz, close the clients spread over --drain
// (each gets ERROR GoingAway), flush queued uplinks and offline reports, then
// stop the HTTP server. When ctx ends first, what is left is closed at once.
// A second call waits for the first to finish.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.shutdownOnce.Do(func() {
		g.shutdownErr = g.shutdown(ctx)
		close(g.shutdownDone)
	})
	select {
	case <-g.shutdownDone:
		return g.shutdownErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *Gateway) shutdown(ctx context.Context) error {
	g.shuttingDown.Store(true)
	g.draining.Store(true)
	g.log.Info("shutting down", "id", g.id, "connections", g.hub.Len())
	var errs []error
	step := func(name string, err error) {
		if err != nil {
			g.log.Warn("shutdown step failed", "step", name, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}

	if g.ln == nil { // never started
		g.mu.Lock()
		g.stopping = true
		g.mu.Unlock()
		g.cancel()
		return nil
	}

	// 1. Leave ZooKeeper first so the route stops sending new users here,
	// 2. then stop accepting (both done already after POST /drain).
	g.leave(ctx)

	// 3. Close clients gradually so they do not all reconnect at once.
	step("drain", g.drain(ctx))

	// 4. Flush what clients sent before they left.
	step("uplinks", g.batcher.Shutdown(ctx))
	step("offline reports", g.offline.Shutdown(ctx))

	// 5. Stop the internal HTTP API, then the route streams (hijacked
	// from it, so its shutdown does not wait for them).
	if err := g.httpSrv.Shutdown(ctx); err != nil {
		_ = g.httpSrv.Close()
		step("http", err)
	}
	g.links.Close()
	g.route.Close()

	// No more goroutines from here on; wait for the tracked ones.
	g.mu.Lock()
	g.stopping = true
	g.mu.Unlock()
	g.cancel()
	g.wg.Wait()
	g.log.Info("gateway stopped", "id", g.id)
	return errors.Join(errs...)
}

// drain closes every client connection with ERROR GoingAway, spread over
// --drain, and waits for them to finish. When ctx ends, the rest are closed
// at once.
//
// Each close happens at a random time within its slot of the evenly divided
// drain (see drainSchedule): clients of gateways restarted together do not
// all come back in lock-step, and the last close still falls within --drain.
func (g *Gateway) drain(ctx context.Context) error {
	g.connMu.Lock()
	conns := make([]*conn.Conn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.connMu.Unlock()

	jitter, wait := g.drainJitter, g.drainWait
	if jitter == nil {
		jitter = rand.Float64
	}
	if wait == nil {
		wait = waitUntil
	}
	start := time.Now()
	var err error
	for i, at := range drainSchedule(len(conns), g.cfg.Drain, jitter) {
		if err == nil && at > 0 {
			err = wait(ctx, start, at)
		}
		conns[i].CloseWith(conn.GoingAway, conn.ErrorFrame(0, codes.GoingAway, "", ""))
	}

	done := make(chan struct{})
	go func() { g.connWG.Wait(); close(done) }()
	select {
	case <-done:
		return err
	case <-ctx.Done():
		g.connMu.Lock()
		for c := range g.conns {
			c.Close(conn.GoingAway)
		}
		g.connMu.Unlock()
		<-done
		return ctx.Err()
	}
}

// drainSchedule returns when each of n closes happens, as offsets from the
// start of a drain over d: the i-th in the i-th of n equal slots, at the
// point jitter (a number in [0, 1) per close) picks within it. The offsets
// rise and all are below d (0 when d is 0).
func drainSchedule(n int, d time.Duration, jitter func() float64) []time.Duration {
	at := make([]time.Duration, n)
	if n == 0 || d <= 0 {
		return at
	}
	slot := float64(d) / float64(n)
	for i := range at {
		j := jitter()
		if !(j >= 0) { // also NaN
			j = 0
		}
		if j >= 1 { // a source out of range must not reach the next slot
			j = math.Nextafter(1, 0)
		}
		// min: rounding must not push the last close to d.
		at[i] = min(time.Duration(slot*(float64(i)+j)), d-1)
	}
	return at
}

// waitUntil waits until at has passed since start, or ctx ends.
func waitUntil(ctx context.Context, start time.Time, at time.Duration) error {
	wait := time.Until(start.Add(at))
	if wait <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
