// Package app wires the route service together — Redis store, upload
// directory, ZooKeeper discovery, gateway balancer, fan-out, authenticator,
// router and the two HTTP listeners (public API, optionally TLS; internal
// calls of the gateways) — and runs it:
// New(cfg) → Start() (returns once listening) → Ready() (closed once the
// first gateway list arrived) → Shutdown(ctx) (safe to call twice).
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/api"
	"github.com/gocim/gocim/cim-route/internal/auth"
	"github.com/gocim/gocim/cim-route/internal/balance"
	"github.com/gocim/gocim/cim-route/internal/config"
	"github.com/gocim/gocim/cim-route/internal/discovery"
	"github.com/gocim/gocim/cim-route/internal/event"
	"github.com/gocim/gocim/cim-route/internal/fanout"
	"github.com/gocim/gocim/cim-route/internal/files"
	"github.com/gocim/gocim/cim-route/internal/metrics"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/cim-route/internal/ratelimit"
	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/cim-route/internal/store"
	"github.com/gocim/gocim/cim-route/internal/webhook"
	"github.com/gocim/gocim/internal/connlimit"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
)

// stopTimeout bounds the stop of the background tasks during Shutdown.
const stopTimeout = 5 * time.Second

// Connection timeouts of both listeners besides --read-timeout and
// --write-timeout.
const (
	headerTimeout = 10 * time.Second
	idleTimeout   = 2 * time.Minute
)

// App is one running route service.
type App struct {
	cfg config.Config
	log *slog.Logger

	rdb     redis.UniversalClient
	ping    redisPing // /readyz's, shared by all its requests
	st      *store.Store
	uploads files.Store
	bal     *balance.Balancer
	push    *fanout.Pusher
	disc    *discovery.Watcher
	router  *router.Router
	srv     *http.Server // public API (--listen)
	tls     bool         // srv serves HTTPS (srv.TLSConfig is not a sign: Serve sets one)
	isrv    *http.Server // internal calls (--internal-listen)
	conns   *connlimit.Limiter
	proxies []netip.Prefix      // exempt from the per-address connection cap
	hooks   *webhook.Dispatcher // events to the app back-end; nil without --webhook-url
	metrics *metrics.Route

	ctx    context.Context // background work; cancelled by Shutdown
	cancel context.CancelFunc

	mu       sync.Mutex
	ln       net.Listener // public
	iln      net.Listener // internal
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
	keys, err := cfg.APIKeyRing()
	if err != nil {
		return nil, fmt.Errorf("--api-keys: %w", err)
	}
	proxies, err := cfg.TrustedProxyList()
	if err != nil {
		return nil, fmt.Errorf("--trusted-proxies: %w", err)
	}
	authn, err := newAuthenticator(cfg)
	if err != nil {
		return nil, err
	}
	var tlsCfg *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	m := metrics.New()
	rdb := store.NewClient(store.ClientConfig{
		Addrs: cfg.RedisAddrs(), Password: cfg.RedisPassword, DB: cfg.RedisDB, MasterName: cfg.RedisMasterName,
	})
	rdb.AddHook(m.RedisHook())
	secrets := cfg.InternalSecrets()
	push := fanout.New(fanout.Config{Timeout: cfg.PushTimeout, Secret: secrets[0], NoStreams: !cfg.GatewayStreams,
		Observer: m, Logger: logger})
	// Streams carry the internal secret: only to gateways that proved
	// they hold it.
	bal := balance.New(balance.Config{Strategy: cfg.Balance, HealthInterval: cfg.HealthInterval, Secrets: secrets,
		OnProven: push.SetGateways, Logger: logger})
	var uploads files.Store = files.New(cfg.UploadDir, cfg.UploadMax)
	if cfg.UploadStore == config.UploadStoreRedis {
		uploads = files.NewRedis(rdb, cfg.RedisPrefix, cfg.UploadMax)
	}
	uploads.SetLimits(files.Limits{
		Total: cfg.UploadTotal, MinFree: cfg.UploadMinFree, UnreferencedTTL: cfg.UploadUnrefTTL, MaxAge: cfg.UploadMaxAge,
	})
	storeOpts := []store.Option{store.WithInbox(model.InboxLimits{
		MaxLen: cfg.InboxMax, TTL: cfg.InboxTTL, DedupWindow: cfg.DedupWindow, PerSender: cfg.InboxPerSender,
	})}
	if cfg.LoginPolicy == config.PolicyPlatform {
		storeOpts = append(storeOpts, store.WithDeviceSlots())
	}
	st := store.New(rdb, cfg.RedisPrefix, storeOpts...)
	// Discovery starts after the router; logins before its first listing
	// find no gateway anyway.
	var disc atomic.Pointer[discovery.Watcher]
	gatewayInfo := func(id string) contract.GatewayInfo {
		if w := disc.Load(); w != nil {
			info, _ := w.Info(id)
			return info
		}
		return contract.GatewayInfo{}
	}
	hooks, events, err := newWebhooks(cfg, rdb, logger)
	if err != nil {
		rdb.Close()
		return nil, err
	}
	sources := metrics.Sources{LiveGateways: bal.Count}
	if hooks != nil {
		sources.WebhookDepth = hooks.Depth
	}
	m.SetSources(sources)
	// Every route process (standalone or a gateway's replica) takes from the
	// same buckets: a budget is the cluster's.
	limiters := ratelimit.Shared(rdb, cfg.RedisPrefix)
	rt, err := router.New(router.Config{
		Store: st, Gateways: bal, Pusher: push, Files: uploads, Authenticator: authn, GatewayInfo: gatewayInfo,
		Events: events, AppUsers: router.NewAppUsers(cfg.WebhookAppUserList()), Observer: m,
		TokenKeys: cfg.TokenKeys(), TokenTTL: cfg.TokenTTL, AccessTTL: cfg.AccessTTL, ResumeTTL: cfg.ResumeTTL,
		LoginPolicy: cfg.LoginPolicy, BcryptCost: cfg.BcryptCost,
		SyncLimit: cfg.SyncLimit, MaxFrame: cfg.MaxFrame, GroupMaxMembers: cfg.GroupMaxMembers, GroupTimelineMin: cfg.GroupTimeline, Logger: logger,
		EditWindow: cfg.EditWindow,
		MaxDevices: cfg.MaxDevices, DeviceLoginRate: cfg.DeviceLoginRate, DeviceLoginBurst: cfg.DeviceLoginBurst,
		DeviceLoginConcurrency: cfg.DeviceLoginConcurrency,
		InternalSecret:         secrets[0], // the admin's calls to gateways (drain)
		Limits: router.Limits{
			HashQueue:      hashQueue(cfg.HashQueue),
			InvitesPerHour: cfg.InvitesPerHour, UploadQuota: cfg.UploadQuota,
			GroupsPerHour: cfg.GroupsPerHour, GroupsPerUser: cfg.GroupsPerUser,
			GroupCopiesPerSecond: cfg.GroupCopiesRate, GroupCopiesBurst: cfg.GroupCopiesBurst,
			GroupPushesPerSecond: cfg.GroupPushRate, GroupPushesBurst: cfg.GroupPushBurst,
		},
		Limiters: limiters,
		// /onlineUser reads every online user's route: at most once per
		// 2 s and process, however many ask, and at most
		// --online-read-rate routes a second on average.
		OnlineCacheTTL: 2 * time.Second, OnlineReadRate: cfg.OnlineReadRate,
	})
	if err != nil {
		rdb.Close()
		return nil, err
	}
	a := &App{
		cfg: cfg, log: logger.With("component", "app"),
		rdb: rdb, st: st, uploads: uploads, bal: bal, push: push, router: rt, hooks: hooks, metrics: m,
		ready: make(chan struct{}), errc: make(chan error, 4),
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	push.Serve(api.StreamHandler(rt, logger))
	a.disc = discovery.New(discovery.Config{
		Servers: cfg.ZKServers(), Root: cfg.ZKRoot, Logger: logger, OnError: m.ZooKeeperError,
		OnChange: func(gws []string) {
			bal.SetGateways(gws)
			rt.GatewaysChanged()
		},
	})
	disc.Store(a.disc)
	apiCfg := api.Config{
		Service: rt, Logger: logger, TokenKeys: cfg.TokenKeys(), APIKeys: keys, InternalSecrets: secrets,
		LoginRate: cfg.LoginRate, LoginBurst: cfg.LoginBurst, TrustedProxies: proxies, CORSOrigins: cfg.CORSOriginList(), Pprof: cfg.Pprof,
		MaxBody: cfg.MaxBody, MaxUpload: cfg.UploadMax,
		RegisterRate: cfg.RegisterRate, RegisterBurst: cfg.RegisterBurst,
		HistoryRate: cfg.HistoryRate, HistoryBurst: cfg.HistoryBurst,
		ListRate: cfg.ListRate, ListBurst: cfg.ListBurst,
		UploadRate: cfg.UploadRate, UploadBurst: cfg.UploadBurst, Limiters: limiters,
		ReadTimeout: cfg.ReadTimeout, WriteTimeout: cfg.WriteTimeout, TransferMinRate: cfg.TransferMinRate,
	}
	public, err := api.NewPublic(apiCfg)
	if err != nil {
		rdb.Close()
		return nil, err
	}
	httpLog := slog.NewLogLogger(logger.With("component", "http").Handler(), slog.LevelWarn)
	a.tls = tlsCfg != nil
	// Every server bounds the whole request and the whole answer, not only
	// the headers: a body trickling in one byte at a time, or an answer
	// nobody reads, ends at the timeout (longer for uploads and downloads:
	// api extends the deadlines by their size).
	// /livez and /readyz on both listeners, /metrics on the internal one
	// (ops.go); logins are counted by their answers.
	a.srv = &http.Server{
		Handler:           a.opsHandler(countLogins(public, m), nil),
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: min(headerTimeout, cfg.ReadTimeout),
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          httpLog,
	}
	a.isrv = &http.Server{
		Handler:           a.opsHandler(api.NewInternal(apiCfg), m.Handler()),
		ReadHeaderTimeout: min(headerTimeout, cfg.ReadTimeout),
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          httpLog,
	}
	a.conns = connlimit.New(cfg.MaxConnsPerAddr, publicConnLimit(cfg.MaxConns))
	a.proxies = proxyPrefixes(proxies)
	return a, nil
}

// newWebhooks builds the webhook dispatcher of --webhook-url, on the
// route's Redis and key prefix; without URLs it is nil and the events go
// nowhere.
func newWebhooks(cfg config.Config, rdb redis.UniversalClient, logger *slog.Logger) (*webhook.Dispatcher, event.Sink, error) {
	urls := cfg.WebhookURLs()
	if len(urls) == 0 {
		return nil, event.Discard{}, nil
	}
	d, err := webhook.New(webhook.Config{
		Redis: rdb, Prefix: cfg.RedisPrefix, URLs: urls, Secret: []byte(cfg.WebhookSecret), Types: cfg.WebhookEventTypes(),
		QueueMax: cfg.WebhookQueueMax, MaxAge: cfg.WebhookMaxAge, Timeout: cfg.WebhookTimeout,
		RetryMax: cfg.WebhookRetryMax, Logger: logger,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("--webhook-url: %w", err)
	}
	return d, d, nil
}

// newAuthenticator builds the --auth authenticator; nil for builtin.
func newAuthenticator(cfg config.Config) (auth.Authenticator, error) {
	switch cfg.Auth {
	case config.AuthHTTP:
		a, err := auth.NewHTTP(auth.HTTPConfig{URL: cfg.AuthURL, Secret: cfg.AuthSecret, Timeout: cfg.AuthTimeout})
		if err != nil {
			return nil, fmt.Errorf("--auth http: %w", err)
		}
		return a, nil
	case config.AuthLDAP:
		a, err := auth.NewLDAP(auth.LDAPConfig{
			URL: cfg.LDAPURL, StartTLS: cfg.LDAPStartTLS, CAFile: cfg.LDAPCA,
			BindDN: cfg.LDAPBindDN, BindPassword: cfg.LDAPBindPW, BaseDN: cfg.LDAPBaseDN,
			Filter: cfg.LDAPFilter, NameAttr: cfg.LDAPNameAttr, Timeout: cfg.AuthTimeout,
		})
		if err != nil {
			return nil, fmt.Errorf("--auth ldap: %w", err)
		}
		return a, nil
	}
	return nil, nil
}

// Start listens on both addresses and starts serving, watching ZooKeeper,
// health-checking gateways and clearing dead ones. It returns once both
// listeners are open.
func (a *App) Start() error {
	if err := a.uploads.Init(); err != nil {
		if a.cfg.UploadStore == config.UploadStoreRedis {
			return fmt.Errorf("--upload-store redis: %w", err)
		}
		return fmt.Errorf("--upload-dir: %w", err)
	}
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", a.cfg.Listen, err)
	}
	iln, err := net.Listen("tcp", a.cfg.InternalListen)
	if err != nil {
		ln.Close()
		return fmt.Errorf("--internal-listen %s: %w", a.cfg.InternalListen, err)
	}
	// Only the public listener is capped: the internal one serves the
	// gateways, whose few connections carry everybody's traffic.
	ln = newLimitListener(ln, a.conns, a.proxies, a.log.With("listener", "public"))
	a.mu.Lock()
	a.ln, a.iln = ln, iln
	a.mu.Unlock()
	ok := a.spawn("http", func(context.Context) {
		var err error
		if a.tls {
			err = a.srv.ServeTLS(ln, "", "") // the certificate is in TLSConfig
		} else {
			err = a.srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.errc <- fmt.Errorf("http: %w", err)
		}
	}) && a.spawn("http-internal", func(context.Context) {
		if err := a.isrv.Serve(iln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.errc <- fmt.Errorf("http (internal): %w", err)
		}
	})
	if !ok {
		ln.Close()
		iln.Close()
		return errors.New("app: shut down before start")
	}
	a.spawn("discovery", func(ctx context.Context) {
		if err := a.disc.Run(ctx); err != nil {
			a.errc <- err
		}
	})
	a.spawn("health", a.bal.Run)
	a.spawn("janitor", a.router.RunJanitor)
	a.spawn("fence sweep", a.router.RunFenceSweep)
	a.spawn("delayed messages", a.router.RunDelayed)
	if a.hooks != nil {
		// Stops with the other background tasks, after the requests and
		// deliveries that emit events, and writes what it holds to Redis.
		a.spawn("webhooks", a.hooks.Run)
	}
	a.spawn("upload-janitor", a.sweepUploads)
	a.spawn("fold-names", func(ctx context.Context) {
		if n, err := a.st.FoldNames(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("indexing user names in any case failed; will retry at the next start", "err", err)
		} else if n > 0 {
			a.log.Info("user names indexed in any case", "added", n)
		}
	})
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
			a.log.Info("route ready", "addr", a.Addr(), "internal", a.InternalAddr(), "tls", a.tls,
				"auth", a.cfg.Auth, "gateways", a.bal.Count())
		case <-ctx.Done():
		}
	})
	return nil
}

// sweepUploads runs the upload janitor: at start (which also counts the
// bytes stored) and every --upload-sweep.
func (a *App) sweepUploads(ctx context.Context) {
	t := time.NewTicker(a.cfg.UploadSweep)
	defer t.Stop()
	for {
		res, err := a.uploads.Sweep()
		switch {
		case err != nil:
			a.log.Warn("upload sweep failed", "store", a.cfg.UploadStore, "err", err)
		case res.Deleted > 0:
			a.log.Info("expired uploads deleted", "deleted", res.Deleted, "freed", res.Freed, "kept", res.Kept, "used", res.Used)
		default:
			a.log.Debug("upload sweep", "kept", res.Kept, "used", res.Used)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// hashQueue maps --hash-queue to router.Limits.HashQueue, where 0 is the
// default and < 0 means nobody waits.
func hashQueue(n int) int {
	if n == 0 {
		return -1
	}
	return n
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

// Addr is the actual public listen address (with the port chosen for ":0").
func (a *App) Addr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ln == nil {
		return a.cfg.Listen
	}
	return a.ln.Addr().String()
}

// InternalAddr is the actual internal listen address, where gateways'
// --route points.
func (a *App) InternalAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.iln == nil {
		return a.cfg.InternalListen
	}
	return a.iln.Addr().String()
}

// Metrics are the route's collectors (served at /metrics on the internal
// listener).
func (a *App) Metrics() *metrics.Route { return a.metrics }

// TLS reports whether the public listener serves HTTPS.
func (a *App) TLS() bool { return a.tls }

// Shutdown stops in order: stop accepting and finish in-flight requests
// (force-closing them when ctx expires), wait for the pushes of answered
// uplinks (until ctx expires), stop discovery, health checks and
// the janitor, then close the gateway connections and Redis. Safe to call
// more than once; later calls return the first result.
func (a *App) Shutdown(ctx context.Context) error {
	a.shutdownOnce.Do(func() {
		a.mu.Lock()
		a.stopping = true
		a.mu.Unlock()
		var errs []error
		// Both listeners drain in parallel: a gateway's uplink on the
		// internal one may be what a public request is waiting for, and
		// neither should use up the other's time.
		var wg sync.WaitGroup
		var mu sync.Mutex
		// The gateways' streams refuse new uplinks (the gateways send
		// them over HTTP, to another replica) and finish the ones begun.
		wg.Go(func() {
			if err := a.push.Drain(ctx); err != nil {
				a.log.Warn("stream uplinks did not finish in time", "err", err)
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
		for _, srv := range []*http.Server{a.srv, a.isrv} {
			wg.Go(func() {
				if err := srv.Shutdown(ctx); err != nil {
					a.log.Warn("in-flight requests did not finish in time; closing them", "err", err)
					mu.Lock()
					errs = append(errs, err, srv.Close())
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		// Uplinks answered before the drain may still be pushing.
		if err := a.router.WaitDeliveries(ctx); err != nil {
			errs = append(errs, fmt.Errorf("pushes still running: %w", err))
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

// ServeLocally makes the pushes to gateway id calls of push in this
// process (a replica inside that gateway).
func (a *App) ServeLocally(id string, push func(*cimpb.PushBatch) *cimpb.PushResult) {
	a.push.SetLocal(id, push)
}

// Uplink handles a batch of uplinks in this process, as the internal
// stream and POST /internal/uplink do (a replica inside a gateway).
func (a *App) Uplink(ctx context.Context, b *cimpb.UplinkBatch) (*cimpb.PushBatch, error) {
	return a.router.Uplink(ctx, b)
}
