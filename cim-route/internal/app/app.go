// Package app wires the route service together — Redis store, upload
// directory, ZooKeeper discovery, gateway balancer, fan-out, router and HTTP
// API — and runs it:
// New(cfg) → Start() (returns once listening) → Ready() (closed once the
// first gateway list arrived) → Shutdown(ctx) (safe to call twice).
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/api"
	"github.com/gocim/gocim/cim-route/internal/balance"
	"github.com/gocim/gocim/cim-route/internal/config"
	"github.com/gocim/gocim/cim-route/internal/discovery"
	"github.com/gocim/gocim/cim-route/internal/fanout"
	"github.com/gocim/gocim/cim-route/internal/files"
	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/cim-route/internal/store"
)

// stopTimeout bounds the stop of the background tasks during Shutdown.
const stopTimeout = 5 * time.Second

// App is one running route service.
type App struct {
	cfg config.Config
	log *slog.Logger

	rdb     redis.UniversalClient
	uploads *files.Store
	bal     *balance.Balancer
	push    *fanout.Pusher
	disc    *discovery.Watcher
	router  *router.Router
	srv     *http.Server

	ctx    context.Context // background work; cancelled by Shutdown
	cancel context.CancelFunc

	mu       sync.Mutex
	ln       net.Listener
	stopping bool
	wg       sync.WaitGroup

	ready chan struct{}
	errc  chan error

	shutdownOnce sync.Once
	shutdownErr  error
}

// New builds the service; nothing runs and nothing connects until Start.
func New(cfg config.Config, logger *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	store.SetRedisLogger(logger)
	rdb := store.NewClient(store.ClientConfig{
		Addrs: cfg.RedisAddrs(), Password: cfg.RedisPassword, DB: cfg.RedisDB, MasterName: cfg.RedisMasterName,
	})
	bal := balance.New(balance.Config{Strategy: cfg.Balance, HealthInterval: cfg.HealthInterval, Logger: logger})
	push := fanout.New(fanout.Config{Timeout: cfg.PushTimeout, Logger: logger})
	uploads := files.New(cfg.UploadDir, cfg.UploadMax)
	st := store.New(rdb, cfg.RedisPrefix, store.WithInbox(store.InboxLimits{
		MaxLen: cfg.InboxMax, TTL: cfg.InboxTTL, DedupWindow: cfg.DedupWindow,
	}))
	rt, err := router.New(router.Config{
		Store: st, Gateways: bal, Pusher: push, Files: uploads,
		TokenKeys: cfg.TokenKeys(), TokenTTL: cfg.TokenTTL, LoginPolicy: cfg.LoginPolicy, BcryptCost: cfg.BcryptCost,
		SyncLimit: cfg.SyncLimit, Logger: logger,
	})
	if err != nil {
		rdb.Close()
		return nil, err
	}
	a := &App{
		cfg: cfg, log: logger.With("component", "app"),
		rdb: rdb, uploads: uploads, bal: bal, push: push, router: rt,
		ready: make(chan struct{}), errc: make(chan error, 4),
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.disc = discovery.New(discovery.Config{
		Servers: cfg.ZKServers(), Root: cfg.ZKRoot, Logger: logger,
		OnChange: func(gws []string) {
			bal.SetGateways(gws)
			rt.GatewaysChanged()
		},
	})
	a.srv = &http.Server{
		Handler:           api.New(api.Config{Service: rt, Logger: logger, MaxUpload: cfg.UploadMax}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.With("component", "http").Handler(), slog.LevelWarn),
	}
	return a, nil
}

// Start listens and starts serving, watching ZooKeeper, health-checking
// gateways and clearing dead ones. It returns once the listener is open.
func (a *App) Start() error {
	if err := a.uploads.Init(); err != nil {
		return fmt.Errorf("--upload-dir: %w", err)
	}
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", a.cfg.Listen, err)
	}
	a.mu.Lock()
	a.ln = ln
	a.mu.Unlock()
	ok := a.spawn("http", func(context.Context) {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.errc <- fmt.Errorf("http: %w", err)
		}
	})
	if !ok {
		ln.Close()
		return errors.New("app: shut down before start")
	}
	a.spawn("discovery", func(ctx context.Context) {
		if err := a.disc.Run(ctx); err != nil {
			a.errc <- err
		}
	})
	a.spawn("health", a.bal.Run)
	a.spawn("janitor", a.router.RunJanitor)
	a.spawn("redis-check", func(ctx context.Context) {
		// Not fatal: requests answer 5030 until Redis is back. The
		// operator should know early, though.
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := a.rdb.Ping(ctx).Err(); err != nil && ctx.Err() == nil {
			a.log.Warn("Redis does not answer; requests will fail with 5030 until it does", "redis", a.cfg.Redis, "err", err)
		}
	})
	a.spawn("ready", func(ctx context.Context) {
		select {
		case <-a.disc.Ready():
			close(a.ready)
			a.log.Info("route ready", "addr", a.Addr(), "gateways", a.bal.Count())
		case <-ctx.Done():
		}
	})
	return nil
}

// spawn runs fn in a tracked goroutine with the background context; it
// refuses once shutdown began.
func (a *App) spawn(name string, fn func(ctx context.Context)) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopping {
		return false
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		fn(a.ctx)
		a.log.Debug("stopped", "task", name)
	}()
	return true
}

// Ready is closed once the service listens and has its first gateway list.
func (a *App) Ready() <-chan struct{} { return a.ready }

// Err delivers fatal errors of the running service (the listener failed).
func (a *App) Err() <-chan error { return a.errc }

// Addr is the actual listen address (with the port chosen for ":0").
func (a *App) Addr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ln == nil {
		return a.cfg.Listen
	}
	return a.ln.Addr().String()
}

// Shutdown stops in order: stop accepting and finish in-flight requests
// (force-closing them when ctx expires), stop discovery, health checks and
// the janitor, then close the gateway connections and Redis. Safe to call
// more than once; later calls return the first result.
func (a *App) Shutdown(ctx context.Context) error {
	a.shutdownOnce.Do(func() {
		a.mu.Lock()
		a.stopping = true
		a.mu.Unlock()
		var errs []error
		if err := a.srv.Shutdown(ctx); err != nil {
			a.log.Warn("in-flight requests did not finish in time; closing them", "err", err)
			errs = append(errs, err, a.srv.Close())
		}
		// Background tasks stop promptly once cancelled (closing the
		// ZooKeeper session may take a second); this step has its own
		// bound so an expired drain does not cut it short.
		a.cancel()
		done := make(chan struct{})
		go func() { a.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(stopTimeout):
			errs = append(errs, fmt.Errorf("background tasks still running after %v", stopTimeout))
		}
		a.push.Close()
		errs = append(errs, a.rdb.Close())
		a.shutdownErr = errors.Join(errs...)
		a.log.Info("route stopped")
	})
	return a.shutdownErr
}
