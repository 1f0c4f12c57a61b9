// Package registry announces a gateway in ZooKeeper: an ephemeral node
// <root>/servers/<gateway id> with empty data, which the route watches.
//
// The node lives as long as the ZooKeeper session. When the session expires
// (ZooKeeper was unreachable for longer than the session timeout), the
// client library opens a new session and the registry creates the node again;
// a node left behind by an older session of this gateway is deleted and
// recreated so its owner is the live session. Config.OnRecreated tells the
// gateway when the node had to be created again, so it can re-assert its
// connections with the route. The gateway keeps serving its clients whatever
// ZooKeeper does.
//
// With Config.Auth ("user:password") the registry authenticates with
// ZooKeeper's digest scheme and locks the tree down: <root>, <root>/servers
// and its own node get the ACL "world: read, digest user: all", so anybody
// may list the gateways but only holders of the credentials may add,
// change or delete one. Parents that exist with another ACL (created by an
// older version, by the route, or by somebody else while ZooKeeper was
// open) are set to it, which works while they are still world-writable.
// Without Auth every node is world-writable, as before, and a warning says
// so.
//
// Register and Deregister are meant to be called once each, in that order;
// the other methods are safe for concurrent use.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocim/gocim/cim-server/internal/metrics"
	"github.com/gocim/gocim/internal/backoff"
)

// Config configures a Registry.
type Config struct {
	Servers        []string
	Root           string // e.g. "/cim"
	SessionTimeout time.Duration
	// Auth is "user:password" for ZooKeeper's digest scheme; empty: no
	// authentication and world-writable nodes.
	Auth   string
	Logger *slog.Logger
	// Data is the node's data: the gateway's contract.GatewayInfo (its
	// WebSocket URL), written each time the node is created.
	Data []byte
	// OnRecreated, if set, is called after the node had to be created again
	// (after a session expiry, or someone deleted it). The route has likely
	// dropped this gateway's users meanwhile. It runs on the registry's
	// goroutine and must not block.
	OnRecreated func()
	// Metrics counts ZooKeeper failures (nil: not counted).
	Metrics *metrics.Gateway
}

// Registry keeps one ephemeral node alive.
type Registry struct {
	cfg  Config
	log  *slog.Logger
	path string

	conn   *zk.Conn
	acl    []zk.ACL      // for every node the registry creates
	authed bool          // AddAuth succeeded (the library re-sends it on reconnect); run's goroutine only
	wake   chan struct{} // a new session was established
	stop   chan struct{}
	done   chan struct{}
	ready  chan struct{} // closed after the first registration
	once   sync.Once
	deOnce sync.Once
	deErr  error

	// Only touched by event, which the library calls sequentially.
	lastState  zk.State
	hadSession bool

	// live: the node was confirmed under the current session and nothing
	// since says it is gone; lostAt: when the connection was lost (unix
	// ns; 0 while connected). See Live.
	live   atomic.Bool
	lostAt atomic.Int64
}

// retryInterval is how often the registry checks whether a failed
// registration is due for another try; failures back off up to maxBackoff.
const (
	retryInterval = 500 * time.Millisecond
	maxBackoff    = 10 * time.Second
)

// ErrBadAuth means Config.Auth is not "user:password".
var ErrBadAuth = errors.New(`registry: ZooKeeper auth must be "user:password" with a non-empty user and password`)

// SplitAuth splits "user:password" (the password may contain colons).
func SplitAuth(auth string) (user, password string, err error) {
	user, password, ok := strings.Cut(auth, ":")
	if !ok || user == "" || password == "" || strings.ContainsAny(auth, "\r\n") {
		return "", "", ErrBadAuth
	}
	return user, password, nil
}

// ACL returns the ACL of every node the registry creates: world read and,
// with auth, all rights for the digest user only.
func ACL(auth string) ([]zk.ACL, error) {
	if auth == "" {
		return zk.WorldACL(zk.PermAll), nil
	}
	user, password, err := SplitAuth(auth)
	if err != nil {
		return nil, err
	}
	return append(zk.DigestACL(zk.PermAll, user, password), zk.WorldACL(zk.PermRead)...), nil
}

// New returns a Registry for cfg. Register reports a malformed Auth.
func New(cfg Config) *Registry {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 6 * time.Second
	}
	return &Registry{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "registry"),
		wake:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		ready: make(chan struct{}),
	}
}

// Path returns the node path (empty before Register).
func (r *Registry) Path() string { return r.path }

// Connected reports whether the ZooKeeper session is up right now.
func (r *Registry) Connected() bool {
	return r.conn != nil && r.conn.State() == zk.StateHasSession
}

// Live reports whether the node exists under a live session, as far as
// the registry can tell: it was confirmed under the current session, it was
// not deleted since, and the session is up or was lost less than the
// session timeout ago (ZooKeeper keeps the node that long). After
// Deregister it is false.
func (r *Registry) Live() bool {
	if !r.live.Load() || r.stopping() {
		return false
	}
	if r.Connected() {
		return true
	}
	// The client library changes its state before it hands the event to
	// event(), which notes when the session was lost: a registry that was
	// live and has no such note yet lost it this very moment, and notes it
	// itself (reading it as not live made /readyz flap to 503 and back).
	lost := r.lostAt.Load()
	if lost == 0 {
		r.lostAt.CompareAndSwap(0, time.Now().UnixNano())
		return true
	}
	return time.Since(time.Unix(0, lost)) < r.cfg.SessionTimeout
}

// Registered is closed once the node was created the first time.
func (r *Registry) Registered() <-chan struct{} { return r.ready }

// Register connects to ZooKeeper and keeps <root>/servers/<id> registered in
// the background. It returns without waiting for ZooKeeper.
func (r *Registry) Register(id string) error {
	if id == "" || strings.Contains(id, "/") {
		return fmt.Errorf("registry: bad node name %q", id)
	}
	r.path = path.Join(r.cfg.Root, "servers", id)
	acl, err := ACL(r.cfg.Auth)
	if err != nil {
		return err
	}
	r.acl = acl
	if r.cfg.Auth == "" {
		r.log.Warn("no ZooKeeper credentials (--zk-auth-file): the gateway nodes are world-writable, " +
			"so anyone who reaches ZooKeeper can add a node (the route still hands out only gateways that prove the internal secret)")
	}
	conn, _, err := zk.Connect(r.cfg.Servers, r.cfg.SessionTimeout,
		zk.WithLogger(zkLogger{r.log}),
		zk.WithLogInfo(false),
		zk.WithEventCallback(r.event))
	if err != nil {
		return fmt.Errorf("registry: connect to %v: %w", r.cfg.Servers, err)
	}
	r.conn = conn
	go r.run()
	return nil
}

// event runs on the client library's goroutine (one at a time) and must not
// block.
func (r *Registry) event(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	prev := r.lastState
	r.lastState = ev.State
	switch ev.State {
	case zk.StateHasSession:
		if prev != zk.StateHasSession && r.hadSession {
			r.log.Info("ZooKeeper connection restored", "server", ev.Server)
		}
		r.hadSession = true
		r.lostAt.Store(0)
		select {
		case r.wake <- struct{}{}:
		default:
		}
	case zk.StateExpired:
		r.live.Store(false)
		r.cfg.Metrics.ZooKeeperError()
		r.log.Warn("ZooKeeper session expired; registering again with a new session")
	case zk.StateDisconnected:
		// The library reports this on every failed reconnect; say it once.
		if prev == zk.StateHasSession && !r.stopping() {
			r.lostAt.Store(time.Now().UnixNano())
			r.cfg.Metrics.ZooKeeperError()
			r.log.Warn("lost ZooKeeper connection; still serving clients, reconnecting", "server", ev.Server)
		}
	}
}

func (r *Registry) stopping() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

func (r *Registry) run() {
	defer close(r.done)
	var (
		watch   <-chan zk.Event
		dirty   = true // the node must be (re)checked
		session int64  // session the node was last confirmed for
		bo      = backoff.New(retryInterval, maxBackoff, backoff.None)
		nextTry time.Time
	)
	retry := time.NewTicker(retryInterval)
	defer retry.Stop()
	for {
		if dirty && r.conn.State() == zk.StateHasSession && !time.Now().Before(nextTry) {
			w, sid, created, err := r.ensure()
			select {
			case <-r.stop:
				return
			default:
			}
			if err != nil {
				r.live.Store(false)
				r.cfg.Metrics.ZooKeeperError()
				d := bo.Next()
				nextTry = time.Now().Add(d)
				r.log.Warn("ZooKeeper registration failed, retrying", "path", r.path, "retry_in", d, "err", err)
			} else {
				bo.Reset()
				nextTry = time.Time{}
				dirty, watch = false, w
				r.live.Store(true)
				if created || sid != session {
					first := session == 0
					session = sid
					r.log.Info("registered in ZooKeeper", "path", r.path, "session", fmt.Sprintf("%#x", sid))
					r.once.Do(func() { close(r.ready) })
					if !first && r.cfg.OnRecreated != nil {
						r.cfg.OnRecreated()
					}
				}
			}
		}
		select {
		case <-r.stop:
			return
		case <-r.wake:
			dirty, nextTry = true, time.Time{} // (re)connected: check at once
		case ev, ok := <-watch:
			// The node changed or the watch was lost with the session:
			// check it again (a Deleted node is recreated).
			watch = nil
			if ok && ev.Type == zk.EventNodeDeleted {
				r.live.Store(false)
				r.log.Warn("registration node deleted; creating it again", "path", r.path)
			}
			dirty = true
		case <-retry.C:
		}
	}
}

// ensure makes sure the node exists and belongs to the current session, and
// leaves an exists-watch on it.
// It reports whether it had to create the node.
func (r *Registry) ensure() (watch <-chan zk.Event, sid int64, created bool, err error) {
	c := r.conn
	if r.cfg.Auth != "" && !r.authed {
		// Once accepted, the library sends the credentials again on
		// every reconnect, before any other request.
		if err := c.AddAuth("digest", []byte(r.cfg.Auth)); err != nil {
			return nil, 0, false, fmt.Errorf("ZooKeeper digest auth: %w", err)
		}
		r.authed = true
	}
	if err := r.createParents(); err != nil {
		return nil, 0, false, err
	}
	sid = c.SessionID()
	for attempt := 0; attempt < 3; attempt++ {
		_, err := c.Create(r.path, r.cfg.Data, zk.FlagEphemeral, r.acl)
		if errors.Is(err, zk.ErrNoAuth) {
			return nil, 0, false, fmt.Errorf("create %s: %w (the path is locked with other credentials: give every gateway the same --zk-auth-file)", r.path, err)
		}
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return nil, 0, false, fmt.Errorf("create %s: %w", r.path, err)
		}
		created = created || err == nil
		ok, stat, w, err := c.ExistsW(r.path)
		if err != nil {
			return nil, 0, false, fmt.Errorf("watch %s: %w", r.path, err)
		}
		if !ok {
			continue // deleted between Create and ExistsW: again
		}
		if stat.EphemeralOwner == sid {
			return w, sid, created, nil
		}
		// Left by an earlier session (ours before an expiry, or a previous
		// run of this gateway): it would vanish when that session ends, so
		// take it over now.
		r.log.Info("replacing registration node of an older session", "path", r.path,
			"owner", fmt.Sprintf("%#x", stat.EphemeralOwner), "session", fmt.Sprintf("%#x", sid))
		if err := c.Delete(r.path, stat.Version); err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
			return nil, 0, false, fmt.Errorf("delete stale %s: %w", r.path, err)
		}
	}
	return nil, 0, false, fmt.Errorf("%s keeps changing under us", r.path)
}

// createParents creates <root> and <root>/servers and, with auth, makes
// sure they carry r.acl whoever created them.
func (r *Registry) createParents() error {
	p := ""
	for _, part := range strings.Split(strings.Trim(path.Join(r.cfg.Root, "servers"), "/"), "/") {
		p += "/" + part
		_, err := r.conn.Create(p, nil, 0, r.acl)
		if err == nil {
			continue
		}
		if !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("create %s: %w", p, err)
		}
		if r.cfg.Auth == "" {
			continue
		}
		have, _, err := r.conn.GetACL(p)
		if err != nil {
			return fmt.Errorf("read the ACL of %s: %w", p, err)
		}
		if sameACL(have, r.acl) {
			continue
		}
		if _, err := r.conn.SetACL(p, r.acl, -1); err != nil {
			return fmt.Errorf("lock down %s (its ACL is %v): %w", p, have, err)
		}
		r.log.Warn("ZooKeeper node was writable by others; restricted it to the gateways' credentials", "path", p, "old_acl", fmt.Sprint(have))
	}
	return nil
}

// sameACL reports whether a and b hold the same entries in any order.
func sameACL(a, b []zk.ACL) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		found := false
		for _, y := range b {
			if x == y {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Deregister deletes the node and closes the session (which would remove an
// ephemeral node anyway, but only after ZooKeeper processes the close).
// ctx bounds the wait when ZooKeeper is unreachable. Safe to call twice.
func (r *Registry) Deregister(ctx context.Context) error {
	r.deOnce.Do(func() { r.deErr = r.deregister(ctx) })
	return r.deErr
}

func (r *Registry) deregister(ctx context.Context) error {
	r.live.Store(false)
	if r.conn == nil {
		return nil
	}
	close(r.stop)
	// The loop may be inside a ZooKeeper call; those end within about a
	// second when ZooKeeper is down.
	select {
	case <-r.done:
	case <-ctx.Done():
	}
	errc := make(chan error, 1)
	go func() {
		err := r.conn.Delete(r.path, -1)
		if errors.Is(err, zk.ErrNoNode) {
			err = nil
		}
		errc <- err
	}()
	var err error
	got := false
	select {
	case err = <-errc:
		got = true
	case <-ctx.Done():
		err = ctx.Err()
	}
	// Close makes a pending Delete return, so the goroutine above ends.
	r.conn.Close()
	if !got {
		<-errc
	}
	<-r.done
	if err != nil {
		r.cfg.Metrics.ZooKeeperError()
		return fmt.Errorf("registry: delete %s: %w", r.path, err)
	}
	r.log.Info("deregistered from ZooKeeper", "path", r.path)
	return nil
}

// zkLogger sends the client library's chatter to slog at debug level; the
// registry logs the state changes an operator needs itself.
type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) {
	l.log.Debug("zk: " + fmt.Sprintf(format, args...))
}
