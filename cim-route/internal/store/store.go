// Package store keeps the route service's shared state in Redis: accounts,
// the route of each user (gateway, session, state), the online set
// (login-status), the per-gateway user sets, the set of gateways that ever
// held users, every user's inbox (seq counter, entries, acknowledged seq,
// dedup keys), and groups (record, members, invitations, each user's
// groups, group message dedup and receipt sets). Keys follow docs/ARCHITECTURE.md; per-user keys carry a {uid}
// hash tag and per-group keys a {gid} one; every change to a route is one
// Lua compare-and-set on that one key, every inbox append is one Lua script
// on that user's keys and every membership change one on that group's keys, so the
// store also works on Redis Cluster. The sets are updated after
// the route and repaired from it, so a race can leave a stale member (filtered
// and cleaned lazily) but never drop a current one.
//
// A Store is safe for concurrent use. Every Redis failure comes back wrapped
// in errs.ErrUnavailable.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/internal/contract"
)

// Route states.
const (
	StatePending = model.StatePending // handed out by /login, not confirmed by a gateway yet
	StateOnline  = model.StateOnline  // the gateway holds the connection
)

// Store is the Redis-backed state of the route service.
type Store struct {
	rdb   redis.UniversalClient
	k     keys
	now   func() time.Time
	inbox InboxLimits
	// cluster: Redis Cluster, where a script may only touch one slot's
	// keys (one user's).
	cluster bool
	// loaded holds the scripts (*redis.Script) known loaded in Redis.
	loaded sync.Map
	// slots are the device slots a user's route is read from: "" (the
	// single slot of the kick and reject policies), plus contract.Slots
	// with --login-policy platform (WithDeviceSlots).
	slots []string
}

// New returns a Store using rdb with every key prefixed by prefix.
func New(rdb redis.UniversalClient, prefix string, opts ...Option) *Store {
	_, cluster := rdb.(*redis.ClusterClient)
	s := &Store{rdb: rdb, k: keys{prefix}, now: time.Now, inbox: withDefaults(InboxLimits{}), cluster: cluster, slots: []string{""}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// ClientConfig says which Redis to use.
type ClientConfig struct {
	Addrs      []string // one: single node; several: cluster; sentinels when MasterName is set
	Password   string
	DB         int
	MasterName string
}

// NewClient returns a go-redis UniversalClient for c. It does not connect
// until first used.
func NewClient(c ClientConfig) redis.UniversalClient {
	o := clientOptions(c)
	if c.MasterName == "" && len(c.Addrs) > 1 {
		co := o.Cluster()
		// A failed master's slots move to its replica within the node
		// timeout; go-redis learns the new map only from a MOVED answer
		// or when its copy is older than this (60 s by default), and until
		// then keeps dialling the dead node. One CLUSTER SLOTS a second,
		// asked lazily on use, keeps a failover's outage near the
		// failover's own length (e2e TestRedisClusterMasterFailover).
		co.ClusterStateReloadInterval = time.Second
		return redis.NewClusterClient(co)
	}
	return redis.NewUniversalClient(o)
}

// clientOptions are NewClient's options for c.
func clientOptions(c ClientConfig) *redis.UniversalOptions {
	return &redis.UniversalOptions{
		Addrs:      c.Addrs,
		Password:   c.Password,
		DB:         c.DB,
		MasterName: c.MasterName,
		// RESP2: the route subscribes to nothing, and RESP3 makes go-redis
		// look for push notifications around every command (a read
		// syscall each).
		Protocol: 2,
		// Fail fast so callers answer 5030 instead of hanging; the request
		// context still bounds everything.
		DialTimeout:           2 * time.Second,
		ReadTimeout:           2 * time.Second,
		WriteTimeout:          2 * time.Second,
		ContextTimeoutEnabled: true,
		MaxRetries:            2,
		DialerRetries:         2,
		DialerRetryTimeout:    50 * time.Millisecond,
	}
}

// SetRedisLogger sends go-redis's own log lines (dial failures and the like,
// which go-redis otherwise prints to stderr) to l at debug level: the errors
// that matter reach the caller as errs.ErrUnavailable. go-redis has one
// process-wide logger.
func SetRedisLogger(l *slog.Logger) {
	redis.SetLogger(redisLogger{l})
}

type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "redis")
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	return unavailable(s.rdb.Ping(ctx).Err())
}

type keys struct{ prefix string }

func (k keys) seq() string              { return k.prefix + "user:seq" }
func (k keys) user(id string) string    { return k.prefix + "user:{" + id + "}" }
func (k keys) names() string            { return k.prefix + "user:names" }
func (k keys) online() string           { return k.prefix + "login-status" }
func (k keys) route(id string) string   { return k.prefix + "route:{" + id + "}" }
func (k keys) cleared(id string) string { return k.prefix + "cleared:{" + id + "}" }

// routeIn and clearedIn are a device slot's route and cleared marker
// (--login-policy platform); slot "" is the user's single one.
func (k keys) routeIn(id, slot string) string   { return withSlot(k.route(id), slot) }
func (k keys) clearedIn(id, slot string) string { return withSlot(k.cleared(id), slot) }

// sessionKeys are the route and cleared marker of session sid's slot.
func (k keys) sessionKeys(id, sid string) []string {
	slot := contract.SlotOf(sid)
	return []string{k.routeIn(id, slot), k.clearedIn(id, slot)}
}

func withSlot(key, slot string) string {
	if slot == "" {
		return key
	}
	return key + ":" + slot
}
func (k keys) gwUsers(gw string) string  { return k.prefix + "server:" + gw + ":users" }
func (k keys) servers() string           { return k.prefix + "servers" }
func (k keys) inboxSeq(id string) string { return k.prefix + "seq:{" + id + "}" }
func (k keys) inbox(id string) string    { return k.prefix + "inbox:{" + id + "}" }
func (k keys) ack(id string) string      { return k.prefix + "ack:{" + id + "}" }
func (k keys) share(id string) string    { return k.prefix + "share:{" + id + "}" }

// dedup is in the recipient's slot: dedup, seq and append are one script.
func (k keys) dedup(id, key string) string { return k.prefix + "dedup:{" + id + "}:" + key }

// Group keys: a group's own keys share the {gid} tag (one membership script
// touches them all); the mirror, dedup and receipt keys are in a user's slot.
func (k keys) groupSeq() string           { return k.prefix + "group:seq" }
func (k keys) group(gid string) string    { return k.prefix + "group:{" + gid + "}" }
func (k keys) gmembers(gid string) string { return k.prefix + "gmembers:{" + gid + "}" }
func (k keys) ginvited(gid string) string { return k.prefix + "ginvited:{" + gid + "}" }
func (k keys) ugroups(uid string) string  { return k.prefix + "ugroups:{" + uid + "}" }
func (k keys) gdedup(uid, clientMsgID string) string {
	return k.prefix + "gdedup:{" + uid + "}:" + clientMsgID
}
func (k keys) grd(uid, msgID string) string { return k.prefix + "grd:{" + uid + "}:" + msgID }
func (k keys) grr(uid, msgID string) string { return k.prefix + "grr:{" + uid + "}:" + msgID }

// unavailable wraps a Redis failure; redis.Nil is not one and callers handle
// it before.
func unavailable(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, errs.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: redis: %v", errs.ErrUnavailable, err)
}

// pipeErr returns the first real error of a pipeline, ignoring redis.Nil
// (a missing key or field is an answer, not a failure).
func pipeErr(err error, cmds []redis.Cmder) error {
	if err == nil || errors.Is(err, redis.Nil) {
		for _, c := range cmds {
			if e := c.Err(); e != nil && !errors.Is(e, redis.Nil) {
				return unavailable(e)
			}
		}
		return nil
	}
	return unavailable(err)
}
